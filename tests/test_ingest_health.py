"""Quiet, stale, partial or broken: each source's health, and text that survives intact."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from digest.ingest import HttpFetcher, assess, collect
from digest.models import SourceResult, SourceSpec
from digest.store import open_store
from tests.fixtures.config import make_config
from tests.fixtures.http_server import FeedServer

UA = "digest-tests/1 (mailto:ops@example.org)"
TUESDAY = date(2026, 5, 5)
SATURDAY = date(2026, 5, 2)
HANDMADE = "handmade"


def fetcher() -> HttpFetcher:
    return HttpFetcher(user_agent=UA, sleep=lambda _: None, retries=0)


def one(server: FeedServer, kind: str, path: str, *, day: date = TUESDAY,
        options: tuple[tuple[str, str], ...] = ()) -> SourceResult:
    spec = SourceSpec(name="s", kind=kind, location=server.url(path), options=options)
    [result] = collect([spec], day=day, user_agent=UA, fetch=fetcher())
    return result


def test_html_page_served_with_200_is_an_error_not_an_empty_feed(
    feed_server: FeedServer,
) -> None:
    for kind in ("arxiv-rss", "rss", "arxiv-api", "hf-daily"):
        result = one(feed_server, kind, f"{HANDMADE}/html_error_page.html")
        assert result.status == "error", kind
        assert "HTML page" in (result.error or "")
        assert "hint:" in (result.error or "")


def test_html_page_with_an_xml_content_type_is_still_an_error(feed_server: FeedServer) -> None:
    feed_server.fault(f"{HANDMADE}/html_error_page.html", content_type="application/rss+xml")
    result = one(feed_server, "arxiv-rss", f"{HANDMADE}/html_error_page.html")
    assert result.status == "error" and "HTML page" in (result.error or "")


def test_a_feed_or_json_served_as_text_html_is_read_for_what_it_is(
    feed_server: FeedServer,
) -> None:
    """Real captures served with a wrong Content-Type (a misconfigured server or proxy).

    bioRxiv's feed begins with <rdf:RDF> (no XML declaration), Hugging Face's answer
    with "[": served as text/html, each was refused as "an HTML page, not a feed", though
    an RSS 2.0 body (<rss ...>) with the same header was read.
    """
    for kind, path, count in (
        ("rss", "captured/other_scholarly/biorxiv_20250413.xml", 30),
        ("hf-daily", "captured/hf_daily_papers/hf_daily_papers_2026-06-12_30papers.json", 30),
        ("rss", "captured/other_scholarly/bmc_20250413.xml", 5),
    ):
        feed_server.fault(path, content_type="text/html; charset=utf-8")
        result = one(feed_server, kind, path)
        assert (result.status, len(result.papers)) == ("ok", count), (path, result.error)
    # A real HTML page with that header is still refused, as is one with a feed's header.
    page = one(feed_server, "rss", f"{HANDMADE}/html_error_page.html")
    assert page.status == "error" and "HTML page" in (page.error or "")


def test_xml_bomb_is_refused(feed_server: FeedServer) -> None:
    result = one(feed_server, "rss", f"{HANDMADE}/xml_bomb.xml")
    assert result.status == "error"
    assert "refused" in (result.error or "") and "entit" in (result.error or "")


def test_broken_bomb_never_reaches_the_lenient_parser(feed_server: FeedServer) -> None:
    path = f"{HANDMADE}/xml_bomb.xml"
    body = (feed_server.root / path).read_bytes().replace(b"</channel>", b"</chanel>")
    feed_server.fault(path, body=body)
    result = one(feed_server, "rss", path)
    assert result.status == "error" and "refused" in (result.error or "")


def test_truncated_file_yields_the_complete_items_as_partial(feed_server: FeedServer) -> None:
    result = one(feed_server, "arxiv-rss", f"{HANDMADE}/arxiv_rss_truncated.xml",
                 day=date(2026, 9, 24))
    assert result.status == "partial"
    assert [p.key for p in result.papers] == ["arxiv:2609.26811", "arxiv:2609.26820"]
    assert "malformed XML" in (result.error or "")


def test_empty_feed_on_a_skip_day_is_quiet(feed_server: FeedServer) -> None:
    result = one(feed_server, "arxiv-rss", f"{HANDMADE}/arxiv_rss_empty_weekend.xml",
                 day=SATURDAY)
    assert (result.status, result.papers, result.error) == ("quiet", (), None)


def test_empty_feed_on_a_weekday_is_quiet_but_says_so(feed_server: FeedServer) -> None:
    result = one(feed_server, "arxiv-rss", f"{HANDMADE}/arxiv_rss_empty_weekend.xml")
    assert result.status == "quiet"
    assert "Tuesday" in (result.error or "") and "skip days" in (result.error or "")


def test_weekday_repeat_of_yesterdays_ids_is_stale_once_behind(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    monday = one(feed_server, "arxiv-rss",
                 "captured/arxiv_rss/arxiv_rss_cs.LG_2026-04-27_first3items.xml",
                 day=date(2026, 4, 27))
    assert assess(monday, new=3, day=date(2026, 4, 27)).status == "ok"
    db = open_store(make_config(tmp_path / "var").database_url)
    try:
        db.save_papers(monday.papers, batch_day=date(2026, 4, 27),
                       now=datetime(2026, 4, 27, 5, tzinfo=UTC))
        tuesday = one(feed_server, "arxiv-rss", f"{HANDMADE}/arxiv_rss_stale_repeat.xml",
                      day=date(2026, 4, 28))
        new = len(tuesday.papers) - len(db.get_papers(p.key for p in tuesday.papers))
        checked = assess(tuesday, new=new, day=date(2026, 4, 28))
        # Seen again on Tuesday morning: within a day and a half of Monday's papers.
        morning = db.judge_source(checked, now=datetime(2026, 4, 28, 9, tzinfo=UTC))
        # Still the same ids on Tuesday evening: a whole announcement day behind.
        judged = db.judge_source(checked, now=datetime(2026, 4, 28, 20, tzinfo=UTC))
    finally:
        db.close()
    assert (morning.status, morning.new) == ("ok", 0)
    assert (judged.status, judged.new) == ("stale", 0)
    assert "already seen" in (judged.error or "")
    assert len(judged.papers) == 3


def test_assess_leaves_weekends_errors_and_fresh_feeds_alone() -> None:
    from digest.models import Paper

    paper = Paper(key="arxiv:2401.00001", title="t")
    ok = SourceResult("s", "ok", (paper,))
    assert assess(ok, new=0, day=SATURDAY).status == "ok"
    assert assess(ok, new=1, day=TUESDAY) == replace(ok, new=1)
    error = SourceResult("s", "error", error="boom")
    assert assess(error, new=0, day=TUESDAY).status == "error"
    only_replacements = SourceResult("s", "ok", (replace(paper, announce_type="replace"),))
    assert assess(only_replacements, new=0, day=TUESDAY).status == "ok"
    quiet = SourceResult("s", "quiet")
    assert assess(quiet, new=0, day=TUESDAY).status == "quiet"


def test_one_failing_source_does_not_stop_the_others(feed_server: FeedServer) -> None:
    good = "captured/other_scholarly/bmc_20250413.xml"
    feed_server.fault("broken.xml", status=500)
    specs = [
        SourceSpec(name="broken", kind="rss", location=feed_server.url("broken.xml")),
        SourceSpec(name="bomb", kind="rss", location=feed_server.url(f"{HANDMADE}/xml_bomb.xml")),
        SourceSpec(name="weird", kind="nonsense", location="x"),
        SourceSpec(name="good", kind="rss", location=feed_server.url(good)),
    ]
    results = collect(specs, day=TUESDAY, user_agent=UA, fetch=fetcher())
    assert [(r.source, r.status) for r in results] == [
        ("broken", "error"), ("bomb", "error"), ("weird", "error"), ("good", "ok"),
    ]
    assert len(results[3].papers) == 5
    assert all(r.duration_s >= 0 for r in results)


# --- text fidelity --------------------------------------------------------------------


def test_latex_abstracts_survive_exactly_and_title_zero_is_a_title(
    feed_server: FeedServer,
) -> None:
    result = one(feed_server, "arxiv-rss", f"{HANDMADE}/arxiv_rss_latex_title0.xml",
                 options=(("cross", "1"),))
    assert result.status == "ok"
    zero, bounds = result.papers
    assert zero.title == "0"
    assert zero.abstract == (
        r"We prove that $a<b$ and $c > d$ imply $a+c \ne b+d$ for R&D budgets; "
        "the literal text &lt;tag&gt; stays escaped."
    )
    assert zero.authors == ("Ada Lovelace", "Emmy Noether")
    assert bounds.title == "Bounds for $x<y$ & friends"
    assert bounds.abstract == r"If $0<p<1$ then $\sum_{n>0} p^n < \infty$."
    assert bounds.announce_type == "replace-cross" and bounds.version == 2


def test_replace_cross_needs_the_cross_option(feed_server: FeedServer) -> None:
    result = one(feed_server, "arxiv-rss", f"{HANDMADE}/arxiv_rss_latex_title0.xml")
    assert [p.key for p in result.papers] == ["arxiv:2605.00001"]


def test_arxiv_api_latex_and_old_style_id(feed_server: FeedServer) -> None:
    result = one(feed_server, "arxiv-api", f"{HANDMADE}/arxiv_api_latex.xml")
    [paper] = result.papers
    assert paper.key == "arxiv:hep-th/9901001" and paper.version == 3
    assert paper.title == "Strings with $N<4$ supersymmetry"
    assert paper.abstract == "We show $a<b$ and $c > d$ for all $g_{s} < 1$."
    assert paper.categories == ("hep-th", "gr-qc")


def test_generic_atom_html_is_stripped_but_latex_kept(feed_server: FeedServer) -> None:
    result = one(feed_server, "rss", f"{HANDMADE}/atom_html_summary.xml")
    assert result.status == "ok"
    html_post, mirrored, article, bare = result.papers
    assert html_post.title == "Fast & loose"
    assert html_post.abstract == "We show that $x<y$ holds. Second paragraph."
    assert html_post.authors == ("Grace Hopper",)
    assert mirrored.key == "arxiv:2605.00001" and mirrored.version == 2
    assert mirrored.abstract == "Plain text with $a<b$ and $c > d$."
    assert article.key == "doi:10.1000/abc.123"
    assert bare.key == "s:tag:lab.example.org,2026:4"
