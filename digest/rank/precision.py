"""The precision of a chunk's large score arrays: float32.

Every P x T and P x N array a chunk of profiles builds (its queries against the pool,
the text, example and metadata scores, the boosts, the blends of them) is float32, and
so is every matrix multiplied into one (the pool's columns, the LSA targets, the dense
metadata targets; the Gram matrices already were). Half the bytes go through memory on
each pass over them and the LSA product runs in single-precision BLAS. Measured on the
benchmark's papers and profiles (chunks of 500, paired with the float64 code on a busy
two-core box): 12-14% of a chunk's CPU, 16-18% of the steps before the reasons.

Why float32 is enough: the scores are cosines, and standardised LSA scores put on the
cosine scale, mostly below 1 and each a sum of at most a few hundred products; float32
keeps them to about one part in ten million of their size, below the sixth decimal
users are shown (that last digit may differ from a float64 run, and near-ties may
swap; on 2,000 benchmark profiles no list changed). What stays float64: the
per-profile vectors and solves (ridge models, centroids, their standardisation), the
feedback weights, the relevance bars, and every number handed back (scores and
thresholds are Python floats, rounded to 6 decimals).
"""

from __future__ import annotations

import numpy as np

SCORES = np.float32

__all__ = ["SCORES"]
