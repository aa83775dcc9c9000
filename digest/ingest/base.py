"""What every source reader shares: the Harvest record, local files, HTTP status checks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from digest.errors import SourceError
from digest.ingest.feeds import Feed
from digest.ingest.http import DEFAULT_MAX_BYTES, Fetch, FetchResponse
from digest.models import Paper

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
    announced: date | None = None  # an arXiv feed's announcement day, a Hugging Face list's day
    caught_up: str | None = None  # what was fetched for announcements the feed missed


def count_of(value: Any) -> int | None:
    """Return a count given as a number, or None: not a number, negative, NaN or infinite.

    json.loads reads NaN and Infinity (json.dumps writes pandas' missing values so), and
    int() of either raised out of the reader, losing the whole file; a negative count's
    log1p made the popularity blend NaN.
    """
    if not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return int(value)


def left_to_retry(harvest: Harvest, problem: str) -> Harvest:
    """Return the harvest with a catch-up's failure as its problem, and without its
    day and validators: recorded neither, the next run reads the source again (no
    304) and retries what failed.
    """
    return replace(harvest, problems=(*harvest.problems, f"{problem}; the next run tries again"),
                   announced=None, etag=None, last_modified=None)


def local_path(location: str) -> Path | None:
    """Return the path for a file:// URL or a location without a URL scheme."""
    if location.startswith("file://"):
        return Path(unquote(urlsplit(location).path))
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", location):
        return None
    return Path(location).expanduser()


def read_file(path: Path) -> FetchResponse:
    """Read a local file as if it had been served with 200; refuse one over the size cap."""
    try:
        size = path.stat().st_size
        if size > DEFAULT_MAX_BYTES:
            raise SourceError(f"{path}: {size:,} bytes is over the size cap", "split the file")
        return FetchResponse(url=path.as_uri() if path.is_absolute() else str(path),
                             status=200, body=path.read_bytes())
    except OSError as err:
        raise SourceError(
            f"cannot read {path}: {err.strerror or err}",
            "check the source's path (relative paths start at the working directory)",
        ) from err


def get(url_or_path: str, fetch: Fetch, validators: Validators) -> FetchResponse:
    """Read a local path directly, or fetch a URL with the stored validators."""
    path = local_path(url_or_path)
    if path is not None:
        return read_file(path)
    return fetch(url_or_path, etag=validators[0], last_modified=validators[1])


def check_status(response: FetchResponse) -> None:
    """Raise SourceError with a hint that fits the HTTP status, for any status of 400 or more."""
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


def not_modified(response: FetchResponse, validators: Validators) -> Harvest:
    """Return the Harvest of a 304: nothing new, validators kept for the next run."""
    return Harvest((), 0, etag=response.etag or validators[0],
                   last_modified=response.last_modified or validators[1], not_modified=True)


def flag(value: str) -> bool:
    """Read an on/off source option."""
    return value.strip().lower() in ("1", "true", "yes", "on")


def with_query(url: str, **params: str) -> str:
    """Return ``url`` with these query parameters set (others kept)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query, safe=":/,+")))


def feed_harvest(feed: Feed, papers: list[Paper], skipped: int,
                 response: FetchResponse) -> Harvest:
    """Wrap a parsed feed's papers with its problems and the response's validators."""
    problems = [feed.problem] if feed.problem else []
    if skipped:
        problems.append(f"{skipped} of {len(feed.entries)} entries had no usable id or title "
                        "and were left out")
    return Harvest(tuple(papers), len(feed.entries), feed.skip_days, tuple(problems),
                   response.etag, response.last_modified)
