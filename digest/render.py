"""Turn a Digest into subject, preheader, plain text and HTML (CSS inlined) with Jinja."""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import css_inline
import jinja2

from digest.models import Digest, DigestLinks, RenderedEmail, ScoredPaper

ABSTRACT_CHARS = 300
PREHEADER_CHARS = 140
AUTHORS_SHOWN = 3
TEXT_WIDTH = 72

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Keep @media rules (phone width, dark mode) in a <style> block: they cannot be inlined,
# and clients that ignore them still get the inlined light-mode styles. Never fetch
# anything remote while rendering: a template typo must not turn into a network call.
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)


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
    return env


def render_digest(
    digest: Digest,
    links: DigestLinks,
    *,
    env: jinja2.Environment,
    list_name: str = "Research Digest",
) -> RenderedEmail:
    """Render one subscriber's digest: subject, preheader, text part and inlined HTML."""
    if not digest.papers:
        return render_empty_note(digest, links, env=env, list_name=list_name)
    papers = [paper_view(number, item, links) for number, item in enumerate(digest.papers, 1)]
    subject = digest_subject(digest.day, len(papers))
    preheader = make_preheader(p.title for p in papers)
    context = {
        "subject": subject,
        "preheader": preheader,
        "list_name": one_line(list_name),
        "day": digest.day,
        "papers": papers,
        "batch_size": digest.batch_size,
        "name": one_line(digest.subscriber.name),
        "preferences_url": safe_url(links.preferences),
        "unsubscribe_url": safe_url(links.unsubscribe),
    }
    return _render("digest", context, subject=subject, preheader=preheader, env=env)


def render_empty_note(
    digest: Digest,
    links: DigestLinks,
    *,
    env: jinja2.Environment,
    list_name: str = "Research Digest",
) -> RenderedEmail:
    """Render the short "nothing relevant today" note sent when a digest has no papers."""
    subject = f"Nothing matched your interests on {long_date(digest.day)}"
    preheader = (
        f"We looked at {digest.batch_size} new papers and none matched your profile."
        if digest.batch_size
        else "There were no new papers to look at today."
    )
    context = {
        "subject": subject,
        "preheader": preheader,
        "list_name": one_line(list_name),
        "day": digest.day,
        "batch_size": digest.batch_size,
        "name": one_line(digest.subscriber.name),
        "preferences_url": safe_url(links.preferences),
        "unsubscribe_url": safe_url(links.unsubscribe),
    }
    return _render("empty", context, subject=subject, preheader=preheader, env=env)


def render_confirmation(
    *,
    email: str,
    confirm_url: str,
    env: jinja2.Environment,
    list_name: str = "Research Digest",
) -> RenderedEmail:
    """Render the double opt-in mail that asks a new subscriber to confirm."""
    subject = f"Confirm your subscription to {one_line(list_name)}"
    preheader = "One click and your daily research digest starts tomorrow."
    context = {
        "subject": subject,
        "preheader": preheader,
        "list_name": one_line(list_name),
        "email": one_line(email),
        "confirm_url": safe_url(confirm_url),
    }
    return _render("confirm", context, subject=subject, preheader=preheader, env=env)


def digest_subject(day: date, count: int) -> str:
    """Return the subject line: the date and how many papers."""
    noun = "paper" if count == 1 else "papers"
    return f"Your research digest for {long_date(day)}: {count} {noun}"


def long_date(day: date) -> str:
    """Format a date as ``Mon 25 May 2026`` whatever the process locale is."""
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def paper_view(number: int, item: ScoredPaper, links: DigestLinks) -> PaperView:
    """Flatten one scored paper into the strings the templates print."""
    paper = item.paper
    return PaperView(
        number=number,
        key=paper.key,
        title=one_line(paper.title) or paper.key,
        url=safe_url(paper.url or paper.pdf_url),
        authors=short_authors(paper.authors),
        categories=", ".join(one_line(c) for c in paper.categories),
        abstract=shorten(one_line(paper.abstract), ABSTRACT_CHARS),
        reason=one_line(item.reason),
        more=safe_url(links.more.get(paper.key, "")),
        less=safe_url(links.less.get(paper.key, "")),
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
    parts = urlsplit(cleaned)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    return cleaned


# Every subscriber's digest draws on the same day's papers: wrap each abstract once.
@functools.lru_cache(maxsize=8192)
def wrap_text(text: str, width: int = TEXT_WIDTH, indent: str = "") -> str:
    """Wrap plain text for the text part without ever breaking a URL or a long word."""
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
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text.strip("\n") + "\n"
