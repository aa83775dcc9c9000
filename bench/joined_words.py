"""Measure which two-part terms the corpus writes joined, hyphenated and apart; rebuild
their list.

The list: digest/data/joined_words.txt (digest/rank/joins.py reads it).

Usage: .venv/bin/python bench/joined_words.py [--write] (about 20 s)
Reads every title and abstract of the corpus, folded as the ranker folds them (lower
case, accents off), and counts, per pair of words (a, b) whose joined form "ab" is a
word of the papers, in how many papers "ab" is written (joined), "a-b" (hyphenated) and
"a b" (apart: only spaces between). A pair is listed, so that a keyword or an exclusion
typed in one of its spellings finds the others, when:

- both spellings are the papers' own: "ab" in 2 papers or more, "a-b" or "a b" too, and
  the split spelling is no rare slip of a word of its own (at least 1 paper in
  ``SLIP`` of those writing "ab": "re-search" 3 against "research" 4,365, "frame work"
  3 against "framework" 17,535);
- and the words are one term: the pair is written with its hyphen at least as often as
  apart ("multi-agent" 1,553 / "multi agent" 24), where a part that is an English stop
  word or a letter needs 2 hyphenated papers, and a letter as many as the joined word
  ("X-ray" 205 / "xray" 14; not "ViT-S" 10 / "ViTs" 192, nor "k-d" 2 / "kd" 78): "with
  in", "on line", "can not", "over all", "may be", "'s core" are neighbours by chance,
  never hyphenated; or, two content words, the joined word is at least as common as
  the words apart, apart in 3 papers or more (an open compound: "data set" 42 / "dataset"
  7,620, "health care", "code base").

Printed: how many pairs each rule keeps and leaves out (with the most written of each),
and the counts of the spellings researchers ask about. ``--write`` writes the file.
The corpus path comes from DIGEST_CORPUS or defaults to ../shared/data/corpus.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

from corpus import corpus_path
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from digest.evaluate import load_corpus
from digest.rank.joins import JOINS_FILE
from digest.rank.vectors import fold_accents

SLIP = 250  # the split spelling in fewer than 1 of SLIP papers writing the joined word
LEAST_APART = 3  # papers writing an open compound apart
ASKED = ["multi agent", "pre training", "fine tuning", "fine tuned", "non convex",
         "co training", "self supervised", "real time", "data set", "few shot", "zero shot",
         "x ray", "a priori", "in context", "on line", "with in", "can not", "may be",
         "re search", "frame work", "key point", "vit s", "k d", "s core", "speed up"]

_WORD = re.compile(r"[a-z0-9]+")
_HYPHENATED = re.compile(r"\b([a-z][a-z0-9]*)[-\u2010\u2011]([a-z][a-z0-9]*)\b")
_APART = re.compile(r"(?=\b([a-z][a-z0-9]*) +([a-z][a-z0-9]*)\b)")


def main() -> None:
    """Count the corpus's spellings of two-part terms; print; write the file with --write."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the shipped file")
    args = parser.parse_args()
    corpus = str(corpus_path())
    papers = load_corpus(corpus)
    joined: collections.Counter[str] = collections.Counter()
    hyphenated: collections.Counter[tuple[str, str]] = collections.Counter()
    apart: collections.Counter[tuple[str, str]] = collections.Counter()
    for paper in papers:
        text = fold_accents(f"{paper.title} . {paper.abstract}".lower())
        joined.update(set(_WORD.findall(text)))
        hyphenated.update(set(_HYPHENATED.findall(text)))
        apart.update(set(_APART.findall(text)))
    pairs = {pair for pair in (*hyphenated, *apart) if "".join(pair) in joined}
    print(f"{len(papers):,} papers; {len(pairs):,} pairs (a, b) written hyphenated or apart"
          " whose joined form is a word of the papers")
    kept: dict[str, tuple[str, str]] = {}
    outcomes: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
    for a, b in pairs:
        counts = joined[a + b], hyphenated[a, b], apart[a, b]
        verdict = _verdict(a, b, *counts)
        outcomes[verdict].append((sum(counts), f"{a}-{b} {counts[0]}/{counts[1]}/{counts[2]}"))
        if verdict.startswith("kept"):
            best = kept.get(a + b)
            if best is None or sum(counts[1:]) > hyphenated[best] + apart[best]:
                kept[a + b] = (a, b)
    print("verdict (pairs; the most written: joined/hyphenated/apart papers)")
    for verdict, found in sorted(outcomes.items()):
        found.sort(reverse=True)
        print(f" {verdict:44} {len(found):6,}  {', '.join(s for _, s in found[:6])}")
    print("asked about: joined/hyphenated/apart papers, verdict")
    for asked in ASKED:
        a, b = asked.split()
        counts = joined[a + b], hyphenated[a, b], apart[a, b]
        verdict = _verdict(a, b, *counts)
        print(f" {a}-{b:18} {counts[0]:6,} {counts[1]:6,} {counts[2]:6,}  {verdict}")
    print(f"listed: {len(kept):,} joined words")
    if args.write:
        lines = [f"# Written by bench/joined_words.py from {Path(corpus).name}: two words"
                 " the papers also write as one (hyphenated, apart or joined).",
                 *(f"{a} {b}" for a, b in sorted(kept.values()))]
        JOINS_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {JOINS_FILE} ({JOINS_FILE.stat().st_size:,} bytes)")


def _verdict(a: str, b: str, together: int, hyphen: int, spaced: int) -> str:
    """Return whether a pair is listed, and by which rule or why not."""
    split = hyphen + spaced
    if together < 2 or split < 2:
        return "out: a spelling in fewer than 2 papers"
    if split * SLIP < together:
        return "out: the split spelling a rare slip"
    letter = len(a) < 2 or len(b) < 2
    weak = letter or a in ENGLISH_STOP_WORDS or b in ENGLISH_STOP_WORDS
    if hyphen >= spaced:
        if weak and hyphen < 2:
            return "out: a stop word or letter, hyphenated < 2"
        if letter and hyphen < together:
            return "out: a letter, hyphenated less than joined"
        return "kept: hyphenated at least as often as apart"
    if weak:
        return "out: a stop word or letter, apart more often"
    if together >= spaced >= LEAST_APART:
        return "kept: an open compound"
    return "out: apart more often than joined or hyphenated"


if __name__ == "__main__":
    main()
