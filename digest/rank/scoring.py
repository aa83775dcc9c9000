"""Compile profiles into sparse rows, score them against the batch, pick top-k."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from digest.models import Paper, Profile, ScoredPaper
from digest.rank.reasons import explain
from digest.rank.vectors import (
    Space,
    batch_fingerprint,
    paper_text,
    space_from_bytes,
    update_space,
)


@dataclass(frozen=True)
class RankOptions:
    """Weights of the profile signals; the defaults are the tuned ones."""

    keyword_weight: float = 2.0
    seed_weight: float = 1.0
    text_weight: float = 1.0
    category_boost: float = 0.05
    author_boost: float = 0.3
    min_score: float = 0.02
    chunk: int = 512


@dataclass(frozen=True)
class Outcome:
    """What score_batch returns to rank()."""

    rankings: list[list[ScoredPaper]]
    state: bytes
    empty: list[bool]


def normalize_name(name: str) -> str:
    """Return an author name folded for matching ('J. Smith ' == 'j. smith')."""
    return " ".join(name.lower().replace(".", ". ").split())


def _phrase_hit(phrase: str, text: str) -> bool:
    return f" {phrase} " in text


def _folded(text: str) -> str:
    return " " + " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split()) + " "


def score_batch(
    batch: Sequence[Paper],
    profiles: Sequence[Profile],
    *,
    history: Sequence[Paper],
    limits: Sequence[int],
    exclude: Sequence[AbstractSet[str]],
    popularity: Sequence[float],
    state: bytes | None,
    options: RankOptions,
) -> Outcome:
    """Score every profile against the batch in chunks; return top-k per profile."""
    # Sorting by key makes the column order, and so every tie-break, deterministic.
    papers = sorted({p.key: p for p in batch}.values(), key=lambda p: p.key)
    space = space_from_bytes(state) if state else None
    if space is None:
        space = update_space(None, [*history, *papers], fingerprint=batch_fingerprint(papers))
    else:
        space = update_space(space, papers, fingerprint=batch_fingerprint(papers))
    new_state = space.to_bytes()
    if not papers or not profiles:
        return Outcome([[] for _ in profiles], new_state, [True] * len(profiles))

    docs = space.transform(paper_text(p) for p in papers)
    known = {p.key: p for p in history}
    known.update({p.key: p for p in papers})
    folded = [_folded(f"{p.title} {p.abstract}") for p in papers]
    upvotes = np.asarray([float(p.upvotes or 0) for p in papers])
    pop = np.log1p(upvotes) / max(1.0, float(np.log1p(upvotes.max(initial=0.0))))

    rankings: list[list[ScoredPaper]] = []
    empty: list[bool] = []
    for start in range(0, len(profiles), options.chunk):
        chunk = profiles[start : start + options.chunk]
        queries = _compile(chunk, space, known, options)
        scores = (queries @ docs.T).toarray()
        for offset, profile in enumerate(chunk):
            i = start + offset
            row = scores[offset]
            row += _boosts(profile, papers, options)
            row = (1.0 - popularity[i]) * row + popularity[i] * pop * max(row.max(), 0.0)
            blocked = _blocked(profile, papers, folded, exclude[i])
            row[blocked] = -np.inf
            order = np.argsort(-row, kind="stable")
            chosen = [j for j in order[: limits[i] * 2 + 5] if row[j] >= options.min_score]
            chosen = chosen[: limits[i]]
            rankings.append(
                [
                    ScoredPaper(
                        paper=papers[j],
                        score=round(float(row[j]), 6),
                        reason=explain(profile, papers[j], queries[offset], docs[j], space),
                    )
                    for j in chosen
                ]
            )
            empty.append(not chosen)
    return Outcome(rankings, new_state, empty)


def _compile(
    profiles: Sequence[Profile], space: Space, known: dict[str, Paper], options: RankOptions
) -> sp.csr_matrix:
    texts = [p.interests for p in profiles]
    keywords = [" . ".join(p.keywords) for p in profiles]
    text_rows = space.transform(texts)
    keyword_rows = space.transform(keywords)
    seed_texts: list[str] = []
    owners: list[int] = []
    for i, profile in enumerate(profiles):
        for key in (*profile.seeds, *profile.liked):
            paper = known.get(key)
            if paper is not None:
                seed_texts.append(paper_text(paper))
                owners.append(i)
    seeds = sp.csr_matrix((len(profiles), len(space.terms)))
    if seed_texts:
        rows = space.transform(seed_texts)
        membership = sp.csr_matrix(
            (np.ones(len(owners)), (owners, np.arange(len(owners)))),
            shape=(len(profiles), len(owners)),
        )
        seeds = normalize(membership @ rows, norm="l2")
    combined = (
        options.text_weight * text_rows
        + options.keyword_weight * keyword_rows
        + options.seed_weight * seeds
    )
    result: sp.csr_matrix = normalize(combined.tocsr(), norm="l2")
    return result


def _boosts(profile: Profile, papers: Sequence[Paper], options: RankOptions) -> np.ndarray:
    boost = np.zeros(len(papers))
    if profile.categories:
        wanted = set(profile.categories)
        for j, paper in enumerate(papers):
            if paper.primary_category in wanted:
                boost[j] += options.category_boost
            elif wanted.intersection(paper.categories):
                boost[j] += options.category_boost / 2
    if profile.authors:
        followed = {normalize_name(a) for a in profile.authors}
        for j, paper in enumerate(papers):
            if any(normalize_name(a) in followed for a in paper.authors):
                boost[j] += options.author_boost
    return boost


def _blocked(
    profile: Profile, papers: Sequence[Paper], folded: Sequence[str], sent: AbstractSet[str]
) -> np.ndarray:
    blocked = np.zeros(len(papers), dtype=bool)
    phrases = [_folded(x).strip() for x in profile.exclude if _folded(x).strip()]
    for j, paper in enumerate(papers):
        hit = bool(phrases) and any(_phrase_hit(ph, folded[j]) for ph in phrases)
        blocked[j] = paper.key in sent or hit
    return blocked
