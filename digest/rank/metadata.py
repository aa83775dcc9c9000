"""Categories and authors as matrices: built once per rank call, used by every chunk.

Two uses. Boosts and filters: which batch papers carry a profile's own categories or a
followed author (sparse profile rows times a batch incidence matrix, instead of a walk
over every paper's authors per profile). Example metadata: the categories and authors
of the papers someone seeded or liked say what they read, beyond the words; a profile's
summed example features against each paper's, as a cosine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from digest.models import Paper


def normalize_name(name: str) -> str:
    """Return an author name folded for matching ('J.  Smith' == 'j. smith')."""
    return " ".join(name.lower().replace(".", ". ").split())


def category_features(paper: Paper) -> dict[str, float]:
    """Return a paper's categories, the primary weighing double."""
    return {c: (1.0 if i == 0 else 0.5) for i, c in reversed(list(enumerate(paper.categories)))}


def author_features(paper: Paper) -> dict[str, float]:
    """Return a paper's authors (case and spacing folded)."""
    return {" ".join(a.lower().split()): 1.0 for a in paper.authors}


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


@dataclass(frozen=True)
class Metadata:
    """Category and author features of some papers (raw) and of the scored papers (l2)."""

    rows: tuple[sp.csr_matrix, ...]  # per kind (category, author): papers x F
    targets: tuple[sp.csr_matrix, ...]  # per kind: T x F, l2 rows


def example_metadata(
    example_papers: Sequence[Paper], targets: Sequence[Paper]
) -> Metadata:
    """Build the features of the example papers, in their vocabulary, and of the targets."""
    rows: list[sp.csr_matrix] = []
    scored: list[sp.csr_matrix] = []
    for features in (category_features, author_features):
        found = [features(p) for p in example_papers]
        words = vocabulary(found)
        rows.append(words.matrix(found, len(example_papers)))
        scored.append(_unit(words.matrix((features(p) for p in targets), len(targets))))
    return Metadata(rows=tuple(rows), targets=tuple(scored))


def pool_metadata(pool: Sequence[Paper], targets: np.ndarray) -> Metadata:
    """Build the features of the pool; ``targets`` are the scored pool rows."""
    rows: list[sp.csr_matrix] = []
    scored: list[sp.csr_matrix] = []
    for features in (category_features, author_features):
        found = [features(p) for p in pool]
        matrix = vocabulary(found).matrix(found, len(pool))
        rows.append(matrix)
        scored.append(_unit(matrix[targets]))
    return Metadata(rows=tuple(rows), targets=tuple(scored))


def metadata_scores(meta: Metadata, weights: sp.csr_matrix, kind: int) -> np.ndarray:
    """Return P x T cosines between each profile's weighted sum of rows and the targets.

    ``weights`` (P x rows) picks each profile's papers: its seeds and liked papers, or
    the feedback papers its words retrieved (the field they point to).
    """
    summed = _unit(sp.csr_matrix(weights @ meta.rows[kind]))
    scores: np.ndarray = (summed @ meta.targets[kind].T).toarray()
    return scores


@dataclass(frozen=True)
class BatchIndex:
    """Incidence matrices of the batch: primary category, any category, author."""

    categories: Vocabulary
    authors: Vocabulary
    primary: sp.csr_matrix  # F x B
    listed: sp.csr_matrix  # F x B
    written: sp.csr_matrix  # A x B
    by_author: tuple[dict[str, str], ...]  # per paper: folded name -> name as printed
    column: dict[str, int]  # paper key -> batch column


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
    )


def boosts(
    index: BatchIndex,
    categories: Sequence[Sequence[str]],
    authors: Sequence[Sequence[str]],
    *,
    category_boost: float,
    author_boost: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Return P x B boosts, and which papers a followed author vouches for.

    A paper in one of the profile's categories as its primary category gains
    ``category_boost``, a cross-listing half of it; a followed author ``author_boost``.
    """
    count = len(categories)
    wanted = index.categories.matrix(({c: 1.0 for c in cs} for cs in categories), count)
    primary = (wanted @ index.primary).toarray() > 0
    listed = (wanted @ index.listed).toarray() > 0
    follows = index.authors.matrix(
        ({normalize_name(a): 1.0 for a in names} for names in authors), count
    )
    vouched = (follows @ index.written).toarray() > 0
    boost = np.zeros(primary.shape)
    boost[primary] += category_boost
    boost[listed & ~primary] += category_boost / 2
    boost[vouched] += author_boost
    return boost, vouched


__all__ = [
    "BatchIndex",
    "Metadata",
    "boosts",
    "example_metadata",
    "index_batch",
    "metadata_scores",
    "normalize_name",
    "pool_metadata",
]
