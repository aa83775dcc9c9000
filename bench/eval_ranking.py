"""Run the ranking evaluation on the corpus and print the table (a few minutes).

Usage: .venv/bin/python bench/eval_ranking.py [--days N] [--subscribers N] [--seed N]
The corpus path comes from DIGEST_CORPUS or defaults to ../shared/data/corpus.
"""

from __future__ import annotations

import argparse
import sys
import time

from corpus import corpus_path

from digest.evaluate import EvalConfig, evaluate, format_table, load_corpus


def main() -> None:
    """Parse options, replay the corpus, print the table and the wall time."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--subscribers", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpus = str(corpus_path())
    start = time.time()
    config = EvalConfig(days=args.days, subscribers=args.subscribers, seed=args.seed)
    report = evaluate(load_corpus(corpus), config,
                      progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_table(report))
    print(f"{time.time() - start:.0f}s, days {sorted(report.queries)}", file=sys.stderr)


if __name__ == "__main__":
    main()
