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


def test_a_wide_array_is_cut_into_blocks_and_rows_that_need_it_are_partitioned_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(5)
    values = rng.random((40, 5_000)).astype(np.float32) ** 4
    values[values < 0.01] = 0.0
    values[3] = 0.0  # every entry ties at the bound: far too many to sort
    values[7, :] = np.nan
    values[7, [10, 4_000]] = [0.5, 0.25]  # fewer than depth numbers
    whole_rows: list[int] = []
    exactly = largest._exactly

    def counting(part: np.ndarray, depth: int) -> np.ndarray:
        whole_rows.append(part.shape[0])
        return exactly(part, depth)

    monkeypatch.setattr(largest, "_exactly", counting)
    found = largest_columns(values, 10)
    np.testing.assert_array_equal(found, sorted_reference(values, 10))
    assert whole_rows == [2]  # rows 3 and 7 only; the other 38 came from the blocks
    assert found[7, :2].tolist() == [10, 4_000]


def test_depth_outside_the_row_is_refused() -> None:
    with pytest.raises(ValueError, match=r"depth 0 outside 1\.\.5"):
        largest_columns(np.zeros((2, 5)), 0)
    with pytest.raises(ValueError, match=r"depth 6 outside 1\.\.5"):
        largest_columns(np.zeros((2, 5)), 6)
