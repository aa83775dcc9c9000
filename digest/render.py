"""Turn a Digest into subject, preheader, plain text and HTML (CSS inlined) with Jinja.

The same paper goes to many subscribers on one day; only its position, its reason and
its signed "more/less like this" links differ between them. So ``render_digest`` renders
what every copy of a paper shares once per run (``_paper.*.j2``) and reuses it: in the
text part the page template adds each subscriber's reason and links; in the HTML, where
CSS inlining is the expensive part, each paper's row and the page around the rows are
rendered and inlined once with named holes for the per-subscriber values, which are
filled in for each subscriber. ``reuse=False`` renders everything afresh, the reference
the reused result must equal byte for byte (tests/test_render_speed_fragments.py).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
import secrets
import textwrap
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import css_inline
import jinja2
from markupsafe import Markup

from digest.models import Digest, DigestLinks, Paper, RenderedEmail, ScoredPaper

ABSTRACT_CHARS = 300
PREHEADER_CHARS = 140
AUTHORS_SHOWN = 3
TEXT_WIDTH = 72
# Entries kept by the caches that render_digest reuses across a run's digests.
_MAX_SHAPES = 256  # pages around the papers: paper count x optional parts x days
_MAX_BLOCKS = 8192  # papers

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Keep @media rules (phone width, dark mode) in a <style> block: they cannot be inlined,
# and clients that ignore them still get the inlined light-mode styles. Never fetch
# anything remote while rendering: a template typo must not turn into a network call.
# Inlined styles are written without spaces ("color:#52606d"): a 50-paper digest repeats
# them ~400 times, and Gmail clips an HTML part past ~102 KB.
_INLINER = css_inline.CSSInliner(
    load_remote_stylesheets=False, keep_at_rules=True, minify_css=True
)


@dataclass(frozen=True)
class PaperView:
    """One paper as the templates see it: plain strings, already shortened."""

    number: int
    key: str
    title: str
    url: str
    authors: str
    categories: str
    abstract: str
    reason: str
    more: str
    less: str
    upvotes: int


# One environment per templates folder: the web app asks for it on every sign-up, and
# building it recompiles the templates.
@functools.lru_cache(maxsize=8)
def make_environment(templates_dir: Path) -> jinja2.Environment:
    """Build the Jinja environment for email templates: HTML autoescaped, undefined is an error."""
    # Accept both the templates root and its email/ folder, so callers can pass
    # Config.templates_dir as it is.
    search_path = [str(templates_dir / "email"), str(templates_dir)]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search_path),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap_text
    env.filters["long_date"] = long_date
    env.filters["rtl"] = is_rtl
    return env


def render_digest(
    digest: Digest,
    links: DigestLinks,
    *,
    env: jinja2.Environment,
    list_name: str = "Research Digest",
    reuse: bool = True,
) -> RenderedEmail:
    """Render one subscriber's digest: subject, preheader, text part and inlined HTML."""
    if not digest.papers:
        return render_empty_note(digest, links, env=env, list_name=list_name)
    shared = [_paper_strings(item.paper) for item in digest.papers]
    papers = [
        _for_subscriber(base, number, item, links)
        for number, (base, item) in enumerate(zip(shared, digest.papers, strict=True), 1)
    ]
    subject = digest_subject(digest.day, len(papers))
    preheader = make_preheader(p.title for p in papers)
    context = {
        "subject": subject,
        "preheader": preheader,
        "list_name": one_line(list_name),
        "day": digest.day,
        "papers": papers,
        "batch_size": digest.batch_size,
        # A weekly digest picks from its whole week's papers, not today's.
        "weekly": digest.subscriber.cadence == "weekly",
        # A daily one from the days since its last digest, when that is more than one.
        "since": _since(digest),
        "name": one_line(digest.subscriber.name),
        "preferences_url": safe_url(links.preferences),
        "unsubscribe_url": safe_url(links.unsubscribe),
    }
    if reuse:
        pieces = _digest_html(env, context, shared, papers)
        return RenderedEmail(
            subject=subject,
            preheader=preheader,
            text=_digest_text(env, context, shared, papers),
            html="".join(text for text, _ in pieces),
            html_pieces=pieces,
        )
    text_template = env.get_template("_paper.txt.j2")
    html_template = env.get_template("_paper.html.j2")
    return RenderedEmail(
        subject=subject,
        preheader=preheader,
        text=_tidy_text(
            env.get_template("digest.txt.j2").render(
                context, paper_blocks=[(p, text_template.render(paper=p)) for p in papers]
            )
        ),
        html=inline_css(
            env.get_template("digest.html.j2").render(
                context, paper_rows=[Markup(html_template.render(paper=p)) for p in papers]
            )
        ),
    )


