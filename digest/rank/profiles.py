"""Compile a chunk of profiles into sparse query rows and example matrices.

Every signal has one defined effect:

- ``interests`` and ``keywords`` (keywords weigh more) form a text query, expanded by
  pseudo-relevance feedback through the background papers (cold start without a model);
- ``seeds`` and ``liked`` are positive examples: their centroid and their nearest
  neighbours score the batch;
- ``disliked`` papers are negative examples, subtracted from the centroid;
- ``categories`` and ``authors`` boost matching papers; ``exclude`` filters (scoring.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from digest.models import Paper, Profile
from digest.rank.vectors import Space, paper_text


@dataclass(frozen=True)
class Compiled:
    """A chunk of profiles as matrices over the shared vocabulary."""

    text: sp.csr_matrix  # P x V, l2 rows (zero row: no text)
    positives: sp.csr_matrix  # N+ x V, example rows of all profiles in the chunk
    positive_owner: np.ndarray  # N+ -> profile index in the chunk
    negatives: sp.csr_matrix  # N- x V
    negative_owner: np.ndarray
    positive_keys: tuple[str, ...] = ()

    @property
    def has_text(self) -> np.ndarray:
        """Return a bool per profile: does it have a text query."""
        return np.asarray(self.text.getnnz(axis=1) > 0)

    def has_examples(self, count: int) -> np.ndarray:
        """Return a bool per profile: does it have positive examples."""
        return np.bincount(self.positive_owner, minlength=count) > 0


def _membership(owners: np.ndarray, count: int) -> sp.csr_matrix:
    """Return the P x N matrix that averages each profile's example rows."""
    n = len(owners)
    member = sp.csr_matrix(
        (np.ones(n), (owners.astype(int), np.arange(n))), shape=(count, n)
    )
    sizes = np.asarray(member.sum(axis=1)).ravel()
    sizes[sizes == 0] = 1.0
    scaled: sp.csr_matrix = sp.diags(1.0 / sizes) @ member
    return scaled.tocsr()


def compile_profiles(
    profiles: Sequence[Profile],
    space: Space,
    known: dict[str, Paper],
    *,
    keyword_weight: float,
) -> Compiled:
    """Turn profiles into text rows and example rows; unknown example keys are skipped."""
    text = space.counts([p.interests for p in profiles])
    keywords = space.counts([" . ".join(p.keywords) for p in profiles])
    query = _tfidf(text, space) + keyword_weight * _tfidf(keywords, space)
    texts: list[str] = []
    owners: list[int] = []
    keys: list[str] = []
    neg_texts: list[str] = []
    neg_owners: list[int] = []
    for i, profile in enumerate(profiles):
        for key in dict.fromkeys((*profile.seeds, *profile.liked)):
            if key in known:
                texts.append(paper_text(known[key]))
                owners.append(i)
                keys.append(key)
        for key in dict.fromkeys(profile.disliked):
            if key in known:
                neg_texts.append(paper_text(known[key]))
                neg_owners.append(i)
    return Compiled(
        text=normalize(query.tocsr(), norm="l2"),
        positives=space.transform(texts),
        positive_owner=np.asarray(owners, dtype=int),
        negatives=space.transform(neg_texts),
        negative_owner=np.asarray(neg_owners, dtype=int),
        positive_keys=tuple(keys),
    )


def _tfidf(counts: sp.csr_matrix, space: Space) -> sp.csr_matrix:
    matrix = counts.copy()
    matrix.data = 1.0 + np.log(matrix.data)
    weighted: sp.csr_matrix = normalize((matrix @ sp.diags(space.idf)).tocsr(), norm="l2")
    return weighted


