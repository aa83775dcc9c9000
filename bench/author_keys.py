"""Measure which 'surname + first initial' keys are ambiguous; rebuild their list.

The list: digest/data/ambiguous_author_keys.txt.

Usage: .venv/bin/python bench/author_keys.py [--write] (about 10 s)
Reads every author of the corpus (folded as the ranker folds them), groups the names
with a full first name by key (surname, first letter) and measures each key's
ambiguity: the chance that two of its names, drawn by how often the corpus lists them,
have the same first name (the Simpson index of the first names). Below 1/2, a paper's
"W. Wang" is more likely someone else than the "Wei Wang" a subscriber follows: the key
is ambiguous. Printed: the index by how many first names a key has, the share of names
written with a first initial, and, as a check of the matching rules, how often two
names a rule would join share a co-author (one person's two spellings usually do;
two people with one surname rarely). ``--write`` writes the file.
The corpus path comes from DIGEST_CORPUS or defaults to ../shared/data/corpus.
"""

from __future__ import annotations

import argparse
import collections
import random
from pathlib import Path

from corpus import corpus_path

from digest.evaluate import load_corpus
from digest.rank.authors import AMBIGUOUS_KEYS_FILE, name_parts, normalize_name

AMBIGUOUS = 0.5  # a key whose Simpson index is below this is ambiguous
PER_SURNAME = 400  # names of a surname compared pairwise at most (a sample of the rest)


def main() -> None:
    """Measure the corpus's author keys; print; write the file with --write."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the shipped file")
    args = parser.parse_args()
    corpus = str(corpus_path())
    papers = load_corpus(corpus)
    listed: collections.Counter[str] = collections.Counter()
    coauthors: dict[str, set[str]] = collections.defaultdict(set)
    for paper in papers:
        names = [normalize_name(a) for a in paper.authors]
        for name in names:
            listed[name] += 1
            coauthors[name].update(n for n in names if n != name)
    firsts: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    initials = 0
    for name, count in listed.items():
        given, surname = name_parts(name)
        if not given:
            continue
        if len(given[0]) == 1:
            initials += count
        else:
            firsts[surname, given[0][0]][given[0]] += count
    simpson = {key: sum((c / sum(v.values())) ** 2 for c in v.values())
               for key, v in firsts.items()}
    total = sum(listed.values())
    print(f"{len(papers):,} papers, {total:,} author names listed, {len(listed):,} distinct;"
          f" {initials:,} ({initials / total:.2%}) written with a first initial")
    print(f"{len(firsts):,} keys (surname, first initial) of names with a full first name")
    print(" first names  keys  mean Simpson  ambiguous")
    by_count: dict[int, list[float]] = collections.defaultdict(list)
    for key, v in firsts.items():
        by_count[min(len(v), 10)].append(simpson[key])
    for n in sorted(by_count):
        values = by_count[n]
        mean = sum(values) / len(values)
        share = sum(s < AMBIGUOUS for s in values) / len(values)
        print(f" {n:>10}{'+' if n == 10 else ' '} {len(values):6,}  {mean:12.2f}  {share:8.0%}")
    ambiguous = {key for key, s in simpson.items() if s < AMBIGUOUS}
    by_surname: dict[str, str] = collections.defaultdict(str)
    for surname, initial in sorted(ambiguous):
        by_surname[surname] += initial
    print(f"ambiguous keys: {len(ambiguous):,} of {len(firsts):,}, on {len(by_surname):,}"
          " surnames")
    _joins(listed, coauthors, ambiguous)
    if args.write:
        lines = [f"# Written by bench/author_keys.py from {Path(corpus).name}:"
                 " surname, then its ambiguous first initials.",
                 *(f"{surname} {letters}" for surname, letters in sorted(by_surname.items()))]
        AMBIGUOUS_KEYS_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {AMBIGUOUS_KEYS_FILE} ({AMBIGUOUS_KEYS_FILE.stat().st_size:,} bytes)")


def _joins(listed: collections.Counter[str], coauthors: dict[str, set[str]],
           ambiguous: set[tuple[str, str]]) -> None:
    """Print, per kind of join of two distinct names of one surname, how often they share
    a co-author, on ambiguous keys and on the others."""
    surnames: dict[str, list[tuple[str, tuple[str, ...]]]] = collections.defaultdict(list)
    for name in listed:
        given, surname = name_parts(name)
        if given:
            surnames[surname].append((name, given))
    counts: dict[tuple[str, bool], list[int]] = collections.defaultdict(lambda: [0, 0])
    rng = random.Random(0)
    for surname, names in surnames.items():
        if len(names) > PER_SURNAME:
            names = rng.sample(names, PER_SURNAME)
        for i, (a, ga) in enumerate(names):
            for b, gb in names[i + 1:]:
                kind = _kind(ga, gb)
                if kind is None:
                    continue
                full = ga if len(ga[0]) > 1 else gb
                counts[kind, (surname, full[0][0]) in ambiguous][0] += 1
                counts[kind, (surname, full[0][0]) in ambiguous][1] += bool(
                    coauthors[a] & coauthors[b])
    print("two names of one surname, the first letter of their first names the same:")
    print(" kind                         key         pairs  share a co-author")
    for (kind, on_ambiguous), (pairs, shared) in sorted(counts.items()):
        where = "ambiguous" if on_ambiguous else "other"
        print(f" {kind:28} {where:9} {pairs:8,}  {shared / pairs:6.1%}")


def _kind(a: tuple[str, ...], b: tuple[str, ...]) -> str | None:
    """Return which rule would join two given names (None: none would be asked)."""
    if a[0][0] != b[0][0]:
        return None
    if len(a[0]) == 1 and len(b[0]) == 1:
        return None
    if len(a[0]) == 1 or len(b[0]) == 1:
        return "initial vs full first name"
    if a[0] != b[0]:
        return "different first names"  # never joined: the floor
    if a[1:] and b[1:]:
        return None
    added = a[1:] or b[1:]
    return ("middle initials added" if all(len(w) == 1 for w in added)
            else "middle names added")


if __name__ == "__main__":
    main()
