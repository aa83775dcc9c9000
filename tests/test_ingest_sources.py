"""Every real capture, served over local HTTP and read through collect()."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from digest.errors import SourceError
from digest.ingest import FetchResponse, HttpFetcher, collect
from digest.models import SourceResult, SourceSpec
from tests.fixtures.http_server import FeedServer

UA = "digest-tests/1 (mailto:ops@example.org)"
THURSDAY = date(2026, 9, 24)
RSS_DIR = "captured/arxiv_rss"
API_DIR = "captured/arxiv_api"
COMBINED = f"{RSS_DIR}/arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_new_cross_replace_4items.xml"


def fetcher(sleeps: list[float] | None = None) -> HttpFetcher:
    return HttpFetcher(user_agent=UA, sleep=(sleeps if sleeps is not None else []).append)


def one(server: FeedServer, kind: str, path: str, *, day: date = THURSDAY,
        options: tuple[tuple[str, str], ...] = (), query: str = "") -> SourceResult:
    spec = SourceSpec(name=f"{kind}:test", kind=kind, location=server.url(path, query),
                      options=options)
    [result] = collect([spec], day=day, user_agent=UA, fetch=fetcher())
    return result


# --- arXiv RSS ------------------------------------------------------------------------


def test_arxiv_rss_keeps_new_items_and_replacements_but_not_cross_lists_by_default(
    feed_server: FeedServer,
) -> None:
    result = one(feed_server, "arxiv-rss", COMBINED)
    assert result.status == "ok"
    assert [(p.key, p.announce_type) for p in result.papers] == [
        ("arxiv:2609.26811", "new"),
        ("arxiv:2609.26820", "new"),
        ("arxiv:2009.13987", "replace"),
    ]
    drift, signal, polytope = result.papers
    assert drift.title == "The Drift Contract: Spectral Updates for Depth-Robust Local Learning"
    assert drift.abstract.startswith("Local learning trains each layer with its own auxiliary")
    assert "Announce Type" not in drift.abstract and "arXiv:" not in drift.abstract
    assert drift.version == 1 and drift.published == THURSDAY
    assert drift.url == "https://arxiv.org/abs/2609.26811"
    assert drift.pdf_url == "https://arxiv.org/pdf/2609.26811"
    assert signal.authors == ("Naser Mansour", "Sidahmed Benabderrahmane", "Ameer Rahwan")
    assert signal.categories == ("cs.LG", "cs.AI")
    assert polytope.version == 3
    assert polytope.categories == ("cs.LG", "math.MG", "stat.ML")


def test_arxiv_rss_cross_option_adds_cross_lists_with_their_doi(
    feed_server: FeedServer,
) -> None:
    result = one(feed_server, "arxiv-rss", COMBINED, options=(("cross", "1"),))
    cross = [p for p in result.papers if p.announce_type == "cross"]
    assert len(result.papers) == 4
    assert [p.key for p in cross] == ["arxiv:2205.06398"]
    assert cross[0].doi == "10.1093/bioinformatics/btac431"
    assert cross[0].categories == ("stat.ME", "stat.AP", "stat.ML")
    assert cross[0].authors == ("Pritam Dey", "Zhengwu Zhang", "David B. Dunson")


def test_arxiv_rss_replace_option_off_drops_replacements(feed_server: FeedServer) -> None:
    result = one(feed_server, "arxiv-rss", COMBINED, options=(("replace", "0"),))
    assert [p.announce_type for p in result.papers] == ["new", "new"]


@pytest.mark.parametrize(
    ("name", "keys", "first_title"),
    [
        ("arxiv_rss_cs.AI_2026-04-27_first3items.xml",
         ["arxiv:2604.21935", "arxiv:2604.21936"],
         "Math Takes Two: A test for emergent mathematical reasoning in communication"),
        ("arxiv_rss_cs.LG_2026-04-27_first3items.xml", None, None),
    ],
)
def test_arxiv_rss_single_category_captures(
    feed_server: FeedServer, name: str, keys: list[str] | None, first_title: str | None
) -> None:
    result = one(feed_server, "arxiv-rss", f"{RSS_DIR}/{name}", day=date(2026, 4, 27))
    assert result.status == "ok"
    assert len(result.papers) == 3
    assert all(p.key.startswith("arxiv:2604.") for p in result.papers)
    assert all(p.announce_type == "new" and p.abstract and p.authors for p in result.papers)
    if keys:
        assert [p.key for p in result.papers][:2] == keys
        assert result.papers[0].title == first_title
        assert result.papers[0].authors == ("Michael Cooper", "Samuel Cooper")
        assert result.papers[0].categories == ("cs.AI", "cs.LG")


def test_arxiv_rss_category_location_builds_the_rss_arxiv_org_url() -> None:
    seen: list[str] = []

    def fake(url: str, *, etag: str | None = None,
             last_modified: str | None = None) -> FetchResponse:
        seen.append(url)
        raise SourceError("offline", "")

    spec = SourceSpec(name="x", kind="arxiv-rss", location="cs.LG+cs.AI")
    [result] = collect([spec], day=THURSDAY, user_agent=UA, fetch=fake)
    assert seen == ["https://rss.arxiv.org/rss/cs.LG+cs.AI"]
    assert result.status == "error"


# --- arXiv API ------------------------------------------------------------------------


def test_arxiv_api_2016_serialisation(feed_server: FeedServer) -> None:
    result = one(feed_server, "arxiv-api", f"{API_DIR}/arxiv_api_2016_id_list_1111.2011v2.xml")
    [paper] = result.papers
    assert result.status == "ok"
    assert paper.key == "arxiv:1111.2011" and paper.version == 2
    assert paper.title == ("Quantum Criticality for Extended Nodes on a Bethe Lattice in the "
                           "Large Connectivity Limit")
    assert paper.authors == ("James M. Murray", "Adrian Del Maestro", "Zlatko Tesanovic")
    assert paper.categories == ("cond-mat.str-el", "cond-mat.stat-mech")
    assert paper.doi == "10.1103/physrevb.85.115117"
    assert paper.comment == "8 pages, 3 figures. Published version"
    assert paper.published == date(2011, 11, 8)
    assert paper.abstract.startswith("Theoretical description of anisotropic systems")
    assert "\n" not in paper.abstract and "  " not in paper.abstract


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("arxiv_api_2016_search_and_query_1result.xml", 1),
        ("arxiv_api_2016_search_andnot_query.xml", 10),
        ("arxiv_api_2016_search_au_del_maestro_10results.xml", 10),
        ("arxiv_api_2016_search_quantum_criticality.xml", 2),
        ("arxiv_api_2026-06_search_transformer_cs.LG_5results.xml", 5),
        ("arxiv_api_2026_id_list_1605.08386.xml", 1),
        ("arxiv_api_2026_id_list_two_ids_one_found.xml", 1),
        ("arxiv_api_2026_search_testing_100results.xml", 100),
    ],
)
def test_arxiv_api_captures_parse_to_papers(
    feed_server: FeedServer, name: str, count: int
) -> None:
    spec = SourceSpec(name="api", kind="arxiv-api", location=feed_server.url(f"{API_DIR}/{name}"),
                      options=(("limit", "1000"),))
    [result] = collect([spec], day=THURSDAY, user_agent=UA, fetch=fetcher())
    assert result.status == "ok", result.error
    assert len(result.papers) == count
    assert all(p.key.startswith("arxiv:") and p.title and p.authors and p.categories
               for p in result.papers)


def test_arxiv_api_2026_primary_category_first_and_old_style_id(
    feed_server: FeedServer,
) -> None:
    transformer = one(feed_server, "arxiv-api",
                      f"{API_DIR}/arxiv_api_2026-06_search_transformer_cs.LG_5results.xml")
    mana = transformer.papers[0]
    assert mana.key == "arxiv:2606.13677"
    assert mana.title == "Mana: Dexterous Manipulation of Articulated Tools"
    assert mana.categories[0] == "cs.RO"
    assert "(<1 minute per tool)" in mana.abstract
    old = one(feed_server, "arxiv-api",
              f"{API_DIR}/arxiv_api_2026_id_list_oldstyle_astro-ph_0601001.xml")
    [paper] = old.papers
    assert paper.key == "arxiv:astro-ph/0601001" and paper.version == 1
    assert paper.authors[0] == "Andrew Gould" and len(paper.authors) == 4
    assert paper.categories == ("astro-ph",)
    assert "V_max<17.5" in paper.abstract and "Gould & Morgan (2003)" in paper.abstract


@pytest.mark.parametrize("name", ["arxiv_api_2026_id_list_0808.05394_empty.xml",
                                  "arxiv_api_2026_id_list_nonexistent_0000.0000_empty.xml"])
def test_arxiv_api_empty_answers_have_no_papers(feed_server: FeedServer, name: str) -> None:
    result = one(feed_server, "arxiv-api", f"{API_DIR}/{name}")
    assert result.papers == ()
    assert result.status == "quiet"


def test_arxiv_api_http_400_with_error_entry_is_an_error(feed_server: FeedServer) -> None:
    path = f"{API_DIR}/arxiv_api_2026_HTTP400_error_malformed_id_abc.xml"
    feed_server.fault(path, status=400)
    result = one(feed_server, "arxiv-api", path)
    assert result.status == "error"
    assert "incorrect id format for abc" in (result.error or "")
    assert "HTTP 400" in (result.error or "")
    assert "hint:" in (result.error or "")


def test_arxiv_api_paginates_politely(feed_server: FeedServer) -> None:
    feed_server.route("api/query", file=f"{API_DIR}/arxiv_api_2026_search_testing_page_s0_m10.xml",
                      query={"start": "0"})
    feed_server.route("api/query", file=f"{API_DIR}/arxiv_api_2026_search_testing_page_s10_m10.xml",
                      query={"start": "10"})
    sleeps: list[float] = []
    # A clock that stands still makes the politeness wait exactly the full interval.
    fetch = HttpFetcher(user_agent=UA, sleep=sleeps.append, clock=lambda: 100.0)
    fetch.politeness.intervals = {"127.0.0.1": 3.0}
    location = feed_server.url("api/query", "search_query=all:testing&max_results=10")
    spec = SourceSpec(name="api", kind="arxiv-api", location=location,
                      options=(("limit", "20"),))
    [result] = collect([spec], day=THURSDAY, user_agent=UA, fetch=fetch)
    assert result.status == "ok"
    assert len(result.papers) == 20
    assert result.papers[0].key == "arxiv:2202.12139"
    assert [r.query.get("start") for r in feed_server.requests] == ["0", "10"]
    assert all(r.query["search_query"] == "all:testing" for r in feed_server.requests)
    assert sleeps == [3.0]


def without_entries(capture: bytes) -> bytes:
    """Return an API page with its entries cut out, its OpenSearch totals kept.

    Made here from a real capture (not stored): what arXiv's API answers at times for a
    page inside the results (arxiv.py retries it as UnexpectedEmptyPageError).
    """
    head, _, rest = capture.partition(b"<entry>")
    return head + rest.rpartition(b"</entry>")[2]


def test_arxiv_api_asks_again_for_a_page_that_came_back_empty(
    feed_server: FeedServer,
) -> None:
    second = f"{API_DIR}/arxiv_api_2026_search_testing_page_s10_m10.xml"
    empty = without_entries((feed_server.root / second).read_bytes())
    assert b"<entry>" not in empty and b"<opensearch:totalResults>214881<" in empty
    feed_server.route("api/query", file=f"{API_DIR}/arxiv_api_2026_search_testing_page_s0_m10.xml",
                      query={"start": "0"})
    feed_server.route("api/query", body=empty, query={"start": "10"})
    location = feed_server.url("api/query", "search_query=all:testing&max_results=10")
    spec = SourceSpec(name="api", kind="arxiv-api", location=location,
                      options=(("limit", "20"),))

    # Empty every time it is asked: what came is kept, and the source says it is short.
    [result] = collect([spec], day=THURSDAY, user_agent=UA, fetch=fetcher())
    assert result.status == "partial" and len(result.papers) == 10
    assert "empty page at start=10 of 214881 results" in (result.error or "")
    assert [r.query["start"] for r in feed_server.requests] == ["0", "10", "10", "10"]

    # Empty once: asked again, the day's twenty papers are all read (it was ok, 10).
    feed_server.requests.clear()
    feed_server.route("api/query", file=second, query={"start": "10"})
    feed_server.fault("api/query", body=empty, query={"start": "10"}, times=1)
    [again] = collect([spec], day=THURSDAY, user_agent=UA, fetch=fetcher())
    assert (again.status, again.error, len(again.papers)) == ("ok", None, 20)
    assert [r.query["start"] for r in feed_server.requests] == ["0", "10", "10"]


# --- Hugging Face ---------------------------------------------------------------------


def test_hf_daily_asks_for_the_day_and_keeps_signals(feed_server: FeedServer) -> None:
    feed_server.route("api/daily_papers",
                      file="captured/hf_daily_papers/hf_daily_papers_2026-06-12_30papers.json",
                      query={"date": "2026-06-12"})
    spec = SourceSpec(name="hf", kind="hf-daily", location=feed_server.url("api/daily_papers"))
    [result] = collect([spec], day=date(2026, 6, 12), user_agent=UA, fetch=fetcher())
    # One page: 30 items is fewer than the 100 asked for, so there is no second request.
    assert [r.query for r in feed_server.requests] == [
        {"date": "2026-06-12", "p": "0", "limit": "100"}]
    assert result.status == "ok"
    assert len(result.papers) == 30
    first = result.papers[0]
    assert first.key == "arxiv:2606.00467"
    assert first.title.startswith("On the Limits of LLM Adaptability")
    assert first.authors == ("Etienne Casanova", "Rafal Kocielnik", "R. Michael Alvarez")
    assert first.upvotes == 0
    assert first.ai_summary and first.ai_summary.startswith("Large language models exhibit")
    assert first.ai_keywords[:2] == ("zero-shot annotation", "LLM-as-a-judge")
    assert first.url == "https://arxiv.org/abs/2606.00467"
    by_key = {p.key: p for p in result.papers}
    assert by_key["arxiv:2606.12730"].upvotes == 5
    assert by_key["arxiv:2606.11409"].upvotes == 8
    assert max(p.upvotes or 0 for p in result.papers) == 118


def test_hf_daily_items_without_id_or_title_make_a_partial_result(
    feed_server: FeedServer,
) -> None:
    result = one(feed_server, "hf-daily", "handmade/hf_daily_bad_items.json",
                 query="date=2026-06-12")
    assert result.status == "partial"
    assert [p.key for p in result.papers] == ["arxiv:2606.00001"]
    assert result.papers[0].abstract == "Text with $a<b$."
    assert "2 of 3 items" in (result.error or "")


# --- generic RSS / Atom ---------------------------------------------------------------


def test_biorxiv_rdf_uses_the_doi_as_key(feed_server: FeedServer) -> None:
    result = one(feed_server, "rss", "captured/other_scholarly/biorxiv_20250413.xml")
    assert result.status == "ok"
    assert len(result.papers) == 30
    first = result.papers[0]
    assert first.key == "doi:10.1101/2025.04.07.647590"
    assert first.title.startswith("SpatioCell: A Deep Learning Algorithm")
    assert first.authors[:3] == ("N. Hou", "Z. Wu", "Y. Yu")
    assert len(first.authors) == 11
    assert "H&E-derived morphology" in first.abstract
    assert first.published == date(2025, 4, 12)
    assert all(p.key.startswith("doi:10.1101/") for p in result.papers)


def test_nature_atom_derives_the_doi_from_the_article_url(feed_server: FeedServer) -> None:
    result = one(feed_server, "rss", "captured/other_scholarly/nature_20250319.xml")
    assert result.status == "ok" and len(result.papers) == 30
    first = result.papers[0]
    assert first.key == "doi:10.1038/s41598-025-86513-x"
    assert first.url == "https://www.nature.com/articles/s41598-025-86513-x"
    assert first.authors == ("Basanta Kumar Das et al.",)
    assert first.abstract == "" and first.published == date(2025, 3, 19)


def test_oup_and_bmc_rss(feed_server: FeedServer) -> None:
    oup = one(feed_server, "rss", "captured/other_scholarly/oxford_20250413.xml")
    assert oup.status == "ok" and len(oup.papers) == 4
    assert oup.papers[0].key == "doi:10.1093/bioinformatics/btaf119"
    assert oup.papers[0].title.startswith("CytoSimplex")
    assert "Cells differentiate to their final fates" in oup.papers[0].abstract
    assert "<div" not in oup.papers[0].abstract
    bmc = one(feed_server, "rss", "captured/other_scholarly/bmc_20250413.xml")
    assert bmc.status == "ok" and len(bmc.papers) == 5
    assert bmc.papers[0].key == "doi:10.1186/s12859-025-06113-4"
    assert bmc.papers[1].authors == ("Grigoriy Gogoshin", "Andrei S. Rodin")
    assert bmc.papers[0].categories == ("Software",)


def test_edge_case_captures(feed_server: FeedServer) -> None:
    davidbau = one(feed_server, "rss", "captured/edge_cases/fastfeedparser_davidbau.xml")
    assert davidbau.status == "ok" and len(davidbau.papers) == 15
    assert davidbau.papers[0].title == "The Right Kind of Openness for AI"
    stack = one(feed_server, "rss", "captured/edge_cases/fastfeedparser_stackoverflow.xml")
    assert stack.status == "ok" and len(stack.papers) == 2
    assert stack.papers[0].title == 'Setuptools "development" Requirements'
    assert stack.papers[0].categories == ("python", "setuptools", "requirements")


def test_mislabelled_utf16_feed_is_read_and_reported(feed_server: FeedServer) -> None:
    result = one(feed_server, "rss", "captured/edge_cases/fastfeedparser_utf16_encoded.xml")
    assert result.status == "partial"
    assert [p.title for p in result.papers] == ["UTF-16 Entry 1"]
    assert "encoding" in (result.error or "")


def test_malformed_namespaced_rss_is_recovered_as_partial(feed_server: FeedServer) -> None:
    result = one(feed_server, "rss",
                 "captured/edge_cases/fastfeedparser_malformed_rss_namespaced.xml")
    assert result.status == "partial"
    assert [p.title for p in result.papers] == ["Test Entry 1", "Test Entry 2"]
    assert [p.url for p in result.papers] == ["https://example.com/entry1",
                                              "https://example.com/entry2"]
    assert "malformed XML" in (result.error or "")


# --- local files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "path", "count"),
    [
        ("arxiv-rss", COMBINED, 3),
        ("arxiv-api", f"{API_DIR}/arxiv_api_2016_id_list_1111.2011v2.xml", 1),
        ("hf-daily", "captured/hf_daily_papers/hf_daily_papers_2026-06-12_30papers.json", 30),
        ("rss", "captured/other_scholarly/bmc_20250413.xml", 5),
    ],
)
def test_every_kind_reads_local_paths_and_file_urls(
    feed_server: FeedServer, kind: str, path: str, count: int
) -> None:
    target = feed_server.root / path
    specs = [SourceSpec(name="plain", kind=kind, location=str(target)),
             SourceSpec(name="uri", kind=kind, location=target.as_uri())]
    results = collect(specs, day=THURSDAY, user_agent=UA, fetch=fetcher())
    assert [(r.status, len(r.papers)) for r in results] == [("ok", count), ("ok", count)]
    assert feed_server.requests == []


def test_jsonl_reads_good_lines_and_reports_bad_ones(feed_server: FeedServer) -> None:
    spec = SourceSpec(name="j", kind="jsonl",
                      location=str(feed_server.root / "handmade/jsonl_with_bad_line.jsonl"))
    [result] = collect([spec], day=THURSDAY, user_agent=UA, fetch=fetcher())
    assert result.status == "partial"
    assert [p.key for p in result.papers] == ["arxiv:2401.00001", "doi:10.1101/2025.01.01.000001"]
    assert result.papers[0].title == "0" and result.papers[0].abstract == "spaced out"
    assert result.papers[0].version == 2
    assert result.papers[1].categories == ("q-bio.GN", "q-bio.QM")
    assert "line 2" in (result.error or "") and "line 3" in (result.error or "")


def test_missing_local_file_is_an_error_with_a_hint() -> None:
    spec = SourceSpec(name="j", kind="jsonl", location="/nonexistent/papers.jsonl")
    [result] = collect([spec], day=THURSDAY, user_agent=UA, fetch=fetcher())
    assert result.status == "error"
    assert "cannot read /nonexistent/papers.jsonl" in (result.error or "")
    assert "hint:" in (result.error or "")


@pytest.mark.parametrize("upvotes", [float("nan"), float("inf"), -3, "12", None])
def test_a_hugging_face_upvote_count_that_is_no_count_is_none_not_a_crash(
    upvotes: object,
) -> None:
    # Hand-made item in the daily_papers shape; json.loads reads NaN and Infinity.
    from digest.ingest.hf import hf_paper

    item = {"paper": {"id": "2605.01234", "title": "A paper", "upvotes": upvotes,
                      "authors": [{"name": "A. Author"}]}}
    paper = hf_paper(item, source="hf")
    assert paper is not None and paper.upvotes is None


def test_a_hugging_face_upvote_count_is_kept() -> None:
    from digest.ingest.hf import hf_paper

    paper = hf_paper({"paper": {"id": "2605.01234", "title": "A paper", "upvotes": 7}},
                     source="hf")
    assert paper is not None and paper.upvotes == 7


def test_a_jsonl_source_cut_short_in_its_gzip_is_a_source_error_naming_it(
    tmp_path: Path,
) -> None:
    # Hand-made lines, gzipped and cut short (a copy that stopped): the daily job's
    # jsonl source raised gzip's EOFError, reported without the file or what to do.
    import gzip
    import json

    from digest.ingest.jsonl import read_jsonl

    lines = "".join(json.dumps({"id": f"2605.{n:05d}", "title": f"Paper {n}",
                                "abstract": "words " * 50}) + "\n" for n in range(200))
    packed = gzip.compress(lines.encode())
    cut = tmp_path / "papers.jsonl.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(SourceError) as caught:
        read_jsonl(cut)
    assert str(cut) in caught.value.message and "gzip" in caught.value.message
    assert caught.value.hint
