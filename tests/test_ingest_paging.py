"""Hugging Face daily papers page by page, and publishers' abstract labels."""

from __future__ import annotations

import json
from datetime import date

import pytest

from digest.ingest import HttpFetcher, collect
from digest.ingest.text import html_to_text, strip_abstract_label
from digest.models import SourceResult, SourceSpec
from tests.fixtures.http_server import FEEDS_DIR, FeedServer

UA = "digest-tests/1 (mailto:ops@example.org)"
CAPTURE = "captured/hf_daily_papers/hf_daily_papers_2026-06-12_30papers.json"
DAY = date(2026, 6, 12)


def items() -> list[dict[str, object]]:
    loaded: list[dict[str, object]] = json.loads((FEEDS_DIR / CAPTURE).read_bytes())
    return loaded


def serve_pages(server: FeedServer, size: int) -> None:
    """Serve the real 30-item answer as pages of ``size``, the way ``p``/``limit`` cut it."""
    everything = items()
    for number in range(len(everything) // size + 1):
        page = everything[number * size:(number + 1) * size]
        server.route("api/daily_papers", body=json.dumps(page).encode(),
                     query={"date": DAY.isoformat(), "p": str(number), "limit": str(size)},
                     content_type="application/json")


def read(server: FeedServer, *options: tuple[str, str]) -> SourceResult:
    spec = SourceSpec(name="hf", kind="hf-daily", location=server.url("api/daily_papers"),
                      options=tuple(options))
    [result] = collect([spec], day=DAY, user_agent=UA,
                       fetch=HttpFetcher(user_agent=UA, sleep=lambda _: None))
    return result


def test_hf_daily_reads_every_page_until_a_short_one(feed_server: FeedServer) -> None:
    serve_pages(feed_server, 12)
    result = read(feed_server, ("limit", "12"))
    assert result.status == "ok"
    assert [p.key for p in result.papers] == [
        f"arxiv:{item['paper']['id']}" for item in items()]  # type: ignore[index]
    assert [(r.query["p"], r.query["limit"]) for r in feed_server.requests] == [
        ("0", "12"), ("1", "12"), ("2", "12")]


def test_hf_daily_asks_once_more_after_a_full_last_page(feed_server: FeedServer) -> None:
    serve_pages(feed_server, 10)  # 30 = 3 full pages; the 4th answer is an empty list
    result = read(feed_server, ("limit", "10"))
    assert result.status == "ok" and len(result.papers) == 30
    assert [r.query["p"] for r in feed_server.requests] == ["0", "1", "2", "3"]


def test_hf_daily_stops_when_the_server_ignores_the_page(feed_server: FeedServer) -> None:
    feed_server.route("api/daily_papers", file=CAPTURE)  # same 30 items whatever p says
    result = read(feed_server, ("limit", "30"))
    assert result.status == "ok" and len(result.papers) == 30
    assert len(feed_server.requests) == 2


def test_hf_daily_says_so_when_the_page_cap_cut_the_day_short(feed_server: FeedServer) -> None:
    serve_pages(feed_server, 5)
    result = read(feed_server, ("limit", "5"), ("pages", "2"))
    assert result.status == "partial" and len(result.papers) == 10
    assert result.error and "stopped after 2 pages" in result.error


def test_hf_daily_keeps_an_explicit_week(feed_server: FeedServer) -> None:
    feed_server.route("api/daily_papers", file=CAPTURE)
    spec = SourceSpec(name="hf", kind="hf-daily",
                      location=feed_server.url("api/daily_papers", "week=2026-W24"))
    collect([spec], day=DAY, user_agent=UA, fetch=HttpFetcher(user_agent=UA))
    assert feed_server.requests[0].query == {"week": "2026-W24", "p": "0", "limit": "100"}


def test_oup_abstracts_lose_the_abstract_label_and_keep_section_headings(
    feed_server: FeedServer,
) -> None:
    spec = SourceSpec(name="oup", kind="rss",
                      location=feed_server.url("captured/other_scholarly/oxford_20250413.xml"))
    [result] = collect([spec], day=DAY, user_agent=UA, fetch=HttpFetcher(user_agent=UA))
    first = result.papers[0]
    assert first.abstract.startswith("Cells differentiate to their final fates")
    assert "Availability and Implementation: The R version of CytoSimplex" in first.abstract
    for paper in result.papers:
        assert not paper.abstract.startswith(("Abstract", "Summary"))
    motivation = [p for p in result.papers if p.abstract.startswith("Motivation: ")]
    assert len(motivation) == 3 and all("Results: " in p.abstract for p in motivation)


# A feed's description of nothing but labels: each was cut off with a fresh copy of
# the rest, quadratic (1 MB took 40 s; the 20 MB a fetch allows, hours of the run).
# The timeout is a guard, not a benchmark.
@pytest.mark.timeout(60)
def test_a_description_of_endless_labels_is_stripped_quickly() -> None:
    labels = "Abstract: Summary: Abstract " * 160_000
    assert strip_abstract_label(labels + "Cells divide.") == "Cells divide."
    assert strip_abstract_label(labels) == "Abstract"  # a last word, not a label


# An unclosed <div> tag of many class attributes in a feed's description: finding the
# structured-abstract headings tried each attribute against each other (20,000 took
# 46 s). A guard, not a benchmark.
@pytest.mark.timeout(60)
def test_a_div_of_endless_class_attributes_is_read_quickly() -> None:
    soup = "<p>Cells</p><div a " + 'class="boxTitle" ' * 40_000
    assert html_to_text(soup).startswith("Cells <div a class=")
    heading = '<div id="x" class="box boxTitle big">Results</div>Cells divide.'
    assert html_to_text(heading) == "Results: Cells divide."


def test_abstract_labels_are_stripped_only_as_labels() -> None:
    assert strip_abstract_label("Abstract Summary: Cells") == "Cells"
    assert strip_abstract_label("Abstract: Motivation: M") == "Motivation: M"
    assert strip_abstract_label("Abstraction helps") == "Abstraction helps"
    assert strip_abstract_label("Summary statistics of x") == "Summary statistics of x"
    escaped = '<div class="boxTitle">Abstract</div><div class="boxTitle">Summary</div>A &amp; B'
    assert strip_abstract_label(html_to_text(escaped)) == "A & B"
