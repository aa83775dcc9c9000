"""Papers from real feeds as a subscriber reads them: ingested over HTTP, ranked, mailed."""

from __future__ import annotations

import mailbox
from datetime import UTC, date, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

from digest import pipeline
from digest.config import Config, parse_sources
from digest.models import Paper, Profile
from digest.store import open_store
from tests.fixtures.config import make_config
from tests.fixtures.http_server import FeedServer

THURSDAY = date(2026, 9, 24)
NOW = datetime(2026, 9, 24, 9, 0, tzinfo=UTC)
COMBINED = ("captured/arxiv_rss/"
            "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_new_cross_replace_4items.xml")


def texts(config: Config) -> list[str]:
    """Return the text part of every message in the Maildir."""
    box = mailbox.Maildir(str(config.maildir), create=False)
    messages = [BytesParser(policy=policy.default).parsebytes(box.get_bytes(key))
                for key in box.keys()]  # noqa: SIM118 (Maildir is not a dict)
    return [str(m.get_body(("plain",)).get_content()) for m in messages]  # type: ignore[union-attr]


def test_an_old_paper_revised_today_is_kept_but_not_mailed_as_new(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # The capture lists two new papers and arXiv:2009.13987 (2020) replaced at v3; the
    # store has never seen that paper. A reader of random polytopes in cs.LG would
    # have had it first, as one of "3 new today".
    config = make_config(tmp_path / "var",
                         sources=parse_sources(f"arxiv-rss:{feed_server.url(COMBINED)}"))
    store = open_store(config.database_url)
    store.add_subscriber("reader@example.org", Profile(
        interests="random polytopes for classification and clustering",
        categories=("cs.LG",)), now=NOW, send_hour=7, max_papers=10)
    report = pipeline.run(config, now=NOW, day=THURSDAY, store=store)
    assert report.sent == 1
    [text] = texts(config)
    assert "2009.13987" not in text and "Random Polytope Descriptors" not in text
    assert "https://arxiv.org/abs/2609.26811" in text
    assert "from 2 new today" in text
    # Kept all the same: the ranker's history, a typed title, later versions update it.
    kept = store.get_papers(["arxiv:2009.13987"])["arxiv:2009.13987"]
    assert kept.version == 3 and kept.announce_type == "replace"
    store.close()


def test_a_paper_one_source_lists_as_new_stays_new_when_another_listed_it_replaced(
    tmp_path: Path,
) -> None:
    # Sources are saved one after the other: arXiv's replacement of a paper first, then
    # Hugging Face's list of the day's papers holding it. Saved the other way round, or
    # in one source, it was new; the order of DIGEST_SOURCES must not hide it.
    store = open_store(make_config(tmp_path / "var").database_url)
    replaced = Paper(key="arxiv:2609.00001", title="A paper", announce_type="replace",
                     version=2)
    store.save_papers([replaced], batch_day=THURSDAY, now=NOW)
    store.save_papers([Paper(key="arxiv:2609.00001", title="A paper", upvotes=40)],
                      batch_day=THURSDAY, now=NOW)
    stored = store.get_papers(["arxiv:2609.00001"])["arxiv:2609.00001"]
    assert stored.announce_type == "new" and stored.version == 2 and stored.upvotes == 40
    store.close()
