"""One short human line per chosen paper: why it is in the email.

Worked out for every (profile, chosen paper) pair of a chunk at once: one sparse
elementwise product gives every matched term's contribution, one gather the closest
example paper; Python only joins the words of the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from digest.models import Paper, Profile
from digest.rank.metadata import BatchIndex, normalize_name
from digest.rank.profiles import (
    Compiled,
    Examples,
    Feedback,
    centroid_rows,
    feedback_rows,
)
from digest.rank.vectors import Space

CLOSE = 0.25  # tf-idf cosine above which a paper is "close to" an example paper
CLOSE_DENSE = 0.3  # LSA cosine below which a pair is not checked against CLOSE
TERMS = 3  # matched terms named in a reason
LOOK = 4 * TERMS + 4  # best contributions looked at to find them


@dataclass(frozen=True)
class Context:
    """What the reasons of one chunk are read from."""

    space: Space
    compiled: Compiled
    examples: Examples
    docs: sp.csr_matrix  # batch rows (sorted indices)
    doc_keys: np.ndarray  # row * V + column of every stored entry of docs, ascending
    dense_docs: np.ndarray  # batch rows in LSA space (B x 0 without LSA)
    pool: sp.csr_matrix  # feedback pool rows
    feedback: Feedback | None
    index: BatchIndex


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
    if rows.size == 0:
        return [[] for _ in picks]
    terms = _pair_terms(context, rows, cols)
    closest = _closest_examples(context, rows, cols)
    out: list[list[str]] = []
    pair = 0
    for r, chosen in enumerate(picks):
        profile = profiles[r]
        followed = {normalize_name(a) for a in profile.authors}
        wanted = set(profile.categories)
        seeds = context.compiled.seed_examples[r]
        lines: list[str] = []
        for j in chosen:
            parts: list[str] = []
            if followed:
                names = context.index.by_author[j]
                hit = next((names[n] for n in names if n in followed), None)
                if hit is not None:
                    parts.append(f"by {hit}")
            best = int(closest[pair])
            if best >= 0:
                what = "your seed paper" if best in seeds else "a paper you liked"
                title = context.examples.titles[best]
                if len(title) > 80:
                    title = title[:77].rstrip() + "..."
                parts.append(f"close to {what}: {title}")
            if terms[pair] and len(parts) < 2:
                parts.append("matches: " + ", ".join(terms[pair]))
            if len(parts) < 2 and wanted:
                hit = next((c for c in papers[j].categories if c in wanted), None)
                if hit is not None:
                    parts.append(f"in {hit}")
            if trending[r] and papers[j].upvotes and len(parts) < 2:
                parts.append(f"trending: {papers[j].upvotes} upvotes")
            lines.append("; ".join(parts[:2]) if parts else "related to your interests")
            pair += 1
        out.append(lines)
    return out


def _pair_terms(context: Context, rows: np.ndarray, cols: np.ndarray) -> list[list[str]]:
    """Return matched terms for many (profile row, batch column) pairs at once.

    The profile's own words first; where they share nothing with the paper, the
    centroid of its example papers, else the feedback papers its words retrieved.
    """
    products = _pair_products(context, context.compiled.text, rows, cols)
    terms = _top_terms(products, context.space)
    missing = np.flatnonzero(products.getnnz(axis=1) == 0)
    if missing.size == 0:
        return terms
    owners = np.unique(rows[missing])
    has_examples = np.isin(owners, context.compiled.positive_owner)
    parts = [centroid_rows(context.compiled, context.examples, owners[has_examples])]
    rest = owners[~has_examples]
    if context.feedback is not None and rest.size:
        parts.append(feedback_rows(context.feedback, context.pool, rest))
    else:
        parts.append(sp.csr_matrix((rest.size, products.shape[1])))
    fallback = sp.vstack(parts).tocsr()
    slot = {int(r): i for i, r in enumerate(np.concatenate([owners[has_examples], rest]))}
    chosen = np.asarray([slot[int(r)] for r in rows[missing]], dtype=np.intp)
    found = _top_terms(_pair_products(context, fallback, chosen, cols[missing]), context.space)
    for k, pair in enumerate(missing):
        terms[pair] = found[k]
    return terms


def _pair_products(
    context: Context, query: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray
) -> sp.csr_matrix:
    """Return ``query[rows] * docs[cols]`` elementwise, one sparse row per pair.

    Only the query's few terms are looked up in the documents (a binary search over
    the documents' (row, term) keys) instead of gathering whole document rows.
    """
    picked = sp.csr_matrix(query[rows])
    picked.sort_indices()
    pair_of = np.repeat(np.arange(rows.size), np.diff(picked.indptr))
    width = np.int64(context.docs.shape[1])
    keys = cols[pair_of].astype(np.int64) * width + picked.indices
    index = context.doc_keys
    if index.size == 0 or keys.size == 0:
        return sp.csr_matrix(picked.shape)
    at = np.minimum(np.searchsorted(index, keys), index.size - 1)
    found = index[at] == keys
    products = sp.csr_matrix(
        (picked.data * np.where(found, context.docs.data[at], 0.0), picked.indices,
         picked.indptr),
        shape=picked.shape,
    )
    products.eliminate_zeros()
    return products


_WORDS: dict[int, tuple[Space, dict[int, tuple[str, frozenset[str]]]]] = {}


def _terms_of(space: Space) -> dict[int, tuple[str, frozenset[str]]]:
    """Return the cache of vocabulary column -> (term, its words) kept for a space."""
    cached = _WORDS.get(id(space))
    if cached is None or cached[0] is not space:
        _WORDS.clear()
        cached = (space, {})
        _WORDS[id(space)] = cached
    return cached[1]


def _top_terms(products: sp.csr_matrix, space: Space) -> list[list[str]]:
    """Return per row up to TERMS terms by contribution, skipping words already named.

    A bigram makes its unigrams redundant in the reason, and vice versa. Ties go to the
    lower vocabulary column.
    """
    count = products.shape[0]
    out: list[list[str]] = [[] for _ in range(count)]
    if products.nnz == 0:
        return out
    lengths = np.diff(products.indptr)
    row_of = np.repeat(np.arange(count), lengths)
    order = np.lexsort((products.indices, -products.data, row_of))
    place = np.arange(order.size) - products.indptr[row_of[order]]
    keep = order[(place < LOOK) & (products.data[order] > 0)]
    kept_rows = row_of[keep]
    kept_cols = products.indices[keep].tolist()
    bounds = np.searchsorted(kept_rows, np.arange(count + 1)).tolist()
    cache = _terms_of(space)
    terms = space.terms
    for r in range(count):
        chosen: list[str] = []
        seen: set[str] = set()
        for column in kept_cols[bounds[r] : bounds[r + 1]]:
            found = cache.get(column)
            if found is None:
                found = cache[column] = (terms[column], frozenset(terms[column].split(" ")))
            term, words = found
            if words & seen:
                continue
            chosen.append(term)
            seen |= words
            if len(chosen) == TERMS:
                break
        out[r] = chosen
    return out


def _closest_examples(context: Context, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Return per pair the example row its paper is closest to (-1: none close enough).

    The best candidate is found in the LSA space (a dense dot product per example) and
    confirmed with the tf-idf cosine, so the CLOSE bar keeps its meaning.
    """
    closest = np.full(rows.size, -1, dtype=np.intp)
    owner = context.compiled.positive_owner
    if owner.size == 0:
        return closest
    order = np.argsort(owner, kind="stable")
    example = context.compiled.positive_example[order]
    bounds = np.searchsorted(owner[order], np.arange(int(rows.max()) + 2))
    sizes = bounds[rows + 1] - bounds[rows]
    pair_of = np.repeat(np.arange(rows.size), sizes)
    if pair_of.size == 0:
        return closest
    start = np.repeat(bounds[rows], sizes)
    offset = np.arange(pair_of.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    candidate = example[start + offset]
    dense = context.examples.dense
    docs = context.docs
    if dense.shape[1] and context.dense_docs.shape[1]:
        sims = np.einsum("nk,nk->n", dense[candidate], context.dense_docs[cols[pair_of]])
    else:
        sims = np.asarray(
            context.examples.rows[candidate].multiply(docs[cols[pair_of]]).sum(axis=1)
        ).ravel()
    # Best candidate per pair: the first maximum (candidates keep the profile's order).
    by_pair = np.lexsort((np.arange(pair_of.size), -sims, pair_of))
    first = by_pair[np.searchsorted(pair_of[by_pair], np.unique(pair_of))]
    pairs = pair_of[first]
    best = candidate[first]
    if dense.shape[1] and context.dense_docs.shape[1]:
        # Papers this far apart in the LSA space are never CLOSE in tf-idf terms.
        promising = sims[first] >= CLOSE_DENSE
        pairs, best = pairs[promising], best[promising]
    cosine = np.asarray(
        context.examples.rows[best].multiply(docs[cols[pairs]]).sum(axis=1)
    ).ravel()
    close = cosine >= CLOSE
    closest[pairs[close]] = best[close]
    return closest

