"""Defects found by an ingestion audit: each test failed before its fix.

Feeds come from the local HTTP server through the production HTTP code. Files under
``tests/data/feeds/captured/`` are real captures (see their SOURCES.md); bodies built in
a test (a capture with one byte changed, a stalling server) say so where they are made.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from digest.cli import main
from digest.config import SAMPLE_BATCH, Config, config_from_values, parse_source
from digest.errors import ConfigError
from digest.ingest import HttpFetcher, collect
from digest.models import SourceSpec
from tests.fixtures.config import SECRET, make_config
from tests.fixtures.http_server import FeedServer

UA = "digest-tests/1 (mailto:ops@example.org)"
API_CAPTURE = "captured/arxiv_api/arxiv_api_2026-06_search_transformer_cs.LG_5results.xml"
HF_CAPTURE = "captured/hf_daily_papers/hf_daily_papers_2026-06-12_30papers.json"


def sources_from(tmp_path: Path, value: str) -> tuple[SourceSpec, ...]:
    config = config_from_values({"DIGEST_SECRET_KEY": SECRET,
                                 "DIGEST_VAR_DIR": str(tmp_path / "var"),
                                 "DIGEST_SOURCES": value})
    return config.sources


def run(config: Config, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj={"config": config})


# --- 1. a URL's own query string stays in the URL --------------------------------------


def test_an_arxiv_api_url_in_digest_sources_keeps_its_query(
    tmp_path: Path, feed_server: FeedServer,
) -> None:
    feed_server.route("api", file=API_CAPTURE)
    url = feed_server.url("api", "search_query=cat:cs.LG&sortBy=submittedDate")
    [spec] = sources_from(tmp_path, f"arxiv-api:{url}")
    assert (spec.location, spec.options) == (url, ())
    [result] = collect([spec], day=date(2026, 6, 1), user_agent=UA,
                       fetch=HttpFetcher(user_agent=UA, sleep=lambda _: None))
    assert result.status == "ok" and len(result.papers) == 5
    [request] = feed_server.requests
    assert request.query == {"search_query": "cat:cs.LG", "sortBy": "submittedDate",
                             "start": "0", "max_results": "100"}


def test_only_the_kinds_own_options_are_taken_from_a_url(tmp_path: Path) -> None:
    spec = parse_source("arxiv-api:https://export.arxiv.org/api/query"
                        "?search_query=cat:cs.LG&limit=200&sortBy=submittedDate")
    assert spec.location == ("https://export.arxiv.org/api/query"
                             "?search_query=cat:cs.LG&sortBy=submittedDate")
    assert spec.options == (("limit", "200"),)
    assert spec.name == f"arxiv-api:{spec.location}"
    bare = parse_source("arxiv-api:search_query=cat:cs.LG&sortBy=submittedDate&limit=50")
    assert (bare.location, bare.options) == (
        "search_query=cat:cs.LG&sortBy=submittedDate", (("limit", "50"),))
    # The documented forms still read as before.
    rss = parse_source("arxiv-rss:cs.LG+cs.AI?cross=1")
    assert (rss.name, rss.location, rss.options) == (
        "arxiv-rss:cs.LG+cs.AI", "cs.LG+cs.AI", (("cross", "1"),))
    feed = parse_source("rss:https://example.org/feed?format=rss&lang=en")
    assert (feed.location, feed.options) == ("https://example.org/feed?format=rss&lang=en", ())


def test_an_hf_daily_url_keeps_its_date(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.route("api/daily_papers", file=HF_CAPTURE)
    url = feed_server.url("api/daily_papers", "date=2026-06-12")
    [spec] = sources_from(tmp_path, f"hf-daily:{url}&pages=1")
    assert (spec.location, spec.options) == (url, (("pages", "1"),))
    [result] = collect([spec], day=date(2026, 6, 15), user_agent=UA,
                       fetch=HttpFetcher(user_agent=UA, sleep=lambda _: None))
    assert result.status == "ok" and len(result.papers) == 30
    assert feed_server.requests[0].query["date"] == "2026-06-12"  # not the run's day


def test_an_unknown_option_in_digest_sources_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        sources_from(tmp_path, "hf-daily,arxiv-rss:cs.LG?crosss=1")
    assert caught.value.exit_code == 78
    assert "'arxiv-rss:cs.LG?crosss=1'" in caught.value.message
    assert "arxiv-rss sources have no option 'crosss'" in caught.value.message
    assert "cross (1 to include cross-lists" in caught.value.hint
    assert "replace (" in caught.value.hint
    listing = tmp_path / "sources.txt"
    listing.write_text("hf-daily?page=2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 1.*no option 'page'"):
        config_from_values({"DIGEST_SECRET_KEY": SECRET, "DIGEST_VAR_DIR": str(tmp_path),
                            "DIGEST_SOURCES_FILE": str(listing)})


def test_sources_add_and_list_keep_an_api_query_in_the_url(tmp_path: Path) -> None:
    config = make_config(tmp_path / "var", sources_explicit=False)
    url = "https://export.arxiv.org/api/query?search_query=cat:cs.LG&sortBy=submittedDate"
    added = run(config, "sources", "add", "arxiv-api", url, "--option", "limit=300")
    assert added.exit_code == 0, added.output
    listed = run(config, "sources", "list", "--json")
    rows: list[dict[str, Any]] = json.loads(listed.output)
    [row] = [r for r in rows if r["kind"] == "arxiv-api"]
    assert (row["location"], row["options"]) == (url, {"limit": "300"})
    text = run(config, "sources", "list").output
    assert f"arxiv-api {url} limit=300" in text
    assert f"jsonl:{SAMPLE_BATCH}" not in text
