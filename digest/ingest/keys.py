"""Canonical paper keys: one paper, one key, whatever source it came from."""

from __future__ import annotations

import re

# New-style ids (0704.0001 onwards): YYMM.NNNN or YYMM.NNNNN, optional version.
_NEW_ID = re.compile(r"(?<![\w.])(\d{4}\.\d{4,5})(?:v(\d+))?(?![\w.])")
# Old-style ids: archive(.subject)?/YYMMNNN, optional version.
_OLD_ID = re.compile(r"(?<![\w.-])([a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?(?!\w)")
_DOI = re.compile(r"(10\.\d{4,9}/\S+)", re.IGNORECASE)
# arXiv's own DOIs (since 2022): 10.48550/arXiv.<id>.
_ARXIV_DOI = re.compile(r"10\.48550/arxiv\.([\w./-]+)", re.IGNORECASE)


def parse_arxiv_id(text: str) -> tuple[str, int | None] | None:
    """Find an arXiv id in an id, ``arXiv:`` string, URL or arXiv DOI; return (id, version)."""
    text = text.strip()
    doi = _ARXIV_DOI.search(text)
    if doi:
        # 10.48550/arXiv.2401.01234: the id follows a dot, which the patterns below
        # refuse in front of an id (so that 10.1101/2025.04.07 is no arXiv id).
        text = doi.group(1)
    for pattern in (_NEW_ID, _OLD_ID):
        match = pattern.search(text)
        if match:
            version = int(match.group(2)) if match.group(2) else None
            return match.group(1), version
    return None


def arxiv_key(text: str) -> str | None:
    """Return ``arxiv:<id>`` without version for anything holding an arXiv id, else None."""
    parsed = parse_arxiv_id(text)
    return f"arxiv:{parsed[0]}" if parsed else None


def arxiv_doi_key(text: str) -> str | None:
    """Return ``arxiv:<id>`` for text holding an arXiv DOI (10.48550/arXiv.<id>), else None."""
    match = _ARXIV_DOI.search(text)
    return arxiv_key(match.group(1)) if match else None


def normalize_doi(text: str) -> str | None:
    """Return a DOI lower-cased without resolver prefix (``doi:``, ``https://doi.org/``)."""
    match = _DOI.search(text.strip())
    if not match:
        return None
    return match.group(1).rstrip(".,;)").lower()


def doi_key(text: str) -> str | None:
    """Return ``doi:<normalised doi>``, or None when the text holds no DOI."""
    doi = normalize_doi(text)
    return f"doi:{doi}" if doi else None


def paper_key(*, arxiv: str | None = None, doi: str | None = None, source: str = "",
              entry_id: str = "") -> str:
    """Choose the canonical key: arXiv id, else DOI, else source plus entry id."""
    if arxiv:
        key = arxiv_key(arxiv)
        if key:
            return key
    if doi:
        key = arxiv_doi_key(doi) or doi_key(doi)
        if key:
            return key
    return f"{source}:{entry_id.strip()}"
