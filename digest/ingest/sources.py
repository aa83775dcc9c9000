"""Read a source of any kind and judge its health; one module per kind does the reading."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date

from digest.errors import SourceError
from digest.ingest.arxiv import (
    arxiv_api_paper,
    arxiv_api_url,
    arxiv_rss_paper,
    arxiv_rss_url,
    read_arxiv_api,
    read_arxiv_rss,
)
from digest.ingest.base import Harvest, Validators, local_path
from digest.ingest.generic import doi_from_url, generic_paper, read_rss
from digest.ingest.hf import hf_daily_url, hf_paper, read_hf_daily
from digest.ingest.http import Fetch
from digest.ingest.jsonl import read_jsonl_source
from digest.ingest.merge import merge
from digest.ingest.text import readable, storable
from digest.models import SourceResult, SourceSpec

__all__ = [
    "READERS",
    "Harvest",
    "arxiv_api_paper",
    "arxiv_api_url",
    "arxiv_rss_paper",
    "arxiv_rss_url",
    "doi_from_url",
    "generic_paper",
    "hf_daily_url",
    "hf_paper",
    "local_path",
    "read_source",
    "to_result",
]

Reader = Callable[[SourceSpec, date, Fetch, Validators], Harvest]
READERS: dict[str, Reader] = {
    "arxiv-rss": read_arxiv_rss,
    "arxiv-api": read_arxiv_api,
    "hf-daily": read_hf_daily,
    "rss": read_rss,
    "jsonl": read_jsonl_source,
}

def read_source(spec: SourceSpec, *, day: date, fetch: Fetch,
                validators: Validators = (None, None)) -> Harvest:
    """Read one source of any kind; raise SourceError when nothing usable came back."""
    reader = READERS.get(spec.kind)
    if reader is None:
        raise SourceError(
            f"unknown source kind {spec.kind!r}",
            f"use one of: {', '.join(READERS)}",
        )
    return reader(spec, day, fetch, validators)


def to_result(spec: SourceSpec, harvest: Harvest, *, day: date) -> SourceResult:
    """Judge a harvest's health: ok, partial (with why), quiet, or not_modified."""
    papers = merge(storable(readable(paper)) for paper in harvest.papers)
    result = SourceResult(spec.name, "ok", tuple(papers), etag=harvest.etag,
                          last_modified=harvest.last_modified, announced=harvest.announced,
                          note=harvest.caught_up)
    if harvest.not_modified:
        return replace(result, status="not_modified")
    if harvest.problems and harvest.entries and not harvest.papers:
        return replace(result, status="error", error="; ".join(harvest.problems)
                       + " (hint: nothing usable came back; check the source)")
    if harvest.problems:
        return replace(result, status="partial", error="; ".join(harvest.problems))
    if harvest.entries == 0:
        weekday = day.strftime("%A").lower()
        skipping = weekday in harvest.skip_days or (not harvest.skip_days and day.weekday() >= 5)
        note = None if skipping else (
            f"the source listed nothing on a {day.strftime('%A')} that is not one of its "
            "skip days; a holiday looks like this, if it repeats check the source"
        )
        return replace(result, status="quiet", error=note)
    return result
