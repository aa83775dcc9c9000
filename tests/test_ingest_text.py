"""Paper text as researchers read it: entities, invisible characters, wrong charsets."""

from __future__ import annotations

from datetime import date

from digest.ingest import HttpFetcher, collect
from digest.models import SourceResult, SourceSpec
from tests.fixtures.http_server import FeedServer

UA = "digest-tests/1 (mailto:ops@example.org)"
TUESDAY = date(2026, 5, 5)
HANDMADE = "handmade"


def one(server: FeedServer, kind: str, path: str) -> SourceResult:
    spec = SourceSpec(name="s", kind=kind, location=server.url(path))
    fetch = HttpFetcher(user_agent=UA, sleep=lambda _: None, retries=0)
    [result] = collect([spec], day=TUESDAY, user_agent=UA, fetch=fetch)
    return result


def test_entities_in_feed_text_without_tags_are_decoded(feed_server: FeedServer) -> None:
    """A title escaped twice, a CDATA abstract of entities: text without tags was left as
    it came, so readers saw "Gene &amp; protein" and "an &alpha;-helix where a &lt; b".
    """
    result = one(feed_server, "rss", f"{HANDMADE}/rss_entities_without_tags.xml")
    assert result.status == "ok"
    [paper] = result.papers
    assert paper.title == "Gene & protein networks in “dark” matter – a review"
    assert paper.abstract == (
        "Cells & tissues with an α-helix where a < b holds, so $a<b$ and $c > d$ stay – "
        "and AT&T, Q&A or R&D stay as typed."
    )
    assert paper.authors == ("José Raúl Romero", "Karl Bäckström")


def test_windows_1252_quotes_in_a_feed_declared_latin_1(feed_server: FeedServer) -> None:
    """A feed declared ISO-8859-1 holding Windows-1252 bytes (what Windows editors save,
    and what browsers read such a feed as): its curly quotes and dashes came out as C1
    control characters, invisible or boxes in the email and in the stored title.
    """
    result = one(feed_server, "rss", f"{HANDMADE}/rss_latin1_declared_cp1252_quotes.xml")
    assert result.status == "ok"
    [paper] = result.papers
    assert paper.title == "The “best” model – not … café™ trade€ marks"
    assert paper.abstract == "It’s a survey of naïve Bayes — with „quotes“ and $a<b$."
    assert not any("\x80" <= c <= "\x9f" for c in paper.title + paper.abstract)
