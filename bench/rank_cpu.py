"""Time the batched ranker's CPU a subscriber; dump its lists as JSON.

    python bench/rank_cpu.py [--subscribers 5000] [--papers 2000] [--repeat 3]
    python bench/rank_cpu.py --processes 2        # forked a page, as the pipeline does
    python bench/rank_cpu.py --processes 2 --page 20000   # larger pages, fewer forks
    python bench/rank_cpu.py --dump out.json      # diff two checkouts' dumps
    python bench/rank_cpu.py --profile out.prof   # cProfile each pass: out.prof.1, ...

The day is bench/run.py's (the corpus's latest whole days up to ``--papers`` as the
batch, the 8,000 papers before them as the history, the vectorizer state primed from
them) and so are the subscribers (make_profiles); ``--variety`` also gives some of them
liked and disliked papers, keywords and a popularity blend, so that a dump covers those
paths too. The day is prepared once (its CPU printed apart); ``--warmup`` subscribers
are ranked first, untimed, as the day's earlier pages would be; then each of
``--repeat`` passes ranks ``--subscribers`` others (a seed each: the lists' tables kept
from earlier profiles help a new one as much as they would in a run), in pages of
``--page`` (5,000: the pipeline's default DIGEST_RANK_PAGE). Printed: the CPU seconds a
1,000 subscribers of each pass (time.process_time, and the forked processes' own: the
other core may be busy), the least of them, and each pass's wall seconds a 1,000.
With one process (the default) cProfile sees every chunk; with two, the chunks run as
in a run, the forked process losing what it fills in at each page's end.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from run import children_cpu_s, day_papers, make_profiles  # noqa: E402

from digest import forking, rank  # noqa: E402
from digest.config import RANK_PAGE  # noqa: E402
from digest.models import Paper, Profile  # noqa: E402


def varied(profiles: list[Profile], history: Sequence[Paper], seed: int) -> list[Profile]:
    """Return the profiles, every third one given liked/disliked papers and keywords."""
    rng = random.Random(seed + 1)
    out = []
    for number, profile in enumerate(profiles):
        if number % 3 == 0:
            liked = tuple(rng.choice(history).key for _ in range(rng.randint(0, 3)))
            disliked = tuple(rng.choice(history).key for _ in range(rng.randint(0, 2)))
            words = rng.choice(history).title.split()[:2]
            profile = replace(profile, liked=liked, disliked=disliked,
                              keywords=(" ".join(words),) if number % 2 else ())
        out.append(profile)
    return out


def rank_all(ranker: rank.Ranker, profiles: Sequence[Profile], popularity: Sequence[float],
             size: int = RANK_PAGE) -> list[rank.RankResult]:
    """Rank every profile in pages of ``size``, as the pipeline does; return each page's
    result."""
    results = []
    for start in range(0, len(profiles), size):
        page = profiles[start : start + size]
        results.append(ranker.rank(page, top_k=[10] * len(page), exclude=[set()] * len(page),
                                   popularity=popularity[start : start + size]))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the day, rank the subscribers ``--repeat`` times; print CPU a 1,000."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=5_000)
    parser.add_argument("--papers", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--processes", type=int, default=1,
                        help="scoring processes (2: forked a page, as the pipeline does)")
    parser.add_argument("--page", type=int, default=RANK_PAGE,
                        help="subscribers a rank call (the pipeline's DIGEST_RANK_PAGE)")
    parser.add_argument("--warmup", type=int, default=RANK_PAGE,
                        help="subscribers ranked first, untimed (0: none)")
    parser.add_argument("--variety", action="store_true",
                        help="likes, dislikes, keywords and popularity for some subscribers")
    parser.add_argument("--dump", type=Path, help="write every list (key, score, reason)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of each pass (PATH.N)")
    args = parser.parse_args(argv)

    batch, history = day_papers(args.papers)
    state = rank.Ranker(history[-1000:], history=history, state=None).state

    def subscribers(seed: int, count: int) -> tuple[list[Profile], list[float]]:
        profiles = [p for p, _ in make_profiles(history, count, seed=seed)]
        if not args.variety:
            return profiles, [0.0] * count
        return varied(profiles, history, seed), [0.5 if n % 7 == 0 else 0.0
                                                  for n in range(count)]

    started = time.process_time()
    ranker = rank.Ranker(batch, history=history, state=state,
                         options=rank.RankOptions(processes=args.processes))
    ranker.rank(subscribers(args.seed - 1, 1)[0])  # builds the world: the preparation
    preparing = time.process_time() - started
    if args.warmup:  # what earlier pages of the day leave in this process
        rank_all(ranker, *subscribers(args.seed - 1, args.warmup), args.page)
    passes, walls = [], []
    results: list[rank.RankResult] = []
    for number in range(args.repeat):
        profiles, popularity = subscribers(args.seed + number, args.subscribers)
        profiler = cProfile.Profile() if args.profile else None
        started, wall = time.process_time(), time.perf_counter()
        children = children_cpu_s()
        if profiler is not None:
            profiler.enable()
        results += rank_all(ranker, profiles, popularity, args.page)
        if profiler is not None:
            profiler.disable()
        # The last page's processes exit beside the next page's work: waited for here,
        # so that their CPU is counted.
        forking._join_exiting()
        passes.append(time.process_time() - started + children_cpu_s() - children)
        walls.append(time.perf_counter() - wall)
        if profiler is not None and args.profile:
            profiler.dump_stats(f"{args.profile}.{number + 1}")
    per_1000 = [round(s / args.subscribers * 1000, 3) for s in passes]
    wall_1000 = [round(s / args.subscribers * 1000, 3) for s in walls]
    print(f"{args.subscribers:,} subscribers x {len(batch):,} papers, {args.processes} "
          f"process(es), pages of {args.page:,}, after {args.warmup:,} warming up: "
          f"preparing {preparing:.2f} s CPU; ranking CPU s a 1,000 subscribers {per_1000} "
          f"(least {min(per_1000):.3f}), wall s a 1,000 {wall_1000}")
    if args.dump:
        lists = [[[s.paper.key, s.score, s.reason] for s in ranking]
                 for result in results for ranking in result.rankings]
        extras = [[result.nothing_relevant, result.thresholds] for result in results]
        args.dump.write_text(json.dumps({"lists": lists, "pages": extras}, indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
