"""Categories and authors as matrices: built once per rank call, used by every chunk.

Two uses. Boosts and filters: which batch papers carry a profile's own categories or a
followed author (sparse profile rows times a batch incidence matrix, instead of a walk
over every paper's authors per profile). Example metadata: the categories and authors
of the papers someone seeded or liked say what they read, beyond the words; a profile's
summed example features against each paper's, as a cosine, each category in the sum
weighed by how rare it is among the day's papers (category_lift).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from digest.models import Paper
from digest.rank.authors import NameIndex, name_index, normalize_name
from digest.rank.precision import SCORES


def category_features(paper: Paper) -> dict[str, float]:
    """Return a paper's categories, the primary weighing double."""
    return {c: (1.0 if i == 0 else 0.5) for i, c in reversed(list(enumerate(paper.categories)))}


def author_features(paper: Paper) -> dict[str, float]:
    """Return a paper's authors (case and spacing folded)."""
    return {" ".join(a.lower().split()): 1.0 for a in paper.authors}


def category_shares(papers: Sequence[Paper]) -> dict[str, float]:
    """Return each category's share of the papers (those carrying it, any position)."""
    counts: dict[str, int] = {}
    for paper in papers:
        for category in set(paper.categories):
            counts[category] = counts.get(category, 0) + 1
    total = max(1, len(papers))
    return {category: count / total for category, count in counts.items()}


MIN_SHARE = 0.01  # a category rarer than this (or not among the pool's papers) counts as this


def category_lift(
    column: dict[str, int], shares: dict[str, float], power: float
) -> np.ndarray | None:
    """Return per category column ``share ** -power`` (None: no lift).

    A profile's categories, read off the papers its words retrieved or its example
    papers, lean towards the big fields (cs.LG, cs.AI) whatever it is about: nearly
    every paper carries one. Divided by how common each is, the field the papers have
    in common beyond the usual stands out.
    """
    if power <= 0 or not column:
        return None
    lift = np.empty(len(column))
    for name, j in column.items():
        lift[j] = rarity(shares.get(name, 0.0), power)
    return lift


def rarity(share: float, power: float) -> float:
    """Return the lift of a category with this share of the papers: ``share ** -power``."""
    return float(max(share, MIN_SHARE) ** -power)


@dataclass(frozen=True)
class Vocabulary:
    """Feature name -> column, grown as papers are added."""

    column: dict[str, int]

    def matrix(self, rows: Iterable[dict[str, float]], count: int) -> sp.csr_matrix:
        """Return one sparse row per feature dict (names not in the vocabulary dropped)."""
        data: list[float] = []
        indices: list[int] = []
        indptr = [0]
        column = self.column
        for features in rows:
            for name, weight in features.items():
                j = column.get(name)
                if j is not None:
                    indices.append(j)
                    data.append(weight)
            indptr.append(len(indices))
        return sp.csr_matrix(
            (np.asarray(data, dtype=np.float64), np.asarray(indices, dtype=np.intp),
             np.asarray(indptr, dtype=np.intp)),
            shape=(count, len(column)),
        )


def vocabulary(rows: Iterable[dict[str, float]]) -> Vocabulary:
    """Return the vocabulary of every feature name in ``rows``."""
    column: dict[str, int] = {}
    for features in rows:
        for name in features:
            column.setdefault(name, len(column))
    return Vocabulary(column)


def _unit(rows: sp.csr_matrix) -> sp.csr_matrix:
    """Return the rows l2-normalised (a matrix without columns as it is)."""
    if rows.shape[1] == 0:
        return rows
    unit: sp.csr_matrix = normalize(rows)
    return unit


# A kind whose scored papers fill at least this share of their feature matrix (the
# categories: a few dozen features, most papers in one of the big ones) is scored
# against a dense copy of it; a sparse one (the authors) stays a sparse product.
DENSE_SHARE = 0.01
DENSE_LIMIT = 4_000_000  # entries of the largest dense copy kept


