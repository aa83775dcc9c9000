"""One reader per source kind: fetch the bytes, parse them, turn entries into Papers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from digest.errors import SourceError
from digest.ingest.feeds import Feed, FeedEntry, looks_like_html_page, parse_date, parse_feed
from digest.ingest.http import DEFAULT_MAX_BYTES, Fetch, FetchResponse
from digest.ingest.jsonl import read_jsonl
from digest.ingest.keys import arxiv_key, normalize_doi, paper_key, parse_arxiv_id
from digest.ingest.merge import merge
from digest.ingest.text import html_to_text, split_authors, squash, strip_arxiv_prefix
from digest.models import AnnounceType, Paper, SourceResult, SourceSpec

ARXIV_RSS = "https://rss.arxiv.org/rss/"
ARXIV_API = "https://export.arxiv.org/api/query"
_CATEGORIES = re.compile(r"[A-Za-z-]+(?:\.[A-Za-z-]+)?(?:\+[A-Za-z-]+(?:\.[A-Za-z-]+)?)*")
_ANNOUNCE_TYPES: dict[str, AnnounceType] = {
    "new": "new", "cross": "cross", "replace": "replace", "replace-cross": "replace-cross",
}
Validators = tuple[str | None, str | None]


@dataclass(frozen=True)
class Harvest:
    """What one read of a source produced, before it becomes a SourceResult."""

    papers: tuple[Paper, ...]
    entries: int  # how many entries the source listed, before filtering
    skip_days: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False


def read_source(spec: SourceSpec, *, day: date, fetch: Fetch,
                validators: Validators = (None, None)) -> Harvest:
    """Read one source of any kind; raise SourceError when nothing usable came back."""
    readers = {
        "arxiv-rss": _arxiv_rss,
        "arxiv-api": _arxiv_api,
        "hf-daily": _hf_daily,
        "rss": _rss,
        "jsonl": _jsonl,
    }
    reader = readers.get(spec.kind)
    if reader is None:
        raise SourceError(
            f"unknown source kind {spec.kind!r}",
            f"use one of: {', '.join(readers)}",
        )
    return reader(spec, day, fetch, validators)


def to_result(spec: SourceSpec, harvest: Harvest, *, day: date) -> SourceResult:
    """Judge a harvest's health: ok, partial (with why), quiet, or not_modified."""
    result = SourceResult(spec.name, "ok", tuple(merge(harvest.papers)), etag=harvest.etag,
                          last_modified=harvest.last_modified)
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


# --- reading bytes --------------------------------------------------------------------


def local_path(location: str) -> Path | None:
    """Return the path for a file:// URL or a location without a URL scheme."""
    if location.startswith("file://"):
        return Path(unquote(urlsplit(location).path))
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", location):
        return None
    return Path(location).expanduser()


def _read_file(path: Path) -> FetchResponse:
    try:
        size = path.stat().st_size
        if size > DEFAULT_MAX_BYTES:
            raise SourceError(f"{path}: {size:,} bytes is over the size cap", "split the file")
        return FetchResponse(url=path.as_uri() if path.is_absolute() else str(path),
                             status=200, body=path.read_bytes())
    except OSError as err:
        raise SourceError(
            f"cannot read {path}: {err.strerror or err}",
            "check the path in DIGEST_SOURCES (relative paths start at the working directory)",
        ) from err


def _get(url_or_path: str, fetch: Fetch, validators: Validators) -> FetchResponse:
    path = local_path(url_or_path)
    if path is not None:
        return _read_file(path)
    return fetch(url_or_path, etag=validators[0], last_modified=validators[1])


def _check_status(response: FetchResponse) -> None:
    status = response.status
    if status < 400:
        return
    if status == 404:
        hint = "check the URL (for arXiv RSS, the category names)"
    elif status in (401, 403):
        hint = "the server refused access; check the URL and whether it needs a login"
    elif status == 429:
        hint = "the server says we ask too often; run less often or space the sources out"
    elif status >= 500:
        hint = "the server is failing; the next run will try again"
    else:
        hint = "check the URL and its query parameters"
    raise SourceError(f"{response.url}: HTTP {status}", hint)


def _not_modified(response: FetchResponse, validators: Validators) -> Harvest:
    return Harvest((), 0, etag=response.etag or validators[0],
                   last_modified=response.last_modified or validators[1], not_modified=True)


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


# --- arXiv RSS ------------------------------------------------------------------------


