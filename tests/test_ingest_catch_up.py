"""An arXiv announcement no run read (the box was down, the feed failed all day) is not
lost: rss.arxiv.org lists only the latest one, so its papers are asked of the API.

Monday 2026-04-27 is the real capture of cs.LG; Wednesday's feed and the API's answer
are hand-made (tests/data/feeds/handmade/README.md): Tuesday's announcement was missed.
"""

from __future__ import annotations

import mailbox
from dataclasses import replace
from datetime import UTC, date, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from digest import pipeline
from digest.config import Config, parse_sources
from digest.ingest import HttpFetcher
from digest.ingest.arxiv import catch_up_url, missed_announcements
from digest.models import Profile, SourceResult
from digest.store import Store, open_store
from tests.fixtures.config import make_config
from tests.fixtures.http_server import FeedServer

MONDAY, TUESDAY, WEDNESDAY = date(2026, 4, 27), date(2026, 4, 28), date(2026, 4, 29)
MONDAY_FEED = "captured/arxiv_rss/arxiv_rss_cs.LG_2026-04-27_first3items.xml"
WEDNESDAY_FEED = "handmade/arxiv_rss_cs.LG_2026-04-29_after_a_missed_day.xml"
API_ANSWER = "handmade/arxiv_api_catch_up_2026-04-28.xml"
# Wednesday's feed listing v2 of Tuesday's 2604.22501 as a replacement.
REPLACED_FEED = "handmade/arxiv_rss_cs.LG_2026-04-29_missed_paper_replaced.xml"
UA = "digest-tests/1 (mailto:ops@example.org)"


def at(day: date, hour: int = 5) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def fetcher() -> HttpFetcher:
    return HttpFetcher(user_agent=UA, sleep=lambda _: None, retries=0)


def setup(server: FeedServer, tmp_path: Path, options: str = "") -> tuple[Config, Store]:
    server.route("rss/cs.LG", file=MONDAY_FEED)
    server.route("api/query", file=API_ANSWER)
    source = f"arxiv-rss:{server.url('rss/cs.LG')}" + (f"?{options}" if options else "")
    config = make_config(tmp_path / "var", sources=parse_sources(source),
                         arxiv_api=server.url("api/query"))
    return config, open_store(config.database_url)


def ingest(config: Config, store: Store, day: date, hour: int = 5) -> SourceResult:
    [result] = pipeline.ingest_sources(config, store, day=day, now=at(day, hour),
                                       fetch=fetcher())
    return result


def api_requests(server: FeedServer) -> list[dict[str, str]]:
    return [r.query for r in server.requests if r.path == "api/query"]


def batch_keys(store: Store, day: date) -> set[str]:
    return {p.key for p, _ in store.batch(day, day)}