@dataclass(frozen=True)
class Metadata:
    """Category and author features of some papers (raw) and of the scored papers (l2)."""

    rows: tuple[sp.csr_matrix, ...]  # per kind (category, author): papers x F
    targets: tuple[sp.csr_matrix, ...]  # per kind: T x F (l2 rows; see ExampleMetadata)
    # Per kind: the targets as a dense F x T array where they are dense enough (see
    # DENSE_SHARE), else None; float32, the precision of the scores they are added to.
    dense: tuple[np.ndarray | None, ...] = ()
    # Per kind: a weight per feature a profile's summed features are multiplied by
    # before the cosine (category_lift), or None.
    lift: tuple[np.ndarray | None, ...] = ()

    @classmethod
    def of(
        cls, rows: Sequence[sp.csr_matrix], targets: Sequence[sp.csr_matrix],
        lift: Sequence[np.ndarray | None] = (),
    ) -> Metadata:
        """Return the metadata with the dense copies of the dense kinds' targets."""
        return cls(rows=tuple(rows), targets=tuple(targets),
                   dense=tuple(dense_copy(matrix) for matrix in targets), lift=tuple(lift))


def dense_copy(targets: sp.csr_matrix) -> np.ndarray | None:
    """Return the targets as a dense F x T array if they are dense enough, else None."""
    size = targets.shape[0] * targets.shape[1]
    if 0 < size <= DENSE_LIMIT and targets.nnz >= DENSE_SHARE * size:
        return np.ascontiguousarray(targets.T.toarray(), dtype=SCORES)
    return None


Features = Callable[[Paper], dict[str, float]]


def _kinds(
    papers: Sequence[Paper], shares: dict[str, float] | None, lift: float
) -> Iterator[tuple[Features, Vocabulary, sp.csr_matrix, np.ndarray | None]]:
    """Yield per kind (categories, authors): its features, vocabulary, rows and lift."""
    for features in KINDS:
        found = [features(p) for p in papers]
        words = vocabulary(found)
        lifted = (category_lift(words.column, shares, lift)
                  if features is category_features and shares is not None else None)
        yield features, words, words.matrix(found, len(papers)), lifted


KINDS: tuple[Features, ...] = (category_features, author_features)


