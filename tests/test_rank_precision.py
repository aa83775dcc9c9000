"""The chunk's float32 score arrays (digest/rank/precision.py) rank as float64 ones do.

The same profiles ranked with the scores' precision set to float64 (every P x T array
and the matrices multiplied into them, as before float32) and to float32: the same
lists and reasons, scores and bars within the float32 rounding of the sixth decimal,
and what comes back is Python floats rounded to 6 decimals either way.
"""

from __future__ import annotations

import numpy as np
import pytest

from digest.evaluate import load_corpus
from digest.models import Paper, Profile
from digest.rank import RankOptions, RankResult, metadata, rank, scoring
from tests.test_rank_chunk import MINI


@pytest.fixture(scope="module")
def day() -> tuple[list[Paper], list[Paper]]:
    papers = load_corpus(MINI)
    days = sorted({p.published for p in papers if p.published})
    batch = [p for p in papers if p.published in days[-2:]]
    history = [p for p in papers if p.published not in days[-2:]]
    return batch, history


def profiles_of(batch: list[Paper], history: list[Paper]) -> list[Profile]:
    author = batch[0].authors[0]
    return [
        Profile(interests=history[0].title, categories=("cs.LG",)),
        Profile(interests="graph neural networks", keywords=("message passing",)),
        Profile(seeds=(history[3].key, history[40].key), categories=("cs.CV", "cs.LG")),
        Profile(interests="language models", liked=(history[7].key,),
                disliked=(history[8].key,)),
        Profile(liked=(batch[0].key,), authors=(author,)),
        Profile(interests="zzzq qqqx"),
        *(Profile(interests=paper.title) for paper in history[100:140]),
        *(Profile(seeds=(paper.key,)) for paper in history[200:220]),
    ]


def ranked(
    monkeypatch: pytest.MonkeyPatch, day: tuple[list[Paper], list[Paper]], dtype: type
) -> RankResult:
    with monkeypatch.context() as patch:
        for module in (scoring, metadata):
            patch.setattr(module, "SCORES", dtype)
        batch, history = day
        return rank(batch, profiles_of(batch, history), history=history, top_k=10,
                    options=RankOptions(lsa_dims=48, processes=1))


def test_float32_scores_rank_as_float64_ones(
    monkeypatch: pytest.MonkeyPatch, day: tuple[list[Paper], list[Paper]]
) -> None:
    wide = ranked(monkeypatch, day, np.float64)
    narrow = ranked(monkeypatch, day, np.float32)
    assert sum(map(len, narrow.rankings)) >= 300
    for a, b in zip(wide.rankings, narrow.rankings, strict=True):
        assert [s.paper.key for s in a] == [s.paper.key for s in b]
        assert [s.reason for s in a] == [s.reason for s in b]
        for x, y in zip(a, b, strict=True):
            assert type(y.score) is float and round(y.score, 6) == y.score
            assert abs(x.score - y.score) <= 1.5e-6
    assert narrow.nothing_relevant == wide.nothing_relevant
    for bar, narrow_bar in zip(wide.thresholds, narrow.thresholds, strict=True):
        assert type(narrow_bar) is float and abs(bar - narrow_bar) <= 1.5e-6