def arxiv_rss_url(location: str) -> str:
    """Turn ``cs.LG+cs.AI`` into its rss.arxiv.org URL; pass URLs and paths through."""
    location = location.strip()
    if _CATEGORIES.fullmatch(location):
        return ARXIV_RSS + location
    return location


def _arxiv_rss(spec: SourceSpec, day: date, fetch: Fetch, validators: Validators) -> Harvest:
    response = _get(arxiv_rss_url(spec.location), fetch, validators)
    if response.not_modified:
        return _not_modified(response, validators)
    _check_status(response)
    feed = parse_feed(response.body, where=response.url, content_type=response.content_type)
    cross = _flag(spec.option("cross", "0"))
    replacements = _flag(spec.option("replace", "1"))
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
    return _harvest(feed, papers, skipped, response)


def arxiv_rss_paper(entry: FeedEntry, *, source: str) -> Paper | None:
    """Convert one rss.arxiv.org item; None when it carries no arXiv id or no title."""
    parsed = parse_arxiv_id(entry.guid) or parse_arxiv_id(entry.link)
    title = squash(entry.title)
    if parsed is None or not title:
        return None
    arxiv_id, version = parsed
    announce = _ANNOUNCE_TYPES.get(entry.announce_type or "", "new")
    if entry.announce_type is None:
        # Older feeds state the type only in the description's lead-in.
        found = re.search(r"Announce Type:\s*([\w-]+)", entry.summary)
        announce = _ANNOUNCE_TYPES.get(found.group(1).lower(), "new") if found else "new"
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
        announce_type=announce,
        version=version,
        doi=normalize_doi(entry.doi) if entry.doi else None,
    )


def _harvest(feed: Feed, papers: list[Paper], skipped: int, response: FetchResponse) -> Harvest:
    problems = [feed.problem] if feed.problem else []
    if skipped:
        problems.append(f"{skipped} of {len(feed.entries)} entries had no usable id or title "
                        "and were left out")
    return Harvest(tuple(papers), len(feed.entries), feed.skip_days, tuple(problems),
                   response.etag, response.last_modified)


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


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query, safe=":/,+")))


def _arxiv_api(spec: SourceSpec, day: date, fetch: Fetch, validators: Validators) -> Harvest:
    url = arxiv_api_url(spec.location)
    if local_path(url) is not None:
        response = _read_file(local_path(url))  # type: ignore[arg-type]
        feed = _api_page(response)
        return _harvest(feed, *_api_papers(feed, spec.name), response)
    query = dict(parse_qsl(urlsplit(url).query))
    page_size = int(query.get("max_results") or 100)
    start = int(query.get("start") or 0)
    limit = int(spec.option("limit", str(page_size)))
    papers: list[Paper] = []
    entries = skipped = 0
    problems: list[str] = []
    first: FetchResponse | None = None
    while len(papers) + skipped < limit:
        page_url = _with_query(url, start=str(start), max_results=str(page_size))
        response = fetch(page_url, etag=validators[0] if first is None else None,
                         last_modified=validators[1] if first is None else None)
        if first is None and response.not_modified:
            return _not_modified(response, validators)
        first = first or response
        feed = _api_page(response)
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
        _check_status(response)
    feed = parse_feed(response.body, where=response.url, content_type=response.content_type)
    for entry in feed.entries:
        if "/api/errors" in entry.guid or squash(entry.title) == "Error":
            raise SourceError(
                f"arXiv API refused the query (HTTP {response.status}): {squash(entry.summary)}",
                "fix the query: ids look like 2401.01234 or hep-th/9901001, searches like "
                "search_query=cat:cs.LG (https://info.arxiv.org/help/api/user-manual.html)",
            )
    _check_status(response)
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


# --- Hugging Face daily papers --------------------------------------------------------


