"""Latent semantic analysis of the day's papers, and a batched linear model in it.

A truncated SVD of the tf-idf rows of recent papers plus the batch, fitted once per
rank() call (a second or two; the components are too big to store compactly, so they
are refitted from history rather than kept in the state). In that dense space papers
that share no words but share a topic ("grasping" / "manipulation") are close.

The model: per profile a ridge regression of "example or not" over the background rows
and the profile's examples, in the k-dimensional space. The background Gram matrix is
shared by every profile; each profile only adds its few example rows, so by the
Woodbury identity its solve is an (examples x examples) system, the profiles with as
many examples stacked into one batched np.linalg.solve (a profile with more examples
than dimensions solves a k x k system instead). No model is fitted per subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize

MAX_LSA_TERMS = 20000  # most frequent pool terms the SVD is fitted on


@dataclass(frozen=True)
class Lsa:
    """A fitted projection from tf-idf rows to l2-normalised k-dimensional rows."""

    columns: np.ndarray  # vocabulary columns the SVD sees
    components: np.ndarray  # k x len(columns)

    def project(self, rows: sp.csr_matrix) -> np.ndarray:
        """Return the rows in LSA space, l2-normalised (a zero row stays zero)."""
        if rows.shape[0] == 0:
            return np.zeros((0, self.components.shape[0]))
        dense = np.asarray(rows[:, self.columns] @ self.components.T)
        projected: np.ndarray = normalize(dense)
        return projected


def fit_lsa(pool: sp.csr_matrix, dims: int, *, iterations: int = 4) -> Lsa | None:
    """Fit the SVD on the pool's most frequent terms; None when the pool is too small."""
    fitted = fit_lsa_projected(pool, dims, iterations=iterations)
    return fitted[0] if fitted is not None else None


def fit_lsa_projected(
    pool: sp.csr_matrix, dims: int, *, iterations: int = 4
) -> tuple[Lsa, np.ndarray] | None:
    """Fit as :func:`fit_lsa` does; also return ``project(pool)``.

    The fit computes the pool's rows times the components anyway; normalised, they are
    what :meth:`Lsa.project` gives for each pool row (the same product, row by row), so
    the pool is not projected a second time.
    """
    if dims <= 0 or pool.shape[0] < 3 * dims // 2 or pool.nnz == 0:
        return None
    df = np.bincount(pool.indices, minlength=pool.shape[1])
    nonzero = np.flatnonzero(df >= 2)
    if nonzero.size < dims + 1:
        return None
    keep = nonzero[np.argsort(-df[nonzero], kind="stable")[:MAX_LSA_TERMS]]
    columns = np.sort(keep)
    svd = TruncatedSVD(dims, algorithm="randomized", n_iter=iterations, random_state=0)
    transformed = np.asarray(svd.fit_transform(pool[:, columns]), dtype=np.float64)
    projected: np.ndarray = normalize(transformed)
    return Lsa(columns=columns, components=svd.components_.astype(np.float64)), projected


def background_inverse(background: np.ndarray, alpha: float) -> np.ndarray:
    """Return ``(B^T B + alpha I)^-1``, the part of every profile's ridge solve they share."""
    k = background.shape[1]
    inverse: np.ndarray = np.linalg.inv(background.T @ background + alpha * np.eye(k))
    return inverse


# Numbers a batched dual solve of profiles with the same number of examples may hold at
# once (its systems, and their rows and whitened rows): ~64 MB of float64.
DUAL_BUDGET = 8_000_000


def ridge_lsa(
    background: np.ndarray,
    examples: np.ndarray,
    owner: np.ndarray,
    labels: np.ndarray,
    count: int,
    *,
    alpha: float,
    inverse: np.ndarray | None = None,
) -> np.ndarray:
    """Return P x k weight vectors: one ridge model per profile, solved all at once.

    Minimises ``|B w|^2 + c_p * sum_i (e_i w - y_i)^2 + alpha |w|^2`` per profile p, with
    ``B`` the background rows (target 0), ``e_i`` the profile's examples (y = +1 liked or
    seed, -1 disliked) and ``c_p`` balancing the classes as arxiv-sanity's SVM does.
    ``inverse`` is ``(B^T B + alpha I)^-1`` when the caller has it already (one per day,
    shared by every chunk of profiles).

    Profiles are solved in groups of the same number of examples n: an n x n system each
    (the dual) while n is at most k, a k x k one (the primal) beyond. Stacked into one
    system padded to the chunk's largest n, one subscriber with 1,000 thumbs made every
    profile of the chunk a 1,000 x 1,000 system: ~6 GB and 40 s for a chunk of 500.
    """
    k = background.shape[1]
    weights = np.zeros((count, k))
    if examples.shape[0] == 0:
        return weights
    if inverse is None:
        inverse = background_inverse(background, alpha)
    whitened = examples @ inverse  # N x k: A^-1 e_i
    order = np.argsort(owner, kind="stable")
    sizes = np.bincount(owner, minlength=count)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    gram: np.ndarray | None = None
    for size in np.unique(sizes[sizes > 0]).tolist():
        members = np.flatnonzero(sizes == size)
        # Each member's examples in the order given: rows[j] are member j's n rows.
        rows = order[starts[members][:, None] + np.arange(size)[None, :]]
        y = labels[rows]
        # c_p: the background's weight over the positives', classes balanced.
        scale = background.shape[0] / np.maximum(1, (y > 0).sum(axis=1))
        if size > k:
            if gram is None:
                gram = background.T @ background + alpha * np.eye(k)
            weights[members] = _primal(gram, examples, rows, y, scale)
            continue
        step = max(1, DUAL_BUDGET // (size * (size + 2 * k)))
        for at in range(0, members.size, step):
            part = slice(at, at + step)
            e, f = examples[rows[part]], whitened[rows[part]]
            # Push-through identity: w = A^-1 E^T (I/c + E A^-1 E^T)^-1 y.
            system = e @ f.transpose(0, 2, 1)
            system[:, np.arange(size), np.arange(size)] += 1.0 / scale[part, None]
            dual = np.linalg.solve(system, y[part, :, None])[:, :, 0]
            weights[members[part]] = np.einsum("pn,pnk->pk", dual, f)
    return weights


def _primal(
    gram: np.ndarray, examples: np.ndarray, rows: np.ndarray, y: np.ndarray,
    scale: np.ndarray,
) -> np.ndarray:
    """Return the ridge weights of profiles with more examples than dimensions.

    ``(A + c E^T E) w = c E^T y``, one k x k system per profile (A = B^T B + alpha I).
    """
    solved = np.zeros((rows.shape[0], gram.shape[0]))
    for j in range(rows.shape[0]):
        e = examples[rows[j]]
        solved[j] = np.linalg.solve(gram + scale[j] * (e.T @ e), scale[j] * (e.T @ y[j]))
    return solved


__all__ = ["Lsa", "background_inverse", "fit_lsa", "fit_lsa_projected", "ridge_lsa"]
