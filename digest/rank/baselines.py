"""Reference rankers the evaluation compares ours with; pure, like the ranker itself.

Each baseline takes (batch, profiles, history, k) and returns one list of paper keys per
profile, best first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from digest.models import Paper, Profile

Baseline = Callable[[Sequence[Paper], Sequence[Profile], Sequence[Paper], int], list[list[str]]]

_WORD = re.compile(r"[a-z][a-z0-9\-]+")


def _text(paper: Paper) -> str:
    return f"{paper.title} {paper.abstract}"


def _recipe_text(paper: Paper) -> str:
    """Return what arxiv-sanity-lite's compute.py vectorises: title, abstract, author names."""
    return " ".join([paper.title, paper.abstract, *paper.authors])


def _order(scores: np.ndarray, keys: Sequence[str], k: int) -> list[str]:
    """Return the top-k keys by score, ties broken by key (keys are sorted already)."""
    order = np.argsort(-scores, kind="stable")[:k]
    return [keys[int(j)] for j in order]


def _examples(profile: Profile, known: dict[str, Paper]) -> list[Paper]:
    return [known[k] for k in (*profile.seeds, *profile.liked) if k in known]


def random_baseline(seed: int = 0) -> Baseline:
    """Return a baseline that shuffles the batch (seeded, reproducible)."""

    def run(
        batch: Sequence[Paper], profiles: Sequence[Profile], history: Sequence[Paper], k: int
    ) -> list[list[str]]:
        keys = sorted(p.key for p in batch)
        rng = np.random.default_rng(seed)
        return [_order(rng.random(len(keys)), keys, k) for _ in profiles]

    return run


def keyword_baseline(
    batch: Sequence[Paper], profiles: Sequence[Profile], history: Sequence[Paper], k: int
) -> list[list[str]]:
    """Rank by keyword hits, as a plain keyword alert would.

    The keywords are the profile's own, else the five top tf-idf words of its example
    papers, else the words of its interest text.
    """
    papers = sorted(batch, key=lambda p: p.key)
    keys = [p.key for p in papers]
    known = {p.key: p for p in [*history, *papers]}
    vectorizer = TfidfVectorizer(stop_words="english", token_pattern=r"[a-zA-Z][a-zA-Z0-9\-]+")
    vectorizer.fit([_text(p) for p in [*history, *papers]])
    vocab = vectorizer.get_feature_names_out()
    titles = [" " + " ".join(_WORD.findall(p.title.lower())) + " " for p in papers]
    bodies = [" " + " ".join(_WORD.findall(p.abstract.lower())) + " " for p in papers]
    out = []
    for profile in profiles:
        words = [w.lower() for w in profile.keywords]
        examples = _examples(profile, known)
        if not words and examples:
            weights = np.asarray(vectorizer.transform([_text(p) for p in examples]).sum(axis=0))
            words = [str(vocab[i]) for i in np.argsort(-weights.ravel(), kind="stable")[:5]]
        if not words:
            words = [w for w in _WORD.findall(profile.interests.lower())
                     if w not in ENGLISH_STOP_WORDS]
        scores = np.zeros(len(papers))
        for word in words:
            needle = f" {word} "
            scores += np.asarray([2.0 * (needle in t) + (needle in b)
                                  for t, b in zip(titles, bodies, strict=True)])
        out.append(_order(scores, keys, k))
    return out


def centroid_baseline(
    batch: Sequence[Paper], profiles: Sequence[Profile], history: Sequence[Paper], k: int
) -> list[list[str]]:
    """Rank by cosine to the tf-idf centroid of the example papers plus interest text."""
    papers = sorted(batch, key=lambda p: p.key)
    keys = [p.key for p in papers]
    known = {p.key: p for p in [*history, *papers]}
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    vectorizer.fit([_text(p) for p in [*history, *papers]])
    docs = vectorizer.transform([_text(p) for p in papers])
    out = []
    for profile in profiles:
        parts = [_text(p) for p in _examples(profile, known)]
        rows = vectorizer.transform([*parts, f"{profile.interests} {' '.join(profile.keywords)}"])
        query = normalize(sp.csr_matrix(rows.mean(axis=0)))
        out.append(_order((docs @ query.T).toarray().ravel(), keys, k))
    return out


def arxiv_sanity_baseline(
    batch: Sequence[Paper], profiles: Sequence[Profile], history: Sequence[Paper], k: int
) -> list[list[str]]:
    """Rank with arxiv-sanity-lite's recipe: one LinearSVC per profile over all papers.

    tf-idf on 1-2 grams with sublinear tf over title, abstract and author names
    (arxiv-sanity-lite compute.py's settings and text; papers shown without authors
    give title and abstract only); the profile's example papers are the positives,
    every other paper a negative (C=0.01, balanced classes). A profile without examples
    falls back to tf-idf search on its text, as arxiv-sanity-lite's search box does.
    """
    papers = sorted(batch, key=lambda p: p.key)
    keys = [p.key for p in papers]
    pool = list({p.key: p for p in [*history, *papers]}.values())
    index = {p.key: i for i, p in enumerate(pool)}
    vectorizer = TfidfVectorizer(
        input="content", encoding="utf-8", decode_error="replace", strip_accents="unicode",
        lowercase=True, analyzer="word", stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b", ngram_range=(1, 2),
        max_features=20000, norm="l2", use_idf=True, smooth_idf=True, sublinear_tf=True,
        max_df=0.1, min_df=min(5, max(1, len(pool) // 200)), dtype=np.float32,
    )
    matrix = vectorizer.fit_transform([_recipe_text(p) for p in pool]).tocsr()
    batch_rows = matrix[[index[key] for key in keys]]
    out = []
    for profile in profiles:
        positives = sorted({index[key] for key in (*profile.seeds, *profile.liked)
                            if key in index})
        if not positives:
            query = vectorizer.transform([f"{profile.interests} {' '.join(profile.keywords)}"])
            out.append(_order((batch_rows @ query.T).toarray().ravel(), keys, k))
            continue
        labels = np.zeros(len(pool), dtype=int)
        labels[positives] = 1
        clf = LinearSVC(class_weight="balanced", max_iter=10000, tol=1e-6, C=0.01)
        clf.fit(matrix, labels)
        out.append(_order(clf.decision_function(batch_rows), keys, k))
    return out