class ExampleMetadata:
    """The features of the scored papers (fixed for the day) and of the example papers.

    Example papers are added as profiles name them (ExampleBank's rows, in its order).
    The vocabulary starts with every feature of the scored papers, so each one's row
    holds all its categories and authors, whichever papers profiles named before: a
    profile's scores are the same in whatever order, and beside whichever others, it
    is ranked. A feature of an example paper no scored paper has gets a column of its
    own: it meets no paper, but counts in the norm of its profile's summed features.

    A scored paper's categories are a unit row; its authors are not normalised: a paper
    by the researcher someone reads is as much hers with nine co-authors as with one.
    (Before, only the features some example paper had counted in a scored paper's norm,
    so its co-authors unknown to the examples did not dilute it, but a profile's scores
    moved with the papers other profiles had named. With the authors unit over all of
    them, digest eval's author seed profiles fell 0.986 -> 0.869 at seed 1; not
    normalised: 0.986, every other row within 0.006.)

    ``shares`` (category_shares of the day's papers) and ``lift`` weigh the examples'
    categories by how rare they are (category_lift).
    """

    def __init__(
        self, targets: Sequence[Paper], shares: dict[str, float] | None = None,
        lift: float = 0.0,
    ) -> None:
        self._shares = shares
        self._lift = lift
        self._words: list[Vocabulary] = []
        self._targets: list[sp.csr_matrix] = []
        self._rows: list[list[sp.csr_matrix]] = []
        for features in KINDS:
            found = [features(p) for p in targets]
            words = vocabulary(found)
            self._words.append(words)
            matrix = words.matrix(found, len(targets))
            self._targets.append(matrix if features is author_features else _unit(matrix))
            self._rows.append([])
        self._dense = [dense_copy(matrix) for matrix in self._targets]  # made once
        self.count = 0  # example papers added
        self.current = self._metadata()

    def add(self, papers: Sequence[Paper]) -> Metadata:
        """Add example papers (after those added before); return the metadata of all."""
        if not papers:
            return self.current
        for features, words, rows in zip(KINDS, self._words, self._rows, strict=True):
            found = [features(p) for p in papers]
            column = words.column
            for names in found:
                for name in names:
                    column.setdefault(name, len(column))
            rows.append(words.matrix(found, len(papers)))
        self.count += len(papers)
        self.current = self._metadata()
        return self.current

    def _metadata(self) -> Metadata:
        rows: list[sp.csr_matrix] = []
        targets: list[sp.csr_matrix] = []
        dense: list[np.ndarray | None] = []
        lifts: list[np.ndarray | None] = []
        for features, words, parts, scored, fixed in zip(
                KINDS, self._words, self._rows, self._targets, self._dense, strict=True):
            width = len(words.column)
            # Earlier parts were built when the vocabulary was narrower: same columns.
            merged = (sp.vstack([_widened(part, width) for part in parts]).tocsr()
                      if parts else sp.csr_matrix((0, width)))
            parts[:] = [merged] if parts else []
            rows.append(merged)
            targets.append(_widened(scored, width))
            if fixed is not None and fixed.shape[0] < width:  # new columns meet no paper
                fixed = np.vstack([fixed, np.zeros((width - fixed.shape[0], fixed.shape[1]),
                                                   dtype=fixed.dtype)])
            dense.append(fixed)
            lifts.append(category_lift(words.column, self._shares, self._lift)
                         if features is category_features and self._shares is not None
                         else None)
        return Metadata(rows=tuple(rows), targets=tuple(targets), dense=tuple(dense),
                        lift=tuple(lifts))


def _widened(matrix: sp.csr_matrix, width: int) -> sp.csr_matrix:
    """Return the CSR matrix with columns added on the right (no entries in them)."""
    if matrix.shape[1] == width:
        return matrix
    return sp.csr_matrix((matrix.data, matrix.indices, matrix.indptr),
                         shape=(matrix.shape[0], width))


def example_metadata(
    example_papers: Sequence[Paper], targets: Sequence[Paper],
    shares: dict[str, float] | None = None, lift: float = 0.0,
) -> Metadata:
    """Build the features of the example papers and of the targets (ExampleMetadata)."""
    return ExampleMetadata(targets, shares, lift).add(example_papers)


def pool_metadata(
    pool: Sequence[Paper], targets: np.ndarray, shares: dict[str, float] | None = None,
    lift: float = 0.0,
) -> Metadata:
    """Build the features of the pool; ``targets`` are the scored pool rows.

    ``shares`` and ``lift`` as in example_metadata.
    """
    rows: list[sp.csr_matrix] = []
    scored: list[sp.csr_matrix] = []
    lifts: list[np.ndarray | None] = []
    for _, _, matrix, lifted in _kinds(pool, shares, lift):
        rows.append(matrix)
        scored.append(_unit(matrix[targets]))
        lifts.append(lifted)
    return Metadata.of(rows, scored, lifts)


