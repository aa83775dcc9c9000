"""Pure ranking: a batch of papers x every profile -> one ranked list per profile.

No I/O, no clock, no database. The pipeline passes the earlier papers that profiles
refer to (``history``) and the vectorizer state from the day before (``state``), and
stores the state it gets back.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from digest.models import Paper, Profile, ScoredPaper
from digest.rank.scoring import RankOptions, score_batch


@dataclass(frozen=True)
class RankResult:
    """One ranked list per profile (in the order given), and the state to store."""

    rankings: list[list[ScoredPaper]]
    state: bytes
    # Per profile: True when nothing in the batch cleared the relevance threshold, so
    # the pipeline may send a "nothing relevant today" note or nothing at all.
    nothing_relevant: list[bool] = field(default_factory=list)
    # Per profile: the calibrated score a paper had to reach to be listed.
    thresholds: list[float] = field(default_factory=list)


def rank(
    batch: Sequence[Paper],
    profiles: Sequence[Profile],
    *,
    history: Sequence[Paper] = (),
    top_k: int | Sequence[int] = 10,
    exclude: Sequence[AbstractSet[str]] | None = None,
    popularity: Sequence[float] | None = None,
    state: bytes | None = None,
    options: RankOptions | None = None,
) -> RankResult:
    """Rank the batch for every profile in one batched pass."""
    n = len(profiles)
    limits = [int(top_k)] * n if isinstance(top_k, int) else [int(k) for k in top_k]
    if len(limits) != n:
        raise ValueError("top_k needs one limit per profile")
    excluded: list[AbstractSet[str]] = list(exclude) if exclude is not None else [set()] * n
    if len(excluded) != n:
        raise ValueError("exclude needs one set per profile")
    blends = [float(x) for x in popularity] if popularity is not None else [0.0] * n
    if len(blends) != n:
        raise ValueError("popularity needs one weight per profile")
    outcome = score_batch(
        batch,
        profiles,
        history=history,
        limits=limits,
        exclude=excluded,
        popularity=blends,
        state=state,
        options=options or RankOptions(),
    )
    return RankResult(
        rankings=outcome.rankings,
        state=outcome.state,
        nothing_relevant=outcome.empty,
        thresholds=outcome.thresholds,
    )


__all__ = ["RankOptions", "RankResult", "rank"]
