"""arXiv sources: the rss.arxiv.org announcement feeds and the export.arxiv.org API."""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import parse_qsl, quote, urlsplit

from digest.errors import SourceError
from digest.ingest.base import (
    Harvest,
    Validators,
    check_status,
    feed_harvest,
    flag,
    get,
    local_path,
    not_modified,
    read_file,
    with_query,
)
from digest.ingest.feeds import Feed, FeedEntry, looks_like_html_page, parse_feed
from digest.ingest.http import Fetch, FetchResponse
from digest.ingest.keys import normalize_doi, parse_arxiv_id
from digest.ingest.text import split_authors, squash, strip_arxiv_prefix
from digest.models import AnnounceType, Paper, SourceSpec

ARXIV_RSS = "https://rss.arxiv.org/rss/"
ARXIV_API = "https://export.arxiv.org/api/query"
_CATEGORIES = re.compile(r"[A-Za-z-]+(?:\.[A-Za-z-]+)?(?:\+[A-Za-z-]+(?:\.[A-Za-z-]+)?)*")
# Times one page of API results is asked for when it keeps coming back empty.
EMPTY_PAGE_TRIES = 3
_ANNOUNCE_TYPES: dict[str, AnnounceType] = {
    "new": "new", "cross": "cross", "replace": "replace", "replace-cross": "replace-cross",
}


# --- arXiv RSS ------------------------------------------------------------------------


def arxiv_rss_url(location: str) -> str:
    """Turn ``cs.LG+cs.AI`` into its rss.arxiv.org URL; pass URLs and paths through."""
    location = location.strip()
    if _CATEGORIES.fullmatch(location):
        return ARXIV_RSS + location
    return location


def read_arxiv_rss(spec: SourceSpec, day: date, fetch: Fetch, validators: Validators) -> Harvest:
    """Read an rss.arxiv.org feed, keeping the announce types the source's options ask for."""
    response = get(arxiv_rss_url(spec.location), fetch, validators)
    if response.not_modified:
        return not_modified(response, validators)
    check_status(response)
    feed = parse_feed(response.body, where=response.url, content_type=response.content_type)
    cross = flag(spec.option("cross", "0"))
    replacements = flag(spec.option("replace", "1"))
    papers: list[Paper] = []
    skipped = 0
    for entry in feed.entries:
        paper = arxiv_rss_paper(entry, source=spec.name)
        if paper is None:
            skipped += 1
            continue
        kind = paper.announce_type
        if kind in ("cross", "replace-cross") and not cross:
            continue
        if kind in ("replace", "replace-cross") and not replacements:
            continue
        papers.append(paper)
    return feed_harvest(feed, papers, skipped, response)


def arxiv_rss_paper(entry: FeedEntry, *, source: str) -> Paper | None:
    """Convert one rss.arxiv.org item; None when it carries no arXiv id or no title."""
    parsed = parse_arxiv_id(entry.guid) or parse_arxiv_id(entry.link)
    title = squash(entry.title)
    if parsed is None or not title:
        return None
    arxiv_id, version = parsed
    return Paper(
        key=f"arxiv:{arxiv_id}",
        title=title,
        abstract=squash(strip_arxiv_prefix(entry.summary)),
        authors=entry.authors or split_authors(entry.author_text),
        categories=entry.categories,
        url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
        source=source,
        published=entry.published,
        announce_type=announce_type(entry),
        version=version,
        doi=normalize_doi(entry.doi) if entry.doi else None,
    )


def announce_type(entry: FeedEntry) -> AnnounceType:
    """Return an arXiv announcement's type: its element, else the summary's lead-in."""
    if entry.announce_type is not None:
        return _ANNOUNCE_TYPES.get(entry.announce_type, "new")
    # Older feeds state the type only in the description's lead-in.
    found = re.search(r"Announce Type:\s*([\w-]+)", entry.summary)
    return _ANNOUNCE_TYPES.get(found.group(1).lower(), "new") if found else "new"


# --- arXiv API ------------------------------------------------------------------------


def arxiv_api_url(location: str) -> str:
    """Turn a query string or search expression into an export.arxiv.org URL."""
    location = location.strip()
    if re.match(r"^https?://", location) or local_path_like(location):
        return location
    if "=" in location:
        return f"{ARXIV_API}?{location.lstrip('?')}"
    return f"{ARXIV_API}?search_query={quote(location)}"


def local_path_like(location: str) -> bool:
    """Return True when an arxiv-api location names a file rather than a query."""
    return location.startswith(("file://", "/", "./", "../", "~")) or location.endswith(".xml")


