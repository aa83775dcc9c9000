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
from digest.rank.scoring import (
    RANK_LOCK,
    RankOptions,
    World,
    build_world,
    prepare_space,
    score_profiles,
)


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


class Ranker:
    """A day's batch prepared once, then ranked for any number of profile chunks.

    Preparing (vocabulary, background, Gram matrix, LSA fit) costs seconds whatever the
    number of profiles; a pipeline that ranks subscribers in chunks pays it once.
    """

    def __init__(
        self,
        batch: Sequence[Paper],
        *,
        history: Sequence[Paper] = (),
        state: bytes | None = None,
        options: RankOptions | None = None,
    ) -> None:
        self.options = options or RankOptions()
        # Sorting by key makes the column order, and so every tie-break, deterministic.
        self._papers = sorted({p.key: p for p in batch}.values(), key=lambda p: p.key)
        self._history = history
        self._space = prepare_space(state, history, self._papers)
        self.state = self._space.to_bytes()
        self._world: World | None = None
        self._known = {p.key for p in history} | {p.key for p in self._papers}

    def unknown(self, keys: AbstractSet[str]) -> set[str]:
        """Return the keys neither the history, the batch nor earlier ``extra`` held."""
        known = self._world.known if self._world is not None else self._known
        return {k for k in keys if k not in known}

    def rank(
        self,
        profiles: Sequence[Profile],
        *,
        top_k: int | Sequence[int] = 10,
        exclude: Sequence[AbstractSet[str]] | None = None,
        popularity: Sequence[float] | None = None,
        extra: Sequence[Paper] = (),
    ) -> RankResult:
        """Rank the batch for every profile; ``extra``: named papers not in the history."""
        n = len(profiles)
        limits = [int(top_k)] * n if isinstance(top_k, int) else [int(k) for k in top_k]
        if len(limits) != n:
            raise ValueError("top_k needs one limit per profile")
        # No list is longer than the batch; the selection allocates a row of `limit`
        # slots per profile, so "every paper" asked as 10**9 took 298 GiB for 40 profiles.
        limits = [min(k, len(self._papers)) for k in limits]
        excluded: list[AbstractSet[str]] = list(exclude) if exclude is not None else [set()] * n
        if len(excluded) != n:
            raise ValueError("exclude needs one set per profile")
        blends = [float(x) for x in popularity] if popularity is not None else [0.0] * n
        if len(blends) != n:
            raise ValueError("popularity needs one weight per profile")
        if not self._papers or not profiles or not self._space.terms:
            # No papers, or no word yet seen twice (a first tiny batch): nothing to
            # match on, so nothing is relevant today; the vocabulary grows with the days.
            return RankResult([[] for _ in profiles], self.state, [True] * n, [0.0] * n)
        with RANK_LOCK:  # forked scorers need no other thread inside ranking code
            if self._world is None:  # prepared on first use: the state alone needs none
                self._world = build_world(self._papers, self._space, self._history,
                                          self.options)
            rankings, empty, thresholds = score_profiles(
                self._world, profiles, extra=extra, limits=limits, exclude=excluded,
                popularity=blends, options=self.options,
            )
        return RankResult(rankings, self.state, empty, thresholds)


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
    ranker = Ranker(batch, history=history, state=state, options=options)
    return ranker.rank(profiles, top_k=top_k, exclude=exclude, popularity=popularity)


__all__ = ["RankOptions", "RankResult", "Ranker", "rank"]
