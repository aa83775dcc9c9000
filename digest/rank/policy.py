"""The digest policy: which of the scored papers go into one email, in what order."""

from __future__ import annotations

import numpy as np

from digest.rank.largest import largest_columns


def select(
    scores: np.ndarray,
    passing: np.ndarray,
    similarity: np.ndarray,
    limit: int,
    *,
    diversity: float,
    top: float | None = None,
) -> list[int]:
    """Pick up to ``limit`` passing papers greedily by maximal marginal relevance.

    Each pick scores ``score - diversity * top * max_similarity_to_picked`` where ``top``
    is the best score of the day (unless given), so near-duplicates give way to the next
    distinct paper while unrelated papers keep their order. Ties go to the lower index
    (the smaller key).
    """
    candidates = np.flatnonzero(passing)
    if limit <= 0 or candidates.size == 0:
        return []
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    # Only the head can be chosen; looking a few places deeper is enough for MMR.
    pool = order[: max(limit * 3, limit + 10)]
    if diversity <= 0:
        return [int(j) for j in pool[:limit]]
    top = max(float(scores[pool[0]]) if top is None else top, 1e-9)
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


def select_many(
    scores: np.ndarray,
    passing: np.ndarray,
    similarity: np.ndarray,
    limits: np.ndarray,
    *,
    diversity: float,
    tops: np.ndarray | None = None,
) -> list[list[int]]:
    """Run :func:`select` for every row of ``scores`` at once (rows are profiles).

    The same greedy MMR, stepped for all rows together: each step is a handful of array
    operations over a rows x pool block instead of a Python loop per profile. The pool
    of each row is its best passing papers by score, ties to the lower column, cut at
    ``max(3 * limit, limit + 10)``. ``tops``: per row, the ``top`` of :func:`select`
    (NaN: its best passing score).
    """
    rows, width = scores.shape
    limits = np.asarray(limits, dtype=np.intp)
    if rows == 0 or width == 0 or int(limits.max(initial=0)) <= 0:
        return [[] for _ in range(rows)]
    sizes = np.maximum(limits * 3, limits + 10)
    depth = int(min(width, sizes.max()))
    # The scores, -inf where not passing (ordered by value, then column: the pool).
    passed = np.where(passing, scores, scores.dtype.type(-np.inf))
    pool = largest_columns(passed, depth)
    value0 = np.take_along_axis(passed, pool, axis=1)
    usable = np.isfinite(value0) & (np.arange(depth)[None, :] < sizes[:, None])
    if diversity <= 0:
        return [
            [int(j) for j in pool[r][usable[r]][: limits[r]]] for r in range(rows)
        ]
    top = np.where(usable[:, 0], value0[:, 0], 0.0)
    if tops is not None:
        top = np.where(np.isnan(tops), top, tops)
    top = np.maximum(top, 1e-9)
    penalty = diversity * top[:, None]
    closest = np.zeros((rows, depth))
    free = usable.copy()
    chosen = np.full((rows, int(limits.max())), -1, dtype=np.intp)
    # The rows still picking: a row leaves once it has its limit or nothing is left
    # to pick (its values only ever shrink to -inf), so later steps touch only the
    # rows that remain, compacted to contiguous arrays.
    ids: np.ndarray = np.arange(rows)
    arrays: list[np.ndarray] = [value0, penalty, closest, free, pool]
    for step in range(int(limits.max())):
        staying = limits[ids] > step
        if not staying.all():
            ids, arrays = ids[staying], [x[staying] for x in arrays]
        value0, penalty, closest, free, pool = arrays
        value = value0 - penalty * closest
        value[~free] = -np.inf
        pick = np.argmax(value, axis=1)
        staying = np.isfinite(value[np.arange(ids.size), pick])
        if not staying.all():
            ids, pick, arrays = ids[staying], pick[staying], [x[staying] for x in arrays]
            value0, penalty, closest, free, pool = arrays
        if ids.size == 0:
            break
        at = np.arange(ids.size)
        picked = pool[at, pick]
        chosen[ids, step] = picked
        free[at, pick] = False
        np.maximum(closest, similarity[pool, picked[:, None]], out=closest)
    return [[j for j in row if j >= 0] for row in chosen.tolist()]


def keep_followed(
    picks: list[list[int]],
    scores: np.ndarray,
    passing: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    limits: np.ndarray,
) -> list[list[int]]:
    """Return the picks with every passing paper of a followed author in its row's list.

    ``rows`` and ``cols`` are the (profile, paper) entries a followed author vouches
    for. A followed author's paper is always shown: the author boost lifts it, but a
    profile whose seed papers score the day's papers of their field higher can fill a
    short list before it. Such a paper takes the place of the last pick by no followed
    author, and stands before the first pick that scores lower than it. Rows where
    every vouched paper was picked are left as they are.
    """
    wanted: dict[int, list[int]] = {}
    for r, j in zip(rows.tolist(), cols.tolist(), strict=True):
        if passing[r, j]:
            wanted.setdefault(r, []).append(j)
    for r, theirs in wanted.items():
        chosen = picks[r]
        missing = sorted((j for j in set(theirs) if j not in chosen),
                         key=lambda j: (-float(scores[r, j]), j))
        if not missing:
            continue
        vouched = set(theirs)
        kept = list(chosen)
        for j in missing:
            if len(kept) >= int(limits[r]):
                others = [i for i, k in enumerate(kept) if k not in vouched]
                if not others:
                    break
                del kept[others[-1]]
            value = float(scores[r, j])
            at = next((i for i, k in enumerate(kept) if float(scores[r, k]) < value),
                      len(kept))
            kept.insert(at, j)
        picks[r] = kept
    return picks
