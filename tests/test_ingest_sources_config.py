"""DIGEST_SOURCES_FILE and the rule for which sources a run reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from digest.config import SAMPLE_BATCH, config_from_values
from digest.errors import ConfigError
from digest.models import SourceSpec
from digest.sources_config import effective_sources
from tests.fixtures.config import SECRET, make_config

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
