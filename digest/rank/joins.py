"""Two-part terms the papers write three ways: "multi-agent", "multi agent", "multiagent".

A subscriber types one spelling of a keyword or an exclusion; the papers write any of
them. The ranker's words are split at hyphens and spaces, so "multi-agent" and "multi
agent" are one phrase already, but "multiagent" is another word: an exclusion of
"multi-agent" let papers on "multiagent reinforcement learning" through, and a keyword
of "fine-tuning" missed the papers writing "finetuning". other_spellings gives the
spellings to look for too, from digest/data/joined_words.txt: the pairs of words the
corpus writes both joined and split, as one term (measured by bench/joined_words.py;
"in-context" is not there, since no paper writes "incontext", nor "with in", "on line"
or "re search", whose joined words are words of their own). Free-text interests are
written with each term in the spelling the vocabulary's papers write most (written_as,
profiles._vocabulary_spellings), and a paper writing the other one counts it as well
(scoring.Spellings).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
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


def two_part_terms() -> list[tuple[str, str, str]]:
    """Return every listed two-part term as (joined word, first word, second word)."""
    return [(joined, first, second) for (first, second), joined in _table()[0].items()]


# A word of free text, and what may stand between the two words of a pair written apart:
# a hyphen or spaces (not a line's end, a ";" or a sentence's ".").
_WORD = re.compile(r"[^\W_]+")
_APART = re.compile(r"-|[ \t]+")


def written_as(text: str, split: Mapping[str, tuple[str, str]],
               join: Mapping[tuple[str, str], str], leading: AbstractSet[str]) -> str:
    """Return free text with each joined word of ``split`` written apart ("zeroshot" ->
    "zero shot") and each pair of ``join`` joined (keys folded, lower case); the rest
    of the text as typed. ``leading``: the keys of ``split`` and the first words of
    ``join``'s: a text with none of them (most) is returned as it is after one pass
    over its words.
    """
    lowered = text.lower()
    ascii_only = lowered.isascii()
    plain = _WORD.findall(lowered if ascii_only else fold_accents(lowered))
    if leading.isdisjoint(plain):
        return text
    # An ASCII text's lower case has its offsets: its words are those already found.
    words = list(_WORD.finditer(lowered if ascii_only else text))
    folded = plain if ascii_only else [fold_accents(w.group().lower()) for w in words]
    out: list[str] = []
    end = 0
    skip = False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        fold = folded[i]
        if fold in split:
            out.append(text[end:word.start()] + " ".join(split[fold]))
            end = word.end()
        elif (i + 1 < len(words) and (fold, folded[i + 1]) in join
                and _APART.fullmatch(text, word.end(), words[i + 1].start())):
            out.append(text[end:word.start()] + join[fold, folded[i + 1]])
            end = words[i + 1].end()
            skip = True
    out.append(text[end:])
    return "".join(out)
