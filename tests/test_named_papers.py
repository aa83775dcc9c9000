"""A paper a profile names by id that the store does not hold (a seed older than the
store, a BibTeX library's) is asked of arXiv's API, so the ranker can use it.

The API answers are served by the local feed server: the captured id_list answers and
one hand-made answer (tests/data/feeds/handmade/README.md).
"""

from __future__ import annotations

import json
import mailbox
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

from digest import pipeline
from digest.config import Config, parse_sources
from digest.ingest import HttpFetcher
from digest.models import Profile
from digest.store import Store, open_store
from tests.fixtures.config import make_config
from tests.fixtures.http_server import FeedServer

DAY = date(2026, 5, 25)
NOW = datetime(2026, 5, 25, 7, 0, tzinfo=UTC)
SEED = "handmade/arxiv_api_id_list_2606.13677.xml"  # "Mana: Dexterous Manipulation ..."
EMPTY = "captured/arxiv_api/arxiv_api_2026_id_list_nonexistent_0000.0000_empty.xml"
REFUSED = "captured/arxiv_api/arxiv_api_2026_HTTP400_error_malformed_id_abc.xml"
UA = "digest-tests/1 (mailto:ops@example.org)"
DATA = Path(__file__).parent / "data" / "feeds"
HF_JUNE_12 = "captured/hf_daily_papers/hf_daily_papers_2026-06-12_30papers.json"
# One item in the shape of that capture: the seed paper 2606.13677 (hand-made).
HF_LISTS_SEED = "handmade/hf_daily_2026-06-13_a_named_paper.json"


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def fetcher() -> HttpFetcher:
    return HttpFetcher(user_agent=UA, sleep=lambda _: None, retries=0)


def setup(server: FeedServer, tmp_path: Path) -> tuple[Config, Store]:
    # The shipped sample batch as the day's papers; the API is the local server's.
    server.route("api/query", file=SEED, query={"id_list": "2606.13677"})
    server.route("api/query", file=EMPTY, query={"id_list": "2606.99999"})
    config = make_config(tmp_path / "var", arxiv_api=server.url("api/query"))
    return config, open_store(config.database_url)


def asked(server: FeedServer) -> list[str]:
    return [r.query["id_list"] for r in server.requests if r.path == "api/query"]


def mails(config: Config) -> list[str]:
    box = mailbox.Maildir(str(config.maildir), create=False)
    return [str(BytesParser(policy=policy.default).parsebytes(box.get_bytes(k))
                .get_body(("plain",)).get_content())  # type: ignore[union-attr]
            for k in box.keys()]  # noqa: SIM118 (Maildir is not a dict)


