"""DIGEST_SOURCES, DIGEST_SOURCES_FILE and the rule for which sources a run reads."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import SAMPLE_BATCH, config_from_values
from digest.errors import ConfigError
from digest.ingest import HttpFetcher, collect
from digest.models import SourceSpec
from digest.sources_config import effective_sources
from tests.fixtures.config import SECRET, make_config
from tests.fixtures.http_server import FeedServer

BASE = {"DIGEST_SECRET_KEY": SECRET}
SAMPLE = f"jsonl:{SAMPLE_BATCH}"


def values(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**BASE, "DIGEST_VAR_DIR": str(tmp_path / "var"), **extra}


def test_nothing_configured_means_the_sample_batch_and_not_explicit(tmp_path: Path) -> None:
    config = config_from_values(values(tmp_path))
    assert [s.name for s in config.sources] == [SAMPLE]
    assert config.sources_explicit is False


def test_sources_file_lines_comments_and_options(tmp_path: Path) -> None:
    listing = tmp_path / "sources.txt"
    listing.write_text(
        "# arXiv first\n"
        "arxiv-rss:cs.LG+cs.AI?cross=1\n"
        "\n"
        "   hf-daily   # trailing comment\n"
        "rss:https://connect.biorxiv.org/biorxiv_xml/bioinformatics#latest\n"
        "arxiv-rss:cs.LG+cs.AI?cross=0\n",
        encoding="utf-8",
    )
    config = config_from_values(values(tmp_path, DIGEST_SOURCES_FILE=str(listing)))
    assert config.sources_explicit is True
    assert [(s.name, s.options) for s in config.sources] == [
        ("arxiv-rss:cs.LG+cs.AI", (("cross", "1"),)),  # the first mention wins
        ("hf-daily:https://huggingface.co/api/daily_papers", ()),
        ("rss:https://connect.biorxiv.org/biorxiv_xml/bioinformatics#latest", ()),
    ]


def test_sources_file_adds_to_digest_sources(tmp_path: Path) -> None:
    listing = tmp_path / "sources.txt"
    listing.write_text("hf-daily\n", encoding="utf-8")
    config = config_from_values(values(tmp_path, DIGEST_SOURCES="arxiv-rss:cs.CL",
                                       DIGEST_SOURCES_FILE=str(listing)))
    assert [s.kind for s in config.sources] == ["arxiv-rss", "hf-daily"]


def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    listing = tmp_path / "sources.txt"
    listing.write_text("# ok\narxiv-rss:cs.LG\nfeed:https://example.org/x\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config_from_values(values(tmp_path, DIGEST_SOURCES_FILE=str(listing)))
    assert f"DIGEST_SOURCES_FILE {listing} line 3" in caught.value.message
    assert "'feed:https://example.org/x'" in caught.value.message
    assert "kinds: arxiv-rss" in caught.value.hint


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"DIGEST_SOURCES_FILE .* cannot be read"):
        config_from_values(values(tmp_path, DIGEST_SOURCES_FILE=str(tmp_path / "nope.txt")))


def test_a_file_of_comments_only_falls_back_to_the_sample(tmp_path: Path) -> None:
    listing = tmp_path / "sources.txt"
    listing.write_text("# nothing yet\n\n", encoding="utf-8")
    config = config_from_values(values(tmp_path, DIGEST_SOURCES_FILE=str(listing)))
    assert [s.name for s in config.sources] == [SAMPLE] and not config.sources_explicit


STORED = (
    SourceSpec("mine", "arxiv-rss", "cs.LG", (("cross", "1"),)),
    SourceSpec("hf", "hf-daily", "https://huggingface.co/api/daily_papers"),
)


def test_effective_sources_default_when_nothing_is_configured_or_stored(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, sources_explicit=False)
    assert effective_sources(config, []) == config.sources


def test_stored_sources_replace_the_default(tmp_path: Path) -> None:
    config = make_config(tmp_path, sources_explicit=False)
    assert effective_sources(config, STORED) == STORED


def test_configured_and_stored_sources_run_together_deduplicated_by_name(
    tmp_path: Path,
) -> None:
    configured = (SourceSpec("hf", "hf-daily", "https://example.org/other"),
                  SourceSpec("arxiv-rss:cs.CL", "arxiv-rss", "cs.CL"))
    config = replace(make_config(tmp_path), sources=configured, sources_explicit=True)
    chosen = effective_sources(config, STORED)
    assert [s.name for s in chosen] == ["hf", "arxiv-rss:cs.CL", "mine"]
    assert chosen[0].location == "https://example.org/other"  # the configuration wins


# --- commas inside a URL in DIGEST_SOURCES ---------------------------------------------

UA = "digest-tests/1 (mailto:ops@example.org)"
API_CAPTURE = "captured/arxiv_api/arxiv_api_2026-06_search_transformer_cs.LG_5results.xml"
BIORXIV = "captured/other_scholarly/biorxiv_20250413.xml"


def test_a_comma_in_a_source_url_stays_in_the_url(
    tmp_path: Path, feed_server: FeedServer,
) -> None:
    # DIGEST_SOURCES was split at every comma, so an arXiv query for two categories
    # became "...search_query=cat:cs.LG" and "cat:cs.AI&...", the second refused.
    feed_server.route("api", file=API_CAPTURE)
    feed_server.route("feed", file=BIORXIV)
    api = feed_server.url("api", "search_query=cat:cs.LG,cat:cs.AI&sortBy=submittedDate")
    feed = feed_server.url("feed", "tags=ml,bio")
    config = config_from_values(values(
        tmp_path, DIGEST_SOURCES=f"arxiv-api:{api}&limit=5,hf-daily?pages=1, rss:{feed},"
                                 "arxiv-api:id_list=2401.01234,2401.05678"))
    assert [(s.kind, s.location, s.options) for s in config.sources] == [
        ("arxiv-api", api, (("limit", "5"),)),
        ("hf-daily", "https://huggingface.co/api/daily_papers", (("pages", "1"),)),
        ("rss", feed, ()),
        ("arxiv-api", "id_list=2401.01234,2401.05678", ()),
    ]
    results = collect([config.sources[0], config.sources[2]], day=date(2026, 6, 15),
                      user_agent=UA, fetch=HttpFetcher(user_agent=UA, sleep=lambda _: None))
    assert [r.status for r in results] == ["ok", "ok"]
    queries = {r.path: r.query for r in feed_server.requests}
    assert queries["api"]["search_query"] == "cat:cs.LG,cat:cs.AI"
    assert queries["feed"] == {"tags": "ml,bio"}


def test_the_documented_lists_split_as_before(tmp_path: Path) -> None:
    listed = (f"arxiv-rss:cs.LG+cs.CL?cross=1, HF-DAILY?pages=3,"
              f"rss:https://connect.biorxiv.org/biorxiv_xml/bioinformatics,"
              f"arxiv-api:https://export.arxiv.org/api/query?search_query=cat:cs.LG&limit=300,"
              f"jsonl:{SAMPLE_BATCH},")
    config = config_from_values(values(tmp_path, DIGEST_SOURCES=listed))
    assert [(s.kind, s.location, s.options) for s in config.sources] == [
        ("arxiv-rss", "cs.LG+cs.CL", (("cross", "1"),)),
        ("hf-daily", "https://huggingface.co/api/daily_papers", (("pages", "3"),)),
        ("rss", "https://connect.biorxiv.org/biorxiv_xml/bioinformatics", ()),
        ("arxiv-api", "https://export.arxiv.org/api/query?search_query=cat:cs.LG",
         (("limit", "300"),)),
        ("jsonl", str(SAMPLE_BATCH), ()),
    ]


@pytest.mark.parametrize(
    ("listed", "named"),
    [
        # A URL or a path after a comma begins an entry: it lacks its kind.
        ("rss:https://example.org/a.xml,https://example.org/b.xml", "'https://example.org/b.xml'"),
        ("arxiv-api:https://export.arxiv.org/api/query?search_query=x,./saved.xml",
         "'./saved.xml'"),
        # Categories are joined with +; outside a URL every comma separates.
        ("arxiv-rss:cs.LG,cs.CL", "'cs.CL'"),
        ("jsonl:/data/a.jsonl,b.jsonl", "'b.jsonl'"),
        ("hf-daily,gopher:somewhere", "'gopher:somewhere'"),
    ],
)
def test_an_entry_that_cannot_be_read_is_still_a_configuration_error(
    tmp_path: Path, listed: str, named: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_values(values(tmp_path, DIGEST_SOURCES=listed))
    assert caught.value.exit_code == 78
    assert f"DIGEST_SOURCES entry {named} is not kind:location" in caught.value.message


# --- a misspelt option or API parameter in a source's URL -------------------------------

ARXIV_API = "https://export.arxiv.org/api/query?search_query=cat:cs.LG"
HF_DAILY = "https://huggingface.co/api/daily_papers"


@pytest.mark.parametrize(
    ("entry", "said", "hinted"),
    [
        # Kept in the URL and sent, unreported: the run read pages of 100, not 50.
        (f"arxiv-api:{ARXIV_API}&max_resuts=50",
         "arxiv-api URL parameter 'max_resuts' looks like a misspelling of 'max_results'",
         "the arXiv API has no such parameter; its own are search_query"),
        ("arxiv-api:search_query=cat:cs.LG&sortOrdr=descending",
         "'sortOrdr' looks like a misspelling of 'sortOrder'", "sortBy, sortOrder"),
        (f"arxiv-api:{ARXIV_API}&limt=300",
         "'limt' looks like a misspelling of the option 'limit'", "options of arxiv-api: limit"),
        (f"hf-daily:{HF_DAILY}?pags=2",
         "'pags' looks like a misspelling of the option 'pages'", "pages (most pages"),
        ("arxiv-rss:https://rss.arxiv.org/rss/cs.LG?crosss=1",
         "'crosss' looks like a misspelling of the option 'cross'", "cross (1 to include"),
    ],
    ids=["max_results", "sortOrder", "limit", "pages", "cross"],
)
def test_a_misspelt_parameter_in_a_source_url_is_a_configuration_error(
    tmp_path: Path, entry: str, said: str, hinted: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_values(values(tmp_path, DIGEST_SOURCES=f"hf-daily,{entry}"))
    assert caught.value.exit_code == 78
    assert f"DIGEST_SOURCES entry {entry!r}: " in caught.value.message
    assert said in caught.value.message
    assert hinted in caught.value.hint


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        # Each was accepted. The words and the 0 then made every run record the source
        # as "unexpected ValueError (AssertionError) ... this is a bug in digest"; a
        # negative start was sent to arXiv as it was.
        (f"arxiv-api:{ARXIV_API}&max_results=fifty", "max_results='fifty'"),
        (f"arxiv-api:{ARXIV_API}&max_results=0", "max_results='0'"),
        ("arxiv-api:search_query=cat:cs.LG&start=first", "start='first'"),
        (f"arxiv-api:{ARXIV_API}&start=-10", "start='-10'"),
        (f"hf-daily:{HF_DAILY}?p=two", "p='two'"),
    ],
    ids=["max_results-word", "max_results-0", "start-word", "start-negative", "p-word"],
)
def test_a_paging_parameter_that_is_no_number_is_a_configuration_error(
    tmp_path: Path, entry: str, said: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_values(values(tmp_path, DIGEST_SOURCES=entry))
    assert caught.value.exit_code == 78
    assert said in caught.value.message and "whole number" in caught.value.message
    config = make_config(tmp_path / "var", sources_explicit=False)
    added = CliRunner().invoke(main, ["sources", "add", *entry.split(":", 1)],
                               obj={"config": config})
    assert added.exit_code == 2 and said in added.output


def test_other_url_parameters_are_left_alone(tmp_path: Path) -> None:
    entries = [
        "rss:https://example.org/feed?limt=1&format=rss",  # a feed's own: nothing to miss
        f"arxiv-api:{ARXIV_API}&sortBy=submittedDate&start=0&max_results=50",
        f"arxiv-api:{ARXIV_API}&sortby=submittedDate",  # a known one in another case
        f"hf-daily:{HF_DAILY}?date=2026-06-12&sort=trending&submitter=someone",
    ]
    config = config_from_values(values(tmp_path, DIGEST_SOURCES=",".join(entries)))
    assert [s.location for s in config.sources] == [e.partition(":")[2] for e in entries]


def test_sources_add_refuses_a_misspelt_url_parameter_as_a_usage_error(tmp_path: Path) -> None:
    config = make_config(tmp_path / "var", sources_explicit=False)
    added = CliRunner().invoke(main, ["sources", "add", "arxiv-api", f"{ARXIV_API}&max_resuts=5"],
                               obj={"config": config})
    assert added.exit_code == 2
    assert "'max_resuts' looks like a misspelling of 'max_results'" in added.output