def add_metadata_scores(
    out: np.ndarray,
    rows: np.ndarray,
    meta: Metadata,
    weights: sp.csr_matrix,
    kind: int,
    *,
    factor: float | np.ndarray,
) -> None:
    """Add ``factor`` times the metadata cosines to ``out[rows]`` in place.

    ``factor`` is one number, or an array with one per entry of ``rows``.

    The cosines are between each profile's weighted sum of rows and the targets:
    ``weights`` (one row per entry of ``rows``) picks each profile's papers, its seeds
    and liked papers or the feedback papers its words retrieved (the field they point
    to). The numbers of adding ``factor * (unit(weights @ rows) @ targets.T)`` computed
    as one sparse product: each cosine sums the same products in the same order (a
    sparse row times the dense targets adds each feature's row in the order a sparse
    product does), and a paper no feature reaches gains nothing. Dense kinds are one
    product into a dense block, in float32 (the dense copies' precision, precision.py);
    sparse ones add only the cosines that are there, computed in float64. Either is
    added in the precision of ``out``, without a float64 pass over it.
    """
    if rows.size == 0:
        return
    summed = sp.csr_matrix(weights @ meta.rows[kind])
    lift = meta.lift[kind] if kind < len(meta.lift) else None
    if lift is not None:
        summed.data *= lift[summed.indices]
    summed = _unit(summed)
    dense = meta.dense[kind] if kind < len(meta.dense) else None
    if dense is not None:
        scores: np.ndarray = summed.astype(dense.dtype) @ dense
        if isinstance(factor, np.ndarray):
            scores *= factor.astype(scores.dtype)[:, None]
        else:
            scores *= factor
        if rows.size == out.shape[0] and bool((rows == np.arange(rows.size)).all()):
            out += scores
        else:
            out[rows] += scores
        return
    found = (summed @ meta.targets[kind].T).tocoo()
    each = factor[found.row] if isinstance(factor, np.ndarray) else factor
    out[rows[found.row], found.col] += (each * found.data).astype(out.dtype)


def concentration(weights: sp.csr_matrix, rows: sp.csr_matrix) -> np.ndarray:
    """Return per profile the share of its papers that its most common feature is on.

    ``weights`` picks each profile's papers (1 each, or a weight each: the share is then
    of the weight), ``rows`` holds their features (1 where a paper has one: authors).
    Forty seed papers all by one author: 1; ten papers by ten different teams: 0.1; a
    profile with no papers: 0.
    """
    counts = sp.csr_matrix(weights @ rows)
    most = np.zeros(weights.shape[0])
    filled = np.flatnonzero(np.diff(counts.indptr))
    if filled.size:
        # Empty rows between two filled ones add no entries: each segment is one row's.
        most[filled] = np.maximum.reduceat(counts.data, counts.indptr[filled])
    total = np.asarray(weights.sum(axis=1), dtype=np.float64).ravel()
    share: np.ndarray = np.divide(most, total, out=np.zeros_like(most), where=total > 0)
    return share


@dataclass(frozen=True)
class BatchIndex:
    """Incidence matrices of the batch: primary category, any category, author."""

    categories: Vocabulary
    authors: Vocabulary
    primary: sp.csr_matrix  # F x B
    listed: sp.csr_matrix  # F x B
    written: sp.csr_matrix  # A x B
    # Per paper: folded name -> name as printed, last author first (reversed(): the
    # paper's order); a name folded twice keeps its first spelling.
    by_author: tuple[dict[str, str], ...]
    column: dict[str, int]  # paper key -> batch column
    names: NameIndex  # the authors' folded names (their columns) by surname and initial


def index_batch(papers: Sequence[Paper]) -> BatchIndex:
    """Index the batch's categories and authors once per rank call."""
    categories = vocabulary({c: 1.0 for c in p.categories} for p in papers)
    names = [{normalize_name(a): a for a in reversed(p.authors)} for p in papers]
    authors = vocabulary({n: 1.0 for n in d} for d in names)
    count = len(papers)
    primary = categories.matrix(
        ({p.primary_category: 1.0} if p.primary_category else {} for p in papers), count
    )
    listed = categories.matrix(({c: 1.0 for c in p.categories} for p in papers), count)
    written = authors.matrix(({n: 1.0 for n in d} for d in names), count)
    return BatchIndex(
        categories=categories,
        authors=authors,
        primary=primary.T.tocsr(),
        listed=listed.T.tocsr(),
        written=written.T.tocsr(),
        by_author=tuple(names),
        column={p.key: j for j, p in enumerate(papers)},
        names=name_index(authors.column),  # a vocabulary's names are in column order
    )


