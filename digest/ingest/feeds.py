"""Read RSS 1.0/2.0 and Atom bodies safely into FeedEntry records.

Well-formed XML is read with defusedxml.ElementTree, not feedparser: feedparser sanitizes
summaries as HTML and turns ``$a<b$ and $c > d$`` into ``$a<b> d$``. feedparser is the
second line, for bodies that are not well-formed, and a regex salvage the third.
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

from digest.errors import SourceError
from digest.ingest.text import squash

_BLOCKS = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "tr", "blockquote"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_BARE_AMP = re.compile(r"&(?!#\d+;|#x[0-9a-fA-F]+;|[A-Za-z][A-Za-z0-9]*;)")
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
# How a feed (RSS 2.0, RSS 1.0, Atom) or a JSON answer begins, lower-cased.
_FEED_STARTS = (b"<?xml", b"<rss", b"<rdf:rdf", b"<feed", b"[", b"{")


@dataclass(frozen=True)
class FeedEntry:
    """One item or entry as the feed states it; text fields are raw but entity-decoded."""

    title: str | None
    link: str = ""
    summary: str = ""
    authors: tuple[str, ...] = ()
    author_text: str = ""  # one string when the feed lists authors in a single element
    categories: tuple[str, ...] = ()
    guid: str = ""
    published: date | None = None
    doi: str | None = None
    announce_type: str | None = None
    comment: str | None = None
    pdf_url: str = ""
    primary_category: str | None = None


@dataclass(frozen=True)
class Feed:
    """A parsed feed: its entries, its skipDays, and how the body had to be read."""

    title: str
    entries: tuple[FeedEntry, ...]
    skip_days: frozenset[str] = frozenset()  # lower-case weekday names
    problem: str | None = None  # set when the body was malformed and only partly readable
    total_results: int | None = None  # OpenSearch fields of the arXiv API
    start_index: int | None = None
    items_per_page: int | None = None
    # The channel's own date (RSS <pubDate>): for arXiv's feeds, the announcement's day.
    published: date | None = None


def looks_like_html_page(body: bytes, content_type: str = "") -> bool:
    """Return True for an HTML page (a login wall, an error page) rather than a feed."""
    head = body[:2048].lstrip().lower()
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if head.startswith((b"<!doctype html", b"<html")):
        return True
    # A header saying HTML is believed only of a body that does not begin as a feed or
    # as JSON does: servers and proxies label feeds text/html, and bioRxiv's begins with
    # <rdf:RDF> rather than an XML declaration.
    return "text/html" in content_type.lower() and not head.startswith(_FEED_STARTS)


def parse_feed(body: bytes, *, where: str, content_type: str = "") -> Feed:
    """Parse an RSS/Atom body; raise SourceError for HTML pages, bombs and unreadable bodies."""
    if looks_like_html_page(body, content_type):
        raise SourceError(
            f"{where}: got an HTML page, not a feed",
            "open the URL in a browser: it may have moved, need a login, or be an error page",
        )
    if not body.strip():
        raise SourceError(f"{where}: the response body is empty", "check the URL")
    body = _in_http_charset(body, content_type)
    try:
        root = SafeET.fromstring(body)
    except defusedxml.DefusedXmlException as err:
        raise _refused(where, err) from err
    except ParseError as err:
        return _recover(body, where=where, reason=str(err))
    return _feed_from_root(root, where=where)


def _in_http_charset(body: bytes, content_type: str) -> bytes:
    """Return the body as UTF-8 when only the Content-Type header names its charset.

    Without a BOM or an XML declaration naming an encoding, an XML parser takes the
    bytes for UTF-8; a feed served as ``text/xml; charset=windows-1252`` was then
    malformed and read as Latin-1 (its curly quotes became control characters). The
    header is believed only of a body that is not valid UTF-8: servers that label every
    answer ISO-8859-1 by default would otherwise turn a UTF-8 feed into mojibake.
    """
    found = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", content_type, re.IGNORECASE)
    if not found or body.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return body
    if re.match(rb"\s*<\?xml[^>]*encoding=", body):
        return body  # the body names its own encoding
    try:
        codec = codecs.lookup(found.group(1)).name
    except LookupError:
        return body
    if codec.startswith(("utf-", "utf_")):
        return body  # UTF-8 is what the parser assumes; UTF-16/32 need a BOM to be sure
    try:
        body.decode("utf-8")
        return body
    except UnicodeDecodeError:
        pass
    try:
        return body.decode(codec).encode("utf-8")
    except UnicodeDecodeError:
        return body


def _refused(where: str, err: Exception) -> SourceError:
    return SourceError(
        f"{where}: refused a body that declares XML entities or a DTD ({type(err).__name__}); "
        "this is how entity-expansion bombs work",
        "feeds never need entity declarations; report it to the feed's owner",
    )


def _recover(body: bytes, *, where: str, reason: str) -> Feed:
    """Read what can be read from a body that is not well-formed XML."""
    if _ENTITY_DECL.search(body):
        # Never hand a body with entity declarations to a lenient parser.
        raise _refused(where, ValueError("entity declaration"))
    text, decoding = _decode(body)
    repaired = _BARE_AMP.sub("&amp;", _CONTROL.sub("", _drop_xml_declarations(text))).strip()
    how = f"{decoding}; " if decoding else ""
    try:
        root = SafeET.fromstring(repaired.encode("utf-8"))
    except defusedxml.DefusedXmlException as err:
        raise _refused(where, err) from err
    except ParseError:
        root = None
    if root is not None:
        feed = _feed_from_root(root, where=where)
        return _with_problem(feed, f"malformed XML ({reason}); {how}read after repairing "
                                   "the markup")
    lenient = _feedparser_entries(repaired)
    salvaged = _salvage(repaired)
    entries = lenient if len(lenient) >= len(salvaged) else salvaged
    if not entries:
        raise SourceError(
            f"{where}: not well-formed XML ({reason}) and no entry could be recovered",
            "check the URL in a browser; if the feed is broken, tell its owner",
        )
    return Feed(
        title="",
        entries=tuple(entries),
        problem=f"malformed XML ({reason}); {how}recovered {len(entries)} entries "
        "leniently, some may be missing or incomplete",
    )


def _drop_xml_declarations(text: str) -> str:
    """Remove every ``<?xml ...>``, as ``re.sub(r"<\\?xml[^>]*>", "", text)`` would.

    In linear time: the expression searched to the end of the text from each "<?xml"
    with no ">" after it, quadratic in a hostile body of them. Once one has no ">"
    after it, no later one has.
    """
    kept: list[str] = []
    pos = 0
    while (start := text.find("<?xml", pos)) >= 0:
        end = text.find(">", start + 5)
        if end < 0:
            break
        kept.append(text[pos:start])
        pos = end + 1
    kept.append(text[pos:])
    return "".join(kept)


def _with_problem(feed: Feed, problem: str) -> Feed:
    return replace(feed, problem=problem)


def _decode(body: bytes) -> tuple[str, str | None]:
    """Decode a body whose bytes or declared encoding may be wrong; say what was done.

    A UTF-8 body with a few stray bytes (one Latin-1 "é" pasted into a title) stays UTF-8
    with those bytes replaced by U+FFFD: reading the whole body as Latin-1 would garble
    every other accent, Greek letter and dash of the feed, and do so on every run. Only
    a body that is not UTF-8 at all (stray bytes outnumber the valid UTF-8 characters) is
    read in the charset its XML declaration names, else Latin-1. The second value says
    what happened, for the source's status; None when the body was clean UTF-8.
    """
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        return body.decode("utf-16", errors="replace"), None
    try:
        return body.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    # surrogateescape turns each byte that is not UTF-8 into one lone surrogate, so the
    # stray bytes can be counted and located apart from the characters that did decode.
    text = body.decode("utf-8-sig", errors="surrogateescape")
    stray = [(i, ord(c) - 0xDC00) for i, c in enumerate(text) if "\udc80" <= c <= "\udcff"]
    decoded = sum(1 for c in text if ord(c) > 0x7F) - len(stray)
    if decoded >= len(stray):
        shown = ", ".join(f"0x{byte:02X} on line {text.count(chr(10), 0, i) + 1}"
                          for i, byte in stray[:3]) + (", ..." if len(stray) > 3 else "")
        bytes_ = "byte that is" if len(stray) == 1 else "bytes that are"
        repaired = "".join("\ufffd" if "\udc80" <= c <= "\udcff" else c for c in text)
        return repaired, (f"{len(stray)} {bytes_} not UTF-8 ({shown}) replaced with U+FFFD; "
                          "the rest read as UTF-8")
    declared = re.match(rb"\s*<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)", body)
    if declared:
        charset = declared.group(1).decode("ascii")
        try:
            return body.decode(charset), f"the body is not UTF-8; read as {charset}"
        except (LookupError, UnicodeDecodeError):
            pass  # an unknown or wrong declaration: Latin-1 reads any byte
    return body.decode("latin-1"), "the body is not UTF-8; read as Latin-1"


# --- well-formed XML ------------------------------------------------------------------


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _kids(element: Element, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: Element) -> str:
    """Return the element's text with child markup dropped and block breaks kept as spaces."""
    parts = [element.text or ""]
    for child in element:
        block = _local(child.tag) in _BLOCKS
        parts.append(" " if block else "")
        inner = _text(child)
        if "boxtitle" in (child.get("class") or "").lower() and inner.strip():
            # Silverchair (OUP) marks structured-abstract headings this way; keep them
            # readable as "Results: ..." rather than run into the sentence that follows.
            inner = f"{squash(inner)}: "
        parts.append(inner)
        parts.append(" " if block else "")
        parts.append(child.tail or "")
    return "".join(parts)


