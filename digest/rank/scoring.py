"""Score every profile against the batch in chunks, then apply the digest policy."""

from __future__ import annotations

import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from digest.models import Paper, Profile, ScoredPaper
from digest.rank.lsa import Lsa, fit_lsa, ridge_lsa
from digest.rank.policy import select
from digest.rank.profiles import (
    Compiled,
    centroids,
    compile_profiles,
    expand,
    metadata_scores,
    neighbours,
)
from digest.rank.reasons import Context, explain_all
from digest.rank.vectors import (
    Space,
    batch_fingerprint,
    paper_text,
    space_from_bytes,
    update_space,
)

MAX_BACKGROUND = 3000  # recent history papers used for feedback and calibration
MAX_VOCABULARY_FIT = 20000  # history papers a first vocabulary is counted from


@dataclass(frozen=True)
class RankOptions:
    """Weights of the profile signals and of the digest policy.

    ``threshold_quantile`` calibrates the relevance bar per profile: a paper must score
    at least as high as that share of the profile's scores over recent background
    papers (and ``min_score``); a day with nothing relevant then yields few or none.
    """

    keyword_weight: float = 2.0
    feedback_depth: int = 10
    feedback_weight: float = 0.7
    negative_weight: float = 0.3
    neighbours: int = 3
    centroid_share: float = 0.5  # examples: centroid vs nearest neighbours
    text_weight: float = 0.5  # text query when the profile also has examples
    category_boost: float = 0.05
    author_boost: float = 0.3
    lsa_dims: int = 256  # dimensions of the LSA space (0: off)
    lsa_weight: float = 0.7  # examples: share of the LSA model + centroid vs sparse scores
    lsa_alpha: float = 10.0  # ridge penalty of the LSA model
    example_category_weight: float = 0.3  # categories of the example papers
    example_author_weight: float = 0.3  # authors of the example papers
    diversity: float = 0.3
    min_score: float = 0.02
    threshold_quantile: float = 0.9
    chunk: int = 256


@dataclass(frozen=True)
class Outcome:
    """What score_batch returns to rank()."""

    rankings: list[list[ScoredPaper]]
    state: bytes
    empty: list[bool]
    thresholds: list[float]


def normalize_name(name: str) -> str:
    """Return an author name folded for matching ('J.  Smith' == 'j. smith')."""
    return " ".join(name.lower().replace(".", ". ").split())


# \W is exactly "not str.isalnum() and not underscore": one regex pass instead of a
# Python-level loop over every character (~1 ms a paper, paid on every rank call).
_NOT_ALNUM = re.compile(r"[\W_]+")


def _folded(text: str) -> str:
    return " " + " ".join(_NOT_ALNUM.sub(" ", text.lower()).split()) + " "


def _recent(history: Sequence[Paper], limit: int) -> list[Paper]:
    """Return the most recent ``limit`` papers of the history (by date, then key)."""
    dated = sorted(history, key=lambda p: (p.published.toordinal() if p.published else 0, p.key))
    return dated[-limit:]


