"""Compile a chunk of profiles into sparse query rows and example indices.

Every signal has one defined effect:

- ``interests`` and ``keywords`` (keywords weigh more) form a text query, expanded by
  pseudo-relevance feedback through the background papers (cold start without a model):
  the words of the papers it retrieves, and for a profile without examples also their
  authors and categories (scoring.py);
- ``seeds`` and ``liked`` are positive examples: a linear model and their centroid in
  the LSA space score the batch, and their categories (the rarer, the more) and
  authors count too;
- ``disliked`` papers are negative examples of that model (of their own when the
  profile has words and no positive example: a share of it joins the text's topic);
- ``categories`` and ``authors`` boost matching papers; ``exclude`` filters (scoring.py).

Example papers are vectorised once per rank call (:class:`Examples`), however many
profiles name them; a chunk of profiles only refers to them by index.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from digest.models import Paper, Profile
from digest.rank.joins import other_spellings, two_part_terms, written_as
from digest.rank.largest import largest_columns
from digest.rank.lsa import Lsa
from digest.rank.metadata import normalize_name
from digest.rank.vectors import Space, analyze_once, kept_for, paper_text


@dataclass(frozen=True)
class Examples:
    """Every known paper some profile names as an example, vectorised once per call."""

    keys: tuple[str, ...]
    column: dict[str, int]
    rows: sp.csr_matrix  # U x V tf-idf rows
    dense: np.ndarray  # U x k rows in LSA space (U x 0 without LSA)
    titles: tuple[str, ...]
    authors: tuple[frozenset[str], ...]  # per example: its authors' folded names
    categories: tuple[tuple[str, ...], ...]  # per example: its categories

    @functools.cached_property
    def reversible(self) -> bool:
        """Return True if reversing each row sorts every row (see ascending_rows).

        Only this flag is kept, not the reversed copy: that copy was as large as
        ``rows`` (13 MB of the bench's 100,000 profiles' ~8,000 example papers), held
        by the run and shared with every forked scorer, while a chunk reads a few
        thousand of its rows.
        """
        # A row reversed is sorted, without repeats (scipy's canonical format), when its
        # columns fall from each entry to the next; read off the columns, not a copy.
        indices, indptr = self.rows.indices, self.rows.indptr
        falls = indices[1:] < indices[:-1]
        across = indptr[1:-1]  # each row's first entry: its pair with the entry before
        falls[across[(across > 0) & (across < indices.size)] - 1] = True  # is no pair
        return bool(falls.all())

    def ascending_rows(self, which: np.ndarray) -> sp.csr_matrix | None:
        """Return the rows ``which`` with each row reversed, if that sorts every row of
        ``rows``; else None.

        Their entries are stored in descending column order (the order the tf-idf
        product emits them). An elementwise product with sorted document rows then
        takes scipy's general path, which emits the common terms in reverse of the first
        row's order: ascending, exactly what the merge of two sorted rows emits, in the
        same order, so the row sums are the same numbers; the merge is twice as fast
        (the reasons' "close to" check).
        """
        if not self.reversible:
            return None
        # Gathered and reversed in one pass: the entries of row r, last to first.
        indptr = self.rows.indptr
        ends = indptr[1:][which]
        lengths = ends - indptr[:-1][which]
        starts = np.zeros(len(which) + 1, dtype=indptr.dtype)
        np.cumsum(lengths, out=starts[1:])
        order = np.repeat(ends - 1 + starts[:-1], lengths) - np.arange(starts[-1])
        return sp.csr_matrix((self.rows.data[order], self.rows.indices[order], starts),
                             shape=(len(which), self.rows.shape[1]))


def reversed_entries(indptr: np.ndarray) -> np.ndarray:
    """Return the entry order that reverses every row of a CSR matrix with this indptr."""
    lengths = np.diff(indptr)
    order: np.ndarray = np.repeat(indptr[1:] + indptr[:-1] - 1, lengths) - np.arange(indptr[-1])
    return order


class ExampleBank:
    """The example papers seen so far in a ranking session, each vectorised once.

    Profiles of later chunks mostly name the same papers; new ones are appended.
    ``transformed`` holds papers' tf-idf rows made already (the day's background),
    ``row_of`` their keys -> row: an example among them is copied from there, not
    transformed again (the same row: a paper's row depends on its text alone).
    """

    def __init__(
        self, space: Space, lsa: Lsa | None, *, transformed: sp.csr_matrix | None = None,
        row_of: dict[str, int] | None = None,
    ) -> None:
        self.space = space
        self.lsa = lsa
        width = lsa.components.shape[0] if lsa is not None else 0
        self.transformed = transformed
        self.row_of = row_of or {}
        self.current = Examples(
            keys=(), column={}, rows=sp.csr_matrix((0, len(space.terms))),
            dense=np.zeros((0, width)), titles=(), authors=(), categories=(),
        )

    def add(self, profiles: Sequence[Profile], known: dict[str, Paper]) -> Examples:
        """Vectorise the known seed, liked and disliked papers not seen yet; return all."""
        have = self.current.column
        keys = tuple(dict.fromkeys(
            key for p in profiles for key in (*p.seeds, *p.liked, *p.disliked)
            if key in known and key not in have
        ))
        if not keys:
            return self.current
        rows = self._rows(keys, known)
        dense = self.lsa.project(rows) if self.lsa is not None else np.zeros((len(keys), 0))
        old = self.current
        column = dict(old.column)
        column.update((k, len(old.keys) + i) for i, k in enumerate(keys))
        self.current = Examples(
            keys=old.keys + keys,
            column=column,
            rows=sp.vstack([old.rows, rows]).tocsr(),
            dense=np.vstack([old.dense, dense]),
            titles=old.titles + tuple(known[k].title for k in keys),
            authors=old.authors + tuple(
                frozenset(normalize_name(a) for a in known[k].authors) for k in keys),
            categories=old.categories + tuple(tuple(known[k].categories) for k in keys),
        )
        return self.current

    def _rows(self, keys: tuple[str, ...], known: dict[str, Paper]) -> sp.csr_matrix:
        """Return the papers' tf-idf rows, in order: copied where held, else transformed.

        Transforming is most of adding a paper (~0.17 ms, its terms looked up one by
        one); the bench's 100,000 profiles name ~8,000 papers, 3,000 of them the
        background's.
        """
        row_of = self.row_of
        held = [i for i, key in enumerate(keys) if key in row_of]
        if not held or self.transformed is None:
            return self.space.transform((paper_text(known[k]) for k in keys), memo=False)
        fresh = [i for i, key in enumerate(keys) if key not in row_of]
        copied = self.transformed[[row_of[keys[i]] for i in held]]
        made = self.space.transform((paper_text(known[keys[i]]) for i in fresh), memo=False)
        # Rows of [copied; made] in the order of keys.
        order = np.argsort(np.asarray(held + fresh, dtype=np.intp), kind="stable")
        rows: sp.csr_matrix = sp.vstack([copied, made]).tocsr()[order]
        return rows


@dataclass(frozen=True)
class Compiled:
    """A chunk of profiles: text query rows and which examples each one has."""

    text: sp.csr_matrix  # P x V, l2 rows (zero row: no text)
    positive_owner: np.ndarray  # N+ -> profile index in the chunk
    positive_example: np.ndarray  # N+ -> row of Examples
    negative_owner: np.ndarray  # N- -> profile index in the chunk
    negative_example: np.ndarray  # N- -> row of Examples
    seed_examples: tuple[frozenset[int], ...]  # per profile: example rows that are seeds
    # Per profile: its positive example rows (positive_example grouped by owner).
    positive_examples: tuple[tuple[int, ...], ...]
    # Interests typed in parts (lines or ";"): one l2 row per part (M x V), and the
    # profile of each (M, ascending). Only profiles of two parts or more.
    parts: sp.csr_matrix | None = None
    part_owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    # Keywords with other spellings (joins.py): per n, the query with each keyword
    # spelled the n-th other way, an l2 row per profile that has one, and their profiles.
    twins: tuple[tuple[sp.csr_matrix, np.ndarray], ...] = ()
    # P x V: the interests' part of ``text`` (parts balanced, without the keywords;
    # rows not normalised, a zero row: no interests). None: not kept.
    interests: sp.csr_matrix | None = None
    # P x V: ``text`` with each two-part term of the interests also in its other
    # spelling, at the same weight (scoring._spelled): the terms a reason may say the
    # words match and the LSA topic reads. None: ``text``.
    named: sp.csr_matrix | None = None

    @property
    def spelled(self) -> sp.csr_matrix:
        """Return ``named``, or ``text`` when the interests hold no two-part term."""
        return self.text if self.named is None else self.named

    @property
    def has_text(self) -> np.ndarray:
        """Return a bool per profile: does it have a text query."""
        return np.asarray(self.text.getnnz(axis=1) > 0)

    def has_examples(self, count: int) -> np.ndarray:
        """Return a bool per profile: does it have positive examples."""
        return np.bincount(self.positive_owner, minlength=count) > 0


def membership(owners: np.ndarray, count: int, *, mean: bool = True) -> sp.csr_matrix:
    """Return the P x N matrix that sums (or averages) each profile's example rows."""
    n = len(owners)
    member = sp.csr_matrix(
        (np.ones(n), (owners.astype(int), np.arange(n))), shape=(count, n)
    )
    if not mean:
        return member
    sizes = np.asarray(member.sum(axis=1)).ravel()
    sizes[sizes == 0] = 1.0
    scaled: sp.csr_matrix = sp.diags(1.0 / sizes) @ member
    return scaled.tocsr()


def compile_profiles(
    profiles: Sequence[Profile],
    space: Space,
    examples: Examples,
    *,
    keyword_weight: float,
    balance_parts: bool = True,
) -> Compiled:
    """Turn profiles into text rows and example indices; unknown example keys are skipped.

    With ``balance_parts``, interests typed as several lines or ";"-separated parts
    (often the titles of a few papers of the field) weigh each part alike: the query is
    the normalised sum of the parts' own rows, so a long title with rare words does not
    drown out a short one.
    """
    # Two-part terms in the spelling most papers write (_vocabulary_spellings).
    split, join, leading = kept_for(_VOCABULARY_SPELLINGS, space, _vocabulary_spellings)
    interests = [written_as(p.interests, split, join, leading) for p in profiles]
    text = _tfidf(space.counts(interests, memo=False), space)
    part_rows, part_owner = _parts(interests, space)
    if balance_parts and part_rows is not None:
        whole = np.ones(len(profiles))
        whole[part_owner] = 0.0
        summed = membership(part_owner, len(profiles), mean=False) @ part_rows
        text = (sp.diags(whole) @ text + normalize(summed)).tocsr()
    keywords = space.counts([" . ".join(p.keywords) for p in profiles], memo=False)
    query = text + keyword_weight * _tfidf(keywords, space)
    twins = _twins(profiles, text, space, keyword_weight)
    owners: list[int] = []
    rows: list[int] = []
    neg_owners: list[int] = []
    neg_rows: list[int] = []
    seeds: list[frozenset[int]] = []
    positives: list[tuple[int, ...]] = []
    column = examples.column
    for i, profile in enumerate(profiles):
        mine = [column[k] for k in dict.fromkeys((*profile.seeds, *profile.liked)) if k in column]
        owners.extend([i] * len(mine))
        rows.extend(mine)
        positives.append(tuple(mine))
        theirs = [column[k] for k in dict.fromkeys(profile.disliked) if k in column]
        neg_owners.extend([i] * len(theirs))
        neg_rows.extend(theirs)
        seeds.append(frozenset(column[k] for k in profile.seeds if k in column))
    return Compiled(
        text=normalize(query.tocsr(), norm="l2"),
        positive_owner=np.asarray(owners, dtype=np.intp),
        positive_example=np.asarray(rows, dtype=np.intp),
        negative_owner=np.asarray(neg_owners, dtype=np.intp),
        negative_example=np.asarray(neg_rows, dtype=np.intp),
        seed_examples=tuple(seeds),
        positive_examples=tuple(positives),
        parts=part_rows,
        part_owner=part_owner,
        twins=twins,
        interests=text.tocsr(),
    )


def _twins(
    profiles: Sequence[Profile], text: sp.csr_matrix, space: Space, keyword_weight: float
) -> tuple[tuple[sp.csr_matrix, np.ndarray], ...]:
    """Return the query rows of the profiles whose keywords have other spellings
    (joins.other_spellings): the n-th block holds, for each profile with an n-th, its
    row with each keyword spelled the n-th other way (or as typed, when it has fewer),
    with the profile of each row.

    A paper writing "finetuning" shares no term with the keyword "fine-tuning". Added
    to the query, the other spellings took a share of its weight from the papers
    writing it as typed; scored as a query of its own, each spelling gives a paper what
    it would have if typed that way (the best of them counts: scoring._score_chunk).
    """
    blocks: list[tuple[list[int], list[str]]] = []
    for i, profile in enumerate(profiles):
        spelled = [other_spellings(k) for k in profile.keywords]
        for n in range(max(map(len, spelled), default=0)):
            if n == len(blocks):
                blocks.append(([], []))
            blocks[n][0].append(i)
            blocks[n][1].append(" . ".join(
                others[n] if n < len(others) else typed
                for typed, others in zip(profile.keywords, spelled, strict=True)))
    out: list[tuple[sp.csr_matrix, np.ndarray]] = []
    for owners, texts in blocks:
        owner = np.asarray(owners, dtype=np.intp)
        rows = text[owner] + keyword_weight * _tfidf(space.counts(texts, memo=False), space)
        out.append((normalize(rows.tocsr(), norm="l2"), owner))
    return tuple(out)


def two_part_columns(
    space: Space,
) -> list[tuple[tuple[str, str, str], tuple[int | None, int | None]]]:
    """Return each listed two-part term (joins.two_part_terms) with the vocabulary
    columns of its joined word and of its two-word term (None: not a term)."""
    index = space.index
    out: list[tuple[tuple[str, str, str], tuple[int | None, int | None]]] = []
    for joined, first, second in two_part_terms():
        whole = analyze_once(joined)
        apart = [t for t in analyze_once(f"{first} {second}") if " " in t]
        out.append(((joined, first, second),
                    (index.get(whole[0]) if len(whole) == 1 else None,
                     index.get(apart[0]) if len(apart) == 1 else None)))
    return out


_Spellings = tuple[dict[str, tuple[str, str]], dict[tuple[str, str], str], frozenset[str]]
_VOCABULARY_SPELLINGS: dict[int, tuple[Space, _Spellings]] = {}


def _vocabulary_spellings(space: Space) -> _Spellings:
    """Return how the interests write each listed two-part term: in the spelling more
    of the space's papers write (joined word -> its two words, for those written apart
    more often; the two words -> the joined word, for the others). So every spelling
    typed is one query, and a spelling the vocabulary lacks ("zeroshot") is not a term
    that matches nothing. Third, the words such a term starts with (joins.written_as).
    Kept per space (vectors.kept_for).
    """
    df = space.df
    split: dict[str, tuple[str, str]] = {}
    join: dict[tuple[str, str], str] = {}
    for (joined, first, second), (at_whole, at_apart) in two_part_columns(space):
        papers_whole = float(df[at_whole]) if at_whole is not None else 0.0
        papers_apart = float(df[at_apart]) if at_apart is not None else 0.0
        if papers_apart > papers_whole:
            split[joined] = (first, second)
        elif papers_whole > 0:
            join[first, second] = joined
    return split, join, frozenset(split) | frozenset(first for first, _ in join)


# What separates the parts of a profile's interests (titles, topics): lines or ";".
TEXT_PARTS = re.compile(r"[;\n]+")


def _parts(
    interests: Sequence[str], space: Space
) -> tuple[sp.csr_matrix | None, np.ndarray]:
    """Return the tf-idf rows of the parts of interests typed in parts, and their owners."""
    owners: list[int] = []
    parts: list[str] = []
    for i, value in enumerate(interests):
        if ";" in value or "\n" in value:
            mine = [part for part in TEXT_PARTS.split(value) if part.strip()]
            if len(mine) > 1:
                owners.extend([i] * len(mine))
                parts.extend(mine)
    owner = np.asarray(owners, dtype=np.intp)
    return (_tfidf(space.counts(parts, memo=False), space) if owners else None), owner


def _tfidf(counts: sp.csr_matrix, space: Space) -> sp.csr_matrix:
    """Return ``normalize(sublinear(counts) @ diags(idf))``, without the diagonal matrix.

    The product emits each row's entries in reverse order (its accumulator is a list
    it pushes onto), and the row norms sum the squares in stored order, so the entries
    are reversed here too: the same matrix, bit for bit, without a vocabulary-sized
    diagonal converted to CSR twice per chunk.
    """
    order = reversed_entries(counts.indptr)
    columns = counts.indices[order]
    data = (1.0 + np.log(counts.data[order])) * space.idf[columns]
    weighted: sp.csr_matrix = normalize(
        sp.csr_matrix((data, columns, counts.indptr.copy()), shape=counts.shape), norm="l2"
    )
    return weighted


@dataclass(frozen=True)
class Feedback:
    """Pseudo-relevance feedback of a chunk's text queries: their top pool papers.

    The expanded query ``normalize(t + weight * normalize(sum_i w_i p_i))`` is never
    built as a sparse row (thousands of terms per profile); its scores come from the
    pool's Gram matrix, which holds every ``p_i . x`` already.
    """

    top: np.ndarray  # P x depth: pool rows, most similar first (ties to the lower row)
    weights: np.ndarray  # P x depth: their similarity to the query (>= 0)
    norm: np.ndarray  # P: |sum_i w_i p_i|
    text_dot: np.ndarray  # P: t . sum_i w_i p_i


def feedback(sims: np.ndarray, pool_gram: np.ndarray, *, depth: int) -> Feedback | None:
    """Return each text query's ``depth`` most similar pool papers (None: no feedback).

    ``sims`` holds the queries against the pool (P x N, float32 in a chunk),
    ``pool_gram`` the pool's Gram. Each row's papers are found by
    :func:`largest_columns` (most similar first, ties to the lower pool row); their
    similarities are carried on in float64 (P x depth).
    """
    if depth <= 0 or sims.shape[1] == 0:
        return None
    depth = min(depth, sims.shape[1])
    top = largest_columns(sims, depth)
    found = np.take_along_axis(sims, top, axis=1).astype(np.float64)
    # Each row's largest similarities are among those found: only when none of them is
    # nonzero is all of sims looked at (a first look at the P x N similarities, ~2.5 ms
    # of a chunk of 500 profiles, found a nonzero one in nearly every chunk).
    if not found.any() and not sims.any():
        return None
    weights = found.copy()
    weights[weights < 0] = 0.0
    block = pool_gram[top[:, :, None], top[:, None, :]]  # P x depth x depth
    norm = np.sqrt(np.maximum(np.einsum("pi,pij,pj->p", weights, block, weights), 0.0))
    text_dot = (weights * found).sum(axis=1)
    return Feedback(top=top, weights=weights, norm=norm, text_dot=text_dot)


def expanded_scores(
    text_scores: np.ndarray,
    fb: Feedback | None,
    gram: Callable[[sp.csr_matrix], np.ndarray],
    has_text: np.ndarray,
    *,
    pool_size: int,
    weight: float,
    overwrite: bool = False,
) -> np.ndarray:
    """Return the scores of the expanded queries: ``(t.x + weight c.x) / |t + weight c|``.

    ``gram`` multiplies a P x N matrix over the pool's ``pool_size`` rows by the pool x
    targets cosines (``p_i . x``; World.pool_targets); ``text_scores`` is ``t . x``. With
    ``overwrite`` the result is written into ``text_scores`` (the same numbers). The
    result has the precision of ``text_scores`` (float32 in a chunk).
    """
    if fb is None or weight <= 0:
        return text_scores
    usable = has_text & (fb.norm > 1e-12)
    if not usable.any():
        return text_scores
    scale = np.where(usable, weight / np.where(usable, fb.norm, 1.0), 0.0)
    # In the Gram's precision (float32: no upcast copy of it), added in that of
    # text_scores.
    mixer = (sp.diags(scale) @ feedback_mixer(fb, pool_size)).astype(np.float32)
    expanded: np.ndarray = np.add(text_scores, gram(mixer),
                                  out=text_scores if overwrite else None)
    # |t + weight c|^2 = |t|^2 + 2 weight t.c + weight^2 with |t| = |c| = 1.
    length = np.sqrt(1.0 + 2.0 * scale * fb.text_dot + np.where(usable, weight**2, 0.0))
    length[~usable] = 1.0
    expanded /= length.astype(expanded.dtype)[:, None]  # no cast of expanded through float64
    return expanded


def feedback_mixer(fb: Feedback, pool_size: int, *, depth: int = 0) -> sp.csr_matrix:
    """Return P x N: each query's feedback papers with their weights.

    With ``0 < depth`` below the feedback's own depth, only each query's ``depth``
    heaviest papers (the closest to it).
    """
    top, weights = fb.top, fb.weights
    if 0 < depth < top.shape[1]:  # the heaviest come first (feedback)
        top, weights = top[:, :depth], weights[:, :depth]
    count, width = top.shape
    return sp.csr_matrix(
        (weights.ravel(), (np.repeat(np.arange(count), width), top.ravel())),
        shape=(count, pool_size),
    )


def feedback_rows(
    fb: Feedback, pool: sp.csr_matrix, rows: np.ndarray
) -> sp.csr_matrix:
    """Return the feedback centroids of the given chunk rows as sparse tf-idf rows."""
    if rows.size == 0:
        return sp.csr_matrix((0, pool.shape[1]))
    centroid: sp.csr_matrix = normalize(
        feedback_mixer(fb, pool.shape[0])[rows] @ pool, norm="l2"
    )
    return centroid


def centroid_rows(
    compiled: Compiled, examples: Examples, rows: np.ndarray
) -> sp.csr_matrix:
    """Return the positive-example centroids of the given chunk rows (sparse, l2)."""
    if rows.size == 0:
        return sp.csr_matrix((0, examples.rows.shape[1]))
    wanted = np.isin(compiled.positive_owner, rows)
    where = {int(r): i for i, r in enumerate(rows)}
    owners = np.asarray([where[int(o)] for o in compiled.positive_owner[wanted]], dtype=np.intp)
    summed = membership(owners, rows.size, mean=False) @ examples.rows[
        compiled.positive_example[wanted]
    ]
    centroid: sp.csr_matrix = normalize(sp.csr_matrix(summed), norm="l2")
    return centroid


__all__ = [
    "TEXT_PARTS",
    "Compiled",
    "ExampleBank",
    "Examples",
    "Feedback",
    "centroid_rows",
    "compile_profiles",
    "expanded_scores",
    "feedback",
    "feedback_mixer",
    "feedback_rows",
    "membership",
]
