"""The per-day preparation of the ranker: cheaper paths give the numbers the plain ones did."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from digest.rank import scoring


def _full_gram(rows: sp.csr_matrix, tail: int) -> tuple[np.ndarray, np.ndarray]:
    """The Gram matrix as the plain product gives it (every entry computed by its row)."""
    full = (rows @ rows.T.tocsc()).toarray()
    return full.astype(np.float32), full[tail:, tail:]


def _rows_in_orders(seed: int) -> sp.csr_matrix:
    """Random rows of magnitudes far apart, stored ascending, descending or shuffled."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 50))
    matrix = sp.random(n, 40, density=float(rng.uniform(0.02, 0.5)), format="csr",
                       random_state=int(rng.integers(1 << 30)))
    matrix.data = rng.random(matrix.data.size) * 10 ** rng.uniform(-3, 3, matrix.data.size)
    for r in range(n):
        a, b = matrix.indptr[r], matrix.indptr[r + 1]
        kind = int(rng.integers(3)) if seed % 2 else r * 3 // n  # shuffled runs, or three runs
        order = (np.arange(b - a), np.arange(b - a)[::-1], rng.permutation(b - a))[kind]
        matrix.indices[a:b] = matrix.indices[a:b][order]
        matrix.data[a:b] = matrix.data[a:b][order]
    matrix.has_sorted_indices = False
    return matrix


@pytest.mark.parametrize("seed", range(24))
def test_the_mirrored_gram_is_the_full_product_bit_for_bit(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "GRAM_BLOCK", 7)
    rows = _rows_in_orders(seed)
    tail = int(np.random.default_rng(seed).integers(0, rows.shape[0] + 1))
    gram, inner = scoring._gram(rows, tail)
    full, full_inner = _full_gram(rows, tail)
    assert np.array_equal(gram, full)
    assert np.array_equal(inner, full_inner)


def test_order_runs_group_rows_by_how_they_store_columns() -> None:
    rows = sp.csr_matrix(
        (np.ones(13), np.array([1, 2, 3, 5, 4, 2, 7, 9, 1, 3, 2, 6, 0]),
         np.array([0, 3, 6, 8, 8, 11, 13])),
        shape=(6, 10),
    )
    # ascending; descending; two entries (either way); empty; mixed; two entries
    assert scoring._order_runs(rows) == [(0, 1, 1), (1, 4, -1), (4, 6, 0)]