@dataclass(frozen=True)
class Boosts:
    """A chunk's boosts: P x B values, and the papers a followed author vouches for."""

    values: np.ndarray  # P x B, float32 (the scores' precision)
    vouched_rows: np.ndarray  # entries (chunk row, batch column) of the vouched papers
    vouched_cols: np.ndarray


def boost_values(
    index: BatchIndex,
    categories: Sequence[Sequence[str]],
    authors: Sequence[Sequence[str]],
    *,
    category_boost: float,
    author_boost: float,
    judged: Sequence[bool] | None = None,
) -> Boosts:
    """Return P x B boosts, and the papers a followed author vouches for as entries.

    A paper's category part is the largest of the profile's categories' parts
    (``category_boost`` where it is the primary one, half where it is cross-listed),
    looked up per distinct set of categories in the chunk rather than computed as P x B
    products; a followed author's boost is added where one is (a few entries, not a
    P x B mask): on every paper whose author the name, as typed, is (authors.name_follows:
    initials, a middle initial or not). In float32, the precision of the scores they are
    added to. ``judged``: per profile, whether it has words or example papers to judge a
    paper by; such a profile's loose names (an initial on a surname many share) boost
    their papers without vouching for them.
    """
    count = len(categories)
    width = index.primary.shape[1]
    column = index.categories.column
    sets: dict[tuple[int, ...], int] = {}
    which = np.fromiter(
        (sets.setdefault(tuple(sorted({j for c in cs if (j := column.get(c)) is not None})),
                         len(sets))
         for cs in categories),
        dtype=np.intp, count=count,
    )
    table = np.zeros((len(sets), width))
    wanted = [(i, list(key)) for key, i in sets.items() if key]
    if wanted:
        used = sorted({j for _, key in wanted for j in key})
        at = {j: n for n, j in enumerate(used)}
        primary = index.primary[used].toarray() > 0
        listed = index.listed[used].toarray() > 0
        part = np.zeros((len(used), width))
        part[listed] = category_boost / 2
        part[primary] = category_boost
        for i, key in wanted:
            table[i] = part[[at[j] for j in key]].max(axis=0)
    values = table.astype(SCORES)[which]
    width = len(index.authors.column)
    boosted = _entries(_follows(index.names, authors, width) @ index.written)
    values[boosted] += author_boost
    vouched = boosted
    if (judged is not None and any(judged)
            and any(index.names.loose(a) for names in authors for a in names)):
        vouched = _entries(_follows(index.names, authors, width, judged) @ index.written)
    return Boosts(values=values, vouched_rows=vouched[0], vouched_cols=vouched[1])


def _entries(product: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Return the (row, column) entries of a sparse product that are above zero."""
    found = product.tocoo()
    keep = found.data > 0
    return found.row[keep].astype(np.intp), found.col[keep].astype(np.intp)


def _follows(
    names: NameIndex, authors: Sequence[Sequence[str]], width: int,
    judged: Sequence[bool] | None = None,
) -> sp.csr_matrix:
    """Return P x A: 1 where a profile follows the batch's author of that column; with
    ``judged``, a judged profile's loose names (NameIndex.loose) left out."""
    indices: list[int] = []
    indptr = [0]
    for i, typed in enumerate(authors):
        strict = judged is not None and judged[i]
        found = {j for name in typed if not (strict and names.loose(name))
                 for j in names.columns(name)}
        indices.extend(sorted(found))
        indptr.append(len(indices))
    return sp.csr_matrix(
        (np.ones(len(indices)), np.asarray(indices, dtype=np.intp),
         np.asarray(indptr, dtype=np.intp)),
        shape=(len(authors), width),
    )


__all__ = [
    "BatchIndex",
    "Boosts",
    "ExampleMetadata",
    "Metadata",
    "add_metadata_scores",
    "boost_values",
    "example_metadata",
    "index_batch",
    "normalize_name",
    "pool_metadata",
]
