"""Author names as researchers type them and as papers write them.

A name is folded for comparison (normalize_name), then a followed name is matched to the
names a batch's papers write (name_follows): initials stand for any given name they
start, a middle initial may be left out, and a full name never matches another first
name. On a surname many given names with one initial share ("Wang, W."), a full name
does not widen to the bare initial or to a longer given name that begins with it
(ambiguous_keys, a list measured on the corpus by bench/author_keys.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

from digest.rank.vectors import fold_accents

AMBIGUOUS_KEYS_FILE = Path(__file__).resolve().parent.parent / "data" / "ambiguous_author_keys.txt"

# Letters that carry no combining mark to drop: what someone types on a plain keyboard.
_PLAIN_LETTERS = str.maketrans({"ø": "o", "ł": "l", "ß": "ss", "æ": "ae", "œ": "oe",
                                "đ": "d", "ð": "d", "þ": "th", "ı": "i"})


# What may follow a comma in a name that is no "Last, First": 'Guy Steele, Jr.'.
_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})
# Dots of initials and hyphens of given names: arXiv lists one person as 'Vishal M.
# Patel' and 'Vishal M Patel', 'Yih-Chung Tham' and 'Yih Chung Tham'.
_NAME_MARKS = str.maketrans({".": " ", "-": " ", "\u2010": " "})


def normalize_name(name: str) -> str:
    """Return an author name folded for matching.

    Case, spacing, accents, the dots of initials and hyphens do not matter: 'J.  Smith'
    == 'j smith', 'Francois Durand' == 'François Durand' (composed or decomposed),
    'Lukasz' == 'Łukasz', 'Yih-Chung Tham' == 'Yih Chung Tham'; nor does the order of
    'Last, First' ('Wu, Jiajun' == 'Jiajun Wu') or Vancouver's 'Last F' ('LeCun Y' ==
    'Y LeCun'), nor a feed's trailing 'et al.'. A
    subscriber types the name of the author they follow as their keyboard, or their
    reference list, has it.
    """
    words = name.split()
    if ("," not in name and len(words) > 1 and len(words[0].rstrip(".")) > 1
            and len(initial := words[-1].rstrip(".")) == 1 and initial.isupper()):
        # Vancouver style, as PubMed and many journals' reference lists write a name:
        # 'LeCun Y' is Y. LeCun. One capital after a longer word only: 'Jian LI' and
        # 'Kaiming HE' are surnames in capitals.
        name = f"{initial}. {' '.join(words[:-1])}"
    folded = name.lower()
    if not folded.isascii():
        folded = fold_accents(folded.translate(_PLAIN_LETTERS))
    words = folded.translate(_NAME_MARKS).split()
    if len(words) > 2 and words[-2:] == ["et", "al"]:
        # A publisher's feed that names only the first author ("Sebastian Birk et al.",
        # Nature's subject feeds): the paper is still that author's.
        folded = folded[: folded.rfind("et")].rstrip(" ,")
    last, comma, first = folded.partition(",")
    if comma and "," not in first and last.strip() and first.strip():
        if " ".join(first.translate(_NAME_MARKS).split()) in _SUFFIXES:
            folded = f"{last} {first}"
        else:
            folded = f"{first} {last}"
    return " ".join(folded.translate(_NAME_MARKS).split())


def name_parts(folded: str) -> tuple[tuple[str, ...], str]:
    """Return a folded name's given names and its surname (its last word; 'jr' and the
    like dropped). A name of one word is a surname without given names.
    """
    words = folded.split()
    while len(words) > 1 and words[-1] in _SUFFIXES:
        words.pop()
    if not words:
        return (), ""
    return tuple(words[:-1]), words[-1]


@cache
def ambiguous_keys() -> frozenset[str]:
    """Return the ambiguous 'surname initial' keys of digest/data/ambiguous_author_keys.txt.

    The file has a line per surname, its ambiguous initials after it ('wang abcd...').
    """
    keys: set[str] = set()
    for line in AMBIGUOUS_KEYS_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            surname, initials = line.split()
            keys.update(f"{surname} {initial}" for initial in initials)
    return frozenset(keys)


def _initial_or_same(typed: str, written: str) -> bool:
    """Tell whether two given names can be one: the same, or an initial of the other."""
    if len(typed) == 1 or len(written) == 1:
        return typed[0] == written[0]
    return typed == written


def name_follows(typed: str, written: str, ambiguous: AbstractSet[str] = frozenset()) -> bool:
    """Tell whether a followed author (folded, as normalize_name) is a paper's author.

    Same surname, and the given names agree: 'y lecun' is 'yann lecun' and 'yann a
    lecun' (and 'yves lecun': that is what an initial says); 'yann lecun' is 'y lecun',
    'yann a lecun' and 'yann andre lecun', never 'yves lecun'; 'yann a lecun' is not
    'yann b lecun'. A surname alone matches only itself. Where the key of a full first
    name ('wang w') is in ``ambiguous``, the full name matches neither the paper's bare
    initial ('w wang') nor another given name it begins ('wei hao wang': arXiv writes
    Wei-Hao so), only added initials ('wei h wang').
    """
    if typed == written:
        return True
    given, surname = name_parts(typed)
    theirs, their_surname = name_parts(written)
    if surname != their_surname or not given or not theirs:
        return False
    first = given[0]
    if not _initial_or_same(first, theirs[0]):
        return False
    strict = len(first) > 1 and f"{surname} {first[0]}" in ambiguous
    if strict and len(theirs[0]) == 1:
        return False
    return _middle_names(given[1:], theirs[1:], strict=strict)


def _middle_names(typed: tuple[str, ...], written: tuple[str, ...], *, strict: bool) -> bool:
    """Tell whether the shorter middle names are, in order, among the longer ones; the
    rest are left out (only initials where ``strict``)."""
    short, long = (typed, written) if len(typed) <= len(written) else (written, typed)
    at = 0
    for word in long:
        if at < len(short) and _initial_or_same(short[at], word):
            at += 1
        elif strict and len(word) > 1:
            return False
    return at == len(short)


@dataclass(frozen=True)
class NameIndex:
    """A batch's folded author names (column -> name) by name_key; built once a rank call.

    ``found`` keeps what each followed name, as typed, matched: profiles follow the same
    people, and the boosts and the reason lines ask for each.
    """

    names: tuple[str, ...]
    by_key: dict[str, tuple[int, ...]]  # name_key -> columns
    found: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)

    def columns(self, typed: str) -> tuple[int, ...]:
        """Return the columns of the batch's names that a followed author typed so is."""
        hit = self.found.get(typed)
        if hit is None:
            folded = normalize_name(typed)
            ambiguous = ambiguous_keys()
            hit = tuple(j for j in self.by_key.get(name_key(folded), ())
                        if name_follows(folded, self.names[j], ambiguous))
            self.found[typed] = hit
        return hit

    def loose(self, typed: str) -> bool:
        """Tell whether a followed name is an initial on a surname that initial is shared
        by many given names ('Y. Wang': Yu, Yi, Yang... Wang; ambiguous_keys): on a
        600-paper day it matches ~5 papers, up to 32. A profile with words or example
        papers to judge by gets such papers boosted, not listed whatever they are about.
        """
        return _loose(typed)

    def followed(self, typed: Iterable[str]) -> set[str]:
        """Return the batch's folded names that these followed authors are."""
        names = self.names
        return {names[j] for name in typed for j in self.columns(name)}


@lru_cache(maxsize=65536)
def _loose(typed: str) -> bool:
    given, surname = name_parts(normalize_name(typed))
    return bool(given) and len(given[0]) == 1 and f"{surname} {given[0]}" in ambiguous_keys()


def name_key(folded: str) -> str:
    """Return 'surname initial' of a folded name ('surname ' without given names): two
    names one can follow the other of share it."""
    given, surname = name_parts(folded)
    return f"{surname} {given[0][0] if given else ''}"


def name_index(names: Iterable[str]) -> NameIndex:
    """Index folded names (in column order) by name_key."""
    listed = tuple(names)
    by_key: dict[str, list[int]] = {}
    for j, name in enumerate(listed):
        by_key.setdefault(name_key(name), []).append(j)
    return NameIndex(listed, {key: tuple(js) for key, js in by_key.items()})


__all__ = ["NameIndex", "ambiguous_keys", "name_follows", "name_index", "name_key",
           "name_parts", "normalize_name"]
