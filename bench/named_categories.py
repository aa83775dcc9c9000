"""Cold start typed as an arXiv category's name: nDCG@10 with and without named categories.

Usage: .venv/bin/python bench/named_categories.py [--days 8]

For each of the corpus's last N days, every cs category with 5 papers or more and at most
a fifth of the day becomes one profile whose whole interest text is the category's name
("Robotics"), judged by the category. Rows: ours and the baselines on the papers' text
alone, and ours with the papers' metadata before (RankOptions(named_categories=False))
and after. The corpus comes from DIGEST_CORPUS or defaults to ../shared/data/corpus.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from corpus import corpus_path  # noqa: E402

from digest import taxonomy  # noqa: E402
from digest.evaluate import by_day, load_corpus, metrics, relevant_keys, text_only  # noqa: E402
from digest.models import Paper, Profile  # noqa: E402
from digest.rank import Ranker, RankOptions  # noqa: E402
from digest.rank.baselines import (  # noqa: E402
    arxiv_sanity_baseline,
    centroid_baseline,
    keyword_baseline,
)

HISTORY = 6_000
ROWS = ("ours (text)", "arxiv-sanity (text)", "centroid (text)", "keyword (text)",
        "ours+metadata, names off", "ours+metadata, names on")


def ours(
    papers: list[Paper], history: list[Paper], profiles: list[Profile], options: RankOptions
) -> list[list[str]]:
    """Return our ranker's top 20 keys per profile."""
    result = Ranker(papers, history=history, options=options).rank(profiles, top_k=20)
    return [[s.paper.key for s in ranked] for ranked in result.rankings]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=8)
    args = parser.parse_args()
    days = by_day(load_corpus(corpus_path()))
    order = sorted(days)
    names = {c.code: c.name for c in taxonomy.categories()}
    scores: dict[str, list[float]] = {row: [] for row in ROWS}
    for day in order[-args.days:]:
        batch = days[day]
        history = [p for d in order if d < day for p in days[d]][-HISTORY:]
        counts: dict[str, int] = {}
        for paper in batch:
            for category in set(paper.categories):
                counts[category] = counts.get(category, 0) + 1
        chosen = sorted(c for c, n in counts.items()
                        if 5 <= n <= 0.2 * len(batch) and c.startswith("cs.") and c in names)
        profiles = [Profile(interests=names[c]) for c in chosen]
        relevant = [relevant_keys(f"cat:{c}", batch) for c in chosen]

        def judge(lists: list[list[str]], row: str, wanted: list[set[str]] = relevant) -> None:
            for ranked, keys in zip(lists, wanted, strict=True):
                scores[row].append(metrics(ranked, keys)["ndcg@10"])

        plain, plain_history = text_only(batch), text_only(history)
        judge(ours(plain, plain_history, profiles, RankOptions()), ROWS[0])
        judge(arxiv_sanity_baseline(plain, profiles, plain_history, 20), ROWS[1])
        judge(centroid_baseline(plain, profiles, plain_history, 20), ROWS[2])
        judge(keyword_baseline(plain, profiles, plain_history, 20), ROWS[3])
        judge(ours(batch, history, profiles, RankOptions(named_categories=False)), ROWS[4])
        judge(ours(batch, history, profiles, RankOptions(named_categories=True)), ROWS[5])
        print(f"{day}: {len(batch)} papers, {len(chosen)} categories", flush=True)
    print(f"nDCG@10 over {len(scores[ROWS[0]])} queries")
    for row in ROWS:
        print(f"  {row:26s} {statistics.mean(scores[row]):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
