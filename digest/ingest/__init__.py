"""Ingest: fetch every configured source and turn it into Papers plus a health report.

feedparser, defusedxml and httpx are used only inside this package.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date

from digest.config import ARXIV_API
from digest.errors import SourceError
from digest.ingest.arxiv import NAMED_SOURCE, catch_up, fetch_named, may_ask_api
from digest.ingest.hf import hf_catch_up
from digest.ingest.http import Fetch, FetchResponse, HttpFetcher, Politeness, http_fetch
from digest.ingest.jsonl import load_jsonl, paper_from_record
from digest.ingest.keys import arxiv_key, doi_key, normalize_doi, paper_key, parse_arxiv_id
from digest.ingest.merge import merge
from digest.ingest.sources import read_source, to_result
from digest.ingest.text import storable
from digest.models import SourceResult, SourceSpec, SourceStatus, without_nul

__all__ = [
    "Fetch",
    "FetchResponse",
    "HttpFetcher",
    "Politeness",
    "arxiv_key",
    "assess",
    "collect",
    "collect_one",
    "doi_key",
    "fetch_named_papers",
    "http_fetch",
    "load_jsonl",
    "may_ask_api",
    "merge",
    "normalize_doi",
    "paper_from_record",
    "paper_key",
    "parse_arxiv_id",
    "user_agent",
]


def user_agent(contact: str, version: str = "0.1") -> str:
    """Build the User-Agent that tells feed owners who is asking and how to reach them."""
    return f"digest/{version} (research-paper digest; mailto:{contact})"


def collect(
    specs: Sequence[SourceSpec],
    *,
    day: date,
    user_agent: str,
    state: Mapping[str, tuple[str | None, str | None]] | None = None,
    announced: Mapping[str, date] | None = None,
    arxiv_api: str = ARXIV_API,
    fetch: Fetch | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[SourceResult]:
    """Read every source; a failing source becomes a SourceResult with status "error".

    ``announced``: each arXiv feed's last announcement day read whole; the papers of the
    announcements since then that no run read are asked of ``arxiv_api`` (catch_up).
    """
    # One fetcher for the whole run so that politeness per host spans every source.
    fetcher = fetch if fetch is not None else HttpFetcher(user_agent=user_agent)
    state = state or {}
    announced = announced or {}
    return [
        collect_one(spec, day=day, fetch=fetcher, validators=state.get(spec.name), clock=clock,
                    last_announced=announced.get(spec.name), arxiv_api=arxiv_api)
        for spec in specs
    ]


def collect_one(
    spec: SourceSpec,
    *,
    day: date,
    fetch: Fetch,
    validators: tuple[str | None, str | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    last_announced: date | None = None,
    arxiv_api: str = ARXIV_API,
) -> SourceResult:
    """Read one source and judge its health; never raise for a source's own failure."""
    started = clock()
    try:
        harvest = read_source(spec, day=day, fetch=fetch, validators=validators or (None, None))
        if (spec.kind == "arxiv-rss" and last_announced is not None
                and may_ask_api([spec], arxiv_api)):
            harvest = catch_up(spec, harvest, last=last_announced, day=day, fetch=fetch,
                               api=arxiv_api)
        elif spec.kind == "hf-daily" and last_announced is not None:
            harvest = hf_catch_up(spec, harvest, last=last_announced, day=day, fetch=fetch)
        result = to_result(spec, harvest, day=day)
    except SourceError as err:
        result = SourceResult(spec.name, "error", error=str(err))
    except Exception as err:  # one broken source must not stop the others
        result = SourceResult(
            spec.name,
            "error",
            error=f"unexpected {type(err).__name__} while reading the source: {err} "
            "(hint: this is a bug in digest; please report it with the source's URL)",
        )
    if result.error is not None:
        # An error may quote what the source sent; the store keeps it as text.
        result = replace(result, error=without_nul(result.error))
    return replace(result, duration_s=clock() - started)


def fetch_named_papers(
    keys: Sequence[str],
    *,
    day: date,
    user_agent: str,
    api: str = ARXIV_API,
    fetch: Fetch | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[SourceResult, list[str]]:
    """Ask arXiv for papers profiles name by id (``arxiv:ID`` keys); return them as a
    source's result, and
    the keys settled (found, or unknown to arXiv: not asked again for a while).
    """
    started = clock()
    fetcher = fetch if fetch is not None else HttpFetcher(user_agent=user_agent)
    harvest, settled = fetch_named(list(keys), day=day, fetch=fetcher, api=api)
    papers = tuple(merge(storable(paper) for paper in harvest.papers))
    if harvest.problems:
        status: SourceStatus = "error" if not papers else "partial"
        error: str | None = without_nul("; ".join(harvest.problems))
    else:
        status, error = "ok", None
    result = SourceResult(NAMED_SOURCE, status, papers, error=error,
                          duration_s=clock() - started)
    return result, settled


def assess(result: SourceResult, *, new: int, day: date) -> SourceResult:
    """Record how many of the source's papers were new to the store.

    Whether a source that brought nothing new is stale is judged from its history, which
    only the store holds (Store.judge_source, applied by Store.record_source): one run
    alone cannot tell the fifth hourly run of a healthy day from a stuck feed, nor a
    Hugging Face list whose papers arXiv delivered first from yesterday's list again.
    ``day`` is kept so that callers need not change.
    """
    return replace(result, new=new)