def _first(element: Element, *names: str) -> str | None:
    """Return the first non-blank text among children named ``names`` (any namespace)."""
    for name in names:
        for child in _kids(element, name):
            value = _text(child)
            if value.strip():
                return value
    return None


def _int(text: str | None) -> int | None:
    return int(text.strip()) if text and text.strip().isdigit() else None


def _feed_from_root(root: Element, *, where: str) -> Feed:
    kind = _local(root.tag)
    if kind == "rss":
        channel = next(iter(_kids(root, "channel")), root)
        items = _kids(channel, "item")
    elif kind == "rdf":  # RSS 1.0: items are siblings of the channel
        channel = next(iter(_kids(root, "channel")), root)
        items = _kids(root, "item") or _kids(channel, "item")
    elif kind == "feed":
        channel = root
        items = _kids(root, "entry")
    else:
        raise SourceError(
            f"{where}: not an RSS or Atom feed (the root element is <{_local(root.tag)}>)",
            "point the source at the feed URL, not at a web page or another document",
        )
    skip_days = frozenset(
        squash(_text(day)).lower()
        for block in _kids(channel, "skipdays")
        for day in _kids(block, "day")
    )
    return Feed(
        title=squash(_first(channel, "title")),
        entries=tuple(_entry(item) for item in items),
        skip_days=skip_days,
        total_results=_int(_first(root, "totalresults")),
        start_index=_int(_first(root, "startindex")),
        items_per_page=_int(_first(root, "itemsperpage")),
        published=parse_date(_first(channel, "pubdate")) if kind == "rss" else None,
    )


