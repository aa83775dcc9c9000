"""Hugging Face daily papers (https://huggingface.co/api/daily_papers), paged by ``p``.

The API takes ``date=YYYY-MM-DD`` (or ``week=`` / ``month=``), ``limit`` (items per page)
and ``p`` (page number, from 0), as documented at huggingface.co/docs/hub/api and used
by huggingface_hub's ``list_daily_papers(date=, p=, limit=)``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from digest.errors import SourceError
from digest.ingest.base import (
    Harvest,
    Validators,
    check_status,
    count_of,
    left_to_retry,
    local_path,
    not_modified,
    read_file,
    with_query,
)
from digest.ingest.feeds import looks_like_html_page, parse_date
from digest.ingest.http import Fetch, FetchResponse
from digest.ingest.keys import arxiv_key
from digest.ingest.text import squash
from digest.models import Paper, SourceSpec

HF_DAILY = "https://huggingface.co/api/daily_papers"
PAGE_SIZE = 100  # the most the API hands out per page
MAX_PAGES = 10
_HINT = "point the source at https://huggingface.co/api/daily_papers"


CATCH_UP_DAYS = 14  # a list no run read is read at most this many days later


def hf_daily_url(location: str, day: date) -> str:
    """Return the first page's URL: ``day`` unless the location names a date, week or month."""
    location = location.strip() or HF_DAILY
    if _dated(location):
        location = with_query(location, date=day.isoformat())
    return location


def _dated(location: str) -> bool:
    """Return True when a source reads the list of the run's day (no date in its URL)."""
    query = dict(parse_qsl(urlsplit(location.strip() or HF_DAILY).query))
    return not {"date", "week", "month"} & set(query)


def read_hf_daily(spec: SourceSpec, day: date, fetch: Fetch, validators: Validators) -> Harvest:
    """Read every page of one day's list (options: ``limit`` per page, ``pages`` at most)."""
    path = local_path(spec.location.strip())
    if path is not None:
        response = read_file(path)
        items = _items(response)
        return _harvest(spec, [items], response, truncated=False)
    url = hf_daily_url(spec.location, day)
    page_size = int(spec.option("limit", dict(parse_qsl(urlsplit(url).query)).get(
        "limit", str(PAGE_SIZE))))
    max_pages = int(spec.option("pages", str(MAX_PAGES)))
    first_page = int(dict(parse_qsl(urlsplit(url).query)).get("p") or 0)
    pages: list[list[Any]] = []
    seen: set[str] = set()
    first: FetchResponse | None = None
    truncated = False
    for number in range(first_page, first_page + max_pages):
        page_url = with_query(url, p=str(number), limit=str(page_size))
        response = fetch(page_url, etag=validators[0] if first is None else None,
                         last_modified=validators[1] if first is None else None)
        if first is None and response.not_modified:
            return not_modified(response, validators)
        first = first or response
        items = _items(response)
        ids = {_item_id(item) for item in items} - {""}
        if pages and ids and ids <= seen:
            break  # a server that ignores ``p`` repeats the first page
        pages.append(items)
        seen |= ids
        if len(items) < page_size:
            break
    else:
        truncated = True
    assert first is not None
    harvest = _harvest(spec, pages, first, truncated=truncated)
    return replace(harvest, announced=day) if _dated(spec.location) else harvest


