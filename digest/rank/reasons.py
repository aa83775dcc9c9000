"""One short human line per chosen paper: why it is in the email."""

from __future__ import annotations

from collections.abc import Sequence
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


def _pick_terms(
    columns: np.ndarray, contribution: np.ndarray, space: Space, n: int = 3
) -> list[str]:
    """Return up to ``n`` terms by contribution, skipping words already named."""
    order = np.lexsort((columns, -contribution))[: 4 * n + 4]
    terms: list[str] = []
    for k in order:
        if contribution[k] <= 0:
            break
        term = space.terms[int(columns[k])]
        # A bigram makes its unigrams redundant in the reason, and vice versa.
        words = set(term.split(" "))
        if any(words & set(t.split(" ")) for t in terms):
            continue
        terms.append(term)
        if len(terms) == n:
            break
    return terms


def _pair_terms(
    context: Context, rows: np.ndarray, cols: np.ndarray
) -> list[list[str]]:
    """Return matched terms for many (profile row, batch column) pairs at once.

    One sparse elementwise product of the pairs' query rows and document rows gives
    every term's contribution; the example centroid stands in where the text shares
    nothing with the paper.
    """
    if rows.size == 0:
        return []
    doc_rows = context.docs[cols]
    products = sp.csr_matrix(context.text[rows].multiply(doc_rows))
    if context.centroids is not None:
        missing = np.flatnonzero(products.getnnz(axis=1) == 0)
        if missing.size:
            fallback = sp.csr_matrix(
                sp.csr_matrix(context.centroids)[rows[missing]].multiply(doc_rows[missing])
            )
            lil = products.tolil()
            for offset, pair in enumerate(missing):
                start, stop = fallback.indptr[offset], fallback.indptr[offset + 1]
                lil.rows[pair] = list(fallback.indices[start:stop])
                lil.data[pair] = list(fallback.data[start:stop])
            products = lil.tocsr()
    out: list[list[str]] = []
    for k in range(rows.size):
        lo, hi = products.indptr[k], products.indptr[k + 1]
        out.append(_pick_terms(products.indices[lo:hi], products.data[lo:hi], context.space))
    return out


def explain_all(
    context: Context,
    profiles: Sequence[Profile],
    papers: Sequence[Paper],
    picks: Sequence[Sequence[int]],
    *,
    trending: Sequence[bool],
) -> list[list[str]]:
    """Return the reason lines for every chosen paper of every profile of a chunk."""
    rows = np.asarray([r for r, chosen in enumerate(picks) for _ in chosen], dtype=np.intp)
    cols = np.asarray([j for chosen in picks for j in chosen], dtype=np.intp)
    terms = _pair_terms(context, rows, cols)
    owner = context.compiled.positive_owner
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(len(profiles) + 1))
    out: list[list[str]] = []
    pair = 0
    for r, chosen in enumerate(picks):
        profile = profiles[r]
        members = order[bounds[r] : bounds[r + 1]]
        followed = {" ".join(a.lower().split()) for a in profile.authors}
        lines: list[str] = []
        for j in chosen:
            lines.append(_line(context, r, profile, papers[j], j, members, followed,
                               terms[pair], trending=trending[r]))
            pair += 1
        out.append(lines)
    return out


def _line(
    context: Context,
    row: int,
    profile: Profile,
    paper: Paper,
    j: int,
    members: np.ndarray,
    followed: set[str],
    terms: list[str],
    *,
    trending: bool,
) -> str:
    parts: list[str] = []
    if followed:
        for author in paper.authors:
            if " ".join(author.lower().split()) in followed:
                parts.append(f"by {author}")
                break
    if members.size:
        sims = context.example_sims[j, members]
        best = int(np.argmax(sims))
        if sims[best] >= CLOSE:
            key = context.example_keys[int(members[best])]
            what = "your seed paper" if key in context.seeds[row] else "a paper you liked"
            title = context.known[key].title
            if len(title) > 80:
                title = title[:77].rstrip() + "..."
            parts.append(f"close to {what}: {title}")
    if terms and len(parts) < 2:
        parts.append("matches: " + ", ".join(terms))
    if len(parts) < 2 and profile.categories:
        hit = [c for c in paper.categories if c in profile.categories]
        if hit:
            parts.append(f"in {hit[0]}")
    if trending and paper.upvotes and len(parts) < 2:
        parts.append(f"trending: {paper.upvotes} upvotes")
    return "; ".join(parts[:2]) if parts else "related to your interests"