def test_the_papers_of_a_missed_announcement_come_from_the_api(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    config, store = setup(feed_server, tmp_path)
    monday = ingest(config, store, MONDAY)
    assert monday.status == "ok" and monday.new == 3
    assert api_requests(feed_server) == []  # nothing missed: the first announcement read
    assert store.announcements() == {monday.source: MONDAY}

    feed_server.route("rss/cs.LG", file=WEDNESDAY_FEED)  # no run on Tuesday
    wednesday = ingest(config, store, WEDNESDAY)
    [query] = api_requests(feed_server)
    assert query["search_query"] == (
        "(cat:cs.LG) AND submittedDate:[202604230000 TO 202604302359]")
    # Newest first: a window past the cap leaves out its oldest papers, not the missed.
    assert (query["sortBy"], query["sortOrder"]) == ("submittedDate", "descending")
    assert wednesday.status == "ok"
    assert wednesday.note is not None and "2026-04-28" in wednesday.note
    # Tuesday's cs.LG paper is filed with Wednesday's; the cs.AI paper cross-listed to
    # cs.LG is not (the feed leaves cross-lists out by default), nor is Monday's paper
    # filed again.
    assert batch_keys(store, WEDNESDAY) == {
        "arxiv:2604.22501", "arxiv:2604.23101", "arxiv:2604.23102"}
    assert wednesday.new == 3
    assert "arxiv:2604.21952" in batch_keys(store, MONDAY)
    assert "arxiv:2604.22502" not in store.get_papers(["arxiv:2604.22502"])
    assert store.announcements() == {wednesday.source: WEDNESDAY}

    again = ingest(config, store, WEDNESDAY, hour=6)  # the next hourly run: caught up
    assert len(api_requests(feed_server)) == 1
    assert again.note is None and again.new == 0
    store.close()


def test_cross_listed_papers_are_caught_up_when_the_feed_takes_them(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    config, store = setup(feed_server, tmp_path, "cross=1")
    ingest(config, store, MONDAY)
    feed_server.route("rss/cs.LG", file=WEDNESDAY_FEED)
    ingest(config, store, WEDNESDAY)
    cross = store.get_papers(["arxiv:2604.22502"])["arxiv:2604.22502"]
    assert cross.announce_type == "cross"
    assert "arxiv:2604.22502" in batch_keys(store, WEDNESDAY)
    store.close()


def test_a_failing_api_keeps_the_gap_for_the_next_run(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    config, store = setup(feed_server, tmp_path)
    ingest(config, store, MONDAY)
    feed_server.route("rss/cs.LG", file=WEDNESDAY_FEED)
    feed_server.fault("api/query", status=503, times=1)
    failed = ingest(config, store, WEDNESDAY)
    # The feed's own papers are kept; the run says what it could not do, and when.
    assert failed.status == "partial"
    assert "missed since 2026-04-27 (2026-04-28)" in (failed.error or "")
    assert "next run tries again" in (failed.error or "")
    assert batch_keys(store, WEDNESDAY) == {"arxiv:2604.23101", "arxiv:2604.23102"}
    assert store.announcements() == {failed.source: MONDAY}

    retried = ingest(config, store, WEDNESDAY, hour=6)
    assert retried.status == "ok" and retried.note is not None
    assert "arxiv:2604.22501" in batch_keys(store, WEDNESDAY)
    assert store.announcements() == {retried.source: WEDNESDAY}
    store.close()


def test_the_feed_read_again_after_a_failed_catch_up_is_not_answered_304(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # With the day's validators stored, the next run's conditional GET would get 304,
    # hold no announcement day, and never retry the catch-up.
    config, store = setup(feed_server, tmp_path)
    ingest(config, store, MONDAY)
    feed_server.route("rss/cs.LG", file=WEDNESDAY_FEED)
    feed_server.validators("rss/cs.LG", etag='"wednesday"')
    feed_server.fault("api/query", status=503, times=1)
    assert ingest(config, store, WEDNESDAY).status == "partial"
    retried = ingest(config, store, WEDNESDAY, hour=6)
    assert retried.status == "ok" and retried.note is not None
    assert "arxiv:2604.22501" in batch_keys(store, WEDNESDAY)
    store.close()


def test_no_catch_up_when_turned_off_or_on_a_first_read(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    config, store = setup(feed_server, tmp_path / "off", "catchup=0")
    ingest(config, store, MONDAY)
    feed_server.route("rss/cs.LG", file=WEDNESDAY_FEED)
    ingest(config, store, WEDNESDAY)
    store.close()
    first, fresh = setup(feed_server, tmp_path / "first")
    feed_server.route("rss/cs.LG", file=WEDNESDAY_FEED)
    ingest(first, fresh, WEDNESDAY)  # a source read for the first time: nothing to catch up
    assert fresh.announcements() == {"arxiv-rss:" + feed_server.url("rss/cs.LG"): WEDNESDAY}
    fresh.close()
    assert api_requests(feed_server) == []


def test_a_subscriber_gets_the_missed_days_paper_in_the_next_digest(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    config, store = setup(feed_server, tmp_path)
    store.add_subscriber("reader@example.org", Profile(
        interests="token budgets for long-context retrieval", categories=("cs.LG",)),
        now=at(MONDAY, 1), send_hour=7, max_papers=10)
    pipeline.run(config, now=at(MONDAY, 7), store=store, fetch=fetcher())
    feed_server.route("rss/cs.LG", file=WEDNESDAY_FEED)
    report = pipeline.run(config, now=at(WEDNESDAY, 7), store=store, fetch=fetcher())
    assert report.sent == 1
    box = mailbox.Maildir(str(config.maildir), create=False)
    latest = max((BytesParser(policy=policy.default).parsebytes(box.get_bytes(k))
                  for k in box.keys()),  # noqa: SIM118 (Maildir is not a dict)
                 key=lambda m: str(m["Date"]))
    text = str(latest.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "Token Budgets for Long-Context Retrieval Models" in text
    assert "https://arxiv.org/abs/2604.22501" in text
    store.close()


def test_a_missed_paper_replaced_on_the_day_read_is_mailed_as_new(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # Tuesday's 2604.22501 was revised on Wednesday: the feed read on Wednesday lists
    # it as a replacement (v2). Dropped from the API's answer as "held by the feed",
    # it was stored as a replacement of a paper never stored, and never mailed.
    config, store = setup(feed_server, tmp_path)
    ingest(config, store, MONDAY)
    feed_server.route("rss/cs.LG", file=REPLACED_FEED)
    wednesday = ingest(config, store, WEDNESDAY)
    assert wednesday.status == "ok" and wednesday.new == 3
    caught = store.get_papers(["arxiv:2604.22501"])["arxiv:2604.22501"]
    assert (caught.announce_type, caught.version) == ("new", 2)
    assert "arxiv:2604.22501" in batch_keys(store, WEDNESDAY)
    # Monday's paper, in the API's answer too, stays Monday's and new.
    assert "arxiv:2604.21952" in batch_keys(store, MONDAY)
    store.close()

@pytest.mark.parametrize(("last", "current", "missed"), [
    (date(2026, 4, 24), date(2026, 4, 27), []),  # Friday, then Monday
    (MONDAY, TUESDAY, []),
    (MONDAY, WEDNESDAY, [TUESDAY]),
    (date(2026, 4, 23), date(2026, 4, 28), [date(2026, 4, 24), MONDAY]),  # Thu -> Tue
    (WEDNESDAY, MONDAY, []),  # a feed older than the last read (a cache): nothing
])
def test_missed_announcement_days(last: date, current: date, missed: list[date]) -> None:
    assert missed_announcements(last, current) == missed


def test_missed_days_go_back_two_weeks_at_most() -> None:
    missed = missed_announcements(date(2026, 1, 5), WEDNESDAY)
    assert missed[0] == date(2026, 4, 16) and missed[-1] == TUESDAY and len(missed) == 9


def test_archives_are_asked_for_with_their_subject_classes() -> None:
    url = catch_up_url("https://export.arxiv.org/api/query", ("cs", "quant-ph", "stat.ML"),
                       MONDAY, WEDNESDAY)
    assert ("search_query=%28cat:cs+OR+cat:cs.*+OR+cat:quant-ph+OR+cat:quant-ph.*"
            "+OR+cat:stat.ML%29+AND+submittedDate:%5B202604230000+TO+202604302359%5D") in url


def test_days_filed_stay_the_first_ones(feed_server: FeedServer, tmp_path: Path) -> None:
    # Thursday's run reads Wednesday's feed again (arXiv was late): no gap, no request.
    config, store = setup(feed_server, tmp_path)
    ingest(config, store, MONDAY)
    feed_server.route("rss/cs.LG", file=WEDNESDAY_FEED)
    ingest(config, store, WEDNESDAY)
    ingest(replace(config), store, date(2026, 4, 30))
    assert len(api_requests(feed_server)) == 1
    store.close()


def test_a_cached_older_feed_does_not_take_the_last_day_read_back(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # A cache in front of rss.arxiv.org serves Monday's copy to the next hourly run.
    # Recorded as the last day read, it made the run after it ask the API again for
    # Tuesday, caught up already: a fortnight's query, a note saying it was missed.
    config, store = setup(feed_server, tmp_path)
    ingest(config, store, MONDAY)
    feed_server.route("rss/cs.LG", file=WEDNESDAY_FEED)
    source = ingest(config, store, WEDNESDAY).source
    feed_server.route("rss/cs.LG", file=MONDAY_FEED)
    ingest(config, store, WEDNESDAY, hour=6)
    assert store.announcements() == {source: WEDNESDAY}
    feed_server.route("rss/cs.LG", file=WEDNESDAY_FEED)
    again = ingest(config, store, WEDNESDAY, hour=7)
    assert again.note is None and len(api_requests(feed_server)) == 1
    store.close()

# -- Hugging Face daily papers: a day's list no run read --------------------------------

HF_JUNE_12 = "captured/hf_daily_papers/hf_daily_papers_2026-06-12_30papers.json"
HF_JUNE_11 = "handmade/hf_daily_2026-06-11_two_papers.json"
JUNE_10, JUNE_11, JUNE_12 = date(2026, 6, 10), date(2026, 6, 11), date(2026, 6, 12)


def hf_setup(server: FeedServer, tmp_path: Path) -> tuple[Config, Store]:
    server.route("api/daily_papers", body=b"[]", query={"date": "2026-06-10"},
                 content_type="application/json")
    server.route("api/daily_papers", file=HF_JUNE_11, query={"date": "2026-06-11"})
    server.route("api/daily_papers", file=HF_JUNE_12, query={"date": "2026-06-12"})
    config = make_config(tmp_path / "var", sources=parse_sources(
        f"hf-daily:{server.url('api/daily_papers')}"))
    return config, open_store(config.database_url)


def hf_dates(server: FeedServer) -> list[str]:
    return [r.query["date"] for r in server.requests if r.path == "api/daily_papers"]


def test_a_hugging_face_list_no_run_read_is_read_the_next_day(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    config, store = hf_setup(feed_server, tmp_path)
    ingest(config, store, JUNE_10, hour=20)
    assert hf_dates(feed_server) == ["2026-06-10"]
    # No run on the 11th. The 12th reads its own list, the 11th's, and the 10th's again
    # (papers are added to a day's list all day, after that day's last run too).
    result = ingest(config, store, JUNE_12)
    assert sorted(hf_dates(feed_server)[1:]) == ["2026-06-10", "2026-06-11", "2026-06-12"]
    assert result.status == "ok" and "2026-06-11" in (result.note or "")
    assert "arxiv:2606.09901" in batch_keys(store, JUNE_12)
    assert len(batch_keys(store, JUNE_12)) == 31  # the 30 of the 12th, one of the 11th
    assert store.announcements() == {result.source: JUNE_12}
    ingest(config, store, JUNE_12, hour=6)  # later the same day: its own list only
    assert hf_dates(feed_server)[-1:] == ["2026-06-12"] and len(hf_dates(feed_server)) == 5
    store.close()


def test_a_run_for_an_earlier_day_does_not_take_the_last_list_read_back(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # `digest run --date 2026-06-10` on the 12th reads the 10th's list. Recorded as the
    # last list read, it made the next day's run read the 10th's, 11th's and 12th's
    # lists again, whole, for nothing.
    config, store = hf_setup(feed_server, tmp_path)
    ingest(config, store, JUNE_11, hour=20)
    result = ingest(config, store, JUNE_12)
    ingest(config, store, JUNE_10, hour=9)  # the operator's re-run of an earlier day
    assert store.announcements() == {result.source: JUNE_12}
    feed_server.route("api/daily_papers", body=b"[]", query={"date": "2026-06-13"},
                      content_type="application/json")
    before = len(hf_dates(feed_server))
    ingest(config, store, date(2026, 6, 13))
    assert sorted(hf_dates(feed_server)[before:]) == ["2026-06-12", "2026-06-13"]
    store.close()

def test_a_hugging_face_list_that_fails_is_read_by_the_next_run(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    config, store = hf_setup(feed_server, tmp_path)
    ingest(config, store, JUNE_10, hour=20)
    feed_server.fault("api/daily_papers", status=503, times=1, query={"date": "2026-06-11"})
    failed = ingest(config, store, JUNE_12)
    assert failed.status == "partial" and "2026-06-11" in (failed.error or "")
    assert "arxiv:2606.09901" not in batch_keys(store, JUNE_12)
    assert store.announcements() == {failed.source: JUNE_10}
    retried = ingest(config, store, JUNE_12, hour=6)
    assert retried.status == "ok"
    assert "arxiv:2606.09901" in batch_keys(store, JUNE_12)
    store.close()


def test_a_catch_up_past_its_cap_says_what_it_left_out(
    feed_server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from digest.ingest import arxiv

    monkeypatch.setattr(arxiv, "CATCH_UP_LIMIT", 2)
    config, store = setup(feed_server, tmp_path)
    ingest(config, store, MONDAY)
    feed_server.route("rss/cs.LG", file=WEDNESDAY_FEED)
    capped = ingest(config, store, WEDNESDAY)
    assert capped.status == "partial"
    assert "read the newest 2 papers the arXiv API listed since 2026-04-23" in (
        capped.error or "")
    store.close()


def test_a_feed_named_by_an_alias_code_catches_up_the_papers_of_its_other_code(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # arXiv files numerical analysis under math.NA and its alias cs.NA, and gives its
    # papers the canonical math.NA alone, as their primary (the corpus: 61 of 65). A
    # source read as arxiv-rss:cs.NA asked the API for cat:cs.NA only, and dropped
    # whatever it got whose primary was math.NA as a cross-list: the missed day's
    # numerical analysis papers were never filed. The same answer with the day's papers
    # in math.NA.
    answer = (feed_server.root / API_ANSWER).read_bytes().replace(b"cs.LG", b"math.NA")
    feed_server.route("rss/cs.NA", file=MONDAY_FEED)
    feed_server.route("api/query", body=answer)
    config = make_config(tmp_path / "var",
                         sources=parse_sources(f"arxiv-rss:{feed_server.url('rss/cs.NA')}"),
                         arxiv_api=feed_server.url("api/query"))
    store = open_store(config.database_url)
    ingest(config, store, MONDAY)
    feed_server.route("rss/cs.NA", file=WEDNESDAY_FEED)
    ingest(config, store, WEDNESDAY)
    # Tuesday's math.NA papers are filed with Wednesday's (before: only the feed's
    # own two); the cs.AI one is still a cross-list the feed does not take.
    assert batch_keys(store, WEDNESDAY) == {
        "arxiv:2604.22501", "arxiv:2604.23101", "arxiv:2604.23102"}
    assert "arxiv:2604.22502" not in store.get_papers(["arxiv:2604.22502"])
    # And the API is asked for both codes (it lists most of them under math.NA alone).
    [query] = api_requests(feed_server)
    assert query["search_query"].startswith("(cat:cs.NA OR cat:math.NA) AND ")
    store.close()