def read_arxiv_api(spec: SourceSpec, day: date, fetch: Fetch, validators: Validators) -> Harvest:
    """Page through an API query (``limit`` option caps the total), or read a saved answer."""
    url = arxiv_api_url(spec.location)
    path = local_path(url)
    if path is not None:
        response = read_file(path)
        feed = _api_page(response)
        return feed_harvest(feed, *_api_papers(feed, spec.name), response)
    query = dict(parse_qsl(urlsplit(url).query))
    page_size = int(query.get("max_results") or 100)
    start = int(query.get("start") or 0)
    limit = int(spec.option("limit", str(page_size)))
    papers: list[Paper] = []
    entries = skipped = 0
    problems: list[str] = []
    first: FetchResponse | None = None
    expected: int | None = None  # the results the first page announced
    while len(papers) + skipped < limit:
        page_url = with_query(url, start=str(start), max_results=str(page_size))
        response = fetch(page_url, etag=validators[0] if first is None else None,
                         last_modified=validators[1] if first is None else None)
        if first is None and response.not_modified:
            return not_modified(response, validators)
        feed = _api_page(response)
        if first is not None and expected is not None and start < expected:
            # arXiv's API answers an empty page inside the results at times; asked
            # again (the fetcher spaces the requests) it usually gives the page.
            for _ in range(EMPTY_PAGE_TRIES - 1):
                if feed.entries:
                    break
                feed = _api_page(fetch(page_url))
            if not feed.entries:
                problems.append(
                    f"arXiv answered an empty page at start={start} of {expected} results "
                    f"{EMPTY_PAGE_TRIES} times; the {len(papers)} papers before it were "
                    "kept, the rest not read (hint: the API does this at times; the next "
                    "run tries again)")
                break
        first = first or response
        if expected is None:
            expected = feed.total_results
        page, page_skipped = _api_papers(feed, spec.name)
        known = {p.key for p in papers}
        fresh = [p for p in page if p.key not in known]
        papers.extend(fresh)
        skipped += page_skipped
        entries += len(feed.entries)
        if feed.problem:
            problems.append(feed.problem)
        start += len(feed.entries)
        total = feed.total_results
        if (len(feed.entries) < page_size or (total is not None and start >= total)
                or (page and not fresh)):
            # The last page, or a server that ignores ``start`` and repeats itself.
            break
    if skipped:
        problems.append(f"{skipped} entries had no usable id or title and were left out")
    assert first is not None
    return Harvest(tuple(papers[:limit]), entries, frozenset(), tuple(problems),
                   first.etag, first.last_modified)


def _api_page(response: FetchResponse) -> Feed:
    """Parse one API page; arXiv reports bad queries as an Atom entry titled Error."""
    if looks_like_html_page(response.body, response.content_type):
        check_status(response)
    feed = parse_feed(response.body, where=response.url, content_type=response.content_type)
    for entry in feed.entries:
        if "/api/errors" in entry.guid or squash(entry.title) == "Error":
            raise SourceError(
                f"arXiv API refused the query (HTTP {response.status}): {squash(entry.summary)}",
                "fix the query: ids look like 2401.01234 or hep-th/9901001, searches like "
                "search_query=cat:cs.LG (https://info.arxiv.org/help/api/user-manual.html)",
            )
    check_status(response)
    return feed


def _api_papers(feed: Feed, source: str) -> tuple[list[Paper], int]:
    papers, skipped = [], 0
    for entry in feed.entries:
        paper = arxiv_api_paper(entry, source=source)
        if paper is None:
            skipped += 1
        else:
            papers.append(paper)
    return papers, skipped


def arxiv_api_paper(entry: FeedEntry, *, source: str) -> Paper | None:
    """Convert one arXiv API Atom entry (2016 or 2026 serialisation)."""
    parsed = parse_arxiv_id(entry.guid) or parse_arxiv_id(entry.link)
    title = squash(entry.title)
    if parsed is None or not title:
        return None
    arxiv_id, version = parsed
    categories = list(entry.categories)
    if entry.primary_category:
        categories = [entry.primary_category] + [c for c in categories
                                                 if c != entry.primary_category]
    return Paper(
        key=f"arxiv:{arxiv_id}",
        title=title,
        abstract=squash(entry.summary),
        authors=entry.authors,
        categories=tuple(categories),
        url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
        source=source,
        published=entry.published,
        version=version,
        doi=normalize_doi(entry.doi) if entry.doi else None,
        comment=entry.comment,
    )
