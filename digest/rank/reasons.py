"""One short human line per chosen paper: why it is in the email."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from digest.models import Paper, Profile
from digest.rank.profiles import Compiled
from digest.rank.vectors import Space

CLOSE = 0.25  # cosine above which a paper is "close to" an example paper


@dataclass(frozen=True)
class Context:
    """The matrices of one chunk that reasons are read from."""

    space: Space
    text: sp.csr_matrix  # expanded text queries of the chunk
    compiled: Compiled
    docs: sp.csr_matrix
    known: dict[str, Paper]
    seeds: list[set[str]]
    example_sims: np.ndarray  # B x N+: each batch paper against every example row
    example_keys: list[str]  # N+: the key of each example row
    centroids: sp.csr_matrix | None  # P x V: example centroids, for matched terms


def _row(matrix: sp.csr_matrix, i: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = matrix.indptr[i], matrix.indptr[i + 1]
    return matrix.indices[lo:hi], matrix.data[lo:hi]


def matched_terms(
    query: tuple[np.ndarray, np.ndarray],
    doc: tuple[np.ndarray, np.ndarray],
    space: Space,
    n: int = 3,
) -> list[str]:
    """Return the terms contributing most to the product of a query and a document row.

    Rows are (column indices, values) of CSR rows with sorted indices.
    """
    shared, qi, di = np.intersect1d(query[0], doc[0], assume_unique=True, return_indices=True)
    if shared.size == 0:
        return []
    contribution = query[1][qi] * doc[1][di]
    order = np.lexsort((shared, -contribution))
    terms: list[str] = []
    for k in order:
        if contribution[k] <= 0:
            break
        term = space.terms[int(shared[k])]
        # A bigram makes its unigrams redundant in the reason, and vice versa.
        words = set(term.split(" "))
        if any(words & set(t.split(" ")) for t in terms):
            continue
        terms.append(term)
        if len(terms) == n:
            break
    return terms


def _closest_example(context: Context, row: int, profile: Profile, j: int) -> str | None:
    members = np.flatnonzero(context.compiled.positive_owner == row)
    if members.size == 0:
        return None
    sims = context.example_sims[j, members]
    best = int(np.argmax(sims))
    if sims[best] < CLOSE:
        return None
    key = context.example_keys[int(members[best])]
    what = "your seed paper" if key in context.seeds[row] else "a paper you liked"
    title = context.known[key].title
    if len(title) > 80:
        title = title[:77].rstrip() + "..."
    return f"close to {what}: {title}"


def explain(
    context: Context, row: int, profile: Profile, paper: Paper, j: int, *, trending: bool
) -> str:
    """Return the reason line for one paper under one profile (at most two parts)."""
    parts: list[str] = []
    followed = {" ".join(a.lower().split()) for a in profile.authors}
    for author in paper.authors:
        if " ".join(author.lower().split()) in followed:
            parts.append(f"by {author}")
            break
    close = _closest_example(context, row, profile, j)
    if close:
        parts.append(close)
    doc = _row(context.docs, j)
    terms = matched_terms(_row(context.text, row), doc, context.space)
    if not terms and context.centroids is not None:
        terms = matched_terms(_row(context.centroids, row), doc, context.space)
    if terms:
        parts.append("matches: " + ", ".join(terms))
    hit = [c for c in paper.categories if c in profile.categories]
    if hit:
        parts.append(f"in {hit[0]}")
    if trending and paper.upvotes:
        parts.append(f"trending: {paper.upvotes} upvotes")
    return "; ".join(parts[:2]) if parts else "related to your interests"
