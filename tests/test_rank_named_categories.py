"""A line of the interests that is an arXiv category's name or code names that category
(taxonomy.named_categories, scoring.named_fields).

The ranking test runs on digest/data/sample_batch.jsonl (real arXiv papers, see
digest/data/SOURCES.md).
"""

from __future__ import annotations

from dataclasses import replace

from digest.ingest.jsonl import load_jsonl
from digest.models import Profile
from digest.rank import rank
from digest.rank.scoring import RankOptions, named_fields
from digest.taxonomy import named_categories
from tests.test_rank import SAMPLE

OPTIONS = RankOptions(processes=1)


def test_a_part_that_is_a_category_name_or_code_names_it() -> None:
    assert named_categories("Robotics") == ("cs.RO",)
    # Case, spacing, "&" and punctuation aside; every code arXiv names alike.
    assert named_categories("  computer vision & PATTERN recognition. ") == ("cs.CV",)
    assert named_categories("Machine Learning") == ("cs.LG", "stat.ML")
    # Lines and ";"-separated parts, in the order typed, each code once; codes too.
    text = "sim-to-real transfer\nRobotics; cs.cv\nrobotics"
    assert named_categories(text) == ("cs.RO", "cs.CV")
    # A name within a longer part, a word that is also a topic, or nothing: none.
    for text in ("robotics for surgery", "Performance", "computation", "", "cs"):
        assert named_categories(text) == (), text


def test_the_named_categories_join_the_profiles_own() -> None:
    profile = Profile(interests="Robotics\nmachine learning", categories=("cs.LG",))
    assert named_fields(profile).categories == ("cs.LG", "cs.RO", "stat.ML")
    assert named_fields(profile).interests == profile.interests
    plain = Profile(interests="graph neural networks")
    assert named_fields(plain) is plain


def test_a_category_typed_by_name_ranks_as_if_picked_and_says_so() -> None:
    batch = load_jsonl(SAMPLE)
    in_robotics = {p.key for p in batch if "cs.RO" in p.categories}
    assert len(in_robotics) == 6
    profiles = [Profile(interests="Robotics"),
                Profile(interests="Robotics", categories=("cs.RO",))]
    typed, picked = [[(s.paper.key, s.score, s.reason) for s in row]
                     for row in rank(batch, profiles, options=OPTIONS).rankings]
    assert typed == picked
    # Against the word alone (nor the field the word points to: field_weight, which
    # lifts the same papers less, as a share of what "Robotics" is about).
    off = rank(batch, profiles[:1], options=replace(OPTIONS, named_categories=False,
                                                    field_weight=0.0))
    plain = [s.paper.key for s in off.rankings[0]]
    # More of the category's papers, each said to be in it.
    assert (len(in_robotics & {key for key, _, _ in typed})
            > len(in_robotics & set(plain)))
    assert all("in cs.RO" in reason for key, _, reason in typed if key in in_robotics)