def expand(
    text: sp.csr_matrix, pool: sp.csr_matrix, *, depth: int, weight: float
) -> sp.csr_matrix:
    """Expand text queries with the mean of their top ``depth`` papers in ``pool``.

    Pseudo-relevance feedback (Rocchio without labels): a few words of interest become a
    full tf-idf profile by borrowing the vocabulary of the papers they retrieve.
    """
    if depth <= 0 or weight <= 0 or pool.shape[0] == 0 or text.nnz == 0:
        return text
    sims = (text @ pool.T).toarray()
    depth = min(depth, pool.shape[0])
    top = np.argpartition(-sims, depth - 1, axis=1)[:, :depth]
    rows = np.repeat(np.arange(text.shape[0]), depth)
    cols = top.ravel()
    values = np.take_along_axis(sims, top, axis=1).ravel()
    values[values < 0] = 0.0
    feedback = sp.csr_matrix((values, (rows, cols)), shape=(text.shape[0], pool.shape[0]))
    centroid = normalize(feedback @ pool, norm="l2")
    expanded = text + weight * centroid.multiply(np.asarray(text.getnnz(axis=1) > 0)[:, None])
    result: sp.csr_matrix = normalize(sp.csr_matrix(expanded), norm="l2")
    return result


def centroids(compiled: Compiled, count: int, *, negative_weight: float) -> sp.csr_matrix:
    """Return per profile the l2 centroid of positives minus a share of the negatives'."""
    positive = normalize(_membership(compiled.positive_owner, count) @ compiled.positives)
    if compiled.negatives.shape[0]:
        negative = normalize(_membership(compiled.negative_owner, count) @ compiled.negatives)
        positive = positive - negative_weight * negative
    result: sp.csr_matrix = sp.csr_matrix(positive)
    return result


def neighbours(
    compiled: Compiled, sims: np.ndarray, count: int, *, k: int
) -> np.ndarray:
    """Return P x B: the mean of each paper's ``k`` highest similarities to a profile's examples.

    ``sims`` is B x N+ (papers against example rows). A centroid blurs a profile with
    several topics; the nearest examples do not.
    """
    scores = np.zeros((count, sims.shape[0]))
    if compiled.positives.shape[0] == 0:
        return scores
    order = np.argsort(compiled.positive_owner, kind="stable")
    owners = compiled.positive_owner[order]
    bounds = np.searchsorted(owners, np.arange(count + 1))
    for i in range(count):
        lo, hi = bounds[i], bounds[i + 1]
        if lo == hi:
            continue
        block = sims[:, order[lo:hi]]
        kk = min(k, hi - lo)
        best = -np.partition(-block, kk - 1, axis=1)[:, :kk]
        scores[i] = best.mean(axis=1)
    return scores


def _features(paper: Paper, kind: str) -> dict[str, float]:
    if kind == "category":
        return {c: (1.0 if i == 0 else 0.5) for i, c in reversed(list(enumerate(paper.categories)))}
    return {" ".join(a.lower().split()): 1.0 for a in paper.authors}


def metadata_scores(
    compiled: Compiled,
    known: dict[str, Paper],
    targets: Sequence[Sequence[Paper]],
    count: int,
    *,
    kind: str,
) -> list[np.ndarray]:
    """Return P x D cosines between a profile's example papers and papers, by metadata.

    ``kind`` is "category" (arXiv categories, the primary weighing double) or "author".
    The categories and authors of the papers someone seeded or liked say what they read,
    beyond the words.
    """
    index: dict[str, int] = {}
    for key in compiled.positive_keys:
        for name in _features(known[key], kind):
            index.setdefault(name, len(index))
    if not index:
        return [np.zeros((count, len(t))) for t in targets]

    def matrix(papers: Sequence[Paper]) -> sp.csr_matrix:
        data, rows, cols = [], [], []
        for i, paper in enumerate(papers):
            for name, weight in _features(paper, kind).items():
                if name in index:
                    rows.append(i)
                    cols.append(index[name])
                    data.append(weight)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(papers), len(index)))

    examples = matrix([known[k] for k in compiled.positive_keys])
    profile_rows = normalize(_membership(compiled.positive_owner, count) @ examples)
    return [(profile_rows @ normalize(matrix(t)).T).toarray() for t in targets]
