"""Each row's largest values of a wide score array, found without partitioning every row.

``np.argpartition(-values, depth - 1, axis=1)`` costs ~10 ns an entry, and a chunk of
500 profiles runs it over its 500 x 5,000 pool similarities (the feedback papers) and
its 500 x 2,000 scores (the digest's candidates). Here each row's columns are cut into
blocks of ``BLOCK`` and only the blocks' maxima are partitioned. The
``depth``-th largest block maximum is a bound: ``depth`` blocks hold an entry at least
that large, so the row's ``depth``-th largest value is too, and every entry of the
row's top ``depth`` reaches the bound. Only the entries that reach it (about ``depth``
a row on the benchmark's scores) are sorted. The result is exact: the same values as
the full partition, ties broken to the lower column.

A row where the bound lets through too many entries (a row of zeros, or of -inf but a
few: mostly ties at the bound) is chosen from its entries above the bound and its
first ties, the bound being its ``depth``-th value exactly when fewer than ``depth``
entries exceed it; else that value is found by np.partition over the whole row
(without the indices np.argpartition carries). NaN is read as -inf.
"""

from __future__ import annotations

import numpy as np

BLOCK = 16  # columns a block: the maxima are 1/BLOCK of the row
# A row whose bound lets more than this many times ``depth`` entries through is taken
# whole (_exactly): sorting them would cost more than a partition of the row.
MAX_SPREAD = 16


def largest_columns(values: np.ndarray, depth: int) -> np.ndarray:
    """Return rows x ``depth``: each row's columns of its ``depth`` largest values.

    Each row's columns are ordered by value, largest first, ties to the lower column;
    NaN counts as below every number (as it did negated in np.argpartition). ``values``
    is a 2-D float array with ``0 < depth <= values.shape[1]``.
    """
    rows, width = values.shape
    if not 0 < depth <= width:
        raise ValueError(f"depth {depth} outside 1..{width}")
    if np.isnan(values).any():
        values = np.where(np.isnan(values), -np.inf, values)
    blocks = (width + BLOCK - 1) // BLOCK
    if rows == 0 or blocks < 2 * depth:
        reaching = _exactly(values, depth)
    else:
        # Block j holds columns j, j + blocks, j + 2 * blocks, ...: the row cut into
        # BLOCK runs of ``blocks`` columns, the runs' maxima taken entry by entry
        # (contiguous slices: strided ones, a block of adjacent columns, took twice as
        # long on a chunk's similarities).
        maxima = values[:, :blocks].copy()
        for start in range(blocks, width, blocks):
            run = values[:, start : start + blocks]
            head = maxima[:, : run.shape[1]]
            np.maximum(head, run, out=head)
        bound = _kth_largest(maxima, depth)
        reaching = values >= bound[:, None]
        counts = np.count_nonzero(reaching, axis=1)
        whole = (counts < depth) | (counts > MAX_SPREAD * depth)
        if whole.any():
            reaching[whole] = _exactly(values[whole], depth, bound[whole], counts[whole])
    found = np.flatnonzero(reaching)
    r, c = np.divmod(found, width)
    # np.lexsort is stable and ``found`` runs by row, then column: ties stay in column
    # order.
    order = np.lexsort((-values.ravel()[found], r))
    starts = np.searchsorted(r[order], np.arange(rows))
    columns: np.ndarray = c[order][starts[:, None] + np.arange(depth)]
    return columns


def _exactly(
    values: np.ndarray, depth: int, bound: np.ndarray | None = None,
    reach: np.ndarray | None = None,
) -> np.ndarray:
    """Return a mask of each row's ``depth`` largest entries, ties to the lower column.

    ``bound``: per row, a value that is its ``depth``-th largest where fewer than
    ``depth`` entries exceed it and ``depth`` or more reach it (a row of zeros, or of
    -inf but a few: found without partitioning the row); ``reach``: how many entries
    reach it, per row (given with ``bound``).
    """
    if bound is None or reach is None:
        kth = _kth_largest(values, depth)
    else:
        kth = bound.copy()
        over = np.count_nonzero(values > bound[:, None], axis=1)
        unknown = (over >= depth) | (reach < depth)
        if unknown.any():
            kth[unknown] = _kth_largest(values[unknown], depth)
    above = values > kth[:, None]
    tied = values == kth[:, None]
    wanted = depth - np.count_nonzero(above, axis=1)
    first = np.cumsum(tied, axis=1, dtype=np.int32) <= wanted[:, None]
    chosen: np.ndarray = above | (tied & first)
    return chosen


def _kth_largest(values: np.ndarray, depth: int) -> np.ndarray:
    """Return each row's ``depth``-th largest value (the rows hold no NaN).

    Partitioned negated, at ``depth - 1``: np.partition at ``width - depth`` took ~15
    times as long on rows of -inf but a few (0.15 s for 500 x 5,000).
    """
    kth: np.ndarray = -np.partition(-values, depth - 1, axis=1)[:, depth - 1]
    return kth


__all__ = ["largest_columns"]
