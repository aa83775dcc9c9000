"""Fetch feed bytes over HTTP: timeouts, a deadline, a size cap, conditional GET, retries."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from digest.errors import SourceError

if TYPE_CHECKING:
    import httpx

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# arXiv asks API clients for at most one request every three seconds.
DEFAULT_INTERVALS: Mapping[str, float] = {"export.arxiv.org": 3.0}
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MIN_ATTEMPT = 1.0  # seconds; see http_fetch


@dataclass(frozen=True)
class FetchResponse:
    """One final HTTP answer: any status (304 and 4xx included), with the body read."""

    url: str
    status: int
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        """Return True for a 304 answer to a conditional GET."""
        return self.status == 304


class Fetch(Protocol):
    """Anything that turns a URL (plus validators) into a FetchResponse or a SourceError."""

    def __call__(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResponse: ...


@dataclass
class Politeness:
    """Remember when each host was last asked, so a host sees at most one request per interval.

    A class because the memory must outlive one request: pagination and several sources on
    the same host share it.
    """

    intervals: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_INTERVALS))
    default_interval: float = 0.0
    last: dict[str, float] = field(default_factory=dict)

    def wait(self, host: str, *, clock: Callable[[], float],
             sleep: Callable[[float], None]) -> None:
        """Sleep until ``host`` may be asked again, then note the request."""
        interval = self.intervals.get(host, self.default_interval)
        previous = self.last.get(host)
        if previous is not None and interval > 0:
            remaining = previous + interval - clock()
            if remaining > 0:
                sleep(remaining)
        self.last[host] = clock()


@dataclass
class HttpFetcher:
    """The production Fetch: one httpx client, politeness per host, injectable sleep/clock."""

    user_agent: str
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    deadline: float = 120.0  # seconds for one URL, retries and waits included
    max_bytes: int = DEFAULT_MAX_BYTES
    retries: int = 3
    backoff: float = 2.0
    max_retry_after: float = 60.0
    politeness: Politeness = field(default_factory=Politeness)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    transport: httpx.BaseTransport | None = None

    def __call__(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResponse:
        """Fetch ``url`` with retries; raise SourceError when no usable answer arrives."""
        return http_fetch(
            url,
            user_agent=self.user_agent,
            etag=etag,
            last_modified=last_modified,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            deadline=self.deadline,
            max_bytes=self.max_bytes,
            retries=self.retries,
            backoff=self.backoff,
            max_retry_after=self.max_retry_after,
            politeness=self.politeness,
            sleep=self.sleep,
            clock=self.clock,
            transport=self.transport,
        )


class _Retry(Exception):
    """A transient failure worth another attempt after ``delay`` seconds."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


