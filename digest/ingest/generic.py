"""Any RSS 1.0/2.0 or Atom feed (bioRxiv, publishers): arXiv id, else DOI, else entry id."""

from __future__ import annotations

import re
from datetime import date, datetime
from urllib.parse import unquote, urlsplit

from digest.ingest.arxiv import announce_type
from digest.ingest.base import (
    Harvest,
    Validators,
    check_status,
    feed_harvest,
    get,
    not_modified,
)
from digest.ingest.feeds import FeedEntry, parse_feed
from digest.ingest.http import Fetch
from digest.ingest.keys import arxiv_doi_key, normalize_doi, paper_key, parse_arxiv_id
from digest.ingest.text import (
    html_to_text,
    separate_headings,
    split_authors,
    squash,
    strip_abstract_label,
    strip_arxiv_prefix,
)
from digest.models import Paper, SourceSpec


def read_rss(spec: SourceSpec, day: date, fetch: Fetch, validators: Validators) -> Harvest:
    """Read any RSS or Atom feed into Papers."""
    response = get(spec.location.strip(), fetch, validators)
    if response.not_modified:
        return not_modified(response, validators)
    check_status(response)
    feed = parse_feed(response.body, where=response.url, content_type=response.content_type)
    papers: list[Paper] = []
    skipped = 0
    for entry in feed.entries:
        paper = generic_paper(entry, source=spec.name)
        if paper is None:
            skipped += 1
        else:
            papers.append(paper)
    return feed_harvest(feed, papers, skipped, response)


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


# Elsevier's ScienceDirect feeds give no pubDate and no dc:creator: the description
# opens with the date, the journal and the authors, each in a paragraph of its own
# ("<p>Publication date: Available online 20 May 2026</p><p><b>Source:</b> Cell</p>
# <p>Author(s): A. One, B. Two</p>"), and an abstract, if any, follows.
_PUBLISHER_METADATA = re.compile(
    r"\s*<p>\s*Publication date:\s*(?P<date>[^<]*)</p>"
    r"(?:\s*<p>\s*(?:<b>\s*)?Source:\s*(?:</b>)?[^<]*</p>)?"
    r"(?:\s*<p>\s*Author\(s\):\s*(?P<authors>[^<]*)</p>)?",
    re.IGNORECASE,
)
_ONLINE = re.compile(r"Available online\s+(\d{1,2}\s+[A-Za-z]+\s+\d{4})", re.IGNORECASE)


def publisher_metadata(summary: str) -> tuple[str, tuple[str, ...], date | None]:
    """Split a ScienceDirect description into (the rest, its authors, the day it went
    online); a description of any other shape comes back whole, with () and None.

    An issue's month ("Publication date: July 2026") names no day: None.
    """
    found = _PUBLISHER_METADATA.match(summary)
    if found is None:
        return summary, (), None
    online = _ONLINE.search(found.group("date"))
    day = None
    if online:
        try:
            day = datetime.strptime(squash(online.group(1)), "%d %B %Y").date()
        except ValueError:
            day = None
    authors = split_authors(html_to_text(found.group("authors") or ""))
    return summary[found.end() :], authors, day


def generic_paper(entry: FeedEntry, *, source: str) -> Paper | None:
    """Convert an entry of any feed: arXiv id, else DOI, else source plus entry id."""
    title = html_to_text(entry.title or "")
    if not title:
        return None
    arxiv_text = next((t for t in (entry.guid, entry.link) if "arxiv" in t.lower()), "")
    arxiv = parse_arxiv_id(arxiv_text) if arxiv_text else None
    doi = (normalize_doi(entry.doi) if entry.doi else None) or doi_from_url(entry.link) \
        or (doi_from_url(entry.guid) if entry.guid.startswith("http") else None)
    if arxiv is None and doi:
        arxiv = parse_arxiv_id(doi) if arxiv_doi_key(doi) else None  # 10.48550/arXiv.<id>
    entry_id = entry.guid or entry.link or title
    key = paper_key(arxiv=arxiv[0] if arxiv else None, doi=doi, source=source,
                    entry_id=entry_id)
    summary, listed_authors, online = publisher_metadata(entry.summary)
    abstract = html_to_text(summary)
    if arxiv:
        # An arXiv announcement feed read as a plain feed: drop the "arXiv:... Announce
        # Type: ..." lead-in and keep the type, so replacements update and are not re-sent.
        abstract = strip_arxiv_prefix(abstract)
    return Paper(
        key=key,
        title=title,
        abstract=separate_headings(strip_abstract_label(abstract)),
        authors=entry.authors or split_authors(html_to_text(entry.author_text))
        or listed_authors,
        categories=entry.categories,
        url=entry.link or (f"https://doi.org/{doi}" if doi else ""),
        pdf_url=entry.pdf_url,
        source=source,
        published=entry.published or online,
        announce_type=announce_type(entry) if arxiv else "new",
        version=arxiv[1] if arxiv else None,
        doi=doi,
        comment=entry.comment,
    )