def prepare_space(
    state: bytes | None, history: Sequence[Paper], batch: Sequence[Paper]
) -> Space:
    """Load the stored space and count the batch into it, or build one from history."""
    fingerprint = batch_fingerprint(batch)
    if state:
        return update_space(space_from_bytes(state), batch, fingerprint=fingerprint)
    earlier = _recent(history, MAX_VOCABULARY_FIT)
    return update_space(None, [*earlier, *batch], fingerprint=fingerprint)


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
    space = prepare_space(state, history, papers)
    new_state = space.to_bytes()
    count = len(profiles)
    if not papers or not profiles:
        return Outcome([[] for _ in profiles], new_state, [True] * count, [0.0] * count)

    # Background: recent papers nobody named as an example, so that calibrating a
    # profile against it does not compare the profile with its own seeds.
    named = {k for p in profiles for k in (*p.seeds, *p.liked, *p.disliked)}
    skip = named | {p.key for p in papers}
    background = [p for p in _recent(history, MAX_BACKGROUND + len(named)) if p.key not in skip]
    background = background[-MAX_BACKGROUND:]
    docs = space.transform(paper_text(p) for p in papers)
    bg_docs = space.transform(paper_text(p) for p in background)
    pool = sp.vstack([bg_docs, docs]).tocsr()
    known = {p.key: p for p in history}
    known.update({p.key: p for p in papers})
    folded = [_folded(f"{p.title} {p.abstract}") for p in papers]
    upvotes = np.asarray([float(p.upvotes or 0) for p in papers])
    trend = np.log1p(upvotes) / max(1.0, float(np.log1p(upvotes.max(initial=0.0))))
    similarity = (docs @ docs.T).toarray()
    index = _index_batch(papers)

    # Batch and background scored together: the bar is calibrated on the same scale.
    targets = sp.vstack([docs, bg_docs]).tocsr()
    n_batch = len(papers)
    lsa = fit_lsa(pool, options.lsa_dims) if options.lsa_weight > 0 else None
    dense_targets = lsa.project(targets) if lsa is not None else None
    dense_background = dense_targets[n_batch:] if dense_targets is not None else None

    rankings: list[list[ScoredPaper]] = []
    empty: list[bool] = []
    thresholds: list[float] = []
    for start in range(0, count, options.chunk):
        chunk = profiles[start : start + options.chunk]
        compiled = compile_profiles(chunk, space, known, keyword_weight=options.keyword_weight)
        text = expand(
            compiled.text, pool, depth=options.feedback_depth, weight=options.feedback_weight
        )
        center = centroids(compiled, len(chunk), negative_weight=options.negative_weight)
        all_sims = (targets @ compiled.positives.T).toarray()
        example_sims = all_sims[:n_batch]
        dense: np.ndarray | None = None
        if lsa is not None and dense_targets is not None and dense_background is not None:
            dense = _lsa_examples(lsa, compiled, dense_targets, dense_background,
                                  len(chunk), options)
        both = _content(compiled, text, center, targets, all_sims, dense, n_batch, options)
        for kind, weight in (("category", options.example_category_weight),
                             ("author", options.example_author_weight)):
            if weight > 0:
                meta = metadata_scores(compiled, known, [papers, background], len(chunk),
                                       kind=kind)
                both += weight * np.hstack(meta)
        scores, bg_scores = both[:, :n_batch], both[:, n_batch:]
        bars = np.full(len(chunk), options.min_score)
        if options.threshold_quantile > 0 and bg_scores.shape[1]:
            calibrated = np.quantile(bg_scores, options.threshold_quantile, axis=1)
            usable = bg_scores.any(axis=1)
            bars[usable] = np.maximum(bars[usable], calibrated[usable])
        picks: list[list[int]] = []
        rows: list[np.ndarray] = []
        for offset, profile in enumerate(chunk):
            i = start + offset
            content = scores[offset]
            bar = float(bars[offset])
            boost, vouched = _boosts(profile, index, options)
            row = content + boost
            if popularity[i] > 0:
                scale = max(float(row.max()), 1e-6)
                row = (1.0 - popularity[i]) * row + popularity[i] * scale * trend
            passing = ((content >= bar) | vouched) & ~_blocked(profile, index, folded,
                                                                exclude[i])
            picks.append(select(row, passing, similarity, limits[i], diversity=options.diversity))
            rows.append(row)
            empty.append(not picks[-1])
            thresholds.append(round(bar, 6))
        context = Context(
            space=space, text=text, compiled=compiled, docs=docs, known=known,
            seeds=[set(p.seeds) for p in chunk], example_sims=example_sims,
            example_keys=list(compiled.positive_keys), centroids=center,
        )
        reasons = explain_all(context, chunk, papers, picks,
                              trending=[popularity[start + o] > 0 for o in range(len(chunk))])
        for offset, chosen in enumerate(picks):
            rankings.append([
                ScoredPaper(paper=papers[j], score=round(float(rows[offset][j]), 6),
                            reason=reason)
                for j, reason in zip(chosen, reasons[offset], strict=True)
            ])
    return Outcome(rankings, new_state, empty, thresholds)


def _lsa_examples(
    lsa: Lsa,
    compiled: Compiled,
    targets: np.ndarray,
    background: np.ndarray,
    count: int,
    options: RankOptions,
) -> np.ndarray:
    """Return P x D example scores in LSA space: ridge model plus example centroid.

    Each part is standardised by its own mean and spread over the background columns
    (the last ``background`` rows of ``targets``), so the two add up fairly.
    """
    positives = lsa.project(compiled.positives)
    negatives = lsa.project(compiled.negatives)
    examples = np.vstack([positives, negatives])
    owner = np.concatenate([compiled.positive_owner, compiled.negative_owner]).astype(int)
    labels = np.concatenate([np.ones(len(compiled.positive_owner)),
                             -np.ones(len(compiled.negative_owner))])
    weights = ridge_lsa(background, examples, owner, labels, count, alpha=options.lsa_alpha)
    model = weights @ targets.T
    member = np.zeros((count, positives.shape[0]))
    member[compiled.positive_owner, np.arange(positives.shape[0])] = 1.0
    centroid = normalize(member @ positives) @ targets.T
    n_bg = background.shape[0]
    combined: np.ndarray = _standard(model, n_bg) + _standard(centroid, n_bg)
    return combined


