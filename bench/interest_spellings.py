"""Interests typed in one spelling of a two-part term: do they find the other spellings?

Usage: .venv/bin/python bench/interest_spellings.py [--days N] [--terms N]

A two-part term the corpus writes three ways ("multi-agent", "multi agent", "multiagent";
digest/data/joined_words.txt) is typed in each of its spellings as a profile's whole
interests, and a title of an earlier paper holding the term is typed with the term
retyped each way ("Cooperative multiagent RL for traffic" and "... multi-agent RL ...").
On each of the corpus's last ``--days`` days (text only, the 7 days before as
history) the terms are those that the day's papers write at least 3 times, joined at
least once and apart (or hyphenated) at least once: the spelling typed then decides
which of them a word query finds. Printed, over every (term, context) of every day:

- held: the share of a list's first ten papers that write the term in any spelling
  (mean over lists), by the spelling typed;
- alike: how many of the first ten papers the lists of the three spellings share,
  mean over the three pairs (10: a spelling changes nothing).

The corpus path comes from DIGEST_CORPUS or defaults to ../shared/data/corpus.
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections.abc import Sequence

from corpus import corpus_path

from digest.evaluate import by_day, load_corpus, text_only
from digest.models import Paper, Profile
from digest.rank import rank
from digest.rank.joins import JOINS_FILE

SPELLINGS = ("joined", "hyphenated", "apart")


def pairs() -> list[tuple[str, str]]:
    """Return the listed pairs of words (first, second)."""
    out = []
    for line in JOINS_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            first, second = line.split()
            out.append((first, second))
    return out


def _pattern(first: str, second: str) -> re.Pattern[str]:
    """Any spelling of the term (a plural too), as a whole word."""
    return re.compile(rf"\b{re.escape(first)}(?:[-\s]?){re.escape(second)}s?\b", re.I)


def _text(paper: Paper) -> str:
    return f"{paper.title} {paper.abstract}"


def spelled(text: str, first: str, second: str, how: str) -> str:
    """Return ``text`` with every spelling of the term written ``how``."""
    word = {"joined": first + second, "hyphenated": f"{first}-{second}",
            "apart": f"{first} {second}"}[how]
    return _pattern(first, second).sub(lambda m: word + ("s" if m.group().endswith("s")
                                                        and not second.endswith("s")
                                                        else ""), text)


def day_terms(batch: Sequence[Paper], listed: Sequence[tuple[str, str]],
              wanted: int) -> list[tuple[str, str]]:
    """Return up to ``wanted`` terms the day writes 3+ times, joined and apart both."""
    texts = [_text(p) for p in batch]
    found = []
    for first, second in listed:
        joined = re.compile(rf"\b{re.escape(first + second)}s?\b", re.I)
        pattern = _pattern(first, second)
        holding = [t for t in texts if pattern.search(t)]
        together = sum(1 for t in holding if joined.search(t))
        if len(holding) >= 3 and 0 < together < len(holding):
            found.append((len(holding), first, second))
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    return [(first, second) for _, first, second in found[:wanted]]


def main() -> None:
    """Rank every term's spellings on the last days; print held and alike."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--terms", type=int, default=15, help="terms a day at most")
    args = parser.parse_args()
    days = by_day(load_corpus(str(corpus_path())))
    dates = [d for d, batch in days.items() if len(batch) >= 150]
    listed = pairs()
    held: dict[str, list[float]] = {how: [] for how in SPELLINGS}
    alike: list[float] = []
    cases = 0
    for day in dates[-args.days:]:
        at = dates.index(day)
        batch = text_only(days[day])
        history = text_only([p for d in dates[max(0, at - 7):at] for p in days[d]])
        terms = day_terms(batch, listed, args.terms)
        profiles: list[Profile] = []
        patterns = []
        for first, second in terms:
            pattern = _pattern(first, second)
            context = next((p.title for p in reversed(history) if pattern.search(p.title)),
                           None)
            for base in filter(None, (f"{first} {second}", context)):
                profiles += [Profile(interests=spelled(base, first, second, how))
                             for how in SPELLINGS]
                patterns.append(pattern)
        rankings = rank(batch, profiles, history=history, top_k=10).rankings
        for n, pattern in enumerate(patterns):
            lists = rankings[3 * n: 3 * n + 3]
            for how, ranking in zip(SPELLINGS, lists, strict=True):
                holding = sum(1 for s in ranking if pattern.search(_text(s.paper)))
                held[how].append(holding / max(1, len(ranking)))
            keys = [{s.paper.key for s in ranking} for ranking in lists]
            alike.append(sum(len(a & b) for a, b in itertools.combinations(keys, 2)) / 3)
            cases += 1
        print(f"{day}: {len(terms)} terms", flush=True)
    print(f"{cases} (term, context) cases on {args.days} days; share of the first ten "
          "holding the term, by the spelling typed: "
          + ", ".join(f"{how} {sum(v) / len(v):.2f}" for how, v in held.items())
          + f"; papers the three spellings' lists share (of 10): {sum(alike) / len(alike):.2f}")


if __name__ == "__main__":
    main()