def _entry(item: Element) -> FeedEntry:
    link, pdf_url = "", ""
    for node in _kids(item, "link"):
        href = node.get("href")
        if href is None:  # RSS: the URL is the text
            link = link or squash(_text(node))
        elif node.get("title") == "pdf" or node.get("type") == "application/pdf":
            pdf_url = href.strip()
        elif node.get("rel", "alternate") == "alternate" and not link:
            link = href.strip()
    if not link:
        rdf_about = next((v for k, v in item.attrib.items() if _local(k) == "about"), "")
        link = rdf_about.strip()
    authors = tuple(
        squash(name)
        for author in _kids(item, "author")
        for name in [_first(author, "name") or ("" if list(author) else _text(author))]
        if squash(name)
    )
    categories = tuple(
        squash(node.get("term") or _text(node))
        for node in _kids(item, "category")
        if squash(node.get("term") or _text(node))
    )
    primary = next((node.get("term") for node in _kids(item, "primary_category")), None)
    title_nodes = _kids(item, "title")
    title = _text(title_nodes[0]) if title_nodes else _first(item, "title")
    doi = _first(item, "doi")
    if not doi:
        identifier = _first(item, "identifier") or ""
        doi = identifier if "10." in identifier else None
    return FeedEntry(
        title=title,
        link=link,
        summary=_first(item, "summary", "description", "content", "encoded", "abstract") or "",
        authors=authors,
        author_text=_first(item, "creator") or "",
        categories=categories,
        guid=squash(_first(item, "guid", "id")),
        published=parse_date(_first(item, "published", "pubdate", "date", "issued",
                                    "publicationdate", "updated")),
        doi=squash(doi) or None,
        announce_type=squash(_first(item, "announce_type")).lower() or None,
        comment=squash(_first(item, "comment")) or None,
        pdf_url=pdf_url,
        primary_category=primary.strip() if primary else None,
    )


