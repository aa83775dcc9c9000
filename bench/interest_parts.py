"""Interests typed in two lines: does each line get papers? (a few minutes)

Usage: .venv/bin/python bench/interest_parts.py [--days N]
For each of a few pairs of unrelated topics, a text-only profile types them on two lines
and is ranked on real daily batches (the corpus, text only, the 7 days before as
history), top 10. Each line alone is ranked too; a paper of the pair's list "serves" a
line when it is in that line's own top 20. Printed: per setting, how many of the ten
serve the less-served line (mean over lists; 5 is an even split), with parts balanced
and their topics averaged (the default) and with the whole text as one query.
The corpus path comes from DIGEST_CORPUS or defaults to ../shared/data/corpus.
"""

from __future__ import annotations

import argparse

from corpus import corpus_path

from digest.evaluate import by_day, load_corpus, text_only
from digest.models import Profile
from digest.rank import RankOptions, rank

PAIRS = (
    ("robot manipulation grasping", "speech recognition"),
    ("large language model reasoning", "graph neural networks"),
    ("image segmentation", "differential privacy"),
    ("quantum computing", "recommender systems"),
    ("autonomous driving", "code generation"),
    ("federated learning", "3D reconstruction"),
)


def main() -> None:
    """Rank the pairs on the last days of the corpus with and without parts; print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=8)
    args = parser.parse_args()
    days = by_day(load_corpus(str(corpus_path())))
    dates = [d for d, batch in days.items() if len(batch) >= 150]
    chosen = dates[-args.days:]
    settings = {"parts": RankOptions(),
                "whole": RankOptions(balance_parts=False, part_topics=False)}
    for name, options in settings.items():
        lesser: list[int] = []
        for day in chosen:
            at = dates.index(day)
            batch = text_only(days[day])
            history = text_only([p for d in dates[max(0, at - 7):at] for p in days[d]])
            lines = [Profile(interests=text) for pair in PAIRS for text in pair]
            alone = rank(batch, lines, history=history, top_k=20, options=options).rankings
            both = rank(batch, [Profile(interests="\n".join(pair)) for pair in PAIRS],
                        history=history, top_k=10, options=options).rankings
            for i, ranking in enumerate(both):
                got = {s.paper.key for s in ranking}
                served = [len(got & {s.paper.key for s in alone[2 * i + side]})
                          for side in (0, 1)]
                lesser.append(min(served))
        print(f"{name}: papers for the less-served line, mean of {len(lesser)} lists: "
              f"{sum(lesser) / len(lesser):.2f} of 10 (none: {lesser.count(0)} lists)")


if __name__ == "__main__":
    main()
