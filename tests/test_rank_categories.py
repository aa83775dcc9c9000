"""A profile of categories alone gets the papers in them (the bar would pass none).

Runs on tests/data/rank/corpus_mini.jsonl (real arXiv papers, see its SOURCES.md).
"""

from __future__ import annotations

from digest.models import Profile
from digest.rank import RankOptions, rank
from tests.fixtures.corpus import mini_day

OPTIONS = RankOptions(lsa_dims=48, processes=1)


def test_a_profile_of_categories_alone_gets_papers_in_them() -> None:
    # Ticking categories and nothing else is a complete sign-up on the form; such a
    # subscriber once got "nothing relevant" every day: no words, no seed papers, so
    # every score was zero and the relevance bar passed nothing.
    batch, history = mini_day()
    primary = [p for p in batch if p.primary_category == "cs.CL"]
    cross = [p for p in batch if "cs.CL" in p.categories[1:]]
    assert primary and cross  # the sample's last day has both
    result = rank(batch, [Profile(categories=("cs.CL",)), Profile(categories=("cs.CV",)),
                          Profile(categories=("math.AG",)),
                          Profile(categories=("cs.CL",), seeds=("arxiv:0000.00000",))],
                  history=history, top_k=10, options=OPTIONS)
    language, vision, nothing, unknown_seed = result.rankings
    # Every paper in the category, papers primary in it before cross-listed ones.
    assert len(language) == len(primary) + len(cross)
    assert {s.paper.key for s in language[:len(primary)]} == {p.key for p in primary}
    assert all(s.reason == "in cs.CL" for s in language)
    assert len(vision) == 10
    assert all("cs.CV" in s.paper.categories for s in vision)
    # A category with no paper today: nothing (the "nothing relevant" day).
    assert nothing == [] and result.nothing_relevant[2]
    # A seed paper the ranker does not know adds nothing to score by.
    assert [s.paper.key for s in unknown_seed] == [s.paper.key for s in language]


def test_categories_with_words_still_need_the_words_to_match() -> None:
    batch, history = mini_day()
    result = rank(batch, [Profile(categories=("cs.CV",), interests="quantum chemistry")],
                  history=history, top_k=10, options=OPTIONS)
    in_category = sum("cs.CV" in p.categories for p in batch)
    assert len(result.rankings[0]) < min(10, in_category)


def test_a_category_arxiv_files_under_two_codes_gets_the_papers_of_either() -> None:
    # arXiv's taxonomy makes math.IT an alias of cs.IT and q-fin.EC one of econ.GN (as
    # cs.NA is of math.NA, cs.SY of eess.SY); the listing gives a paper the canonical
    # code alone. A reader who ticked "math.IT Information Theory" on the form was sent
    # nothing, day after day, while information theory papers came in cs.IT.
    batch, history = mini_day()
    theory = [p.key for p in batch if "cs.IT" in p.categories]
    economics = [p.key for p in batch if "econ.GN" in p.categories]
    assert len(theory) == len(economics) == 1
    assert not any({"math.IT", "q-fin.EC"} & set(p.categories) for p in batch)
    result = rank(batch, [Profile(categories=("math.IT",)), Profile(categories=("q-fin.EC",)),
                          Profile(categories=("cs.IT",))],
                  history=history, top_k=10, options=OPTIONS)
    alias, other_alias, canonical = result.rankings
    assert [s.paper.key for s in alias] == [s.paper.key for s in canonical] == theory
    assert [s.paper.key for s in other_alias] == economics
    # The reason names the code the paper is listed under.
    assert alias[0].reason == "in cs.IT" and other_alias[0].reason == "in econ.GN"
    assert not result.nothing_relevant[0]
