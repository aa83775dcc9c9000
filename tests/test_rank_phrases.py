"""The word index of the day's texts finds the papers holding a phrase as reading each
text for it (``f" {phrase} " in text``) did: keywords and excluded phrases match the
same papers. Real data: the sample batch (digest/data/sample_batch.jsonl)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from digest.ingest.jsonl import load_jsonl
from digest.rank.phrases import index_phrases
from digest.rank.scoring import _word_forms

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "digest" / "data" / "sample_batch.jsonl"


def _scanned(texts: list[str], phrase: str, count: int) -> list[bool]:
    """Which of the first ``count`` texts hold the phrase, as the ranker read them."""
    return [f" {phrase} " in text for text in texts[:count]]


HANDMADE = [
    ("Few-shot learning", "We study transfer across domains."),
    ("Learning from few shots", "Model model based planning."),
    ("Shot few", "Fewer examples."),
    ("", ""),  # a paper without title or abstract: its text is two spaces
]


@pytest.mark.parametrize(("phrase", "count", "held"), [
    ("few shot", 4, [True, True, False, False]),  # across the hyphen; 'shots' is 'shot'
    ("shot few", 4, [False, False, True, False]),  # the words, in this order only
    ("learn we study", 4, [True, False, False, False]),  # across the title's end
    ("few", 4, [True, True, True, False]),
    ("sho", 4, [False, False, False, False]),  # words whole, not parts of words
    ("model model", 4, [False, True, False, False]),  # a word twice, twice in a row
    ("model model model", 4, [False, False, False, False]),
    ("few shot", 1, [True]),  # the first texts only (the batch of the targets)
    ("few  shot", 4, [False, False, False, False]),  # spaced otherwise: every text read
    ("", 4, [False, False, False, True]),
])
def test_a_phrase_is_held_by_the_papers_reading_them_found_it_in(
    phrase: str, count: int, held: list[bool]
) -> None:
    texts = [_word_forms(f"{title} {abstract}") for title, abstract in HANDMADE]
    assert _scanned(texts, phrase, count) == held  # what the ranker read before
    assert index_phrases(texts).holding(phrase, count).tolist() == held


def test_every_run_of_words_of_a_real_day_is_held_by_the_papers_reading_them_finds() -> None:
    papers = load_jsonl(SAMPLE)
    texts = [_word_forms(f"{p.title} {p.abstract}") for p in papers]
    index = index_phrases(texts)
    rng = random.Random(3)
    cut: set[str] = set()  # runs of words as a text writes them
    phrases = {"unheardof", "model unheardof", "the the"}
    for _ in range(600):
        words = rng.choice(texts).split()
        start = rng.randrange(len(words))
        run = words[start : start + rng.randint(1, 4)]
        cut.add(" ".join(run))
        phrases.add(" ".join(reversed(run)))  # its words, mostly not in this order
    for phrase in sorted(cut | phrases):
        for count in (len(texts), len(texts) // 2):
            found = index.holding(phrase, count)
            assert found.dtype == np.bool_
            assert found.tolist() == _scanned(texts, phrase, count), (phrase, count)
    assert all(index.holding(phrase, len(texts)).any() for phrase in cut)


def test_an_index_of_no_texts_holds_no_phrase() -> None:
    assert index_phrases([]).holding("few shot", 0).tolist() == []