def render_empty_note(
    digest: Digest,
    links: DigestLinks,
    *,
    env: jinja2.Environment,
    list_name: str = "Research Digest",
) -> RenderedEmail:
    """Render the short "nothing relevant today" note sent when a digest has no papers."""
    weekly = digest.subscriber.cadence == "weekly"
    when = "in the week to" if weekly else "on"
    subject = f"Nothing matched your interests {when} {long_date(digest.day)}"
    preheader = (
        f"We looked at {digest.batch_size} new papers and none matched your profile."
        if digest.batch_size
        else "None of the new papers matched your profile."
    )
    context = {
        "subject": subject,
        "preheader": preheader,
        "list_name": one_line(list_name),
        "day": digest.day,
        "batch_size": digest.batch_size,
        "weekly": weekly,
        "since": _since(digest),
        "absent_categories": [one_line(c) for c in digest.absent_categories],
        "categorised": digest.categorised,
        "name": one_line(digest.subscriber.name),
        "preferences_url": safe_url(links.preferences),
        "unsubscribe_url": safe_url(links.unsubscribe),
    }
    return _render("empty", context, subject=subject, preheader=preheader, env=env)


def _since(digest: Digest) -> date | None:
    """Return the first batch day a daily digest chose from, when it is not today's alone.

    After days with nothing relevant (no email), a pause or downtime, the papers are
    those of every batch since the last digest: "N new today" counted them all.
    """
    return digest.since if digest.subscriber.cadence != "weekly" else None


def render_confirmation(
    *,
    email: str,
    confirm_url: str,
    schedule: str,
    cadence: str,
    env: jinja2.Environment,
    list_name: str = "Research Digest",
) -> RenderedEmail:
    """Render the double opt-in mail that asks a new subscriber to confirm.

    ``schedule`` is ``schedule_text`` of what the sign-up asked for: the mail says when
    digests will come, and a weekly one is never called daily.
    """
    subject = f"Confirm your subscription to {one_line(list_name)}"
    kind = "weekly" if cadence == "weekly" else "daily"
    preheader = f"One click and your {kind} research digest starts, {one_line(schedule)}."
    context = {
        "subject": subject,
        "preheader": preheader,
        "list_name": one_line(list_name),
        "email": one_line(email),
        "confirm_url": safe_url(confirm_url),
        "kind": kind,
        "schedule": one_line(schedule),
    }
    return _render("confirm", context, subject=subject, preheader=preheader, env=env)


def render_already_subscribed(
    *,
    email: str,
    preferences_url: str,
    paused: bool,
    env: jinja2.Environment,
    list_name: str = "Research Digest",
) -> RenderedEmail:
    """Render the answer to a sign-up for an address that already receives the digest.

    It holds no confirmation link: the settings typed in the form are not applied (a
    stranger may type anyone's address), and the owner changes them on the preferences
    page the link opens, as from any digest's footer.
    """
    subject = f"You are already subscribed to {one_line(list_name)}"
    preheader = "Nothing changed: change your settings from your preferences page."
    context = {
        "subject": subject,
        "preheader": preheader,
        "list_name": one_line(list_name),
        "email": one_line(email),
        "preferences_url": safe_url(preferences_url),
        "paused": paused,
    }
    return _render("already", context, subject=subject, preheader=preheader, env=env)


def schedule_text(cadence: str, weekday: int, send_hour: int, timezone: str) -> str:
    """Say when digests go out: "every day at 07:00 (UTC)", "every Thursday at 18:00 (...)"."""
    when = f"at {send_hour:02d}:00 ({timezone})"
    if cadence == "weekly":
        return f"every {_DAY_NAMES[weekday % 7]} {when}"
    return f"every day {when}"


