"""The arXiv category taxonomy shipped in digest/data/arxiv_categories.json."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache

from digest.config import PACKAGE_DIR

CATEGORIES_FILE = PACKAGE_DIR / "data" / "arxiv_categories.json"

# Category names that are also ordinary words of a field's topics: typed alone as an
# interest they more likely mean the topic ("performance" of a system) than stat.AP,
# cs.PF, stat.CO or stat.ME, so they name no category.
_TOPIC_WORDS = frozenset({"applications", "computation", "methodology", "performance"})
# What separates the parts of a profile's interests (as scoring.TEXT_PARTS) and the
# punctuation around a typed name.
_PARTS = re.compile(r"[;\n]")
_MARKS = re.compile(r"[^\w.\- ]+")


@dataclass(frozen=True)
class Category:
    """One arXiv category of the taxonomy."""

    code: str
    name: str
    group: str


@cache
def categories() -> tuple[Category, ...]:
    """Return the arXiv taxonomy, in file order."""
    data = json.loads(CATEGORIES_FILE.read_text(encoding="utf-8"))
    return tuple(Category(c["code"], c["name"], c["group"]) for c in data["categories"])


@cache
def category_codes() -> frozenset[str]:
    """Return every arXiv category code of the taxonomy (cs.LG, math.PR, ...)."""
    return frozenset(c.code for c in categories())


def _folded(text: str) -> str:
    return " ".join(_MARKS.sub(" ", text.lower().replace("&", " and ")).split()).strip(".-")


@cache
def _names() -> dict[str, tuple[str, ...]]:
    """Return folded name or code -> the codes it names ('machine learning': cs.LG and
    stat.ML, which arXiv names alike).
    """
    named: dict[str, tuple[str, ...]] = {}
    for category in categories():
        for key in (_folded(category.name), category.code.lower()):
            if key not in _TOPIC_WORDS:
                named[key] = (*named.get(key, ()), category.code)
    return named


def named_categories(interests: str) -> tuple[str, ...]:
    """Return the arXiv categories a profile's interests name, in the order typed.

    A line or ";"-separated part of the interests that is, as a whole, a category's
    name ("Computer Vision and Pattern Recognition", "robotics"; case, spacing and
    punctuation aside) or code ("cs.CV") names it: researchers describe their field by
    the arXiv listing they read. A name within a longer part ("robotics for surgery")
    names nothing.
    """
    if not interests:
        return ()
    names = _names()
    found: dict[str, None] = {}
    for part in _PARTS.split(interests):
        codes = names.get(_folded(part))
        if codes:
            found.update(dict.fromkeys(codes))
    return tuple(found)
