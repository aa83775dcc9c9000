"""largest_columns: each row's largest values, against a full stable sort (hand-made
arrays: random, tied, mostly zero, NaN and -inf rows, both sides of the block cut)."""

from __future__ import annotations

import numpy as np
import pytest

from digest.rank import largest
from digest.rank.largest import largest_columns


def sorted_reference(values: np.ndarray, depth: int) -> np.ndarray:
    """Every row sorted whole: value descending, then column; NaN below every number."""
    clean = np.where(np.isnan(values), -np.inf, values)
    columns = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    return np.lexsort((columns, -clean), axis=1)[:, :depth]


def shaped(rng: np.random.Generator, kind: str, rows: int, width: int,
           dtype: type) -> np.ndarray:
    values = rng.random((rows, width)).astype(dtype)
    if kind == "tied":
        values = np.round(values * 4) / 4
    elif kind == "sparse":
        values[values < 0.9] = 0.0
    elif kind == "nan":
        values[rng.random((rows, width)) < 0.3] = np.nan
    elif kind == "mostly-nan":
        values[rng.random((rows, width)) < 0.97] = np.nan
    elif kind == "-inf":
        values[rng.random((rows, width)) < 0.6] = -np.inf
    values[0] = 0.0  # a row of ties throughout
    return values


@pytest.mark.parametrize("kind", ["random", "tied", "sparse", "nan", "mostly-nan", "-inf"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_same_columns_as_a_full_sort(kind: str, dtype: type) -> None:
    rng = np.random.default_rng(len(kind))
    for _ in range(60):
        rows, width = int(rng.integers(1, 30)), int(rng.integers(1, 700))
        depth = int(rng.integers(1, min(width, 40) + 1))
        values = shaped(rng, kind, rows, width, dtype)
        found = largest_columns(values, depth)
        np.testing.assert_array_equal(found, sorted_reference(values, depth))


def test_a_wide_array_is_cut_into_blocks_and_only_rows_that_need_it_are_partitioned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(5)
    values = rng.random((40, 5_000)).astype(np.float32) ** 4
    values[values < 0.01] = 0.0
    values[3] = 0.0  # every entry ties at the bound: its first ten columns
    values[7, :] = np.nan
    values[7, [10, 4_000]] = [0.5, 0.25]  # two numbers, then the first NaN (as -inf)
    blocks = -(-5_000 // largest.BLOCK)  # column j is in block j mod blocks
    values[11] = 0.1
    values[11, np.arange(12) * blocks] = 0.9  # twelve at the top, all in one block
    partitioned: list[int] = []
    kth_largest = largest._kth_largest

    def counting(part: np.ndarray, depth: int) -> np.ndarray:
        partitioned.append(part.shape[0])
        return kth_largest(part, depth)

    monkeypatch.setattr(largest, "_kth_largest", counting)
    found = largest_columns(values, 10)
    np.testing.assert_array_equal(found, sorted_reference(values, 10))
    # The blocks' maxima of every row, then the whole of row 11 alone: rows 3 and 7
    # let every entry through, but fewer than ten exceed the bound, so it is their
    # tenth value.
    assert partitioned == [40, 1]
    assert found[3].tolist() == list(range(10))
    assert found[7, :3].tolist() == [10, 4_000, 0]
    assert found[11].tolist() == (np.arange(10) * blocks).tolist()


def test_depth_outside_the_row_is_refused() -> None:
    with pytest.raises(ValueError, match=r"depth 0 outside 1\.\.5"):
        largest_columns(np.zeros((2, 5)), 0)
    with pytest.raises(ValueError, match=r"depth 6 outside 1\.\.5"):
        largest_columns(np.zeros((2, 5)), 6)
