"""Interests typed in parts (lines or ";"): each part weighs alike in the query.

Runs on tests/data/rank/corpus_mini.jsonl (real arXiv papers, see its SOURCES.md).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.preprocessing import normalize

from digest.models import Profile
from digest.rank import rank
from digest.rank.profiles import ExampleBank, compile_profiles
from digest.rank.scoring import RankOptions, prepare_space
from tests.fixtures.corpus import mini_day

OPTIONS = RankOptions(lsa_dims=48, processes=1, named_titles=False)


def test_each_part_of_the_interests_weighs_alike_in_the_query() -> None:
    batch, history = mini_day()
    space = prepare_space(None, history, batch)
    long, short = history[3].title, "graph neural networks"
    assert len(long.split()) > 2 * len(short.split())
    texts = [f"{long}; {short}", f"{long}\n\n{short}\n", f"{long} {short}", short]
    bank = ExampleBank(space, None)
    examples = bank.add([], {})
    on = compile_profiles([Profile(interests=t) for t in texts], space, examples,
                          keyword_weight=2.0).text.toarray()
    off = compile_profiles([Profile(interests=t) for t in texts], space, examples,
                           keyword_weight=2.0, balance_parts=False).text.toarray()
    parts = space.transform([long, short]).toarray()
    balanced = normalize((parts[0] + parts[1])[None, :])[0]
    # Typed in parts (";" or lines, blank ones skipped): the normalised sum of the
    # parts' own rows, each part's row of norm 1 whatever its length.
    np.testing.assert_allclose(on[0], balanced, atol=1e-12)
    np.testing.assert_allclose(on[1], balanced, atol=1e-12)
    # One part, or balancing off: the whole text is the query, as before.
    whole = space.transform(texts).toarray()
    np.testing.assert_allclose(on[2:], whole[2:], atol=1e-12)
    np.testing.assert_allclose(off, whole, atol=1e-12)
    # The short part has the same share of the query as the long one; in the whole
    # text's query the long title's many words take most of it.
    short_terms = parts[1] > 0
    assert on[0][short_terms] @ on[0][short_terms] > 0.4
    assert whole[0][short_terms] @ whole[0][short_terms] < 0.3


def test_parts_change_what_a_profile_in_parts_gets_and_nothing_else() -> None:
    batch, history = mini_day()
    typed = f"{history[3].title}; graph neural networks"
    profiles = [Profile(interests=typed), Profile(interests="graph neural networks"),
                Profile(seeds=(history[5].key,))]
    got = {}
    for balance in (True, False):
        for topics in (True, False):
            options = replace(OPTIONS, balance_parts=balance, part_topics=topics)
            result = rank(batch, profiles, history=history, options=options)
            got[balance, topics] = [[(s.paper.key, s.score) for s in r]
                                    for r in result.rankings]
    assert got[True, True][0]
    # Each of the two changes the list of the profile typed in parts...
    assert len({str(lists[0]) for lists in got.values()}) == 4
    # ...and nothing of the others'.
    assert all(lists[1:] == got[False, False][1:] for lists in got.values())


def test_a_text_in_parts_ranks_as_its_parts_whatever_their_order_or_repeats() -> None:
    batch, history = mini_day()
    first, second = history[3].title, "graph neural networks for molecules"
    texts = [first, f"{first}; {first}", f"{first}\n{first}\n"]
    swapped = [f"{first}; {second}", f"{second}\n{first}"]
    result = rank(batch, [Profile(interests=t) for t in [*texts, *swapped]],
                  history=history, options=OPTIONS)
    lists = [[s.paper.key for s in r] for r in result.rankings]
    scores = [[s.score for s in r] for r in result.rankings]
    assert lists[0]
    # One part typed twice is that part: the same query, the same topic.
    assert lists[1] == lists[0] and lists[2] == lists[0]
    assert scores[1] == pytest.approx(scores[0], abs=2e-6)
    # The parts in another order are the same profile.
    assert lists[3] == lists[4]
    assert scores[3] == pytest.approx(scores[4], abs=2e-6)
    assert lists[3] != lists[0]
