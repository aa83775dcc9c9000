"""Measure the semantic extra: embedding throughput, and its weight on a tuning split.

    python bench/semantic.py throughput [--papers 512] [--threads 1 2]
    python bench/semantic.py tune --seed 1 --days 4 [--weights 0.5 1 2 4]

``throughput`` embeds real corpus papers (title + abstract, as the ranker does) with a
fresh, uncached encoder per thread count, after a warm-up batch; each count runs in
its own process, because torch fixes its thread pool at the first parallel operation.
``tune`` replays the corpus like `digest eval` with "ours" and one "ours+semantic" row
per weight on the same queries (embeddings computed once, shared by the rows), then
each row's paired nDCG@10 difference to "ours"; tune on a seed other than the held-out
one `digest eval` reports (0). Profiles with examples get ``EXAMPLE_SHARE`` of each
weight, as in the ranker.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from digest.evaluate import Report

CORPUS = (Path(__file__).resolve().parent.parent.parent
          / "shared/data/corpus/arxiv_cs_daily_2025-09-25_to_2026-05-29.jsonl.gz")


def throughput_once(corpus: Path, papers: int, threads: int) -> float:
    """Return papers embedded per second with ``threads`` torch threads (this process)."""
    import torch

    from digest.evaluate import load_corpus
    from digest.rank.semantic import Encoder, model_text

    torch.set_num_threads(threads)
    every = load_corpus(corpus)
    step = max(1, len(every) // (papers + 64))
    sample = every[::step][: papers + 64]  # spread over the whole corpus
    encoder = Encoder()
    encoder.encode([model_text(p) for p in sample[:64]])  # load and warm up
    texts = [model_text(p) for p in sample[64:]]
    start = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - start)


def throughput(args: argparse.Namespace) -> None:
    """Print papers/s for each thread count, each in a fresh process."""
    if args.threads_once is not None:
        rate = throughput_once(args.corpus, args.papers, args.threads_once)
        print(f"{rate:.2f}")
        return
    print(f"{'threads':>7}  {'papers':>6}  {'papers/s':>8}")
    for threads in args.threads:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        out = subprocess.run(
            [sys.executable, __file__, "throughput", "--corpus", str(args.corpus),
             "--papers", str(args.papers), "--threads-once", str(threads)],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.split()[-1]
        print(f"{threads:>7}  {args.papers:>6}  {float(out):>8.1f}")


def tune(args: argparse.Namespace) -> None:
    """Print the eval table for "ours" and one semantic row per weight."""
    from digest.evaluate import EvalConfig, format_table, load_corpus, ours, prepare, run_methods
    from digest.rank import RankOptions

    config = EvalConfig(days=args.days, subscribers=args.subscribers, seed=args.seed)
    setup = prepare(load_corpus(args.corpus), config)
    methods = {"ours": ours()}
    for weight in args.weights:
        methods[f"ours+sem@{weight:g}"] = ours(RankOptions(
            semantic_weight=weight, semantic_cache=args.cache or ""))
    report = run_methods(setup, methods, config,
                         progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_table(report))
    print()
    print(paired(report, "ours", [m for m in methods if m != "ours"], args.seed))


def paired(report: Report, base: str, others: list[str], seed: int) -> str:
    """Return each row's nDCG@10 minus the base's on the same queries, with a 95% CI.

    The rows rank the same queries, so the per-query differences are bootstrapped:
    a much tighter interval than comparing two rows' own intervals.
    """
    rng = np.random.default_rng(seed)
    lines = [f"{'kind':<10} {'method':<15} {'n':>5}  nDCG@10 - {base} [95% paired bootstrap]"]
    for kind in sorted({k for k, _, _ in report.values}):
        ours = np.asarray(report.values[(kind, base, "ndcg@10")])
        for method in others:
            diff = np.asarray(report.values[(kind, method, "ndcg@10")]) - ours
            samples = rng.integers(0, len(diff), size=(report.config.bootstrap, len(diff)))
            means = diff[samples].mean(axis=1)
            low, high = np.percentile(means, [2.5, 97.5])
            lines.append(f"{kind:<10} {method:<15} {len(diff):>5}  "
                         f"{diff.mean():+.3f} [{low:+.3f},{high:+.3f}]")
    return "\n".join(lines)


def main() -> None:
    """Parse the command line and run one measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    speed = sub.add_parser("throughput")
    speed.add_argument("--corpus", type=Path, default=CORPUS)
    speed.add_argument("--papers", type=int, default=512)
    speed.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    speed.add_argument("--threads-once", type=int, help=argparse.SUPPRESS)
    grid = sub.add_parser("tune")
    grid.add_argument("--corpus", type=Path, default=CORPUS)
    grid.add_argument("--seed", type=int, default=1)
    grid.add_argument("--days", type=int, default=4)
    grid.add_argument("--subscribers", type=int, default=40)
    grid.add_argument("--weights", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    grid.add_argument("--cache", help="embedding cache directory, kept between runs")
    args = parser.parse_args()
    if args.command == "throughput":
        throughput(args)
    else:
        tune(args)


if __name__ == "__main__":
    main()
