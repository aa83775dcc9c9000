"""`digest sources add|list|remove|test` through CliRunner, feeds from a local server."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from digest.cli import main
from digest.config import SAMPLE_BATCH, Config
from digest.models import SourceResult, SourceSpec
from digest.store import open_store
from tests.fixtures.config import make_config
from tests.fixtures.http_server import FeedServer

COMBINED = ("captured/arxiv_rss/"
            "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_new_cross_replace_4items.xml")


def plain(tmp_path: Path) -> Config:
    """Return the embedded default: no DIGEST_SOURCES, so the sample batch is the default."""
    return make_config(tmp_path / "var", sources_explicit=False)


def run(config: Config, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj={"config": config})


def listed(config: Config) -> list[dict[str, Any]]:
    result = run(config, "sources", "list", "--json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return rows


def test_list_shows_the_sample_batch_when_nothing_is_configured(tmp_path: Path) -> None:
    config = plain(tmp_path)
    [row] = listed(config)
    assert row["name"] == f"jsonl:{SAMPLE_BATCH}"
    assert (row["origin"], row["status"], row["last_run_at"]) == ("default", None, None)
    text = run(config, "sources", "list")
    assert "[default]" in text.output and "never run" in text.output


def test_add_stores_a_source_that_replaces_the_sample(tmp_path: Path) -> None:
    config = plain(tmp_path)
    added = run(config, "sources", "add", "arxiv-rss", "cs.LG+cs.AI", "--option", "cross=1")
    assert added.exit_code == 0, added.output
    assert "added arxiv-rss:cs.LG+cs.AI" in added.output
    assert "sample batch is no longer read" in added.output
    [row] = listed(config)
    assert (row["name"], row["kind"], row["location"], row["origin"]) == (
        "arxiv-rss:cs.LG+cs.AI", "arxiv-rss", "cs.LG+cs.AI", "added")
    assert row["options"] == {"cross": "1"}
    db = open_store(config.database_url)
    try:
        assert db.list_sources() == [
            SourceSpec("arxiv-rss:cs.LG+cs.AI", "arxiv-rss", "cs.LG+cs.AI", (("cross", "1"),))]
    finally:
        db.close()


def test_add_takes_a_name_options_in_the_location_and_a_default_hf_url(
    tmp_path: Path,
) -> None:
    config = plain(tmp_path)
    assert run(config, "sources", "add", "hf-daily", "--name", "hf").exit_code == 0
    assert run(config, "sources", "add", "arxiv-rss", "cs.CL?replace=0").exit_code == 0
    rows = {r["name"]: r for r in listed(config)}
    assert rows["hf"]["location"] == "https://huggingface.co/api/daily_papers"
    assert rows["arxiv-rss:cs.CL"]["options"] == {"replace": "0"}


def test_add_keeps_a_jsonl_path_absolute(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "papers.jsonl").write_text("", encoding="utf-8")
    config = plain(tmp_path)
    assert run(config, "sources", "add", "jsonl", "papers.jsonl").exit_code == 0
    [row] = listed(config)
    assert row["location"] == str(tmp_path / "papers.jsonl")


def test_add_keeps_a_feed_file_path_absolute_for_every_kind(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # cron and systemd start runs in another folder: a relative path stored as typed
    # failed there ("cannot read feed.xml") though `sources add` had accepted it.
    monkeypatch.chdir(tmp_path)
    for name in ("feed.xml", "api.xml", "daily.json", "rss.xml"):
        (tmp_path / name).write_text("", encoding="utf-8")
    config = plain(tmp_path / "cfg")
    for kind, location in (("rss", "feed.xml"), ("arxiv-api", "api.xml"),
                           ("hf-daily", "daily.json"), ("arxiv-rss", "rss.xml")):
        added = run(config, "sources", "add", kind, location)
        assert added.exit_code == 0, added.output
    rows = {r["kind"]: r["location"] for r in listed(config)}
    assert rows == {"rss": str(tmp_path / "feed.xml"), "arxiv-api": str(tmp_path / "api.xml"),
                    "hf-daily": str(tmp_path / "daily.json"),
                    "arxiv-rss": str(tmp_path / "rss.xml")}
    # Category codes and URLs are kept as typed.
    assert run(config, "sources", "add", "arxiv-rss", "cs.LG").exit_code == 0
    assert run(config, "sources", "add", "rss", "https://example.org/feed.xml").exit_code == 0
    locations = {r["location"] for r in listed(config)}
    assert {"cs.LG", "https://example.org/feed.xml"} <= locations


def test_add_refuses_bad_input_with_a_usage_error(tmp_path: Path) -> None:
    config = plain(tmp_path)
    unknown_kind = run(config, "sources", "add", "feed", "https://example.org")
    assert unknown_kind.exit_code == 2
    no_location = run(config, "sources", "add", "rss")
    # A missing argument is a usage error (2), not a setting to fix (78).
    assert no_location.exit_code == 2 and "needs a LOCATION" in no_location.output
    bad_option = run(config, "sources", "add", "arxiv-rss", "cs.LG", "--option", "crosss=1")
    assert bad_option.exit_code == 2 and "no option 'crosss'" in bad_option.output
    assert "cross (1 to include cross-lists" in bad_option.output
    bad_number = run(config, "sources", "add", "hf-daily", "--option", "limit=lots")
    assert bad_number.exit_code == 2 and "not a positive whole number" in bad_number.output
    not_pair = run(config, "sources", "add", "hf-daily", "--option", "limit")
    assert not_pair.exit_code == 2
    # Sources that could never be read are refused before they are stored (the first
    # stored one replaces the sample batch): each had been added with exit 0.
    for args, says in (
        (("rss", "notaurl"), "is no file here"),
        (("rss", "ftp://example.org/feed"), "not an http(s) URL"),
        (("jsonl", str(tmp_path / "missing.jsonl")), "is no file here"),
        (("arxiv-rss", "cs.LGX"), "unknown arXiv category 'cs.LGX'"),
        (("arxiv-rss", "cs.LG+nope.XX"), "unknown arXiv category 'nope.XX'"),
        (("arxiv-rss", "cs.LG", "--option", "cross=maybe"), "neither on nor off"),
    ):
        refused = run(config, "sources", "add", *args)
        assert refused.exit_code == 2 and says in refused.output, (args, refused.output)
    assert [r["origin"] for r in listed(config)] == ["default"]
    assert run(config, "sources", "add", "arxiv-rss", "cs.LG").exit_code == 0
    again = run(config, "sources", "add", "arxiv-rss", "cs.LG")
    assert again.exit_code == 2 and "already stored" in again.output
    assert len(listed(config)) == 1


def test_add_refuses_the_name_of_a_configured_source(tmp_path: Path) -> None:
    configured = SourceSpec("arxiv-rss:cs.LG", "arxiv-rss", "cs.LG")
    config = make_config(tmp_path / "var", sources=(configured,), sources_explicit=True)
    clash = run(config, "sources", "add", "arxiv-rss", "cs.LG")
    assert clash.exit_code == 2 and "already configured" in clash.output
    assert run(config, "sources", "add", "hf-daily", "--name", "hf").exit_code == 0
    assert [(r["name"], r["origin"]) for r in listed(config)] == [
        ("arxiv-rss:cs.LG", "config"), ("hf", "added")]


def test_list_shows_each_sources_health_from_the_last_run(tmp_path: Path) -> None:
    config = plain(tmp_path)
    assert run(config, "sources", "add", "arxiv-rss", "cs.LG", "--name", "lg").exit_code == 0
    assert run(config, "sources", "add", "hf-daily", "--name", "hf").exit_code == 0
    first = datetime(2026, 9, 24, 6, 0, tzinfo=UTC)
    later = datetime(2026, 9, 25, 6, 0, tzinfo=UTC)
    db = open_store(config.database_url)
    try:
        db.record_source(SourceResult("lg", "ok", new=3), now=first)
        db.record_source(SourceResult("lg", "error", error="HTTP 503 (hint: later)"), now=later)
        db.record_source(SourceResult("hf", "quiet"), now=later)
    finally:
        db.close()
    rows = {r["name"]: r for r in listed(config)}
    assert rows["lg"]["status"] == "error"
    assert rows["lg"]["last_run_at"] == later.isoformat()
    assert rows["lg"]["last_ok_at"] == first.isoformat()
    assert rows["lg"]["error"] == "HTTP 503 (hint: later)"
    assert (rows["hf"]["status"], rows["hf"]["papers"], rows["hf"]["new"]) == ("quiet", 0, 0)
    text = run(config, "sources", "list").output
    assert f"error: last run {later.isoformat()}, last ok {first.isoformat()}" in text
    assert "HTTP 503 (hint: later)" in text


def test_remove_forgets_a_stored_source_and_its_health(tmp_path: Path) -> None:
    config = plain(tmp_path)
    assert run(config, "sources", "add", "hf-daily", "--name", "hf").exit_code == 0
    db = open_store(config.database_url)
    try:
        db.record_source(SourceResult("hf", "ok"), now=datetime(2026, 9, 25, tzinfo=UTC))
    finally:
        db.close()
    removed = run(config, "sources", "remove", "hf")
    assert removed.exit_code == 0 and "removed hf" in removed.output
    [row] = listed(config)
    assert row["origin"] == "default"
    db = open_store(config.database_url)
    try:
        assert db.source_health() == []
    finally:
        db.close()
    missing = run(config, "sources", "remove", "hf")
    assert missing.exit_code == 2 and "no stored source is named 'hf'" in missing.output


def test_remove_names_the_stored_name_of_a_source_added_by_its_kind(tmp_path: Path) -> None:
    # The README's `digest sources add hf-daily` stores hf-daily:<its URL>; the natural
    # `digest sources remove hf-daily` said only "see `digest sources list`".
    config = plain(tmp_path)
    added = run(config, "sources", "add", "hf-daily")
    assert added.exit_code == 0, added.output
    [row] = [r for r in listed(config) if r["kind"] == "hf-daily"]
    refused = run(config, "sources", "remove", "hf-daily")
    assert refused.exit_code == 2
    assert f"it is stored as '{row['name']}'" in refused.output
    assert run(config, "sources", "remove", row["name"]).exit_code == 0


def test_remove_explains_that_a_configured_source_lives_in_the_config(tmp_path: Path) -> None:
    configured = SourceSpec("arxiv-rss:cs.LG", "arxiv-rss", "cs.LG")
    config = make_config(tmp_path / "var", sources=(configured,), sources_explicit=True)
    refused = run(config, "sources", "remove", "arxiv-rss:cs.LG")
    assert refused.exit_code == 2
    assert "DIGEST_SOURCES or DIGEST_SOURCES_FILE" in refused.output


def test_test_reads_a_served_capture_without_storing_it(
    tmp_path: Path, feed_server: FeedServer,
) -> None:
    config = plain(tmp_path)
    url = feed_server.url(COMBINED)
    tried = run(config, "sources", "test", f"arxiv-rss:{url}?cross=1", "--date", "2026-09-24")
    assert tried.exit_code == 0, tried.output
    lines = tried.output.splitlines()
    assert lines[0] == f"arxiv-rss:{url}: ok, 4 papers, 4 not stored yet"
    assert lines[1] == ("  arxiv:2609.26811  The Drift Contract: Spectral Updates for "
                        "Depth-Robust Local Learning")
    assert len(lines) == 5
    db = open_store(config.database_url)
    try:
        assert db.count_papers() == 0 and db.source_health() == []
    finally:
        db.close()


def test_test_finds_a_stored_source_by_name_and_prints_json(
    tmp_path: Path, feed_server: FeedServer,
) -> None:
    config = plain(tmp_path)
    url = feed_server.url(COMBINED)
    assert run(config, "sources", "add", "arxiv-rss", url, "--name", "combo").exit_code == 0
    tried = run(config, "sources", "test", "combo", "--json", "--date", "2026-09-24")
    assert tried.exit_code == 0, tried.output
    data = json.loads(tried.output)
    assert (data["source"], data["status"], data["papers"], data["error"]) == (
        "combo", "ok", 3, None)
    assert [p["key"] for p in data["papers_list"]] == [
        "arxiv:2609.26811", "arxiv:2609.26820", "arxiv:2009.13987"]


def test_test_exits_1_and_says_why_when_the_source_fails(
    tmp_path: Path, feed_server: FeedServer,
) -> None:
    config = plain(tmp_path)
    html = run(config, "sources", "test",
               f"rss:{feed_server.url('handmade/html_error_page.html')}")
    assert html.exit_code == 1
    assert ": error, 0 papers" in html.output
    assert "problems:" in html.output and "HTML page, not a feed" in html.output
    missing = run(config, "sources", "test", f"rss:{feed_server.url('nope.xml')}", "--json")
    assert missing.exit_code == 1
    assert "HTTP 404" in json.loads(missing.output)["error"]
    unknown = run(config, "sources", "test", "not-a-source")
    # A bad argument is a usage error (2), as for `sources add`; 78 is for settings.
    assert unknown.exit_code == 2 and "is not kind:location" in unknown.output


def test_stored_sources_survive_a_config_that_names_others(tmp_path: Path) -> None:
    config = plain(tmp_path)
    assert run(config, "sources", "add", "hf-daily", "--name", "hf").exit_code == 0
    configured = replace(config, sources=(SourceSpec("arxiv-rss:cs.LG", "arxiv-rss", "cs.LG"),),
                         sources_explicit=True)
    assert [(r["name"], r["origin"]) for r in listed(configured)] == [
        ("arxiv-rss:cs.LG", "config"), ("hf", "added")]


def test_sources_added_with_the_cli_are_ingested_by_the_run(tmp_path: Path) -> None:
    extra = tmp_path / "extra.jsonl"
    extra.write_text(SAMPLE_BATCH.read_text(encoding="utf-8").splitlines()[0] + "\n")
    config = replace(make_config(tmp_path / "var"), sources_explicit=False)
    added = CliRunner().invoke(main, ["sources", "add", "jsonl", str(extra), "--name", "mine"],
                               obj={"config": config})
    assert added.exit_code == 0, added.output
    result = CliRunner().invoke(main, ["ingest", "--json"], obj={"config": config})
    assert result.exit_code == 0, result.output
    sources = json.loads(result.output)
    # Only the added source: the sample batch is the default only when nothing is set.
    assert [(s["source"], s["new"]) for s in sources] == [("mine", 1)]


def test_add_refuses_categories_joined_wrongly_and_paths_that_are_no_file(
    tmp_path: Path, feed_server: FeedServer,
) -> None:
    """Hand-made arguments: each was stored with exit 0, then failed every run after.

    A location of arxiv-rss that is not category codes, and any location of hf-daily or
    arxiv-api that is not a URL or a query, is read as a file; categories joined with a
    comma or a space, or a date typed for hf-daily, were stored as file names that
    every run then reported as unreadable (and the first one stopped the sample batch).
    """
    config = plain(tmp_path)
    for args, says in (
        (("arxiv-rss", "cs.LG,cs.CL"), "join category codes with +"),
        (("arxiv-rss", "cs.LG cs.CL"), "join category codes with +"),
        (("arxiv-rss", "cs.LG;cs.CL"), "join category codes with +"),
        (("hf-daily", "2026-06-01"), "is no file here"),
        (("arxiv-api", "./saved-answer.xml"), "is no file here"),
        (("arxiv-rss", "ftp://example.org/rss/cs.LG"), "not an http(s) URL"),
        (("hf-daily", "ftp://example.org/daily_papers"), "not an http(s) URL"),
        (("jsonl", "https://example.org/papers.jsonl"), "jsonl sources are local files"),
    ):
        refused = run(config, "sources", "add", *args)
        assert refused.exit_code == 2 and says in refused.output, (args, refused.output)
    assert [r["origin"] for r in listed(config)] == ["default"]
    # A feed URL or a saved capture that exists is still taken as it is.
    capture = Path(feed_server.root) / COMBINED
    assert run(config, "sources", "add", "arxiv-rss", str(capture)).exit_code == 0
    assert run(config, "sources", "add", "arxiv-rss", feed_server.url(COMBINED)).exit_code == 0
    assert run(config, "sources", "add", "arxiv-api", "search_query=cat:cs.LG").exit_code == 0
    assert len(listed(config)) == 3
