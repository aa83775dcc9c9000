"""What matching followed authors costs a rank call, and what it finds (about a minute).

Usage: .venv/bin/python bench/follow_cost.py [--profiles N] [--repeat R] [--days D]
A real day of the corpus (its largest of the last ten; with D, it and the D - 1 days
before as one batch: a corpus day has ~600 papers, three ~1,800) is ranked, the seven
days before as history, for N synthetic subscribers (bench/run.py's: a history paper's title as
interests, its categories, maybe seeds) who each follow one to three authors of history
papers, typed as the paper writes them, with initials ("Y. LeCun") or as "LeCun, Yann".
Printed: the rank call's time (one process; the best of R), the time of the chunk's
boosts (boost_values) alone, and the (subscriber, paper) pairs a followed author vouches
for. Run it on two checkouts (PYTHONPATH) to compare.
The corpus path comes from DIGEST_CORPUS or defaults to ../shared/data/corpus.
"""

from __future__ import annotations

import argparse
import random
import time

from corpus import corpus_path

from digest.evaluate import by_day, load_corpus
from digest.models import Profile, with_aliases
from digest.rank import RankOptions, rank
from digest.rank.metadata import boost_values, index_batch


def _typed(name: str, rng: random.Random) -> str:
    """Return an author's name as a subscriber might type it."""
    words = name.split()
    if len(words) < 2:
        return name
    form = rng.random()
    if form < 0.4:
        return name
    if form < 0.7:
        return " ".join([*(f"{w[0]}." for w in words[:-1]), words[-1]])
    return f"{words[-1]}, {' '.join(words[:-1])}"


def main() -> None:
    """Rank a real day for subscribers who follow authors; print the times."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--days", type=int, default=1)
    args = parser.parse_args()
    days = by_day(load_corpus(str(corpus_path())))
    dates = sorted(days)
    day = max(dates[-10:], key=lambda d: len(days[d]))
    at = dates.index(day)
    first = max(0, at - args.days + 1)
    batch = [p for d in dates[first:at + 1] for p in days[d]]
    history = [p for d in dates[max(0, first - 7):first] for p in days[d]]
    rng = random.Random(1)
    profiles = []
    for _ in range(args.profiles):
        anchor = rng.choice(history)
        authors = tuple(_typed(rng.choice(rng.choice(history).authors or ("",)), rng)
                        for _ in range(rng.randint(1, 3)))
        profiles.append(Profile(interests=anchor.title, categories=anchor.categories[:1],
                                authors=tuple(a for a in authors if a)))
    print(f"{day}: {len(batch):,} papers, {len(history):,} history, {len(profiles):,}"
          f" subscribers following {sum(len(p.authors) for p in profiles):,} names")
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        rank(batch, profiles, history=history, top_k=10, options=RankOptions(processes=1))
        best = min(best, time.perf_counter() - start)
    boosts = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        index = index_batch(batch)  # a fresh index: what each names matched is kept in it
        found = boost_values(index, [with_aliases(p.categories) for p in profiles],
                             [p.authors for p in profiles], category_boost=0.05,
                             author_boost=0.3)
        boosts = min(boosts, time.perf_counter() - start)
    print(f"rank call {best:.2f} s; index + boosts {boosts * 1000:.1f} ms;"
          f" vouched pairs {found.vouched_rows.size:,}")


if __name__ == "__main__":
    main()
