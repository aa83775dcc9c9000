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

A row where the bound lets through too many entries (a row of zeros, or mostly ties at
the bound) or too few (NaN, which compares false) has its exact ``depth``-th value
found by np.partition over the whole row (without the indices np.argpartition carries).
"""

from __future__ import annotations

import numpy as np

BLOCK = 16  # columns a block: the maxima are 1/BLOCK of the row
# A row whose bound lets more than this many times ``depth`` entries through is
# partitioned whole: sorting them would cost more than the partition.
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
            np.fmax(head, run, out=head)  # fmax: a NaN loses to a number
        bound = np.partition(maxima, blocks - depth, axis=1)[:, blocks - depth, None]
        reaching = values >= bound
        counts = np.count_nonzero(reaching, axis=1)
        whole = (counts < depth) | (counts > MAX_SPREAD * depth)
        if whole.any():
            reaching[whole] = _exactly(values[whole], depth)
    found = np.flatnonzero(reaching)
    r, c = np.divmod(found, width)
    # np.lexsort is stable and ``found`` runs by row, then column: ties stay in column
    # order. A NaN (only where a row has fewer than ``depth`` numbers) sorts last.
    order = np.lexsort((-values.ravel()[found], r))
    starts = np.searchsorted(r[order], np.arange(rows))
    columns: np.ndarray = c[order][starts[:, None] + np.arange(depth)]
    return columns


def _exactly(values: np.ndarray, depth: int) -> np.ndarray:
    """Return a mask of each row's ``depth`` largest entries, ties to the lower column."""
    if np.isnan(values).any():
        values = np.where(np.isnan(values), -np.inf, values)
    width = values.shape[1]
    kth = np.partition(values, width - depth, axis=1)[:, width - depth, None]
    above = values > kth
    tied = values == kth
    wanted = depth - np.count_nonzero(above, axis=1)
    chosen: np.ndarray = above | (tied & (np.cumsum(tied, axis=1) <= wanted[:, None]))
    return chosen


__all__ = ["largest_columns"]
