"""Time and size the day's phrase indexes; check they answer as reading every text does.

    python bench/phrase_index.py [--papers 2000] [--phrases 3000]

The day is bench/run.py's (as bench/rank_cpu.py's). Printed: the CPU and the memory
(tracemalloc, held after and at the peak) of building the world's word indexes of the
targets' texts and titles (World.target_texts, target_titles: made once a day, before
the fork, when a page has keywords or excluded phrases), and per phrase the CPU of a
look-up through them against reading every text (``f" {phrase} " in text``, as the
ranker did). The phrases are every --variety keyword of bench/rank_cpu.py's kind (a
history title's first two words, in each of its spellings), and runs of one to four
words cut from the targets' texts and titles at random places (across a title's end
into its abstract too), some with a word changed for its neighbour's or a space
doubled; every answer must be the scan's, or the script fails.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from run import day_papers  # noqa: E402

from digest.rank import scoring  # noqa: E402


def scanned(texts: Sequence[str], phrase: str, count: int) -> np.ndarray:
    """Return which of the first ``count`` texts hold the phrase, reading every one."""
    needle = f" {phrase} "
    return np.fromiter((needle in text for text in texts[:count]), dtype=bool, count=count)


def cut_phrases(texts: Sequence[str], wanted: int, rng: random.Random) -> list[str]:
    """Return runs of 1-4 words of the texts, some changed so that fewer texts hold them."""
    phrases = []
    for _ in range(wanted):
        words = rng.choice(texts).split()
        if not words:
            continue
        start = rng.randrange(len(words))
        run = words[start : start + rng.randint(1, 4)]
        kind = rng.random()
        if kind < 0.2 and len(run) > 1:  # the words, not next to each other in this order
            run[0], run[-1] = run[-1], run[0]
        elif kind < 0.25:  # spaced otherwise than a word form phrase: every text is read
            phrases.append("  ".join(run))
            continue
        phrases.append(" ".join(run))
    return phrases


def main(argv: Sequence[str] | None = None) -> int:
    """Build the day's world, time its indexes and their look-ups, check every answer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=2_000)
    parser.add_argument("--phrases", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    batch, history = day_papers(args.papers)
    batch.sort(key=lambda p: p.key)
    space = scoring.prepare_space(None, history, batch)
    world = scoring.build_world(batch, space, history, scoring.RankOptions(processes=1))

    started = time.process_time()
    texts, titles = world.target_texts, world.target_titles
    built = time.process_time() - started
    del world.__dict__["target_texts"], world.__dict__["target_titles"]
    tracemalloc.start()
    texts, titles = world.target_texts, world.target_titles
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{world.n_batch:,} batch + {len(world.target_papers) - world.n_batch:,} calibration"
          f" papers: indexes built in {built * 1000:.0f} ms CPU, holding {held / 1e6:.1f} MB"
          f" (peak {peak / 1e6:.1f} MB); {len(texts.rows):,} words in texts "
          f"({texts.holders.size:,} entries), {len(titles.rows):,} in titles")

    rng = random.Random(args.seed)
    keywords = [" ".join(rng.choice(history).title.split()[:2]) for _ in range(args.phrases)]
    kinds = {
        "keywords": [p for k in keywords for p in scoring.literal_phrases(k)[0]],
        "texts": cut_phrases(texts.texts, args.phrases, rng),
        "titles": cut_phrases(titles.texts, args.phrases, rng),
    }
    wrong = 0
    for kind, phrases in kinds.items():
        phrases = list(dict.fromkeys(phrases))
        for name, index, counts in (("texts", texts, (world.n_batch, len(texts.texts))),
                                    ("titles", titles, (len(titles.texts),))):
            for count in counts:
                started = time.process_time()
                indexed = [index.holding(phrase, count) for phrase in phrases]
                middle = time.process_time()
                read = [scanned(index.texts, phrase, count) for phrase in phrases]
                ended = time.process_time()
                wrong += sum(not np.array_equal(a, b) for a, b in zip(indexed, read,
                                                                      strict=True))
                found = sum(bool(a.any()) for a in read)
                print(f"{kind:8} phrases {len(phrases):6,} in {count:5,} {name:6}: held by"
                      f" some {found:6,}; per phrase"
                      f" {(middle - started) / len(phrases) * 1e6:6.0f} us indexed,"
                      f" {(ended - middle) / len(phrases) * 1e6:6.0f} us read")
    print("every answer the scan's" if not wrong else f"{wrong} answers differ")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