def digest_subject(day: date, count: int) -> str:
    """Return the subject line: the date and how many papers."""
    noun = "paper" if count == 1 else "papers"
    return f"Your research digest for {long_date(day)}: {count} {noun}"


def long_date(day: date) -> str:
    """Format a date as ``Mon 25 May 2026`` whatever the process locale is."""
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def paper_view(number: int, item: ScoredPaper, links: DigestLinks) -> PaperView:
    """Flatten one scored paper into the strings the templates print."""
    return _for_subscriber(_paper_strings(item.paper), number, item, links)


def _for_subscriber(
    shared: PaperView, number: int, item: ScoredPaper, links: DigestLinks
) -> PaperView:
    # Add one subscriber's position, reason and links to what everyone's copy shares.
    return PaperView(
        number=number,
        key=shared.key,
        title=shared.title,
        url=shared.url,
        authors=shared.authors,
        categories=shared.categories,
        abstract=shared.abstract,
        reason=one_line(item.reason),
        more=safe_url(links.more.get(shared.key, "")),
        less=safe_url(links.less.get(shared.key, "")),
        upvotes=shared.upvotes,
    )


# Every subscriber's digest draws on the same day's papers: shorten each one once. The
# result, without position, reason or links, is also the paper's part of the cache keys.
@functools.lru_cache(maxsize=_MAX_BLOCKS)
def _paper_strings(paper: Paper) -> PaperView:
    return PaperView(
        number=0,
        key=paper.key,
        title=one_line(paper.title) or paper.key,
        url=safe_url(paper.url or paper.pdf_url),
        authors=short_authors(paper.authors),
        categories=", ".join(one_line(c) for c in paper.categories),
        abstract=shorten(one_line(paper.abstract), ABSTRACT_CHARS),
        reason="",
        more="",
        less="",
        upvotes=paper.upvotes or 0,
    )


def short_authors(authors: tuple[str, ...] | list[str], shown: int = AUTHORS_SHOWN) -> str:
    """Return ``A, B, C et al.`` for long author lists, the full list otherwise."""
    names = [name for name in map(one_line, authors) if name]
    if len(names) <= shown + 1:
        # "A, B, C et al." hiding a single name saves nothing; print all four.
        return ", ".join(names)
    return ", ".join(names[:shown]) + " et al."


