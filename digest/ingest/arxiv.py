"""arXiv sources: the rss.arxiv.org announcement feeds and the export.arxiv.org API."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from digest.config import ARXIV_API
from digest.errors import SourceError
from digest.ingest.base import (
    Harvest,
    Validators,
    check_status,
    feed_harvest,
    flag,
    get,
    left_to_retry,
    local_path,
    not_modified,
    read_file,
    with_query,
)
from digest.ingest.feeds import Feed, FeedEntry, looks_like_html_page, parse_feed
from digest.ingest.http import Fetch, FetchResponse
from digest.ingest.keys import normalize_doi, parse_arxiv_id
from digest.ingest.text import split_authors, squash, strip_arxiv_prefix
from digest.models import REPLACEMENTS, AnnounceType, Paper, SourceSpec, with_aliases

logger = logging.getLogger(__name__)

ARXIV_RSS = "https://rss.arxiv.org/rss/"
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
    return replace(feed_harvest(feed, papers, skipped, response), announced=feed.published)


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


class QueryRefused(SourceError):
    """arXiv's API answered the query with its Error entry (an id it cannot read)."""


def _api_page(response: FetchResponse) -> Feed:
    """Parse one API page; arXiv reports bad queries as an Atom entry titled Error."""
    if looks_like_html_page(response.body, response.content_type):
        check_status(response)
    feed = parse_feed(response.body, where=response.url, content_type=response.content_type)
    for entry in feed.entries:
        if "/api/errors" in entry.guid or squash(entry.title) == "Error":
            raise QueryRefused(
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


# --- catching up on announcements the feed no longer lists ------------------------------

# rss.arxiv.org lists only the latest announcement: a day on which no run read the feed
# (the box was down, the feed failed all day) is gone from it by the next one. Its papers
# are asked of the API instead, by submission date, from this many days before the last
# announcement read (a Monday's covers submissions from the Friday before, and a paper on
# hold may wait a little) up to the one being read.
CATCH_UP_BEFORE = timedelta(days=4)
CATCH_UP_DAYS = 14  # at most this far back from the announcement read
CATCH_UP_PAGE = 1000  # results a page (arXiv's API allows up to 2,000)
CATCH_UP_LIMIT = 20_000  # papers read at most (a fortnight of all of cs is ~15,000)


def may_ask_api(specs: Sequence[SourceSpec], api: str) -> bool:
    """Return True when a catch-up or a lookup by id may ask ``api``: an API named for
    this instance (DIGEST_ARXIV_API), or arXiv's own when a source reads arXiv itself. A
    copy of a feed (a file, a test's server) never makes a run ask the real arXiv.
    """
    return api != ARXIV_API or any(reads_arxiv(spec) for spec in specs)


def reads_arxiv(spec: SourceSpec) -> bool:
    """Return True for an arXiv source that reads arXiv itself (a category, a query, or
    an arxiv.org URL), not a saved file or another server's copy.
    """
    if spec.kind not in ("arxiv-rss", "arxiv-api"):
        return False
    location = spec.location.strip()
    if not re.match(r"^https?://", location):
        return not local_path_like(location) if spec.kind == "arxiv-api" else bool(
            _CATEGORIES.fullmatch(location))
    host = (urlsplit(location).hostname or "").lower()
    return host == "arxiv.org" or host.endswith(".arxiv.org")


def missed_announcements(last: date, current: date) -> list[date]:
    """Return the announcement days strictly between two read ones (arXiv's RSS is dated
    Monday to Friday; a holiday among them costs one API request that finds nothing new).
    """
    days = []
    day = max(last, current - timedelta(days=CATCH_UP_DAYS)) + timedelta(days=1)
    while day < current:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def rss_categories(location: str) -> tuple[str, ...] | None:
    """Return the categories an arxiv-rss source lists (``cs.LG+cs.AI``, or the end of an
    rss.arxiv.org-style URL); None when its location does not say (a saved file).
    """
    location = location.strip()
    if not _CATEGORIES.fullmatch(location):
        parts = urlsplit(location)
        if parts.scheme not in ("http", "https"):
            return None
        location = parts.path.rstrip("/").rpartition("/")[2]
        if not _CATEGORIES.fullmatch(location):
            return None
    return tuple(location.split("+"))


def catch_up_url(api: str, categories: tuple[str, ...], since: date, until: date) -> str:
    """Return the API query for papers of ``categories`` submitted from before the
    announcement ``since`` up to the one of ``until``.

    An archive with subject classes is asked for as both itself and its classes
    (``cat:cs OR cat:cs.*``); one without (``quant-ph``) matches the first.
    """
    terms = []
    for category in categories:
        terms.append(f"cat:{category}")
        if "." not in category:
            terms.append(f"cat:{category}.*")
    start, end = since - CATCH_UP_BEFORE, until + timedelta(days=1)
    query = (f"({' OR '.join(terms)}) AND "
             f"submittedDate:[{start:%Y%m%d}0000 TO {end:%Y%m%d}2359]")
    return f"{api}?" + urlencode({"search_query": query, "sortBy": "submittedDate",
                                  "sortOrder": "descending", "max_results": CATCH_UP_PAGE},
                                 safe=":/*")


def listed_in(category: str, categories: tuple[str, ...]) -> bool:
    """Return True when ``category`` is one of a feed's categories or in one of its archives."""
    return any(category == c or ("." not in c and category.startswith(c + "."))
               for c in categories)


def catch_up(spec: SourceSpec, harvest: Harvest, *, last: date, day: date, fetch: Fetch,
             api: str = ARXIV_API) -> Harvest:
    """Add the papers of the announcements missed since ``last`` to an arxiv-rss harvest.

    Asked of the API by submission date; the store drops the ones it already holds. What
    the source's options leave out of the feed is left out here too: with ``cross=0``
    (the default) a paper whose primary category is not the feed's. The API serves no
    replacements by submission date, and a replaced paper is never new anyway.
    When the API fails, the harvest says so (partial) and does not carry the
    announcement's day or the feed's validators: the next run reads the feed again and
    retries the catch-up.
    """
    current = harvest.announced
    categories = rss_categories(spec.location)
    if current is None or categories is None or not flag(spec.option("catchup", "1")):
        return harvest
    # A code arXiv files under two (cs.NA and math.NA, cs.SY and eess.SY) stands for
    # both: its papers mostly carry the canonical one alone, as their primary.
    categories = with_aliases(categories)
    missed = missed_announcements(last, current)
    if not missed:
        return harvest
    listed = ", ".join(d.isoformat() for d in missed)
    since = max(last, current - timedelta(days=CATCH_UP_DAYS))
    query = SourceSpec(spec.name, "arxiv-api", catch_up_url(api, categories, since, current),
                       (("limit", str(CATCH_UP_LIMIT)),))
    try:
        found = read_arxiv_api(query, day, fetch, (None, None))
    except SourceError as err:
        return left_to_retry(
            harvest, f"the papers of the arXiv announcements missed since {last} "
                     f"({listed}) could not be asked of the arXiv API: {err}")
    problems = list(found.problems)
    if found.entries >= CATCH_UP_LIMIT:
        # Newest first: what the cap leaves out are the oldest, the likeliest stored.
        problems.append(f"the catch-up read the newest {CATCH_UP_LIMIT:,} papers the arXiv "
                        f"API listed since {since - CATCH_UP_BEFORE}; older ones were not "
                        "read (hint: a feed of fewer categories catches up whole)")
    cross = flag(spec.option("cross", "0"))
    # A replacement the feed lists is no reason to drop the API's copy: a paper of a
    # missed announcement revised since is listed as "replace" (v2) by the feed read;
    # merged with the API's copy it is new (merge keeps "new"), and the store keeps it
    # where it is if it was announced on a day read.
    held = {p.key for p in harvest.papers if p.announce_type not in REPLACEMENTS}
    added: list[Paper] = []
    for paper in found.papers:
        if paper.key in held:
            continue
        primary = paper.categories[0] if paper.categories else ""
        if not listed_in(primary, categories):
            if not cross:
                continue
            paper = replace(paper, announce_type="cross")
        added.append(paper)
    # The store tells which of them are new (the run's "N new"): the window reaches
    # back before the last day read, whose papers it holds already.
    note = (f"caught up on the arXiv announcements missed since {last} ({listed}) "
            f"from the arXiv API: {len(added)} papers read besides the feed's, the ones "
            "not stored yet filed as new")
    logger.info("%s: %s", spec.name, note)
    return replace(harvest, papers=(*harvest.papers, *added),
                   problems=(*harvest.problems, *problems), caught_up=note)


# --- papers a profile names by id ---------------------------------------------------------

NAMED_SOURCE = "named papers"
ID_LIST_SIZE = 100  # ids per API request (its URL stays ~1.5 KB)


def fetch_named(keys: list[str], *, day: date, fetch: Fetch,
                api: str = ARXIV_API) -> tuple[Harvest, list[str]]:
    """Ask arXiv's API for the papers of these keys (``arxiv:ID``), by id; return them
    and the keys whose answer is settled (found, or not known to arXiv).

    For papers profiles name (seed, liked, disliked) that the store does not hold, e.g.
    a seed from before the first run, or a BibTeX library's: without their text the
    ranker cannot use them. They come back as "named": kept for the ranker, never
    mailed as new. A request arXiv refuses (an id it cannot parse) is split until the
    id is alone, which is then settled as unknown; any other failure stops the asking
    (its keys stay unsettled: the next run asks again) and is the harvest's problem.
    """
    todo = [keys[start : start + ID_LIST_SIZE] for start in range(0, len(keys), ID_LIST_SIZE)]
    todo.reverse()  # popped from the end: asked in the order given
    papers: list[Paper] = []
    problems: list[str] = []
    settled: list[str] = []
    entries = 0
    while todo:
        part = todo.pop()
        listed = ",".join(key.removeprefix("arxiv:") for key in part)
        url = f"{api}?" + urlencode({"id_list": listed, "max_results": len(part)},
                                    safe=":/,")
        try:
            found = read_arxiv_api(SourceSpec(NAMED_SOURCE, "arxiv-api", url), day, fetch,
                                   (None, None))
        except QueryRefused:
            if len(part) > 1:
                half = len(part) // 2
                todo.extend([part[half:], part[:half]])
            else:
                settled.extend(part)  # arXiv cannot read this id
            continue
        except SourceError as err:
            problems.append(f"{err} (hint: the next run asks again)")
            break
        entries += found.entries
        problems.extend(found.problems)
        papers.extend(replace(p, announce_type="named", source=NAMED_SOURCE)
                      for p in found.papers)
        settled.extend(part)
    return Harvest(tuple(papers), entries, frozenset(), tuple(problems)), settled
