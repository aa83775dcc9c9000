"""The ranker: real papers in, ranked lists with reasons out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digest.ingest.jsonl import load_jsonl
from digest.models import Paper, Profile
from digest.rank import rank
from digest.rank.vectors import space_from_bytes

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "digest" / "data" / "sample_batch.jsonl"
HF_PAGE = ROOT / "tests" / "data" / "rank" / "hf-papers-page.jsonl"


@pytest.fixture(scope="module")
def hf_batch() -> list[Paper]:
    lines = HF_PAGE.read_text(encoding="utf-8").splitlines()
    return [
        Paper(key=f"hf:{i}", title=rec["title"], abstract=rec["abstract"])
        for i, rec in enumerate(json.loads(line) for line in lines if line.strip())
    ]


@pytest.fixture(scope="module")
def sample() -> list[Paper]:
    return load_jsonl(SAMPLE)


def test_unlearning_profile_gets_unlearning_papers(hf_batch: list[Paper]) -> None:
    result = rank(hf_batch, [Profile(interests="machine unlearning")], top_k=10)
    titles = [s.paper.title.lower() for s in result.rankings[0]]
    assert len(titles) == 10
    assert all("unlearn" in t or "forget" in t or "eras" in t for t in titles[:8])
    assert "unlearning" in result.rankings[0][0].reason


def test_different_profiles_get_different_papers(hf_batch: list[Paper]) -> None:
    result = rank(
        hf_batch,
        [Profile(interests="machine unlearning"), Profile(keywords=("model merging",))],
        top_k=5,
    )
    first, second = ({s.paper.key for s in r} for r in result.rankings)
    assert first.isdisjoint(second)
    assert all("merg" in s.paper.title.lower() for s in result.rankings[1][:3])


def test_excluded_keys_never_appear(hf_batch: list[Paper]) -> None:
    profile = Profile(interests="machine unlearning")
    full = rank(hf_batch, [profile], top_k=10).rankings[0]
    sent = {s.paper.key for s in full[:5]}
    again = rank(hf_batch, [profile], top_k=10, exclude=[sent]).rankings[0]
    assert sent.isdisjoint(s.paper.key for s in again)
    assert len(again) == 10


def test_exclude_keywords_filter_papers(hf_batch: list[Paper]) -> None:
    profile = Profile(interests="large language models", exclude=("unlearning",))
    ranked = rank(hf_batch, [profile], top_k=20).rankings[0]
    assert ranked
    for scored in ranked:
        assert "unlearning" not in f"{scored.paper.title} {scored.paper.abstract}".lower()


def test_ties_break_by_key_whatever_the_input_order() -> None:
    papers = [Paper(key=f"arxiv:2601.0000{i}", title="graph neural networks") for i in range(5)]
    profile = Profile(interests="graph neural networks")
    forward = rank(papers, [profile], top_k=5).rankings[0]
    backward = rank(list(reversed(papers)), [profile], top_k=5).rankings[0]
    assert [s.paper.key for s in forward] == sorted(p.key for p in papers)
    assert [s.paper.key for s in backward] == [s.paper.key for s in forward]


def test_followed_author_is_boosted_and_named(sample: list[Paper]) -> None:
    author = sample[3].authors[0]
    ranked = rank(sample, [Profile(authors=(author,))], top_k=3).rankings[0]
    assert ranked[0].paper.key == sample[3].key
    assert ranked[0].reason == f"by {author}"


def test_state_round_trips_and_is_not_pickle(sample: list[Paper]) -> None:
    first = rank(sample[:100], [Profile(interests="video")], top_k=3)
    space = space_from_bytes(first.state)
    assert space.to_bytes() == first.state
    second = rank(sample[100:], [Profile(interests="video")], top_k=3, state=first.state)
    grown = space_from_bytes(second.state)
    assert grown.n_docs > space.n_docs
    # A re-run of the same day does not count the batch twice.
    rerun = rank(sample[100:], [Profile(interests="video")], top_k=3, state=second.state)
    assert rerun.state == second.state


def test_empty_profile_and_empty_batch_return_nothing(sample: list[Paper]) -> None:
    result = rank(sample, [Profile()], top_k=5)
    assert result.rankings == [[]]
    assert result.nothing_relevant == [True]
    assert rank([], [Profile(interests="x")]).rankings == [[]]