def shorten(text: str, limit: int) -> str:
    """Trim text to at most ``limit`` characters at a word boundary, adding an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def make_preheader(titles: Iterable[str]) -> str:
    """Join the first paper titles into the inbox preview line."""
    return shorten(" · ".join(titles), PREHEADER_CHARS)


def one_line(text: str | None) -> str:
    """Collapse every run of whitespace (feeds wrap titles) into one space."""
    return " ".join((text or "").split())


def safe_url(url: str | None) -> str:
    """Return the URL if it is http(s), else an empty string (no javascript: from a feed)."""
    cleaned = "".join((url or "").split())
    if not cleaned:
        return ""
    origin = _ORIGIN.match(cleaned)
    return cleaned if origin and _is_web_origin(origin.group()) else ""


# Scheme and host are all urlsplit needs to judge a URL, and they come from this prefix
# (up to the first "/", "?" or "#" after the "//"). A digest holds ~20 signed links on
# the same origin: split it once.
_ORIGIN = re.compile(r"[^/?#]*(?://[^/?#]*)?")


@functools.lru_cache(maxsize=1024)
def _is_web_origin(prefix: str) -> bool:
    parts = urlsplit(prefix)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def is_rtl(text: str) -> bool:
    """Return True when the text's first strong character is right-to-left (Hebrew, Arabic).

    The rule of Unicode's bidirectional algorithm (and of ``dir="auto"``, which
    Outlook's Word engine does not know), so a title of Arabic or Hebrew words is laid
    out right to left, its full stop or question mark at its end, inside a page that
    runs left to right.
    """
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind == "L":
            return False
        if kind in ("R", "AL"):
            return True
    return False


# Every subscriber's digest draws on the same day's papers: wrap each abstract once.
@functools.lru_cache(maxsize=8192)
def wrap_text(text: str, width: int = TEXT_WIDTH, indent: str = "") -> str:
    """Wrap plain text for the text part without ever breaking a URL or a long word."""
    if text and width > len(indent) and text == one_line(text):
        # The common case, words with one space between them (one_line made them so):
        # fill lines greedily, as textwrap does, at a fraction of its cost (it splits
        # with a regex and keeps chunk lists); each digest wraps ten reasons of its own.
        words = text.split(" ")
        lines = []
        line = indent + words[0]
        for word in words[1:]:
            if len(line) + 1 + len(word) <= width:
                line = f"{line} {word}"
            else:
                lines.append(line)
                line = indent + word
        lines.append(line)
        return "\n".join(lines)
    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _render(
    name: str,
    context: Mapping[str, object],
    *,
    subject: str,
    preheader: str,
    env: jinja2.Environment,
) -> RenderedEmail:
    text = env.get_template(f"{name}.txt.j2").render(context)
    html = env.get_template(f"{name}.html.j2").render(context)
    return RenderedEmail(
        subject=subject,
        preheader=preheader,
        text=_tidy_text(text),
        html=inline_css(html),
    )


def inline_css(html: str) -> str:
    """Move the <style> rules into style attributes, keeping @media rules in place."""
    return str(_INLINER.inline(html))


def _tidy_text(text: str) -> str:
    # Templates leave blank-line runs where optional fields are missing; mail readers
    # show them literally, so squeeze them, and keep the "-- " signature separator.
    lines = [line if line == "-- " else line.rstrip() for line in text.splitlines()]
    text = "\n".join(lines)
    # Squeeze every run of 3+ line breaks to 2; str.replace is many times faster than
    # re.sub(r"\n{3,}") here, and repeating it until none is left does the same.
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip("\n") + "\n"


# -- reuse across a run's digests --------------------------------------------------------
#
# A hole is a token no feed can predict (a fresh nonce per process), made of letters and
# digits so that Jinja's escaping and the CSS inliner leave it alone. Rendered output is
# split at its holes once; filling one is a join.

_NONCE = secrets.token_hex(8)
_HOLE = re.compile(f"hole{_NONCE}x([a-z_]+)x")
_ROWS = f"<!--rows{_NONCE}-->"
_ROW_START = f"<!--row{_NONCE}-->"
_ROW_END = f"<!--end{_NONCE}-->"
# A start tag or comment as the inliner writes it: attribute values in double quotes
# (with '"' escaped), where a ">" does not end the tag.
_TAG = re.compile(r'<[^>"]*(?:"[^"]*"[^>"]*)*>')


def _hole(name: str) -> str:
    return f"hole{_NONCE}x{name}x"


@dataclass(frozen=True)
class _Holes:
    """Rendered output split at its holes: pieces[0], hole 0, pieces[1], hole 1, ..."""

    pieces: tuple[str, ...]
    names: tuple[str, ...]
    in_tag: tuple[bool, ...]  # HTML: the hole is in an attribute value, not in text
    # The whole lines before the first hole's line and after the last one's: the same
    # for every subscriber (``fill_pieces``).
    head: str = ""
    tail: str = ""

    @classmethod
    def split(cls, html: str) -> _Holes:
        """Split inlined HTML at its holes, noting which ones are in attribute values."""
        tags = [match.span() for match in _TAG.finditer(html)]
        starts = [start for start, _ in tags]
        in_tag = []
        for hole in _HOLE.finditer(html):
            at = bisect.bisect_right(starts, hole.start()) - 1
            in_tag.append(at >= 0 and hole.end() <= tags[at][1])
        parts = _HOLE.split(html)
        pieces = tuple(parts[0::2])
        if len(pieces) == 1:
            return cls(pieces, (), (), head=pieces[0])
        head = pieces[0][: pieces[0].rfind("\n") + 1]
        tail = pieces[-1][pieces[-1].find("\n") + 1 :] if "\n" in pieces[-1] else ""
        return cls(pieces, tuple(parts[1::2]), tuple(in_tag), head=head, tail=tail)

    def fill(self, values: Mapping[str, str]) -> str:
        """Return the HTML with every hole replaced by its value, escaped for its place."""
        return "".join(self.fill_pieces(values))

    def fill_pieces(self, values: Mapping[str, str]) -> tuple[str, str, str]:
        """Return ``fill(values)`` as (head, the lines with holes filled in, tail)."""
        if not self.names:
            return self.head, "", ""
        out = [self.pieces[0][len(self.head) :]]
        last = len(self.pieces) - 2
        for number, (name, in_tag, piece) in enumerate(
            zip(self.names, self.in_tag, self.pieces[1:], strict=True)
        ):
            value = values[name]
            out.append(_escape_attribute(value) if in_tag else _escape_text(value))
            out.append(piece[: len(piece) - len(self.tail)] if number == last else piece)
        return self.head, "".join(out), self.tail


_NEEDS_ESCAPE = re.compile('[&<>"\r\x00\xa0]')


def _escape_text(value: str) -> str:
    # What the inliner's HTML serializer writes for a text node the parser read.
    if not _NEEDS_ESCAPE.search(value):
        return value
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    value = value.replace("&", "&amp;").replace("\xa0", "&nbsp;")
    return value.replace("<", "&lt;").replace(">", "&gt;")


def _escape_attribute(value: str) -> str:
    # What the inliner's HTML serializer writes for an attribute value the parser read.
    if not _NEEDS_ESCAPE.search(value):
        return value
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
    value = value.replace("&", "&amp;").replace("\xa0", "&nbsp;")
    return value.replace('"', "&quot;")


def _digest_text(
    env: jinja2.Environment,
    context: Mapping[str, object],
    shared: Sequence[PaperView],
    papers: Sequence[PaperView],
) -> str:
    # The text part wraps the reason, so no hole can stand in for it: the page template
    # prints each paper's reason and links itself, after the part everyone shares.
    template = env.get_template("_paper.txt.j2")
    blocks = [
        (paper, _text_shared(template, base)) for base, paper in zip(shared, papers, strict=True)
    ]
    return _tidy_text(env.get_template("digest.txt.j2").render(context, paper_blocks=blocks))


@functools.lru_cache(maxsize=_MAX_BLOCKS)
def _text_shared(template: jinja2.Template, paper: PaperView) -> str:
    return template.render(paper=paper)


def _digest_html(
    env: jinja2.Environment,
    context: Mapping[str, object],
    shared: Sequence[PaperView],
    papers: Sequence[PaperView],
) -> tuple[tuple[str, bool], ...]:
    """Return the inlined HTML in pieces, each marked True when every digest shares it."""
    page = env.get_template("digest.html.j2")
    template = env.get_template("_paper.html.j2")
    keys = [
        _RowKey(page, template, _Slots.of(paper), base)
        for base, paper in zip(shared, papers, strict=True)
    ]
    before, after = _html_page(_Shape.of(page, context, len(papers)))
    values = {name: str(context[name]) for name in _PAGE_HOLES}
    filled = [before.fill_pieces(values)]
    filled.extend(
        row.fill_pieces({"reason": paper.reason, "more": paper.more, "less": paper.less})
        for row, paper in zip(_html_rows(keys), papers, strict=True)
    )
    filled.append(after.fill_pieces(values))
    # Heads and tails are the cached strings themselves, shared by every digest.
    return tuple(
        (text, common)
        for head, middle, tail in filled
        for text, common in ((head, True), (middle, False), (tail, True))
        if text
    )


@dataclass(frozen=True)
class _Slots:
    """Which of a paper's per-subscriber values are there (a template may test them)."""

    reason: bool
    more: bool
    less: bool

    @classmethod
    def of(cls, paper: PaperView) -> _Slots:
        return cls(bool(paper.reason), bool(paper.more), bool(paper.less))

    def holes(self, paper: PaperView) -> PaperView:
        """Return the paper with holes for its reason and links, where it has them."""
        return dataclasses.replace(
            paper,
            reason=_hole("reason") if self.reason else "",
            more=_hole("more") if self.more else "",
            less=_hole("less") if self.less else "",
        )