def test_a_seed_older_than_the_store_is_fetched_and_ranks_the_digest(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # The only signal is one seed paper the store has never seen. Unknown, it was
    # ignored: nothing relevant, no digest. Fetched, it picks the day's robot papers.
    config, store = setup(feed_server, tmp_path)
    store.add_subscriber("hands@example.org", Profile(seeds=("arxiv:2606.13677",)),
                         now=NOW - timedelta(days=1), send_hour=7, max_papers=5)
    report = pipeline.run(config, now=NOW, store=store, fetch=fetcher())
    assert asked(feed_server) == ["2606.13677"]
    named = next(s for s in report.sources if s.source == "named papers")
    assert (named.status, named.new) == ("ok", 1)
    kept = store.get_papers(["arxiv:2606.13677"])["arxiv:2606.13677"]
    assert kept.announce_type == "named" and kept.title.startswith("Mana")
    assert report.sent == 1
    [text] = mails(config)
    # The day's robot-manipulation papers, for what they share with the seed.
    assert "Why: shares with your seed paper" in text and "manipulation" in text
    assert "https://arxiv.org/abs/2606.13677" not in text  # never mailed itself
    # The next run has it: nothing is asked again.
    pipeline.run(config, now=NOW + timedelta(hours=1), store=store, fetch=fetcher())
    assert asked(feed_server) == ["2606.13677"]
    store.close()


def test_an_id_arxiv_does_not_know_is_asked_again_only_after_a_week(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    config, store = setup(feed_server, tmp_path)
    store.add_subscriber("typo@example.org", Profile(seeds=("arxiv:2606.99999",)),
                         now=NOW, send_hour=7)
    for hours in (0, 1, 24):
        pipeline.run(config, now=NOW + timedelta(hours=hours), store=store, fetch=fetcher())
    assert asked(feed_server) == ["2606.99999"]
    pipeline.run(config, now=NOW + timedelta(days=8), store=store, fetch=fetcher())
    assert asked(feed_server) == ["2606.99999", "2606.99999"]
    store.close()


def test_an_id_arxiv_refuses_does_not_hold_back_the_others(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # arXiv answers a list holding an id it cannot read with HTTP 400 for the whole
    # list: it is split until that id is alone, and the others are fetched.
    config, store = setup(feed_server, tmp_path)
    feed_server.route("api/query", file=REFUSED, query={"id_list": "0704.0001,2606.13677"})
    feed_server.route("api/query", file=REFUSED, query={"id_list": "0704.0001"})
    feed_server.fault("api/query", status=400, query={"id_list": "0704.0001"})
    feed_server.fault("api/query", status=400, query={"id_list": "0704.0001,2606.13677"})
    store.add_subscriber("two@example.org",
                         Profile(seeds=("arxiv:0704.0001", "arxiv:2606.13677")),
                         now=NOW, send_hour=7)
    report = pipeline.run(config, now=NOW, store=store, fetch=fetcher())
    assert asked(feed_server) == ["0704.0001,2606.13677", "0704.0001", "2606.13677"]
    named = next(s for s in report.sources if s.source == "named papers")
    assert named.status == "ok" and named.new == 1
    pipeline.run(config, now=NOW + timedelta(hours=1), store=store, fetch=fetcher())
    assert len(asked(feed_server)) == 3  # the refused id is settled too
    store.close()


def test_a_failing_api_is_asked_again_by_the_next_run(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    config, store = setup(feed_server, tmp_path)
    feed_server.fault("api/query", status=503, times=1)
    store.add_subscriber("hands@example.org", Profile(seeds=("arxiv:2606.13677",)),
                         now=NOW, send_hour=7)
    report = pipeline.run(config, now=NOW, store=store, fetch=fetcher())
    named = next(s for s in report.sources if s.source == "named papers")
    assert named.status == "error" and "503" in (named.error or "")
    assert not report.ok  # cron hears of it
    # And `digest status`, which the operator then reads, says why (it listed the
    # configured sources' health only: all ok, the failure nowhere).
    [health] = [h for h in store.source_health() if h["source"] == "named papers"]
    assert health["status"] == "error" and "503" in health["error"]
    pipeline.run(config, now=NOW + timedelta(hours=1), store=store, fetch=fetcher())
    assert asked(feed_server) == ["2606.13677", "2606.13677"]
    assert "arxiv:2606.13677" in store.get_papers(["arxiv:2606.13677"])
    [health] = [h for h in store.source_health() if h["source"] == "named papers"]
    assert (health["status"], health["new"], health["error"]) == ("ok", 1, None)
    store.close()


def test_a_named_paper_a_source_lists_as_new_later_is_mailed_that_day(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # Its author seeded 2606.13677: fetched on the 12th, it was filed there as "named".
    # When Hugging Face listed it the next day it became new but stayed in the 12th's
    # batch, whose digests had gone: no one got it, where without the seed anyone could.
    june_12, june_13 = date(2026, 6, 12), date(2026, 6, 13)
    config, store = setup(feed_server, tmp_path)
    listed = [*json.loads((DATA / HF_JUNE_12).read_text()),
              *json.loads((DATA / HF_LISTS_SEED).read_text())]
    feed_server.route("api/daily_papers", body=b"[]", query={"date": "2026-06-12"},
                      content_type="application/json")
    feed_server.route("api/daily_papers", body=json.dumps(listed).encode(),
                      query={"date": "2026-06-13"}, content_type="application/json")
    config = replace(config, sources=parse_sources(
        f"hf-daily:{feed_server.url('api/daily_papers')}"))
    store.add_subscriber("author@example.org", Profile(seeds=("arxiv:2606.13677",)),
                         now=at(june_12, 1), send_hour=7)
    robots = store.add_subscriber("robots@example.org", Profile(
        interests="dexterous manipulation of articulated tools with robot hands"),
        now=at(june_12, 1), send_hour=7)
    pipeline.run(config, now=at(june_12, 7), store=store, fetch=fetcher())
    assert asked(feed_server) == ["2606.13677"]
    named = store.get_papers(["arxiv:2606.13677"])["arxiv:2606.13677"]
    assert named.announce_type == "named"

    report = pipeline.run(config, now=at(june_13, 7), store=store, fetch=fetcher())
    [hf] = [s for s in report.sources if s.source.startswith("hf-daily")]
    assert hf.new == 31  # the 30 of the capture, and the seed: new to the digests
    assert "arxiv:2606.13677" in {p.key for p, _ in store.batch(june_13, june_13)}
    assert store.get_papers(["arxiv:2606.13677"])["arxiv:2606.13677"].announce_type == "new"
    [mailed] = [d for d in report.deliveries if d.subscriber_id == robots.id]
    assert mailed.status == "sent" and mailed.paper_keys[0] == "arxiv:2606.13677"
    store.close()


def test_an_instance_that_does_not_read_arxiv_asks_nothing(tmp_path: Path) -> None:
    # The shipped sample batch alone, the default API: no request leaves the machine
    # (tests/fixtures/offline.py would refuse it), and the report has no such source.
    config = make_config(tmp_path / "var")
    store = open_store(config.database_url)
    store.add_subscriber("a@example.org", Profile(seeds=("arxiv:2606.13677",)),
                         now=NOW, send_hour=7)
    report = pipeline.run(config, now=NOW, store=store)
    assert [s.source for s in report.sources if s.source == "named papers"] == []
    store.close()
