"""Extra real captures (captured/extra/, not from ../shared) ingested exactly, over HTTP."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.ingest import HttpFetcher, collect
from digest.models import SourceResult, SourceSpec
from digest.store import open_store
from tests.fixtures.config import make_config
from tests.fixtures.http_server import FEEDS_DIR, FeedServer

UA = "digest-tests/1 (mailto:ops@example.org)"
EXTRA = "captured/extra"
ATOM = f"{EXTRA}/paperforge_arxiv_atom_cs.LG_2026-09-25_3entries.xml"
API = f"{EXTRA}/xiv_arxiv_api_2025-10_search_cs.RO_neural_2results.xml"
HF = f"{EXTRA}/newsassistant_hf_daily_papers_2026-08-03_3papers.json"
FRIDAY = date(2026, 9, 25)


def read_one(server: FeedServer, kind: str, path: str,
             options: tuple[tuple[str, str], ...] = ()) -> SourceResult:
    spec = SourceSpec(name=f"{kind}:extra", kind=kind, location=server.url(path),
                      options=options)
    [result] = collect([spec], day=FRIDAY, user_agent=UA,
                       fetch=HttpFetcher(user_agent=UA, sleep=lambda _: None))
    return result


def xml_entries(path: str) -> list[tuple[str, str, str]]:
    """Return (id with version, title, announce type) per entry, read with plain regexes."""
    text = (FEEDS_DIR / path).read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"<entry>(.*?)</entry>", text, re.S):
        raw_id = re.search(r"<id>(.*?)</id>", block).group(1)  # type: ignore[union-attr]
        title = re.search(r"<title>(.*?)</title>", block, re.S).group(1)  # type: ignore[union-attr]
        kind = re.search(r"<arxiv:announce_type>(.*?)<", block)
        found.append((raw_id.rsplit(":", 1)[-1].rsplit("/", 1)[-1], " ".join(title.split()),
                      kind.group(1) if kind else "new"))
    return found


def bare(arxiv_id: str) -> str:
    return "arxiv:" + re.sub(r"v\d+$", "", arxiv_id)


def test_the_extra_captures_have_their_origin_noted() -> None:
    table = (FEEDS_DIR / EXTRA / "SOURCES.md").read_text(encoding="utf-8")
    for path in (ATOM, API, HF):
        name = Path(path).name
        assert name in table
        row = next(line for line in table.splitlines() if line.startswith(f"| {name}"))
        assert f"| {len((FEEDS_DIR / path).read_text(encoding='utf-8'))} |" in row


def test_arxiv_atom_announcements_with_every_type(feed_server: FeedServer) -> None:
    expected = xml_entries(ATOM)
    assert [k for _, _, k in expected] == ["new", "cross", "replace"]
    everything = read_one(feed_server, "arxiv-rss", ATOM, (("cross", "1"),))
    assert everything.status == "ok" and everything.error is None
    assert [(p.key, p.title, p.announce_type) for p in everything.papers] == [
        (bare(i), t, k) for i, t, k in expected]
    assert [p.version for p in everything.papers] == [1, 3, 3]
    new, cross, replaced = everything.papers
    assert new.doi == "10.1109/mapr72750.2026.11685822"
    assert new.authors[0] == "Quang Minh Nguyen" and len(new.authors) == 6
    assert new.abstract.startswith("Drug toxicity prediction is critical")
    assert cross.categories == ("hep-ph", "cs.LG", "hep-ex")
    assert cross.doi == "10.1103/physrevd.111.032004"
    assert replaced.doi is None and replaced.published == FRIDAY
    default = read_one(feed_server, "arxiv-rss", ATOM)
    assert [p.key for p in default.papers] == [bare(expected[0][0]), bare(expected[2][0])]


def test_arxiv_atom_read_as_a_plain_feed_keeps_types_and_drops_the_lead_in(
    feed_server: FeedServer,
) -> None:
    result = read_one(feed_server, "rss", ATOM)
    assert result.status == "ok"
    assert [(p.key, p.announce_type) for p in result.papers] == [
        (bare(i), k) for i, _, k in xml_entries(ATOM)]
    for paper in result.papers:
        assert "Announce Type" not in paper.abstract
        assert not paper.abstract.startswith(("arXiv:", "Abstract"))


def test_arxiv_api_old_serialisation(feed_server: FeedServer) -> None:
    expected = xml_entries(API)
    result = read_one(feed_server, "arxiv-api", API)
    assert result.status == "ok" and result.error is None
    assert [(p.key, p.title) for p in result.papers] == [(bare(i), t) for i, t, _ in expected]
    rdd, flow = result.papers
    assert rdd.title.endswith("Planner Alignment in Long-Horizon Tasks")
    assert rdd.categories == ("cs.RO", "cs.AI", "cs.CV", "cs.LG", "cs.SY", "eess.SY")
    assert rdd.comment == ("39th Conference on Neural Information Processing Systems "
                           "(NeurIPS 2025); Project Website: rdd-neurips.github.io")
    assert rdd.published == date(2025, 10, 16) and rdd.version == 1
    assert len(flow.authors) == 6 and flow.comment is None
    assert flow.abstract.endswith("efficient way of modeling complex human motion patterns.")


def test_hugging_face_items_of_two_shapes(feed_server: FeedServer) -> None:
    items = json.loads((FEEDS_DIR / HF).read_text(encoding="utf-8"))
    feed_server.route("api/daily_papers", file=HF)
    spec = SourceSpec(name="hf", kind="hf-daily", location=feed_server.url("api/daily_papers"))
    [result] = collect([spec], day=date(2026, 8, 3), user_agent=UA,
                       fetch=HttpFetcher(user_agent=UA, sleep=lambda _: None))
    assert result.status == "ok" and result.error is None
    assert [(p.key, p.title, p.upvotes) for p in result.papers] == [
        (f"arxiv:{i['paper']['id']}", i["paper"]["title"], i["paper"]["upvotes"])
        for i in items]
    for paper, item in zip(result.papers, items, strict=True):
        assert paper.authors == tuple(a["name"] for a in item["paper"]["authors"])
        assert paper.abstract == item["paper"]["summary"]
        assert paper.ai_summary is None and paper.ai_keywords == ()
    assert [r.query for r in feed_server.requests] == [
        {"date": "2026-08-03", "p": "0", "limit": "100"}]


@pytest.mark.parametrize(
    ("kind", "path", "count"),
    [("arxiv-rss", ATOM, 2), ("arxiv-api", API, 2), ("hf-daily", HF, 3)],
)
def test_ingest_stores_them_and_sources_list_reports_their_health(
    feed_server: FeedServer, tmp_path: Path, kind: str, path: str, count: int,
) -> None:
    spec = SourceSpec(name=f"{kind}:extra", kind=kind, location=feed_server.url(path))
    config = make_config(tmp_path / "var", sources=(spec,), sources_explicit=True)
    runner = CliRunner()
    ingested = runner.invoke(main, ["ingest", "--date", "2026-09-25", "--json"],
                             obj={"config": config})
    assert ingested.exit_code == 0, ingested.output
    [row] = json.loads(ingested.output)
    assert (row["status"], row["papers"], row["new"]) == ("ok", count, count)
    db = open_store(config.database_url)
    try:
        assert db.count_papers() == count
    finally:
        db.close()
    listed = runner.invoke(main, ["sources", "list", "--json"], obj={"config": config})
    [health] = json.loads(listed.output)
    assert (health["name"], health["origin"], health["status"]) == (spec.name, "config", "ok")
    assert (health["papers"], health["new"], health["error"]) == (count, count, None)
    assert health["last_ok_at"] == health["last_run_at"] is not None


def test_a_paper_named_by_its_arxiv_doi_is_the_arxiv_papers_row(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    """A real arXiv capture, then hand-made sources naming its papers by arXiv DOI.

    arXiv gives every paper the DOI 10.48550/arXiv.<id>, and feeds and library exports
    often name a preprint by it alone. Such an entry was keyed doi:10.48550/arxiv.<id>,
    a second row beside arxiv:<id>: the same paper stored twice, and mailed twice.
    """
    captured = "captured/arxiv_rss/arxiv_rss_cs.LG_2026-04-27_first3items.xml"
    specs = (
        SourceSpec(name="arxiv", kind="arxiv-rss", location=feed_server.url(captured)),
        SourceSpec(name="group", kind="rss",
                   location=feed_server.url("handmade/atom_arxiv_dois.xml")),
        SourceSpec(name="export", kind="jsonl",
                   location=str(FEEDS_DIR / "handmade" / "jsonl_arxiv_dois.jsonl")),
    )
    config = make_config(tmp_path / "var", sources=specs, sources_explicit=True)
    ingested = CliRunner().invoke(main, ["ingest", "--date", "2026-04-27", "--json"],
                                  obj={"config": config})
    assert ingested.exit_code == 0, ingested.output
    assert [(r["source"], r["papers"], r["new"]) for r in json.loads(ingested.output)] == [
        ("arxiv", 3, 3), ("group", 3, 1), ("export", 2, 0)]
    db = open_store(config.database_url)
    try:
        assert db.count_papers() == 4
        stored = db.get_papers(["arxiv:2604.21952", "arxiv:2604.21953", "arxiv:2604.21956",
                                "doi:10.1186/s12859-025-06113-4"])
    finally:
        db.close()
    assert len(stored) == 4
    assert stored["arxiv:2604.21953"].url == "https://arxiv.org/abs/2604.21953"
    assert stored["arxiv:2604.21956"].url == "https://arxiv.org/abs/2604.21956"