def hf_catch_up(spec: SourceSpec, harvest: Harvest, *, last: date, day: date,
                fetch: Fetch) -> Harvest:
    """Add the lists of the days since ``last`` (itself included) to today's harvest.

    A run reads the list of its own day; a day no run read (the box was down) would be
    lost, and the last one read may have grown after its last run (papers are added all
    day). At most CATCH_UP_DAYS back. When a list cannot be read, the harvest says so
    (partial) and does not carry its day or validators: the next run tries again.
    """
    if harvest.announced is None or last >= day:
        return harvest
    start = max(last, day - timedelta(days=CATCH_UP_DAYS))
    missed = [start + timedelta(days=n) for n in range((day - start).days)]
    held = {p.key for p in harvest.papers}
    added: list[Paper] = []
    problems: list[str] = []
    for earlier in missed:
        try:
            found = read_hf_daily(spec, earlier, fetch, (None, None))
        except SourceError as err:
            return left_to_retry(harvest, f"the Hugging Face list of {earlier}, which no "
                                          f"run read whole, could not be read: {err}")
        problems.extend(found.problems)
        for paper in found.papers:
            if paper.key not in held:
                held.add(paper.key)
                added.append(paper)
    listed = ", ".join(d.isoformat() for d in missed)
    note = f"read again the lists of {listed}: {len(added)} papers besides today's"
    return replace(harvest, papers=(*harvest.papers, *added),
                   problems=(*harvest.problems, *problems), caught_up=note)


def _items(response: FetchResponse) -> list[Any]:
    """Decode one page into its list of items; raise SourceError for anything else."""
    if looks_like_html_page(response.body, response.content_type):
        raise SourceError(f"{response.url}: got an HTML page, not JSON", _HINT)
    check_status(response)
    try:
        data = json.loads(response.body)
    except ValueError as err:
        raise SourceError(f"{response.url}: not valid JSON ({err})", _HINT) from err
    if isinstance(data, dict):
        if "error" in data:
            raise SourceError(f"{response.url}: Hugging Face says {data['error']!r}",
                              "check the date and the URL")
        data = data.get("papers") or data.get("items") or []
    if not isinstance(data, list):
        raise SourceError(f"{response.url}: expected a JSON list of papers", "check the URL")
    return data


def _item_id(item: Any) -> str:
    if not isinstance(item, dict):
        return ""
    paper = item.get("paper") if isinstance(item.get("paper"), dict) else item
    return str(paper.get("id") or "") if isinstance(paper, dict) else ""


def _harvest(spec: SourceSpec, pages: list[list[Any]], response: FetchResponse, *,
             truncated: bool) -> Harvest:
    papers: list[Paper] = []
    skipped = total = 0
    for items in pages:
        total += len(items)
        for item in items:
            paper = hf_paper(item, source=spec.name) if isinstance(item, dict) else None
            if paper is None:
                skipped += 1
            else:
                papers.append(paper)
    problems: list[str] = []
    if skipped:
        problems.append(f"{skipped} of {total} items had no arXiv id or title and were left out")
    if truncated:
        problems.append(f"stopped after {len(pages)} pages and {total} items; there may be "
                        "more (hint: raise the source's pages option)")
    return Harvest(tuple(papers), total, frozenset({"saturday", "sunday"}), tuple(problems),
                   response.etag, response.last_modified)


def hf_paper(item: dict[str, Any], *, source: str) -> Paper | None:
    """Convert one daily_papers item; the key is the arXiv id Hugging Face lists it under."""
    paper = item.get("paper") if isinstance(item.get("paper"), dict) else item
    assert isinstance(paper, dict)
    key = arxiv_key(str(paper.get("id") or ""))
    raw_title = paper.get("title", item.get("title"))
    title = squash(str(raw_title)) if raw_title is not None else ""
    if key is None or not title:
        return None
    arxiv_id = key.removeprefix("arxiv:")
    authors = tuple(
        squash(str(a.get("name")))
        for a in paper.get("authors") or []
        if isinstance(a, dict) and squash(str(a.get("name") or ""))
    )
    upvotes = paper.get("upvotes")
    keywords = paper.get("ai_keywords") or []
    return Paper(
        key=key,
        title=title,
        abstract=squash(str(paper.get("summary") or item.get("summary") or "")),
        authors=authors,
        url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
        source=source,
        published=parse_date(str(paper.get("publishedAt") or item.get("publishedAt") or "")),
        upvotes=count_of(upvotes),
        ai_summary=squash(str(paper["ai_summary"])) if paper.get("ai_summary") else None,
        ai_keywords=tuple(squash(str(k)) for k in keywords if squash(str(k))),
    )