def _hf_daily(spec: SourceSpec, day: date, fetch: Fetch, validators: Validators) -> Harvest:
    location = spec.location.strip()
    if local_path(location) is None and "date=" not in location:
        location = _with_query(location, date=day.isoformat())
    response = _get(location, fetch, validators)
    if response.not_modified:
        return _not_modified(response, validators)
    if looks_like_html_page(response.body, response.content_type):
        raise SourceError(f"{response.url}: got an HTML page, not JSON",
                          "point the source at https://huggingface.co/api/daily_papers")
    _check_status(response)
    try:
        data = json.loads(response.body)
    except ValueError as err:
        raise SourceError(
            f"{response.url}: not valid JSON ({err})",
            "point the source at https://huggingface.co/api/daily_papers",
        ) from err
    if isinstance(data, dict):
        if "error" in data:
            raise SourceError(f"{response.url}: Hugging Face says {data['error']!r}",
                              "check the date and the URL")
        data = data.get("papers") or data.get("items") or []
    if not isinstance(data, list):
        raise SourceError(f"{response.url}: expected a JSON list of papers", "check the URL")
    papers, skipped = [], 0
    for item in data:
        paper = hf_paper(item, source=spec.name) if isinstance(item, dict) else None
        if paper is None:
            skipped += 1
        else:
            papers.append(paper)
    problems = (f"{skipped} of {len(data)} items had no arXiv id or title and were left out",
                ) if skipped else ()
    return Harvest(tuple(papers), len(data), frozenset({"saturday", "sunday"}), problems,
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
        upvotes=int(upvotes) if isinstance(upvotes, int | float) else None,
        ai_summary=squash(str(paper["ai_summary"])) if paper.get("ai_summary") else None,
        ai_keywords=tuple(squash(str(k)) for k in keywords if squash(str(k))),
    )


# --- any RSS / Atom -------------------------------------------------------------------


def _rss(spec: SourceSpec, day: date, fetch: Fetch, validators: Validators) -> Harvest:
    response = _get(spec.location.strip(), fetch, validators)
    if response.not_modified:
        return _not_modified(response, validators)
    _check_status(response)
    feed = parse_feed(response.body, where=response.url, content_type=response.content_type)
    papers: list[Paper] = []
    skipped = 0
    for entry in feed.entries:
        paper = generic_paper(entry, source=spec.name)
        if paper is None:
            skipped += 1
        else:
            papers.append(paper)
    return _harvest(feed, papers, skipped, response)


def doi_from_url(url: str) -> str | None:
    """Find the DOI inside a publisher's article URL (bioRxiv, BMC, OUP, Nature)."""
    parts = urlsplit(url.strip())
    path = unquote(parts.path)
    host = (parts.hostname or "").lower()
    if host.endswith("nature.com"):
        found = re.search(r"/articles/([a-z0-9.-]+)$", path, re.I)
        if found:
            return f"10.1038/{found.group(1).lower()}"
    doi = normalize_doi(path)
    if doi is None:
        return None
    if doi.startswith("10.1101/"):  # bioRxiv/medRxiv append the version: ...647590v1
        doi = re.sub(r"v\d+(?:\.full.*)?$", "", doi)
    # OUP appends an internal article number after the DOI: /doi/10.1093/x/btaf119/8090439
    doi = re.sub(r"^(10\.1093/[^/]+/[^/]+)/\d+$", r"\1", doi)
    return doi


def generic_paper(entry: FeedEntry, *, source: str) -> Paper | None:
    """Convert an entry of any feed: arXiv id, else DOI, else source plus entry id."""
    title = html_to_text(entry.title or "")
    if not title:
        return None
    arxiv_text = next((t for t in (entry.guid, entry.link) if "arxiv" in t.lower()), "")
    arxiv = parse_arxiv_id(arxiv_text) if arxiv_text else None
    doi = (normalize_doi(entry.doi) if entry.doi else None) or doi_from_url(entry.link) \
        or (doi_from_url(entry.guid) if entry.guid.startswith("http") else None)
    entry_id = entry.guid or entry.link or title
    key = paper_key(arxiv=arxiv[0] if arxiv else None, doi=doi, source=source,
                    entry_id=entry_id)
    return Paper(
        key=key,
        title=title,
        abstract=html_to_text(entry.summary),
        authors=entry.authors or split_authors(html_to_text(entry.author_text)),
        categories=entry.categories,
        url=entry.link or (f"https://doi.org/{doi}" if doi else ""),
        pdf_url=entry.pdf_url,
        source=source,
        published=entry.published,
        version=arxiv[1] if arxiv else None,
        doi=doi,
        comment=entry.comment,
    )


# --- local JSON lines -----------------------------------------------------------------


def _jsonl(spec: SourceSpec, day: date, fetch: Fetch, validators: Validators) -> Harvest:
    path = local_path(spec.location.strip())
    if path is None:
        raise SourceError(f"jsonl source {spec.location!r} is not a local path",
                          "use jsonl:path/to/papers.jsonl (or .jsonl.gz)")
    papers, problems = read_jsonl(path, source=spec.name)
    summary: tuple[str, ...] = ()
    if problems:
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        summary = (f"{len(problems)} lines were left out: {shown}",)
    return Harvest(tuple(papers), len(papers) + len(problems), frozenset(), summary)
