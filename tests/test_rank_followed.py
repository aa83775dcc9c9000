"""Followed authors: their papers are always in the list, however their names are typed.

Real data: corpus_mini (tests/data/rank), its last day as the batch and the days before
it as the history. Hand-made: the name forms of one invented author.
"""

from __future__ import annotations

import pytest

from digest.models import Paper, Profile
from digest.rank import RankOptions, rank
from tests.fixtures.corpus import mini_day


@pytest.fixture(scope="module")
def day() -> tuple[list[Paper], list[Paper]]:
    return mini_day()


# Real data.


def test_a_followed_authors_paper_is_listed_beside_seed_papers_that_score_higher(
    day: tuple[list[Paper], list[Paper]],
) -> None:
    # A reader of language-model papers (six seed papers) who also follows someone: the
    # seed papers' model scores the day's language-model papers above the author boost,
    # and the followed author's paper fell off a short list.
    batch, history = day
    seeds = tuple(p.key for p in history if "language model" in
                  f"{p.title} {p.abstract}".lower())[:6]
    assert len(seeds) == 6
    theirs = [p for p in batch if p.authors]
    profiles = [Profile(seeds=seeds, authors=(p.authors[0],)) for p in theirs]
    rankings = rank(batch, profiles, history=history, top_k=3,
                    options=RankOptions(processes=1)).rankings
    for paper, ranking in zip(theirs, rankings, strict=True):
        listed = [s.paper.key for s in ranking]
        assert paper.key in listed, (paper.authors[0], listed)
        assert len(listed) == 3
        assert ranking[listed.index(paper.key)].reason.startswith("by ")