# The page's own per-subscriber values are holes; what decides which of its parts show
# is its shape, the cache key.
_PAGE_HOLES = ("preheader", "name", "preferences_url", "unsubscribe_url")


@dataclass(frozen=True)
class _Shape:
    """What the page around the paper rows depends on, but for its holes."""

    page: jinja2.Template
    subject: str
    list_name: str
    day: date
    count: int
    batch_size: int
    present: tuple[bool, ...]  # for each of _PAGE_HOLES: is there a value
    weekly: bool = False
    since: date | None = None

    @classmethod
    def of(cls, page: jinja2.Template, context: Mapping[str, object], count: int) -> _Shape:
        return cls(
            page=page,
            subject=str(context["subject"]),
            list_name=str(context["list_name"]),
            day=context["day"],  # type: ignore[arg-type]  # render_digest put a date there
            count=count,
            batch_size=int(context["batch_size"]),  # type: ignore[call-overload]
            present=tuple(bool(context[name]) for name in _PAGE_HOLES),
            weekly=bool(context["weekly"]),
            since=context["since"],  # type: ignore[arg-type]  # render_digest put it there
        )

    def render(self, rows: Markup) -> str:
        """Render the page with holes for its values and ``rows`` for the paper rows."""
        context: dict[str, object] = {
            "subject": self.subject,
            "list_name": self.list_name,
            "day": self.day,
            # Only the count: a page that printed a paper's fields would fail here.
            "papers": [None] * self.count,
            "batch_size": self.batch_size,
            "weekly": self.weekly,
            "since": self.since,
            "paper_rows": [rows],
        }
        for name, present in zip(_PAGE_HOLES, self.present, strict=True):
            context[name] = _hole(name) if present else ""
        return self.page.render(context)