def http_fetch(
    url: str,
    *,
    user_agent: str,
    etag: str | None = None,
    last_modified: str | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    deadline: float = 120.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    retries: int = 3,
    backoff: float = 2.0,
    max_retry_after: float = 60.0,
    politeness: Politeness | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    transport: httpx.BaseTransport | None = None,
) -> FetchResponse:
    """GET ``url`` politely and return the final answer; raise SourceError on failure.

    ``deadline`` bounds the whole fetch, retries, backoff and politeness waits included:
    each attempt's timeouts are cut to the time left, and neither an attempt nor a
    backoff sleep starts when too little time would be left for an attempt after it. A
    stalling server otherwise costs every attempt's full read timeout plus the backoff
    (4 x 30 s + 14 s for the defaults, past the 120 s promised).
    """
    import httpx  # here: a command that fetches nothing (`digest send`) never loads it

    headers = {
        "User-Agent": user_agent,
        "Accept-Encoding": "gzip, deflate",
        "Accept": "application/rss+xml, application/atom+xml, application/xml, "
        "application/json;q=0.9, text/xml;q=0.9, */*;q=0.1",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    host = _fetchable_host(url)
    polite = politeness or Politeness()
    deadline_at = clock() + deadline
    # An attempt with less time than this could not even connect; not worth starting.
    least = min(MIN_ATTEMPT, connect_timeout, deadline)
    last_reason = ""

    def out_of_time(attempts: int) -> SourceError:
        why = f" ({last_reason})" if last_reason else ""
        return SourceError(
            f"{url}: gave up after {attempts} attempt(s), the {deadline:g}s deadline leaves no "
            f"time for another{why}",
            "the server is struggling; the next run will try again",
        )

    with httpx.Client(follow_redirects=True, transport=transport, headers=headers) as client:
        for attempt in range(retries + 1):
            polite.wait(host, clock=clock, sleep=sleep)
            left = deadline_at - clock()
            if left < least:
                raise out_of_time(attempt)
            timeout = httpx.Timeout(min(read_timeout, left), connect=min(connect_timeout, left))
            try:
                return _attempt(client, url, max_bytes=max_bytes, deadline_at=deadline_at,
                                clock=clock, timeout=timeout)
            except _Retry as retry:
                last_reason = retry.reason
                if attempt == retries:
                    break
                delay = retry.delay if retry.delay is not None else backoff * 2**attempt
                delay = min(delay, max_retry_after)
                if clock() + delay + least > deadline_at:
                    raise out_of_time(attempt + 1) from None
                sleep(delay)
    raise SourceError(
        f"{url}: failed after {retries + 1} attempts ({last_reason})",
        "the server is down or overloaded; check the URL in a browser, the next run retries",
    )


def _attempt(
    client: httpx.Client, url: str, *, max_bytes: int, deadline_at: float,
    clock: Callable[[], float], timeout: httpx.Timeout,
) -> FetchResponse:
    """Make one request and read at most ``max_bytes`` of body before ``deadline_at``."""
    import httpx

    try:
        with client.stream("GET", url, timeout=timeout) as response:
            status = response.status_code
            if status in RETRY_STATUSES:
                raise _Retry(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
            declared = response.headers.get("Content-Length", "")
            # A declared length only counts when the body is not compressed: the cap applies
            # to the decoded bytes, which is what protects us from a gzip bomb.
            if (declared.isdigit() and int(declared) > max_bytes
                    and not response.headers.get("Content-Encoding")):
                raise _too_big(url, max_bytes)
            decoder = _Decoder(url, response.headers.get_list("Content-Encoding",
                                                              split_commas=True))
            chunks: list[bytes] = []
            size = 0
            # Raw bytes, decoded here: httpx inflates each chunk it reads whole, so a
            # 64 KB gzip chunk became 64 MB before the cap could be checked, and a body
            # gzipped twice (~2 KB on the wire) became gigabytes.
            for raw in (*response.iter_raw(), b""):
                for chunk in decoder.decode(raw, room=max_bytes - size + 1, last=not raw):
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_big(url, max_bytes)
                    chunks.append(chunk)
                if clock() > deadline_at:
                    raise SourceError(
                        f"{url}: the body was still arriving when the deadline passed",
                        "the server is sending very slowly; try again later",
                    )
            return FetchResponse(
                url=str(response.url),
                status=status,
                body=b"".join(chunks),
                content_type=response.headers.get("Content-Type", ""),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
            )
    except httpx.TimeoutException as err:
        raise _Retry(f"timed out: {type(err).__name__}") from err
    except httpx.RemoteProtocolError as err:
        # Typically the connection closed before the declared Content-Length arrived.
        raise _Retry(f"incomplete response: {err}") from err
    except httpx.UnsupportedProtocol as err:  # a TransportError that no retry mends
        raise SourceError(f"{url}: this URL cannot be fetched ({err})",
                          "give the source an http(s) URL") from err
    except httpx.TransportError as err:
        raise _Retry(f"network error: {err}") from err
    except httpx.HTTPError as err:
        raise SourceError(f"{url}: {err}", "check the URL") from err


class _Decoder:
    """Undo a body's Content-Encoding (gzip or deflate) a bounded amount at a time.

    A class because the decompressor's state spans the chunks of one body.
    """

    def __init__(self, url: str, encodings: list[str]) -> None:
        codings = [c.strip().lower() for c in encodings]
        codings = [c for c in codings if c and c != "identity"]
        self.url = url
        if len(codings) > 1:
            # No server stacks codings for a feed; a stack is how a tiny body inflates
            # to gigabytes, and each layer would need its own bound.
            raise SourceError(
                f"{url}: refused a body with stacked content encodings ({', '.join(codings)})",
                "a feed is served plain or compressed once; tell the feed's owner",
            )
        coding = codings[0] if codings else ""
        self.wbits: int | None = {
            "gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS,
        }.get(coding)
        # An encoding we never asked for (we accept gzip and deflate) passes through as
        # it always did: the feed parser then says what it got.
        self.inflater = zlib.decompressobj(self.wbits) if self.wbits is not None else None
        self.started = False

    def decode(self, raw: bytes, *, room: int, last: bool) -> list[bytes]:
        """Return what ``raw`` decodes to: past ``room`` bytes, at most one piece more."""
        if self.inflater is None:
            return [raw] if raw else []
        try:
            if not self.started and raw and self.wbits == zlib.MAX_WBITS:
                self.started = True
                try:
                    return self._inflate(raw, room, last)
                except zlib.error:
                    # "deflate" sent as a raw stream, without the zlib wrapper (common).
                    self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            self.started = self.started or bool(raw)
            return self._inflate(raw, room, last)
        except zlib.error as err:
            raise SourceError(f"{self.url}: the compressed body cannot be decoded ({err})",
                              "the server sent a broken body; the next run will try again"
                              ) from err

    def _inflate(self, raw: bytes, room: int, last: bool) -> list[bytes]:
        assert self.inflater is not None
        pieces: list[bytes] = []
        data = raw
        while True:
            piece = self.inflater.decompress(data, max(room, 1))
            pieces.append(piece)
            room -= len(piece)
            data = self.inflater.unconsumed_tail
            if room <= 0 or not data:
                break
        if last and room > 0:
            pieces.append(self.inflater.flush())
        return [piece for piece in pieces if piece]


def _fetchable_host(url: str) -> str:
    """Return the URL's host; raise SourceError for a URL no request could ever reach.

    Such a URL is a typo in the configuration, not a server having a bad day: retrying
    it cost the backoff and ended in "the server is down", or it failed as a bug.
    """
    hint = "give the source an http(s) URL, e.g. https://host/feed.xml"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port past 65535 or not a number
    except ValueError as err:  # also an unclosed "[" of an IPv6 address
        raise SourceError(f"{url}: this URL cannot be fetched ({err})", hint) from err
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise SourceError(f"{url}: this URL cannot be fetched (only http(s) URLs can)", hint)
    return parts.hostname


def _too_big(url: str, max_bytes: int) -> SourceError:
    return SourceError(
        f"{url}: response is larger than the {max_bytes:,}-byte cap; refused",
        # No setting raises the cap (the hint said to "raise the size cap for this
        # source", which nothing can): what the operator can change is what is asked.
        "check that the URL points at a feed; the cap is fixed, so ask the source for "
        "fewer entries at a time (arxiv-api: a smaller max_results in the URL, and the "
        "total as its limit option, read in pages of that size)",
    )


def _retry_after(value: str | None) -> float | None:
    """Read Retry-After as seconds (a number or an HTTP date); None when absent or odd."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
