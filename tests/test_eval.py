"""The offline evaluation: metrics by hand, and a tiny replay through `digest eval`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import ranking  # noqa: F401  (registers the commands)
from digest.cli.base import main
from digest.evaluate import (
    METRICS,
    EvalConfig,
    Ranker,
    Report,
    evaluate,
    format_table,
    load_corpus,
    make_subscribers,
    metrics,
    prepare,
    relevant_keys,
    run_methods,
)
from digest.models import Paper, Profile

MINI = Path(__file__).resolve().parent / "data" / "rank" / "corpus_mini.jsonl"
TINY = EvalConfig(days=2, subscribers=3, cutoff=0.6, min_batch=40, background_days=3,
                  bootstrap=50)


def test_metrics_of_a_known_list() -> None:
    got = metrics(["a", "x", "b", "y"], {"a", "b", "c"})
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert got["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / ideal)
    assert got["p@10"] == pytest.approx(0.2)
    assert got["r@20"] == pytest.approx(2 / 3)
    assert got["mrr"] == 1.0
    assert metrics(["x"], {"a"})["mrr"] == 0.0


def test_metrics_count_a_paper_listed_twice_once() -> None:
    # Hand-made: the relevant "a" listed three times is one relevant paper at rank 1.
    got = metrics(["a", "a", "x", "a"], {"a"})
    assert got == {"ndcg@10": 1.0, "p@10": 0.1, "r@20": 1.0, "mrr": 1.0}
    # The repeat holds its place: "b" at rank 3 is discounted as rank 3.
    got = metrics(["a", "a", "b"], {"a", "b"})
    assert got["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert got["p@10"] == pytest.approx(0.2) and got["r@20"] == 1.0


def test_profiles_never_name_the_label_they_are_judged_on() -> None:
    papers = load_corpus(MINI)
    half = len(papers) // 2
    subscribers = make_subscribers(papers[:half], papers[half:], TINY)
    assert {s.kind for s in subscribers} >= {"category", "coldstart", "thumbs"}
    for sub in subscribers:
        value = sub.label.partition(":")[2]
        assert value not in sub.profile.categories
        assert value not in sub.profile.authors
        assert value not in sub.profile.interests


def test_tiny_replay_scores_every_method_on_the_same_queries() -> None:
    report = evaluate(load_corpus(MINI), TINY)
    methods = {method for _, method, _ in report.values}
    assert methods == {"ours", "ours+seed-metadata", "random", "keyword", "tfidf-centroid",
                       "arxiv-sanity", "arxiv-sanity+seed-metadata"}
    for kind in ("category", "coldstart", "thumbs"):
        counts = {len(report.values[(kind, m, "ndcg@10")]) for m in methods}
        assert len(counts) == 1 and counts.pop() > 0
    for values in report.values.values():
        assert all(0.0 <= v <= 1.0 for v in values)
    rows = report.summary()
    assert {row["method"] for row in rows} == methods


def test_eval_command_prints_the_table() -> None:
    result = CliRunner().invoke(
        main, ["eval", "--corpus", str(MINI), "--days", "1", "--subscribers", "2",
               "--method", "ours", "--method", "random"],
    )
    # The mini corpus has no day of 100 papers: the command must say so, not crash.
    assert result.exit_code in (0, 2), result.output


def test_rankers_see_text_only_unless_the_row_says_seed_metadata() -> None:
    papers = load_corpus(MINI)
    config = TINY
    setup = prepare(papers, config)
    seen: dict[str, list[Paper]] = {}

    def spy(name: str) -> Ranker:
        def run(batch: Sequence[Paper], profiles: Sequence[Profile],
                history: Sequence[Paper], k: int) -> list[list[str]]:
            seen.setdefault(name, []).extend([*batch, *history])
            return [[] for _ in profiles]
        return run

    run_methods(setup, {"plain": spy("plain"), "ours+seed-metadata": spy("ours+seed-metadata")},
                config)
    assert seen["plain"] and all(not p.categories and not p.authors for p in seen["plain"])
    assert any(p.categories for p in seen["ours+seed-metadata"])


def _authored_corpus() -> list[Paper]:
    """Hand-made: 12 daily batches of 20 papers; Ada Lovelace writes one paper a day."""
    papers = []
    for day in range(12):
        for number in range(20):
            authors = ("Ada Lovelace",) if number == 0 else (f"Author {day} {number}",)
            papers.append(Paper(
                key=f"arxiv:2601.{day:02d}{number:03d}",
                title=f"Study number {number} of topic {day} under new settings",
                abstract=f"topic{day} setting{number} words{number % 3} analysis",
                authors=authors, categories=(f"cs.X{number % 4}",),
                published=date(2026, 1, 1) + timedelta(days=day)))
    return papers


def test_typed_titles_name_no_paper_of_another_subscribers_profile() -> None:
    # An author subscriber's seeds are the author's latest papers, the papers a cold-start
    # or thumbs subscriber standing for that author types the titles of. Ranked with
    # one history holding every profile's papers, each typed title named its paper and
    # made it a seed: the text-only subscriber was not cold. A typed title may name only
    # a paper of the background (the days just before the ranked day) or, for a thumbs
    # subscriber, one a thumbs subscriber rated.
    papers = _authored_corpus()
    config = EvalConfig(days=2, subscribers=4, cutoff=0.7, min_batch=10,
                        background_days=2, bootstrap=10)
    setup = prepare(papers, config)
    assert {s.label for s in setup.subscribers if s.kind in ("coldstart", "thumbs")} >= {
        "author:Ada Lovelace"}
    by_title = {p.title: p for p in papers}
    seen: list[tuple[Profile, list[Paper], list[Paper]]] = []

    def spy(batch: Sequence[Paper], profiles: Sequence[Profile],
            history: Sequence[Paper], k: int) -> list[list[str]]:
        seen.extend((profile, list(batch), list(history)) for profile in profiles)
        return [[] for _ in profiles]

    run_methods(setup, {"plain": spy, "ours+seed-metadata": spy}, config)
    typed = [(profile, batch, history) for profile, batch, history in seen
             if profile.interests]
    assert typed
    for profile, batch, history in typed:
        day = batch[0].published
        assert day is not None
        named = {by_title[t].key for t in profile.interests.split("; ")}
        background = {p.key for p in history
                      if p.published is not None and day - timedelta(days=2) <= p.published}
        # Thumbs subscribers' ratings are in their kind's history (here every author
        # label is Ada's, so they rate the papers the others type: rare on the corpus).
        rated = {k for s in setup.subscribers if s.kind == "thumbs"
                 for k in (*s.profile.liked, *s.profile.disliked)}
        assert not named & ({p.key for p in history} - background - rated)


def test_thumbs_subscribers_judge_their_first_digests_by_the_hidden_label() -> None:
    # The warm-up digests are ranked on text-only papers, but a subscriber knows its
    # label: the thumbs must follow it. (They were once judged on the stripped papers
    # too, so every thumb was down.)
    papers = load_corpus(MINI)
    setup = prepare(papers, replace(TINY, subscribers=6))
    by_key = {p.key: p for p in papers}
    thumbs = [s for s in setup.subscribers if s.kind == "thumbs"]
    assert thumbs and any(s.profile.liked for s in thumbs)
    for sub in thumbs:
        relevant = relevant_keys(sub.label, [by_key[k] for k in
                                             (*sub.profile.liked, *sub.profile.disliked)])
        assert set(sub.profile.liked) <= relevant
        assert not set(sub.profile.disliked) & relevant


def test_paired_comparison_resamples_queries_together() -> None:
    # Two methods whose scores move together query by query: a difference that is
    # the same on every query has a zero-width interval, however much the queries
    # differ, which two separate intervals would not show.
    report = Report(config=replace(TINY, bootstrap=200))
    for base in (0.1, 0.5, 0.9, 0.3):
        report.add("category", "ours", {"ndcg@10": base + 0.05})
        report.add("category", "arxiv-sanity", {"ndcg@10": base})
    (row,) = report.paired("ours", "arxiv-sanity")
    assert row.n == 4
    mean, low, high = row.difference
    assert mean == pytest.approx(0.05) and low == pytest.approx(0.05)
    assert high == pytest.approx(0.05)
    assert row.relative[0] == pytest.approx(0.05 * 4 / (0.1 + 0.5 + 0.9 + 0.3))
    # Unpaired rows (a method that ranked other queries) are not compared.
    report.add("author", "ours", {"ndcg@10": 0.2})
    assert [r.kind for r in report.paired("ours", "arxiv-sanity")] == ["category"]


def test_the_bootstrap_resamples_subscribers_not_their_days() -> None:
    # Hand-made: 4 subscribers on 10 days each; two always gain 0.4, two always lose
    # 0.2. With 4 subscribers the mean gain is uncertain (0.1 +- 0.3 by which of them
    # are drawn), however many days each one is ranked on; drawing the 40 queries one
    # by one gave an interval about a third as wide, as if they were 40 subscribers.
    report = Report(config=replace(TINY, bootstrap=2000))
    for _day in range(10):
        for subscriber, gain in enumerate((0.4, -0.2, 0.4, -0.2)):
            report.add("category", "ours", dict.fromkeys(METRICS, 0.5 + gain), unit=subscriber)
            report.add("category", "arxiv-sanity", dict.fromkeys(METRICS, 0.5),
                       unit=subscriber)
    (row,) = report.paired("ours", "arxiv-sanity")
    mean, low, high = row.difference
    assert mean == pytest.approx(0.1)
    # Two of four drawn each way: the difference ranges from -0.2 to +0.4; a 95%
    # interval of the 4-subscriber bootstrap holds most of that range.
    assert low <= -0.05 and high >= 0.25
    summary = {r["method"]: r for r in report.summary()}
    low, high = _interval_of(summary["ours"]["ndcg@10"])
    assert low <= 0.45 and high >= 0.75
    # The same values as 40 queries of their own (the old resampling): too narrow.
    by_query = Report(config=report.config, values=report.values)
    (row,) = by_query.paired("ours", "arxiv-sanity")
    assert row.difference[1] > 0.0 and row.difference[2] < 0.2


def _interval_of(value: object) -> tuple[float, float]:
    assert isinstance(value, tuple)
    return float(value[1]), float(value[2])


def test_paired_interval_widens_when_the_methods_disagree() -> None:
    report = Report(config=replace(TINY, bootstrap=500))
    for i in range(40):
        ours, theirs = (1.0, 0.0) if i % 2 else (0.0, 0.5)
        report.add("author", "ours", dict.fromkeys(METRICS, ours))
        report.add("author", "arxiv-sanity", dict.fromkeys(METRICS, theirs))
    (row,) = report.paired("ours", "arxiv-sanity", seed=1)
    mean, low, high = row.difference
    assert mean == pytest.approx(0.25)
    assert low < 0.25 < high and high - low > 0.2
    text = format_table(report)
    assert "Paired by query against arxiv-sanity" in text
    assert "+0.250" in text and "+100%" in text  # 0.5 against 0.25


def _lovelace_day() -> tuple[list[Paper], list[Paper]]:
    """Hand-made: a history of 60 papers, 4 of them by Ada Lovelace, and a batch of 20
    where her one paper is on a topic none of her earlier papers touch."""
    topics = ["graph coloring", "protein folding", "robot grasping", "speech codecs",
              "query optimizers", "climate downscaling"]

    def paper(key: str, topic: str, author: str) -> Paper:
        return Paper(key=key, title=f"Notes on {topic}",
                     abstract=f"We study {topic} with {topic} methods and {topic} data.",
                     authors=(author,), categories=("cs.XX",))

    history = [paper(f"arxiv:2601.{i:05d}", topics[i % 3],
                     "Ada Lovelace" if i < 4 else f"Writer{i} Person{i}") for i in range(60)]
    batch = [paper(f"arxiv:2602.{i:05d}", topics[3 + i % 3] if i else topics[5],
                   "Ada Lovelace" if i == 7 else f"Other{i} Name{i}") for i in range(20)]
    return history, batch


def test_arxiv_sanity_baseline_reads_author_names_as_its_recipe_does() -> None:
    # arxiv-sanity-lite's compute.py vectorises "title summary author names"; shown the
    # papers' authors, the recipe ranks a seed author's new paper on an unrelated topic
    # first, from the names alone. Shown text only (the headline's view), it cannot.
    from digest.evaluate import text_only
    from digest.rank.baselines import arxiv_sanity_baseline

    history, batch = _lovelace_day()
    profile = Profile(seeds=tuple(p.key for p in history[:4]))
    (with_names,) = arxiv_sanity_baseline(batch, [profile], history, 3)
    assert with_names[0] == "arxiv:2602.00007"
    (plain,) = arxiv_sanity_baseline(text_only(batch), [profile], text_only(history), 3)
    assert plain[0] != "arxiv:2602.00007"


def test_seed_metadata_rows_are_paired_with_the_recipe_shown_the_same_metadata() -> None:
    from digest.evaluate import PAIRED, SEES_METADATA, default_methods

    methods = default_methods(TINY)
    assert "arxiv-sanity+seed-metadata" in methods
    assert {"ours+seed-metadata", "arxiv-sanity+seed-metadata"} <= SEES_METADATA
    pairs = dict(PAIRED)
    assert pairs["ours"] == "arxiv-sanity"
    assert pairs["ours+seed-metadata"] == "arxiv-sanity+seed-metadata"
    report = Report(config=TINY)
    for base in (0.2, 0.4):
        report.add("author", "ours+seed-metadata", dict.fromkeys(METRICS, base + 0.1))
        report.add("author", "arxiv-sanity+seed-metadata", dict.fromkeys(METRICS, base))
        report.add("author", "arxiv-sanity", dict.fromkeys(METRICS, 0.0))
    text = format_table(report)
    (line,) = [row for row in text.splitlines()
               if row.startswith("author") and "ours+seed-metadata" in row and "[" in row
               and "%" in row]
    assert "arxiv-sanity+seed-metadata" in line and "+0.100" in line