def parse_date(text: str | None) -> date | None:
    """Read an ISO 8601 or RFC 822 date; None when absent or unreadable."""
    text = (text or "").strip()
    if not text:
        return None
    if re.match(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            return None
    try:
        return parsedate_to_datetime(text).date()
    except (TypeError, ValueError, IndexError):
        return None


# --- malformed bodies -----------------------------------------------------------------


def _feedparser_entries(text: str) -> list[FeedEntry]:
    """Let feedparser's lenient parser read a broken body; convert its dicts at once."""
    import feedparser  # here: only a broken body needs it (~0.1 s to load)

    parsed = feedparser.parse(text)
    return [_from_feedparser(entry) for entry in parsed.entries]


def _from_feedparser(entry: Any) -> FeedEntry:
    published = None
    for key in ("published_parsed", "updated_parsed"):
        stamp = entry.get(key)
        if stamp:
            published = datetime(*stamp[:6]).date()
            break
    authors = tuple(
        squash(a.get("name")) for a in entry.get("authors", []) if squash(a.get("name"))
    )
    return FeedEntry(
        title=entry.get("title"),
        link=entry.get("link", ""),
        summary=entry.get("summary", ""),
        authors=() if len(authors) == 1 else authors,
        author_text=authors[0] if len(authors) == 1 else "",
        categories=tuple(t.get("term", "") for t in entry.get("tags", []) if t.get("term")),
        guid=entry.get("id", ""),
        published=published,
        doi=entry.get("arxiv_doi") or entry.get("prism_doi") or None,
        announce_type=entry.get("arxiv_announce_type"),
    )


def _elements(text: str, names: str) -> Iterator[tuple[int, int]]:
    """Yield the (start, end) of each element's content, as this regular expression finds
    them: ``<(?:\\w+:)?(names)\\b[^>]*>(.*?)</(?:\\w+:)?\\1>`` (ignoring case, "." matching
    line breaks), but in linear time.

    The expression searched to the end of the text from every opening tag that is never
    closed: quadratic in a hostile feed's tag soup. An opening tag with no ">" or no
    closing tag after it means no later one of that name has one either.
    """
    opener = re.compile(rf"<(?:\w+:)?({names})\b", re.IGNORECASE)
    unclosed: set[str] = set()
    pos = 0
    while (found := opener.search(text, pos)) is not None:
        name = found.group(1).lower()
        pos = found.end()
        if name in unclosed:
            continue
        content = text.find(">", found.end()) + 1
        if content == 0:
            return
        closer = re.compile(rf"</(?:\w+:)?{re.escape(name)}>", re.IGNORECASE)
        closed = closer.search(text, content)
        if closed is None:
            unclosed.add(name)
            continue
        yield content, closed.start()
        pos = closed.end()


# The "<link ... href=...>" of an Atom entry: "[^<>]" keeps each attempt within its tag
# ("[^>]" ran on through the text from every "<link" without a ">").
_LINK_HREF = re.compile(r"<(?:\w+:)?link\b[^<>]*href=\"([^\"]+)\"")


def _salvage(text: str) -> list[FeedEntry]:
    """Pull complete <item>/<entry> blocks out of tag soup, element by element."""
    entries = []
    for start, end in _elements(text, "item|entry"):
        block = text[start:end]

        def field(*names: str, block: str = block) -> str | None:
            for name in names:
                for first, last in _elements(block, name):
                    raw = block[first:last]
                    cdata = re.fullmatch(r"\s*<!\[CDATA\[(.*)\]\]>\s*", raw, re.S)
                    return cdata.group(1) if cdata else html.unescape(raw)
            return None

        link = field("link") or ""
        if not link:
            href = _LINK_HREF.search(block)
            link = href.group(1) if href else ""
        entries.append(
            FeedEntry(
                title=field("title"),
                link=squash(link),
                summary=field("description", "summary", "content") or "",
                author_text=field("creator", "author") or "",
                guid=squash(field("guid", "id")),
                published=parse_date(field("pubDate", "published", "date", "updated")),
                announce_type=squash(field("announce_type")).lower() or None,
            )
        )
    return entries
