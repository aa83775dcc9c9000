"""Compare variants of our ranker on a tuning split (seed 1), baselines alongside.

Usage: .venv/bin/python bench/tune_ranking.py [DAYS] [SUBSCRIBERS] [NAME=FIELD:VALUE,...]...
NO_BASELINES=1 skips the baselines; METADATA=1 also runs each variant with the papers'
categories and authors (the ours+seed-metadata setting), as NAME+meta.
Tuning uses seed 1 (other test days and subscribers than the reported seed-0 run).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace

from corpus import corpus_path

from digest.evaluate import (
    EvalConfig,
    default_methods,
    format_table,
    load_corpus,
    ours,
    prepare,
    run_methods,
)
from digest.rank import RankOptions

CORPUS = str(corpus_path())


def main() -> None:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    subs = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    config = EvalConfig(days=days, subscribers=subs, seed=1)
    setup = prepare(load_corpus(CORPUS), config)
    base = RankOptions()
    variants = {
        "ours": ours(base, threshold=False),
        "ours+thr": ours(base),
    }
    for spec in sys.argv[3:]:
        name, _, assignments = spec.partition("=")
        opts = base
        for item in assignments.split(","):
            field, _, value = item.partition(":")
            opts = replace(opts, **{field: type(getattr(base, field))(value)})
        variants[name] = ours(opts, threshold=False)
    methods = {**variants}
    if not os.environ.get("NO_BASELINES"):
        methods.update({k: v for k, v in default_methods(config).items()
                        if k in ("arxiv-sanity", "tfidf-centroid")})
    for name, method in methods.items():
        start = time.time()
        report = run_methods(setup, {name: method}, config)
        print(format_table(report).split("\n", 1)[1], f"  ({time.time() - start:.0f}s)")
    # METADATA=1: each variant again with the papers' categories and authors (the
    # ``ours+seed-metadata`` row of digest eval), labelled NAME+meta.
    if os.environ.get("METADATA"):
        for name, method in variants.items():
            if name == "ours+thr":
                continue
            start = time.time()
            report = run_methods(setup, {"ours+seed-metadata": method}, config)
            table = format_table(report).split("\n", 1)[1]
            print(table.replace("ours+seed-metadata", f"{name}+meta".ljust(18)),
                  f"  ({time.time() - start:.0f}s)")


if __name__ == "__main__":
    main()
