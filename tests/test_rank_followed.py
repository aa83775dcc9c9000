"""Followed authors: their papers are always in the list, however their names are typed.

Real data: corpus_mini (tests/data/rank), its last day as the batch and the days before
it as the history. Hand-made: the name forms of one invented author, and
tests/data/rank/followed_names_handmade.jsonl (a name as typed, a name as a paper
writes it, whether the one follows the other).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

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


def test_a_followed_author_typed_with_initials_or_without_a_middle_initial_is_found(
    day: tuple[list[Paper], list[Paper]],
) -> None:
    # The day lists "Pranav M Pawar"; a researcher types "P. Pawar" (a reference list)
    # or "Pranav Pawar" (the name they know): both matched nobody, and the line names
    # him as the paper does.
    batch, history = day
    paper = next(p for p in batch if "Pranav M Pawar" in p.authors)
    typed = ("P. Pawar", "Pawar, P.", "Pranav Pawar", "Pawar, Pranav")
    rankings = rank(batch, [Profile(authors=(name,)) for name in typed], history=history,
                    top_k=3, options=RankOptions(processes=1)).rankings
    for name, ranking in zip(typed, rankings, strict=True):
        reasons = {s.paper.key: s.reason for s in ranking}
        assert reasons.get(paper.key) == "by Pranav M Pawar", (name, reasons)


# Hand-made: the forms people type a name in.


def _by(name_on_paper: str, typed: tuple[str, ...]) -> list[list[str]]:
    """Return the reasons each typed name's profile gets for a one-paper-by-them day."""
    papers = [Paper(key="arxiv:2601.00001", title="Tropical sheaf cohomology of quivers",
                    authors=("Ada Byron", name_on_paper)),
              *(Paper(key=f"arxiv:2601.{i:05d}", title=f"Graph neural networks {i}",
                      authors=(f"Someone Else {i}",)) for i in range(2, 12))]
    rankings = rank(papers, [Profile(authors=(name,)) for name in typed], top_k=3,
                    options=RankOptions(processes=1)).rankings
    return [[s.reason for s in ranking if s.paper.key == "arxiv:2601.00001"]
            for ranking in rankings]


def test_a_followed_author_typed_last_name_first_is_found() -> None:
    # "Last, First" is how BibTeX, library catalogues and many reference lists write
    # names; the preferences form keeps the comma, and the profile matched nobody.
    typed = ("Wu, Jiajun", "Wu,Jiajun", "WU, JIAJUN")
    assert _by("Jiajun Wu", typed) == [["by Jiajun Wu"]] * 3


def test_a_followed_author_is_found_with_or_without_the_dots_of_initials() -> None:
    # arXiv lists the same person as "Vishal M. Patel" on one paper and "Vishal M Patel"
    # on another (both in the corpus); a hyphenated given name likewise.
    assert _by("Vishal M Patel", ("Vishal M. Patel", "Patel, Vishal M.")) == [
        ["by Vishal M Patel"]] * 2
    assert _by("S. M. A. Sharif", ("S M A Sharif", "S.M.A. Sharif")) == [
        ["by S. M. A. Sharif"]] * 2
    assert _by("Yih-Chung Tham", ("Yih Chung Tham",)) == [["by Yih-Chung Tham"]]
    assert _by("Guy Steele, Jr.", ("Guy Steele Jr.", "Guy Steele, Jr.")) == [
        ["by Guy Steele, Jr."]] * 2


def test_a_first_author_named_with_et_al_by_a_publishers_feed_is_followed() -> None:
    # Nature's subject feeds name only the first author: <name>Sebastian Birk et
    # al.</name> (the captured nature_subject feed); whoever follows him matched nothing.
    assert _by("Sebastian Birk et al.", ("Sebastian Birk", "Birk, Sebastian")) == [
        ["by Sebastian Birk et al."]] * 2
    assert _by("Sebastian Birk, et al", ("Sebastian Birk",)) == [
        ["by Sebastian Birk, et al"]]
    # Not a name that merely ends in those letters.
    assert _by("Bet Al", ("Bet Al",)) == [["by Bet Al"]]


def test_a_different_author_with_the_same_last_name_is_not_followed() -> None:
    assert _by("Jiajun Wu", ("Wu, Jiayi", "Jiayi Wu", "Wu")) == [[], [], []]


HANDMADE = Path(__file__).resolve().parent / "data" / "rank" / "followed_names_handmade.jsonl"


def _handmade() -> dict[str, list[tuple[str, bool, str]]]:
    cases: dict[str, list[tuple[str, bool, str]]] = defaultdict(list)
    for line in HANDMADE.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        cases[case["on_paper"]].append((case["typed"], case["followed"], case["why"]))
    return dict(cases)


@pytest.mark.parametrize("on_paper", sorted(_handmade()))
def test_a_followed_author_matches_the_forms_of_the_same_name(on_paper: str) -> None:
    # Initials stand for any given names they start; a full name matches its initials
    # and forms with or without a middle initial, never another first name, and on a
    # common surname (the shipped list of ambiguous keys) not the bare initial or
    # another given name that merely begins with it.
    cases = _handmade()[on_paper]
    found = _by(on_paper, tuple(typed for typed, _, _ in cases))
    for (typed, followed, why), reasons in zip(cases, found, strict=True):
        assert reasons == ([f"by {on_paper}"] if followed else []), (typed, on_paper, why)


def test_initials_on_a_common_surname_boost_relevant_papers_and_vouch_for_none() -> None:
    # "Y. Wang" is Yu, Yi, Yang... Wang (the surname's "y" key is in the shipped list of
    # ambiguous keys): ~5 papers of a 600-paper day, up to 32. A reader who also wrote
    # what they read got every one of them listed, on any topic. Such a name now lifts
    # the papers the profile's words find; a profile of followed authors alone, with
    # nothing else to judge by, still gets them all, and a full name is vouched for.
    papers = [
        Paper(key="arxiv:2601.00001", title="Message passing in graph neural networks",
              abstract="We study graph neural networks and message passing on graphs.",
              authors=("Yu Wang",)),
        Paper(key="arxiv:2601.00002", title="Tropical sheaf cohomology of quivers",
              abstract="Cohomology of quiver representations over tropical semirings.",
              authors=("Yi Wang",)),
        *(Paper(key=f"arxiv:2601.{i:05d}", title=f"Graph neural networks for task {i}",
                abstract="Graph neural networks with message passing.",
                authors=(f"Someone Else {i}",)) for i in range(3, 13)),
    ]
    profiles = [Profile(interests="graph neural networks", authors=("Y. Wang",)),
                Profile(authors=("Y. Wang",)),
                Profile(interests="graph neural networks", authors=("Yi Wang",))]
    rankings = rank(papers, profiles, top_k=5, options=RankOptions(processes=1)).rankings
    listed = [{s.paper.key: s.reason for s in ranking} for ranking in rankings]
    assert listed[0].get("arxiv:2601.00001", "").startswith("by Yu Wang")
    assert "arxiv:2601.00002" not in listed[0]
    assert set(listed[1]) == {"arxiv:2601.00001", "arxiv:2601.00002"}
    assert listed[2].get("arxiv:2601.00002") == "by Yi Wang"
