"""The digest policy: which of the scored papers go into one email, in what order."""

from __future__ import annotations

import numpy as np


def select(
    scores: np.ndarray,
    passing: np.ndarray,
    similarity: np.ndarray,
    limit: int,
    *,
    diversity: float,
) -> list[int]:
    """Pick up to ``limit`` passing papers greedily by maximal marginal relevance.

    Each pick scores ``score - diversity * top * max_similarity_to_picked`` where ``top``
    is the best score of the day, so near-duplicates give way to the next distinct paper
    while unrelated papers keep their order. Ties go to the lower index (the smaller key).
    """
    candidates = np.flatnonzero(passing)
    if limit <= 0 or candidates.size == 0:
        return []
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    # Only the head can be chosen; looking a few places deeper is enough for MMR.
    pool = order[: max(limit * 3, limit + 10)]
    if diversity <= 0:
        return [int(j) for j in pool[:limit]]
    top = max(float(scores[pool[0]]), 1e-9)
    chosen: list[int] = []
    closest = np.zeros(pool.size)
    free = np.ones(pool.size, dtype=bool)
    while len(chosen) < limit and free.any():
        value = scores[pool] - diversity * top * closest
        value[~free] = -np.inf
        pick = int(np.argmax(value))  # first maximum: the earlier, higher-scored paper
        free[pick] = False
        chosen.append(int(pool[pick]))
        closest = np.maximum(closest, similarity[pool, pool[pick]])
    return chosen
