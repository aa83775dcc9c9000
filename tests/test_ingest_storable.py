"""What a source hands the store fits every database: PostgreSQL's refusals included.

SQLite stores any text in any column; PostgreSQL refuses a NUL character in text. These
run on the test database (DIGEST_TEST_DB): on PostgreSQL they are what an operator
there would have met.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from digest.config import Config
from digest.models import SourceSpec
from digest.pipeline import ingest_sources
from digest.store import Store

NOW = datetime(2026, 5, 25, 6, 0, tzinfo=UTC)
DAY = date(2026, 5, 25)


def jsonl_source(tmp_path: Path, records: list[dict[str, object]]) -> SourceSpec:
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return SourceSpec(name="jsonl:papers", kind="jsonl", location=str(path))


def run_ingest(config: Config, store: Store, spec: SourceSpec) -> None:
    from dataclasses import replace

    ingest_sources(replace(config, sources=(spec,), sources_explicit=True), store,
                   day=DAY, now=NOW, fetch=None)


def test_a_nul_character_in_a_json_sources_text_is_dropped_and_the_paper_filed(
    config: Config, store: Store, tmp_path: Path
) -> None:
    # JSON may carry "\u0000" (a Hugging Face answer, a JSON-lines file); an XML feed
    # cannot. PostgreSQL refused the whole source's save ("text fields cannot contain
    # NUL"), and the run stopped there.
    spec = jsonl_source(tmp_path, [
        {"id": "2401.00001", "title": "Nul\u0000 in the title", "abstract": "an\u0000 abstract",
         "authors": ["Ada\u0000 Lovelace"], "categories": ["cs.LG"], "ai_summary": "s\u0000"},
        {"id": "2401.00002", "title": "A clean paper", "abstract": "clean"},
    ])
    run_ingest(config, store, spec)
    papers = store.get_papers(["arxiv:2401.00001", "arxiv:2401.00002"])
    assert sorted(papers) == ["arxiv:2401.00001", "arxiv:2401.00002"]
    nul = papers["arxiv:2401.00001"]
    assert nul.title == "Nul in the title" and nul.abstract == "an abstract"
    assert nul.authors == ("Ada Lovelace",) and nul.ai_summary == "s"
    [health] = store.source_health()
    assert health["source"] == "jsonl:papers" and health["status"] == "ok"


def test_an_over_long_key_or_source_name_is_shortened_to_a_stable_key_that_fits(
    config: Config, store: Store, tmp_path: Path
) -> None:
    # A paper with neither arXiv id nor DOI is keyed "<source name>:<entry id>", and a
    # source's name is "kind:location": a long feed URL and a long entry id passed the
    # 200 characters of papers.key, a long arXiv API query the 300 of papers.source.
    # SQLite stored them; PostgreSQL refused the source's whole batch ("value too long
    # for type character varying(200)") and the run stopped.
    spec = jsonl_source(tmp_path, [
        {"id": "2401.00001", "title": "An arXiv paper"},
        {"id": "https://blog.example.org/2026/05/" + "a-long-slug-" * 20, "title": "A post"},
    ])
    from dataclasses import replace

    spec = replace(spec, name="jsonl:" + "search_query=" + "cat:cs.LG+OR+" * 25)
    assert len(spec.name) > 300
    run_ingest(config, store, spec)
    filed = [paper for paper, _day in store.batch(DAY, DAY)]
    assert len(filed) == 2
    assert all(len(p.key) <= 200 and len(p.source) <= 300 for p in filed)
    assert "arxiv:2401.00001" in {p.key for p in filed}
    [post] = [p for p in filed if p.title == "A post"]
    assert post.key.startswith(f"{spec.name[:100]}")
    # The same entry read again is the same paper, not a new one.
    run_ingest(config, store, spec)
    assert store.count_batch(DAY) == 2
    [health] = store.source_health()
    assert health["status"] == "ok" and health["new"] == 0
