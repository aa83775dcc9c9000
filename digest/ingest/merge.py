"""Merge records of the same paper (same key) from several sources into one Paper."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from digest.models import Paper

# A paper announced as new anywhere today is new; a replacement only updates.
_ANNOUNCE_RANK = {"new": 0, "cross": 1, "replace": 2, "replace-cross": 3, "named": 4}


def merge(papers: Iterable[Paper]) -> list[Paper]:
    """Fold duplicates by key, keeping first-seen order and the richest value of each field."""
    merged: dict[str, Paper] = {}
    for paper in papers:
        seen = merged.get(paper.key)
        merged[paper.key] = paper if seen is None else merge_pair(seen, paper)
    return list(merged.values())


def merge_pair(a: Paper, b: Paper) -> Paper:
    """Combine two records of one paper; ``a`` wins ties."""
    # The record that lists categories (arXiv) keeps its primary category first.
    first, second = (a, b) if a.categories or not b.categories else (b, a)
    categories = tuple(dict.fromkeys(first.categories + second.categories))
    upvotes = [u for u in (a.upvotes, b.upvotes) if u is not None]
    versions = [v for v in (a.version, b.version) if v is not None]
    dates = [d for d in (a.published, b.published) if d is not None]
    return replace(
        a,
        title=a.title or b.title,
        abstract=a.abstract if len(a.abstract) >= len(b.abstract) else b.abstract,
        authors=a.authors if len(a.authors) >= len(b.authors) else b.authors,
        categories=categories,
        url=a.url or b.url,
        pdf_url=a.pdf_url or b.pdf_url,
        published=min(dates) if dates else None,
        announce_type=min(a.announce_type, b.announce_type, key=_ANNOUNCE_RANK.__getitem__),
        version=max(versions) if versions else None,
        doi=a.doi or b.doi,
        comment=a.comment or b.comment,
        upvotes=max(upvotes) if upvotes else None,
        ai_summary=a.ai_summary or b.ai_summary,
        ai_keywords=a.ai_keywords or b.ai_keywords,
    )
