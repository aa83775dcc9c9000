"""Two-part terms the papers write three ways: "multi-agent", "multi agent", "multiagent".

A subscriber types one spelling of a keyword or an exclusion; the papers write any of
them. The ranker's words are split at hyphens and spaces, so "multi-agent" and "multi
agent" are one phrase already, but "multiagent" is another word: an exclusion of
"multi-agent" let papers on "multiagent reinforcement learning" through, and a keyword
of "fine-tuning" missed the papers writing "finetuning". other_spellings gives the
spellings to look for too, from digest/data/joined_words.txt: the pairs of words the
corpus writes both joined and split, as one term (measured by bench/joined_words.py;
"in-context" is not there, since no paper writes "incontext", nor "with in", "on line"
or "re search", whose joined words are words of their own).
"""

from __future__ import annotations

import functools
import itertools
import re
from pathlib import Path

from digest.rank.vectors import fold_accents

JOINS_FILE = Path(__file__).resolve().parent.parent / "data" / "joined_words.txt"
# Spellings of one keyword looked for at most (the typed one included): each of its
# words joined or split is another, and a long phrase of such words would multiply them.
MAX_SPELLINGS = 8

_NOT_ALNUM = re.compile(r"[\W_]+")


@functools.cache
def _table() -> tuple[dict[tuple[str, str], str], dict[str, tuple[str, str]]]:
    """Return (first, second) -> the joined word, and the joined word -> its two words.

    The file has a line per pair, its two words apart ('multi agent'), folded as the
    ranker folds words (lower case, accents off).
    """
    joins: dict[tuple[str, str], str] = {}
    splits: dict[str, tuple[str, str]] = {}
    for line in JOINS_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            first, second = line.split()
            joins[first, second] = first + second
            splits[first + second] = (first, second)
    return joins, splits


@functools.lru_cache(maxsize=65536)
def other_spellings(text: str) -> tuple[str, ...]:
    """Return the other spellings of a keyword or an exclusion, as its words folded and
    apart ('Multi-Agent RL' -> ('multiagent rl',); 'finetuning' -> ('fine tuning',)):
    each listed pair of its words joined, each listed word of it split, in every
    combination (at most MAX_SPELLINGS - 1); () when it has none.
    """
    words = _NOT_ALNUM.sub(" ", fold_accents(text.lower())).split()
    joins, splits = _table()
    if not (any(w in splits for w in words)
            or any(pair in joins for pair in itertools.pairwise(words))):
        return ()
    found: list[str] = []
    typed = " ".join(words)
    for spelling in _spellings(words, 0, joins, splits):
        written = " ".join(spelling)
        if written != typed and written not in found:
            found.append(written)
            if len(found) == MAX_SPELLINGS - 1:
                break
    return tuple(found)


def _spellings(
    words: list[str], at: int, joins: dict[tuple[str, str], str],
    splits: dict[str, tuple[str, str]],
) -> list[list[str]]:
    """Return every spelling of ``words[at:]``: each word as written, split, or joined
    with the next one (the words as written first)."""
    if at == len(words):
        return [[]]
    word = words[at]
    rest = _spellings(words, at + 1, joins, splits)
    out = [[word, *tail] for tail in rest]
    if word in splits:
        out += [[*splits[word], *tail] for tail in rest]
    joined = joins.get((word, words[at + 1])) if at + 1 < len(words) else None
    if joined is not None:
        out += [[joined, *tail] for tail in _spellings(words, at + 2, joins, splits)]
    return out