def _standard(scores: np.ndarray, n_bg: int) -> np.ndarray:
    """Standardise rows by the mean and spread of their last ``n_bg`` columns."""
    reference = scores[:, -n_bg:] if n_bg else scores
    spread = reference.std(axis=1, keepdims=True)
    spread[spread == 0] = 1.0
    standard: np.ndarray = (scores - reference.mean(axis=1, keepdims=True)) / spread
    return standard


def _content(
    compiled: Compiled,
    text: sp.csr_matrix,
    center: sp.csr_matrix,
    docs: sp.csr_matrix,
    example_sims: np.ndarray,
    dense: np.ndarray | None,
    n_batch: int,
    options: RankOptions,
) -> np.ndarray:
    """Return P x D content scores: text query, example centroid, nearest examples.

    ``docs`` holds the batch's ``n_batch`` rows, then the background's; the LSA part
    (``dense``, standardised on the background) is put on the cosine scale of the
    sparse example scores over the background before the two are blended.
    """
    count = text.shape[0]
    if docs.shape[0] == 0:
        return np.zeros((count, 0))
    text_scores: np.ndarray = (text @ docs.T).toarray()
    has_examples = compiled.has_examples(count)
    if not has_examples.any():
        return text_scores
    examples = options.centroid_share * (center @ docs.T).toarray()
    examples += (1.0 - options.centroid_share) * neighbours(
        compiled, example_sims, count, k=options.neighbours
    )
    if dense is not None and options.lsa_weight > 0:
        reference = examples[:, n_batch:] if docs.shape[0] > n_batch else examples
        mean = reference.mean(axis=1, keepdims=True)
        spread = reference.std(axis=1, keepdims=True)
        examples = (1 - options.lsa_weight) * examples + options.lsa_weight * (
            mean + spread * dense / 2.0
        )
    with_text = has_examples & compiled.has_text
    scores: np.ndarray = np.where(has_examples[:, None], examples, text_scores)
    scores[with_text] = (
        options.text_weight * text_scores[with_text] + (1 - options.text_weight) * scores[with_text]
    )
    return scores


_NO_COLUMNS = np.zeros(0, dtype=np.intp)


@dataclass(frozen=True)
class _BatchIndex:
    """Which batch columns carry each category, author and key, built once per batch.

    The per-profile boosts and filters look columns up here instead of walking every
    paper's authors for every profile (that walk cost ~16 ms a profile at 2,000 papers).
    """

    primary: dict[str, np.ndarray]
    listed: dict[str, np.ndarray]
    authors: dict[str, np.ndarray]
    column: dict[str, int]
    size: int


def _index_batch(papers: Sequence[Paper]) -> _BatchIndex:
    primary: dict[str, list[int]] = {}
    listed: dict[str, list[int]] = {}
    authors: dict[str, list[int]] = {}
    for j, paper in enumerate(papers):
        if paper.primary_category:
            primary.setdefault(paper.primary_category, []).append(j)
        for category in dict.fromkeys(paper.categories):
            listed.setdefault(category, []).append(j)
        for name in {normalize_name(a) for a in paper.authors}:
            authors.setdefault(name, []).append(j)

    def arrays(found: dict[str, list[int]]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=np.intp) for k, v in found.items()}

    return _BatchIndex(
        primary=arrays(primary), listed=arrays(listed), authors=arrays(authors),
        column={p.key: j for j, p in enumerate(papers)}, size=len(papers),
    )


def _boosts(
    profile: Profile, index: _BatchIndex, options: RankOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Return the category/author boost per paper, and which papers an author vouches for."""
    boost = np.zeros(index.size)
    vouched = np.zeros(index.size, dtype=bool)
    if profile.categories:
        primary = np.zeros(index.size, dtype=bool)
        listed = np.zeros(index.size, dtype=bool)
        for category in set(profile.categories):
            primary[index.primary.get(category, _NO_COLUMNS)] = True
            listed[index.listed.get(category, _NO_COLUMNS)] = True
        # The primary category weighs fully, a cross-listing half.
        boost[primary] += options.category_boost
        boost[listed & ~primary] += options.category_boost / 2
    if profile.authors:
        for name in {normalize_name(a) for a in profile.authors}:
            vouched[index.authors.get(name, _NO_COLUMNS)] = True
        boost[vouched] += options.author_boost
    return boost, vouched


def _blocked(
    profile: Profile, index: _BatchIndex, folded: Sequence[str], sent: AbstractSet[str]
) -> np.ndarray:
    """Return which papers must never be shown: already sent, or an excluded phrase."""
    blocked = np.zeros(index.size, dtype=bool)
    for key in sent:
        j = index.column.get(key)
        if j is not None:
            blocked[j] = True
    phrases = [f" {_folded(x).strip()} " for x in profile.exclude if _folded(x).strip()]
    if phrases:
        for j, text in enumerate(folded):
            if any(phrase in text for phrase in phrases):
                blocked[j] = True
    return blocked
