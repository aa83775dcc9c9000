"""Which texts hold a phrase, read only where all of the phrase's words are.

The ranker looks for keywords and excluded phrases as ``" phrase " in text`` in texts
written as word forms (scoring._word_forms: " word word ... "). Reading every text for
every new phrase cost ~1-2 ms a phrase (2,600 texts), paid again in every forked scoring
process, whose cache is lost at the end of its page. A word -> texts index, built once
a day before the fork, gives the texts holding every word of the phrase; only those are
read, with the same ``in`` test, so the answer is the scan's.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class PhraseIndex:
    """Texts, and for each word (a run of characters between two spaces) the texts
    holding it, ascending."""

    texts: list[str]
    rows: dict[str, int]  # word -> its run of ``holders``
    starts: np.ndarray  # len(rows) + 1 offsets into ``holders``
    holders: np.ndarray  # int32: each word's texts, ascending, word after word

    def holding(self, phrase: str, count: int) -> np.ndarray:
        """Return which of the first ``count`` texts hold ``phrase``: one flag a text,
        ``f" {phrase} " in text`` for each."""
        needle = f" {phrase} "
        words = phrase.split(" ")
        if not all(words):
            # Spaced otherwise than a word form phrase ("", "a  b", " a"): no words to
            # look up, so every text is read (what such a needle can match is not
            # bounded by the words between spaces).
            texts = self.texts[:count]
            return np.fromiter((needle in text for text in texts), dtype=bool,
                               count=len(texts))
        hits = np.zeros(count, dtype=bool)
        held = []
        for word in dict.fromkeys(words):
            row = self.rows.get(word)
            if row is None:  # a word no text holds: no text holds the phrase
                return hits
            held.append(self.holders[self.starts[row]:self.starts[row + 1]])
        held.sort(key=len)
        found = held[0][: np.searchsorted(held[0], count)]
        for other in held[1:]:
            found = np.intersect1d(found, other, assume_unique=True)
        # Every word of the needle is in it between two spaces, so a text holding the
        # needle holds each word as one of its words: it is among ``found``. Whether the
        # words are there in this order, next to each other, the text itself says.
        texts = self.texts
        hits[[i for i in found.tolist() if needle in texts[i]]] = True
        return hits


def index_phrases(texts: list[str]) -> PhraseIndex:
    """Return the index of ``texts`` (its words: what splitting each at spaces gives)."""
    rows: defaultdict[str, int] = defaultdict(itertools.count().__next__)  # a new word: the next
    words: list[int] = []
    counts = np.zeros(len(texts) + 1, dtype=np.int32)
    for i, text in enumerate(texts, start=1):
        held = set(text.split(" "))
        held.discard("")  # between two spaces in a row, or at a text's either end
        words += map(rows.__getitem__, held)
        counts[i] = len(held)
    # Text x word, turned word x text: scipy's conversion places each word's texts in
    # the order the texts come (ascending), in C, without sorting.
    by_text = sp.csr_matrix((np.ones(len(words), dtype=np.int8),
                             np.asarray(words, dtype=np.int32), np.cumsum(counts)),
                            shape=(len(texts), len(rows)))
    by_word = by_text.tocsc()
    return PhraseIndex(texts=texts, rows=dict(rows), starts=by_word.indptr,
                       holders=by_word.indices)