@functools.lru_cache(maxsize=_MAX_SHAPES)
def _html_page(shape: _Shape) -> tuple[_Holes, _Holes]:
    """Render and inline the page around the paper rows; split it where the rows go."""
    html = inline_css(shape.render(Markup(_ROWS)))
    before, found, after = html.partition(_ROWS)
    if not found:
        raise RuntimeError("the paper rows vanished from digest.html.j2 when inlined")
    return _Holes.split(before), _Holes.split(after)


@dataclass(frozen=True)
class _RowKey:
    """What one paper's inlined row depends on, but for its holes."""

    page: jinja2.Template
    template: jinja2.Template
    slots: _Slots
    paper: PaperView


# Rows by key, oldest first. Not an lru_cache: the rows a digest misses are inlined
# together, one page for all of them (a day's first digests miss most of theirs).
_rows: dict[_RowKey, _Holes] = {}
_rows_lock = threading.Lock()


def _html_rows(keys: Sequence[_RowKey]) -> list[_Holes]:
    """Return the inlined row for each key, inlining the ones not seen before."""
    found = {key: row for key in keys if (row := _rows.get(key)) is not None}
    missing = list(dict.fromkeys(key for key in keys if key not in found))
    if missing:
        fresh = _inline_rows(missing)
        with _rows_lock:
            while _rows and len(_rows) + len(fresh) > _MAX_BLOCKS:
                del _rows[next(iter(_rows))]
            _rows.update(fresh)
        found.update(fresh)
    return [found[key] for key in keys]


def _inline_rows(keys: Sequence[_RowKey]) -> dict[_RowKey, _Holes]:
    """Render rows (with holes) inside one page, inline the page, and cut the rows out."""
    # Inlined inside a whole page, so that every selector matches as in a real digest.
    # Any page will do: a row's styles depend on the row and the elements around it,
    # which are the same on every page (the page's own values are left empty here).
    page = keys[0].page
    shape = _Shape(page, "", "", date(2000, 1, 3), len(keys), 0, (False,) * len(_PAGE_HOLES))
    rows = Markup("").join(
        Markup(_ROW_START)
        + Markup(key.template.render(paper=key.slots.holes(key.paper)))
        + Markup(_ROW_END)
        for key in keys
    )
    html = inline_css(shape.render(rows))
    inlined = [part.partition(_ROW_END) for part in html.split(_ROW_START)[1:]]
    if len(inlined) != len(keys) or not all(end for _, end, _ in inlined):
        raise RuntimeError("paper rows vanished from digest.html.j2 when inlined")
    return {key: _Holes.split(row) for key, (row, _, _) in zip(keys, inlined, strict=True)}
