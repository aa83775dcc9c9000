"""Keywords, exclusions and interests typed in one spelling of a two-part term match the
others.

"multi-agent", "multi agent" and "multiagent" are one term (digest/rank/joins.py, the
pairs measured by bench/joined_words.py). Real data: the sample batch
(digest/data/sample_batch.jsonl, one real arXiv day). Hand-made:
tests/data/rank/joined_spellings_handmade.jsonl (a spelling as typed, a phrase as an
invented paper writes it, whether the one is the other, and why).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from digest.ingest.jsonl import load_jsonl
from digest.models import Paper, Profile
from digest.rank import rank
from digest.rank.joins import other_spellings, written_as
from digest.rank.scoring import SCORES, spellings
from digest.rank.vectors import update_space

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "digest" / "data" / "sample_batch.jsonl"
HANDMADE = ROOT / "tests" / "data" / "rank" / "joined_spellings_handmade.jsonl"
CASES = [json.loads(line) for line in HANDMADE.read_text(encoding="utf-8").splitlines()]
SAME = [c for c in CASES if c["same"]]
OTHER = [c for c in CASES if not c["same"]]


@pytest.fixture(scope="module")
def sample() -> list[Paper]:
    return load_jsonl(SAMPLE)


def _text(paper: Paper) -> str:
    return f"{paper.title} {paper.abstract}".lower()


# Hand-made.


def _left_out(excluded: str, writes: str) -> bool:
    """Return whether excluding ``excluded`` leaves out a (hand-made) paper writing
    ``writes``, while the papers beside it stay."""
    paper = Paper(key="arxiv:2601.00001", title=f"Graph neural networks: {writes}")
    others = [Paper(key=f"arxiv:2601.{i:05d}", title=f"Graph neural networks for {topic}")
              for i, topic in enumerate(("molecules", "proteins", "traffic"), start=90)]
    profile = Profile(interests="graph neural networks", exclude=(excluded,))
    shown = {s.paper.key for s in rank([paper, *others], [profile], top_k=4).rankings[0]}
    assert {p.key for p in others} <= shown
    return paper.key not in shown


@pytest.mark.parametrize("case", SAME, ids=[f"{c['typed']}|{c['paper_writes']}" for c in SAME])
def test_an_exclusion_leaves_out_a_paper_writing_the_term_in_another_spelling(
    case: dict[str, str],
) -> None:
    # Excluding "multi-agent" let a paper on "multiagent reinforcement learning" through.
    assert _left_out(case["typed"], case["paper_writes"])


@pytest.mark.parametrize("case", OTHER,
                         ids=[f"{c['typed']}|{c['paper_writes']}" for c in OTHER])
def test_an_exclusion_does_not_leave_out_words_that_only_look_like_its_spellings(
    case: dict[str, str],
) -> None:
    assert not _left_out(case["typed"], case["paper_writes"])


@pytest.mark.parametrize("case", SAME, ids=[f"{c['typed']}|{c['paper_writes']}" for c in SAME])
def test_a_keyword_finds_a_paper_writing_it_in_another_spelling_and_names_it_as_typed(
    case: dict[str, str],
) -> None:
    # Two papers write the other spelling (a word of one paper is no term of the day's
    # vocabulary), three others are on other topics.
    writes = case["paper_writes"]
    papers = [Paper(key="arxiv:2601.00001", title=f"A study of {writes}",
                    abstract=f"We look at {writes} in robotics."),
              Paper(key="arxiv:2601.00002", title=f"Scaling {writes}",
                    abstract=f"How {writes} scales with compute."),
              *[Paper(key=f"arxiv:2601.{i:05d}", title=f"Protein folding with {topic}",
                      abstract=f"We fold proteins with {topic}.")
                for i, topic in enumerate(("lattices", "sampling", "physics"), start=90)]]
    ranking = rank(papers, [Profile(keywords=(case["typed"],))], top_k=5).rankings[0]
    assert [s.paper.key for s in ranking[:2]] == ["arxiv:2601.00001", "arxiv:2601.00002"]
    typed = " ".join(case["typed"].split())
    assert [s.reason for s in ranking[:2]] == [f"matches: {typed}"] * 2


@pytest.mark.parametrize(("typed", "spellings"), [
    ("multi-agent", ("multiagent",)),
    ("Multi Agent", ("multiagent",)),
    ("multiagent systems", ("multi agent systems",)),
    ("Fine-Tuning", ("finetuning",)),
    ("finetuning", ("fine tuning",)),
    ("data sets", ("datasets",)),
    ("X-ray", ("xray",)),
    # No paper writes "incontext"; "on line", "with in", "re search" are other words.
    ("in-context learning", ()),
    ("online", ()),
    ("within", ()),
    ("research", ()),
    ("graph neural networks", ()),
])
def test_which_other_spellings_a_keyword_is_looked_for_in(
    typed: str, spellings: tuple[str, ...]
) -> None:
    assert other_spellings(typed) == spellings


def test_a_long_keyword_is_looked_for_in_a_bounded_number_of_spellings() -> None:
    # Four joinable pairs make 16 spellings; at most 8 are looked for.
    found = other_spellings("pre-trained multi-modal real-time fine-tuned models")
    assert len(found) == 7 and len(set(found)) == 7
    assert "pretrained multimodal realtime finetuned models" not in found


SPLIT = {"zeroshot": ("zero", "shot"), "finetuning": ("fine", "tuning")}
JOIN = {("multi", "agent"): "multiagent", ("pre", "trained"): "pretrained"}
LEADING = frozenset(SPLIT) | frozenset(first for first, _ in JOIN)


@pytest.mark.parametrize(("typed", "written"), [
    ("Zeroshot classification; Multi-Agent RL", "zero shot classification; multiagent RL"),
    ("pre trained models and finetuning", "pretrained models and fine tuning"),
    # A line's end, a ";" or a sentence's "." is no hyphen: parts stay apart.
    ("robust multi\nagent systems", "robust multi\nagent systems"),
    ("multi; agent", "multi; agent"),
    ("Multi. Agent", "Multi. Agent"),
    ("graph neural networks", "graph neural networks"),
    ("Zéroshot", "zero shot"),
])
def test_how_interests_are_written_for_the_vocabulary(typed: str, written: str) -> None:
    assert written_as(typed, SPLIT, JOIN, LEADING) == written


def test_interests_rank_alike_in_every_spelling_of_a_two_part_term() -> None:
    # Hand-made: two papers write "fine-tuning", two "finetuning", three are on other
    # things with the profile's other words. Typed any of the three ways, the interests
    # are one query: the same list, the papers on the term first, each reason naming
    # the term as its paper writes it.
    papers = [Paper(key="arxiv:2601.00001", title="Fine-tuning language models cheaply",
                    abstract="We study fine-tuning of language models with adapters."),
              Paper(key="arxiv:2601.00002", title="Fine-tuning at scale",
                    abstract="Fine-tuning language models on many tasks at once."),
              Paper(key="arxiv:2601.00003", title="Finetuning language models for code",
                    abstract="Finetuning language models on programs."),
              Paper(key="arxiv:2601.00004", title="Robust finetuning",
                    abstract="Finetuning language models under distribution shift."),
              *[Paper(key=f"arxiv:2601.{i:05d}", title=f"Language models for {topic}",
                      abstract=f"Language models applied to {topic} in practice.")
                for i, topic in enumerate(("chemistry", "law", "music"), start=90)]]
    on_term = {"arxiv:2601.00001", "arxiv:2601.00002", "arxiv:2601.00003",
               "arxiv:2601.00004"}
    lists = []
    for typed in ("finetuning language models", "fine-tuning language models",
                  "fine tuning language models"):
        ranking = rank(papers, [Profile(interests=typed)], top_k=7).rankings[0]
        lists.append([(s.paper.key, s.reason) for s in ranking])
        assert ranking[0].paper.key in on_term, typed
        for scored in ranking:
            if scored.paper.key in on_term:
                written = ("finetuning" if "finetuning" in _text(scored.paper)
                           else "fine-tuning")
                assert written in scored.reason, (typed, scored.reason)
    assert lists[0] == lists[1] == lists[2]


# Real data.


def test_an_exclusion_typed_hyphenated_leaves_out_the_days_papers_writing_it_joined(
    sample: list[Paper],
) -> None:
    # The sample day has 22 papers writing "multimodal" or "multi-modal": excluding
    # "multi-modal" left 10 papers writing "multimodal" in a 60-paper list.
    holding = {p.key for p in sample if re.search(r"multi[- ]?modal", _text(p))}
    assert len(holding) == 22
    for excluded in ("multi-modal", "multimodal", "Multi Modal"):
        profile = Profile(interests="vision language models video", exclude=(excluded,))
        ranking = rank(sample, [profile], top_k=60).rankings[0]
        assert len(ranking) == 60
        assert not holding & {s.paper.key for s in ranking}, excluded


def test_a_keyword_typed_joined_finds_the_days_papers_writing_it_hyphenated(
    sample: list[Paper],
) -> None:
    # A keyword of "finetuning" listed the day's 3 papers writing "finetuning", then
    # papers on other things ("related to your interests: embedding, ..."), and none of
    # the 10 writing "fine-tuning". Now its first 10 papers all hold the term, one of
    # the spellings or the other, whichever of them is typed.
    holding = {p.key for p in sample if re.search(r"fine[- ]?tuning", _text(p))}
    assert len(holding) == 13
    lists = {}
    for typed in ("finetuning", "fine-tuning", "Fine Tuning"):
        ranking = rank(sample, [Profile(keywords=(typed,))], top_k=10).rankings[0]
        lists[typed] = [s.paper.key for s in ranking]
        assert set(lists[typed]) <= holding, typed
        written = {p.key: "finetuning" in _text(p) for p in sample}
        if typed != "Fine Tuning":  # as typed; else as the paper writes it, or as typed
            assert {s.reason for s in ranking} == {f"matches: {typed}"}, typed
        else:
            assert {s.reason for s in ranking if written[s.paper.key]
                    and "fine-tuning" not in _text(s.paper)} == {"matches: Fine Tuning"}
    assert lists["finetuning"] == lists["fine-tuning"] == lists["Fine Tuning"]
    assert {p.key for p in sample if "finetuning" in _text(p)} & set(lists["finetuning"])


def test_a_keyword_with_a_stop_word_typed_joined_is_found_as_its_phrase(
    sample: list[Paper],
) -> None:
    # "fewshot" is one word of its own to the vocabulary, which the day's papers never
    # write: the profile got nothing of the 6 papers on "few-shot" learning.
    holding = sorted(p.key for p in sample if "few-shot" in _text(p))
    assert len(holding) == 6
    ranking = rank(sample, [Profile(keywords=("fewshot",))], top_k=10).rankings[0]
    assert sorted(s.paper.key for s in ranking[:6]) == holding
    assert {s.reason for s in ranking[:6]} == {"matches: fewshot"}


def test_interests_typed_in_any_spelling_rank_the_days_papers_alike(
    sample: list[Paper],
) -> None:
    # Interests of "finetuning large language models" listed none of the day's 16 papers
    # writing the term in their first ten ("matches: large language"), where typed
    # "fine-tuning" five; the two lists shared three papers. Now both list the same
    # papers, those on the term named in their reasons as they write it.
    holding = {p.key for p in sample if re.search(r"fine[- ]?tun", _text(p))}
    assert len(holding) == 16
    lists = {}
    for typed in ("finetuning large language models", "fine-tuning large language models"):
        ranking = rank(sample, [Profile(interests=typed)], top_k=10).rankings[0]
        lists[typed] = [s.paper.key for s in ranking]
        on_term = [s for s in ranking if s.paper.key in holding]
        assert len(on_term) >= 4, typed
        assert all("fine-tuning" in s.reason or "finetuning" in s.reason
                   for s in on_term[:3]), typed
    joined, hyphenated = lists.values()
    assert joined == hyphenated


def test_a_paper_counts_a_two_part_term_once_at_the_larger_weight_of_its_spellings() -> None:
    # Hand-made: per pool paper, the lift of the term "fine tuning" is how much more
    # the paper's "finetuning" weighs than its "fine tuning" (nothing for a paper that
    # writes only the typed spelling, or writes the other one less).
    papers = [Paper(key="arxiv:2601.00001", title="Fine-tuning models",
                    abstract="Fine-tuning models with fine-tuning."),
              Paper(key="arxiv:2601.00002", title="Finetuning models",
                    abstract="Finetuning models."),
              Paper(key="arxiv:2601.00003", title="Finetuning and fine-tuning models",
                    abstract="Finetuning, finetuning and finetuning models."),
              Paper(key="arxiv:2601.00004", title="Graph models", abstract="Graphs.")]
    space = update_space(None, papers)
    pool = space.transform(f"{p.title}. {p.abstract}" for p in papers)
    found = spellings(space, sp.csr_matrix(pool.T, dtype=SCORES))
    assert found is not None
    apart, joined = space.index["fine tuning"], space.index["finetuning"]
    lift = found.lift.toarray()
    dense = pool.toarray()
    expected = np.maximum(dense[:, joined] - dense[:, apart], 0.0)
    assert np.allclose(lift[apart], expected, atol=1e-6)
    assert lift[apart][0] == 0 and lift[apart][3] == 0  # only "fine-tuning"; neither
    assert lift[apart][1] > 0 and lift[apart][2] > 0
    assert dense[2, apart] > 0  # the third writes both: lifted by the difference only
    assert np.isclose(lift[apart][2] + dense[2, apart], dense[2, joined], atol=1e-6)
    assert found.terms[apart] and found.terms[joined]
