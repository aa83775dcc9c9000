"""Score every profile against the batch: a few matrix products per chunk of profiles.

Once per rank() call, shared by every profile (:class:`World`): the tf-idf rows of the
batch and of recent background papers, the Gram matrix of the feedback pool (background
plus batch) against itself, the LSA space fitted on that pool, every example paper any
profile names (vectorised once however many profiles name it), category and author
matrices.

Per chunk of profiles, every step is an array operation over all of its rows:

- text: the profile's own words against the scored papers (a sparse product with a few
  terms per row), expanded by pseudo-relevance feedback whose scores are read from the
  Gram matrix instead of building thousands-of-terms query rows;
- examples: per profile one ridge model and one centroid in the LSA space (see lsa.py),
  standardised on the background, and the categories and authors of the examples;
- smoothing: each scored paper's content score mixed with its nearest scored papers'
  (one sparse product with the day's neighbour matrix, built once in the World);
- boosts and filters (followed authors, categories, excluded phrases, already sent);
- a calibrated bar per profile, then MMR selection and reasons for all rows together.

The chunk's large arrays are float32 (see precision.py); what is handed back is float64.

Scored columns ("targets"): the batch, then a calibration sample of the background (the
most recent ``calibration`` papers) on which each profile's bar is set.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

from digest.errors import DigestError
from digest.forking import map_forked_then, map_large_blocks, reused_heap
from digest.models import CATEGORY_ALIASES, Paper, Profile, ScoredPaper, with_aliases
from digest.rank.joins import other_spellings
from digest.rank.lsa import Lsa, background_inverse, fit_lsa_projected, ridge_lsa
from digest.rank.metadata import (
    BatchIndex,
    ExampleMetadata,
    Metadata,
    add_metadata_scores,
    boost_values,
    category_shares,
    concentration,
    index_batch,
    pool_metadata,
    rarity,
)
from digest.rank.phrases import PhraseIndex, index_phrases
from digest.rank.policy import keep_followed, select_many
from digest.rank.precision import SCORES
from digest.rank.profiles import (
    TEXT_PARTS,
    Compiled,
    ExampleBank,
    Examples,
    Feedback,
    compile_profiles,
    expanded_scores,
    feedback,
    feedback_mixer,
    membership,
    two_part_columns,
)
from digest.rank.reasons import CLOSE_DENSE, Context, explain_all
from digest.rank.semantic import SemanticScorer, semantic_scorer
from digest.rank.vectors import (
    DOMAIN_STOP_WORDS,
    TOKENS,
    Space,
    batch_fingerprint,
    fold_accents,
    paper_text,
    space_from_bytes,
    tokenize,
    update_space,
)
from digest.taxonomy import named_categories

MAX_BACKGROUND = 3000  # recent history papers used for feedback, the LSA fit, the ridge
MAX_VOCABULARY_FIT = 20000  # history papers a first vocabulary is counted from
GRAM_BLOCK = 1000  # pool rows per sparse product when building the Gram matrix
# Example papers (disliked, or a profile's alike seeds) whose cosines to the targets are
# held at once.
EXAMPLE_BLOCK = 2048
# The pool x targets columns of the Gram matrix are kept as an array of their own (a
# chunk's query expansion reads them contiguous) up to this size; past it (a weekly
# page of a large instance: 8,000 papers made it 378 MB beside the 484 MB Gram) they
# are read from the Gram in each chunk, the same numbers, at some more time a chunk.
GRAM_COLUMNS_BYTES = 256 * 1024 * 1024
SCALE_SAMPLE = 64  # background papers whose one-paper profiles set the example scale
# The share of a paper's own score a popularity blend of 1 keeps: papers with as many
# upvotes (most often none) are ordered by how well they match, while one upvote more
# outweighs any difference in that below ~150 upvotes (n + 1 and n are about
# 1 / ((n + 1) * log1p(most)) of the day's top score apart).
RELEVANCE_KEPT = 1e-3
MAX_AUTO_PROCESSES = 4  # processes=0 takes one per CPU up to this many
# A line of a profile's text that is a known paper's title (at least this many words,
# so "Deep learning" names nothing) names that paper: it becomes a seed paper.
TITLE_MIN_WORDS = 4


@dataclass(frozen=True)
class RankOptions:
    """Weights of the profile signals and of the digest policy.

    ``threshold_quantile`` calibrates the relevance bar per profile: a paper must score
    at least as high as that share of the profile's scores over recent background
    papers (and ``min_score``); a day with nothing relevant then yields few or none.
    """

    keyword_weight: float = 2.0
    # A keyword that holds a word too common in abstracts to be a term ("code", "task",
    # "performance", "framework": the vocabulary drops them) ranked only by its other
    # words ("code generation" as "generation": image and video generation papers), or
    # not at all ("code"). The papers whose text holds the whole keyword (its words'
    # forms, as excluded phrases are found) gain the profile's best score, and at least
    # this much (0: off).
    literal_keyword_weight: float = 0.2
    feedback_depth: int = 10
    feedback_weight: float = 0.7
    # Share of the disliked papers' centroid subtracted (without LSA), and of their model
    # added to the topic of a profile with words and no seed or liked paper (with LSA).
    negative_weight: float = 0.3
    text_weight: float = 0.5  # text query when the profile also has examples
    category_boost: float = 0.05
    author_boost: float = 0.3
    lsa_dims: int = 256  # dimensions of the LSA space (0: off)
    lsa_alpha: float = 10.0  # ridge penalty of the LSA model
    lsa_iterations: int = 2  # power iterations of the randomized SVD (4: same quality)
    example_category_weight: float = 0.3  # categories of the example papers
    # Authors of the example papers, times each profile's author concentration (the
    # share of its example papers its most frequent author is on: forty seed papers by
    # one researcher, 1; ten by ten teams, 0.1), so a reader of one person's work gets
    # that person's new papers and a field's reader is not steered by one co-author.
    # Tuned on the tuning split (seed 1, 8 days, with metadata): a flat 0.3 -> 1.0 times
    # the concentration lifted author seeds 0.767 -> 0.986, thumbs 0.667 -> 0.686, cold
    # start 0.487 -> 0.509, category seeds 0.963 -> 0.966 (a flat 0.8 lifted author
    # seeds nearly as far, 0.974, but cost category seeds 0.963 -> 0.905).
    example_author_weight: float = 1.0
    # Profiles with words: the categories and authors of the papers their words retrieve,
    # read from the closest few of them only (0: all feedback_depth). The closest carry
    # the topic's categories and authors; the rest dilute them (digest eval, 4 seeds x 8
    # days, with the papers' metadata: 10 -> 3 lifted cold start 0.291 -> 0.313 and
    # thumbs 0.443 -> 0.465 on average; text-only rows unchanged).
    feedback_category_weight: float = 0.1
    # The authors' weight goes as far as one of them runs through the closest papers
    # (weighted by their similarity; _add_metadata), as for example papers: cold start
    # with metadata 0.503/0.509/0.447/0.428 -> 0.509/0.518/0.454/0.438 at seeds 0-3.
    feedback_author_weight: float = 1.0
    feedback_metadata_depth: int = 3
    # Categories weighed by how rare they are among the day's papers (share ** -lift,
    # metadata.category_lift): those of the papers a profile's words retrieve, and those
    # of its seed and liked papers. Tuned on the tuning split (seed 1, 8 days, with the
    # papers' metadata): 0 -> 1.5 and 0 -> 0.5 lifted cold start 0.409 -> 0.487, thumbs
    # 0.448 -> 0.667, category seeds 0.792 -> 0.963, author seeds 0.764 -> 0.767.
    category_lift: float = 1.5
    example_category_lift: float = 0.5
    # Text-only profiles: share of the score that comes from the LSA space, where the
    # query and the papers its words retrieve point to a topic beyond shared words (the
    # rest is the word score). Tuned on the tuning split: 0 -> 0.8 lifted cold start.
    text_lsa_weight: float = 0.8
    text_lsa_query: float = 1.0  # the query's own projection next to the feedback centroid
    # A profile's text that types out the titles of known papers (the history's, and
    # those the caller passes as extra: the pipeline finds them in its database), a line
    # or a ";"-separated part each, makes those papers seed papers (see named_seeds).
    named_titles: bool = True
    # A line or ";"-separated part that is an arXiv category's name or code ("Robotics",
    # "cs.CV") adds that category to the profile's, as if picked (see named_fields).
    named_categories: bool = True
    # Interests typed in several lines or ";"-separated parts (a researcher's few titles
    # or topics): each part weighs alike in the query (compile_profiles), and a profile
    # with no example papers gets the mean of its parts' LSA topics (each part's own
    # projection and feedback papers, _part_topics) instead of one topic of the whole
    # text, so a second interest is not lost in the first one's papers. digest eval,
    # seeds 0-3 (1: the tuning split), both against neither, cold start text-only
    # +0.008/+0.015/-0.002/+0.003, with metadata +0.011/+0.024/+0.032/-0.014; thumbs
    # +0.004/+0.010/-0.006/-0.003, with metadata +0.014/+0.003/-0.008/-0.012.
    balance_parts: bool = True
    part_topics: bool = True
    diversity: float = 0.3
    # List a profile's best papers whether or not they reach its bar (`digest rank
    # --all`); nothing_relevant still says whether one of those listed reached it.
    below_bar: bool = False
    min_score: float = 0.02
    threshold_quantile: float = 0.9
    calibration: int = 600  # background papers each profile's bar is calibrated on
    chunk: int = 500
    # Processes that score chunks (forked once the shared arrays exist, so they are
    # shared, not copied); 0: one per CPU, at most MAX_AUTO_PROCESSES. Results do not
    # depend on it: every chunk is scored the same way wherever it runs.
    processes: int = 0
    # The semantic extra (semantic.py): the weight of the sentence-embedding score added
    # to the content score (0: off, nothing imported), and its disk cache ("": none).
    semantic_weight: float = 0.0
    semantic_cache: str = ""
    # The content scores smoothed over the scored papers (transductive score
    # regularisation, Diaz 2005): papers on one topic cluster, so a paper that shares
    # few of a profile's words but sits among papers that match it rises. Each scored
    # paper's text-and-examples score becomes (1 - smooth_weight) of its own plus
    # smooth_weight of the mean of its ``smooth_neighbours`` nearest scored papers'
    # (tf-idf cosine, weighted by it), before the metadata scores (0: off). Batch and
    # calibration papers alike, among each other, so the bar is set on scores smoothed
    # the same way. Tuned on the tuning split (bench/tune_ranking.py 6 60, seed 1;
    # text-only / with metadata): 0 -> 0.5 lifted category seeds 0.304 -> 0.330 / 0.969
    # -> 0.975, cold start 0.214 -> 0.233 / 0.621 -> 0.641, thumbs 0.215 -> 0.227 / 0.614
    # -> 0.632; author seeds 0.219 -> 0.218 / 0.986 -> 0.986 (0.3 and 0.8, k 5 and 20,
    # LSA neighbours, smoothing after the metadata scores: no better or worse). Held out
    # (digest eval's setup, seeds 0/2/3, on against off on the same queries): with
    # metadata category +0.012/+0.008/+0.008, cold start +0.030/+0.019/+0.015, thumbs
    # +0.016/+0.007/+0.015, author seeds unchanged; text-only category -0.006/+0.009/
    # +0.003, cold start +0.000/+0.017/+0.000, thumbs +0.005/+0.019/-0.004, author
    # seeds -0.021/-0.007/-0.007 (a narrow author's profile is pulled toward its field).
    smooth_weight: float = 0.5
    smooth_neighbours: int = 10
    # "Less like this": each scored paper loses ``dislike_weight`` times how far its LSA
    # cosine to the profile's closest disliked paper passes ``dislike_floor`` (the "close
    # to" bar of the reasons, reasons.CLOSE_DENSE), scaled to 1 at a copy of it (0: off;
    # without an LSA space the tf-idf cosine, which passes 0.5 for near-copies only). The
    # disliked papers' model alone moved little: bench/dislike.py (5 start days, 30
    # topics typed and with seeds, 1-3 off-topic papers disliked, days D+1..D+3, top 10)
    # counted papers close to a disliked one (tf-idf >= 0.12 and LSA >= 0.5) at 23 -> 18
    # (typed) and 32 -> 24 (seeded) without and with the thumbs; with this penalty 4 and
    # 8, the lists otherwise as much the same (93.5% of the papers kept, 93.8% before)
    # and as close to the typed words. Weight 0.25: 5 and 12. Floor 0.6 or 0.7 (with
    # weight 1): 17-18 and 20-23, no better than without. Eval thumbs subscribers
    # (their dislikes: listed papers without the hidden label, often on the topic),
    # nDCG@10 paired against off: tuning split (seed 1) text-only -0.003 [-0.012,
    # +0.004], with metadata -0.001; seeds 0 and 2 text-only -0.020 [-0.038, -0.005]
    # and +0.003, with metadata -0.004 and +0.002. Other kinds have no dislikes.
    dislike_weight: float = 0.5
    dislike_floor: float = CLOSE_DENSE
    # The closest example: each scored paper gains this times its tf-idf cosine to the
    # closest of the profile's seed and liked papers (0: off), times the profile's share
    # by how alike its examples are (the mean tf-idf cosine of two of them): none at
    # nearest_coherence[0] or less, all at [1] or more. A researcher's own papers (one
    # line of work) are alike, and their next paper is close to one of them more than
    # to their centroid; a field's papers are not (seeds of one arXiv category: median
    # 0.024; of one author: 0.035; the tuning split, seed 1). On the tuning split
    # (digest eval, text only) author seeds 0.111 -> 0.153, category seeds 0.320 ->
    # 0.316; held out, seeds 0/2/3: author 0.181/0.202/0.072 -> 0.228/0.199/0.113
    # (arxiv-sanity 0.208/0.202/0.145), category 0.257/0.348/0.286 -> 0.259/0.346/
    # 0.281, thumbs 0.215/0.226/0.261 -> 0.216/0.228/0.250, cold start unchanged; with
    # metadata (seed 0) author 1.000 both, category 0.963 -> 0.961, thumbs 0.583 ->
    # 0.584. Weight 0.3 or 1.0, or no share (every profile alike): less for authors or
    # more lost for categories (all profiles at 0.3: category 0.320 -> 0.295).
    nearest_example_weight: float = 0.5
    nearest_coherence: tuple[float, float] = (0.03, 0.06)
    # The field of a profile's words: each category's centroid among the pool's papers
    # (the tf-idf rows of the papers carrying it; field_min_papers or more) is compared
    # with the profile's interests (not its keywords); the cosines, raised to
    # ``field_power`` and summed to 1, say which fields the words are about, and each
    # scored paper gains ``field_weight`` times the share of the fields it carries (0:
    # off; nothing without the papers' categories). Not toward the bar (_score_chunk).
    # A category's centroid told three typed titles' category better than the closest
    # three papers' categories (feedback_category_weight): top-3 0.75 against 0.30 on
    # the tuning split's first day. Tuned there (seed 1, digest eval's cold start with
    # the papers' metadata, the field toward the bar at first): weight 0.1/0.3/1.0 ->
    # 0.470/0.569/0.634 (from 0.329), power 4/8/12 at 0.3 -> 0.554/0.569/0.552, at least
    # 3 papers 0.576; out of the bar (a day with nothing on the topic stays empty) 0.444.
    # Held out, seeds 0/2/3: cold start 0.297/0.325/0.215 -> 0.422/0.404/0.348, thumbs
    # 0.581/0.405/0.558 -> 0.630/0.453/0.600; the cold-start subscribers standing for an
    # author (a sixth) lose, 0.195/0.145 -> 0.148/0.098 at seeds 0 and 2.
    field_weight: float = 0.3
    field_power: float = 8.0
    field_min_papers: int = 3


# \W is exactly "not str.isalnum() and not underscore": one regex pass instead of a
# Python-level loop over every character (~1 ms a paper, paid on every rank call).
_NOT_ALNUM = re.compile(r"[\W_]+")


# ASCII text folded as bytes: upper case lowered and every other byte but a letter or a
# digit a space (what lower() and _NOT_ALNUM do to ASCII), one C-level table lookup a
# byte: a title folds ~3x faster than through the regex (folded: every profile's text,
# every rank call, and every history paper's title).
_ASCII_FOLD = bytes(
    c + 32 if 65 <= c <= 90 else c if c >= 128 or chr(c).isalnum() else 32 for c in range(256)
)


def _folded(text: str) -> str:
    """Return a text lower-cased, each run of non-alphanumerics one space, space-framed."""
    if text.isascii():
        return (b" " + b" ".join(text.encode().translate(_ASCII_FOLD).split()) + b" ").decode()
    return " " + " ".join(_NOT_ALNUM.sub(" ", text.lower()).split()) + " "


def _word_form(word: str) -> str:
    """Return a word without its plural, -ing or -ed ending ('benchmarks',
    'benchmarking', 'benchmarked' -> 'benchmark'; 'LLMs' -> 'llm'; 'studies', 'studied'
    -> 'study'; 'approaches' -> 'approach'; 'embeddings', 'embedded' -> 'embed';
    'generates', 'generated', 'generating' -> 'generate'; 'bias', 'biases', 'biased'
    -> 'bia'; 'virus', 'viruses' -> 'virus'; 'cause', 'caused' -> 'caus').
    """
    form = _ending_off(word)
    # An "e" the ending left after an "s" goes: 'biase(s)', 'viruse(s)', 'cause' and
    # 'caus(ed)', 'phase' and 'phas(ed)' meet. Then a word's own "-as" goes as its
    # singular's did: 'bias' lost its "s" as a plural would ('bia'), and 'biases' and
    # 'biased' kept it, so excluding "bias" left papers on "biases" in.
    if len(form) >= 5 and form.endswith("se"):
        form = form[:-1]
    if len(form) >= 4 and form.endswith("as"):
        form = form[:-1]
    return form


def _ending_off(word: str) -> str:
    if len(word) >= 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-3] + "y" if word.endswith("ies") and len(word) > 5 else word[:-1]
    if word.endswith("e") and len(word) >= 4 and word[:-1].endswith(_SIBILANTS):
        return word[:-1]  # 'approache(s)', 'classe(s)', 'cache' -> 'approach', 'class', 'cach'
    if len(word) >= 7 and word.endswith("ing"):
        stem = word[:-3]
    elif len(word) >= 6 and word.endswith("ed"):
        if word.endswith("ied"):
            return word[:-3] + "y"  # 'studied' -> 'study'
        stem = word[:-2]
    else:
        return word
    if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "aeiouls":
        return stem[:-1]  # 'embedd', 'plann' -> 'embed', 'plan'; not 'install', 'process'
    if stem.endswith(_DROPPED_E) and not stem.endswith(("eat", "oat", "ck")):
        return stem + "e"  # 'generat', 'reduc', 'solv' -> 'generate', 'reduce', 'solve'
    return stem


# Endings after which a plural's or a verb's "e" is part of the ending ('approaches',
# 'boxes', 'caches'): dropped, so that the word and its plural meet.
_SIBILANTS = ("ch", "sh", "x", "ss")
# Stems an -ed or -ing ending leaves that lost the "e" of their word: 'generated',
# 'optimizing', 'enabled', 'reduced', 'solving', 'captured', 'reversed', 'encoded' (not
# 'treated', 'floated', 'attacked': their words have no "e").
_DROPPED_E = ("at", "iz", "yz", "bl", "c", "v", "ur", "rs", "od")


class _Forms(dict[str, str]):
    """Word -> its _word_form, filled on first sight (one lookup a word after that)."""

    def __missing__(self, word: str) -> str:
        if len(self) >= 1_000_000:
            self.clear()  # an odd corpus cannot grow it without bound
        form = self[word] = _word_form(word)
        return form


_FORMS = _Forms()


def _word_forms(text: str) -> str:
    """Return a text as its words' forms (_word_form), folded like _folded, accents off:
    what excluded phrases are looked for in, so that excluding 'benchmark' leaves out
    a paper on 'benchmarks' or 'benchmarking' too.
    """
    folded = fold_accents(text.lower())
    return " " + " ".join(map(_FORMS.__getitem__, _NOT_ALNUM.sub(" ", folded).split())) + " "


def _recent(history: Sequence[Paper], limit: int) -> list[Paper]:
    """Return the most recent ``limit`` papers of the history (by date, then key)."""
    dated = sorted(history, key=lambda p: (p.published.toordinal() if p.published else 0, p.key))
    return dated[-limit:]


def prepare_space(
    state: bytes | None, history: Sequence[Paper], batch: Sequence[Paper]
) -> Space:
    """Load the stored space and count the batch into it, or build one from history
    (also when the stored one was counted with another splitting of texts: TOKENS)."""
    fingerprint = batch_fingerprint(batch)
    if state:
        stored = space_from_bytes(state)
        if stored.tokens == TOKENS:
            return update_space(stored, batch, fingerprint=fingerprint)
    earlier = _recent(history, MAX_VOCABULARY_FIT)
    return update_space(None, [*earlier, *batch], fingerprint=fingerprint)


@dataclass(frozen=True)
class World:
    """Everything one rank() call computes once and every chunk of profiles reads."""

    papers: list[Paper]
    space: Space
    docs: sp.csr_matrix  # B x V, sorted indices
    doc_keys: np.ndarray  # row * V + column of every entry of docs, ascending
    pool: sp.csr_matrix  # N x V: background, then batch
    targets: sp.csr_matrix  # T x V: batch, then the calibration sample
    in_pool: np.ndarray  # T: each target's pool row
    pool_gram: np.ndarray  # N x N, float32 (cosines; halves the largest arrays)
    gram: np.ndarray | None  # N x T, float32 (None: read from pool_gram; see columns)
    lsa: Lsa | None
    dense_targets: np.ndarray  # T x k
    dense_pool: np.ndarray  # N x k: background, then batch (the pool's rows)
    mean: np.ndarray  # k: background mean in LSA space
    covariance: np.ndarray  # k x k: background covariance in LSA space
    inverse: np.ndarray | None  # ridge: (B^T B + alpha I)^-1
    scale: tuple[float, float]  # mean, spread of a one-paper profile's tf-idf scores
    known: dict[str, Paper]  # every paper a profile may name: history and batch
    bank: ExampleBank
    example_meta: ExampleMetadata  # the bank's papers' categories and authors, in its order
    target_papers: list[Paper]
    pool_meta: Metadata
    category_shares: dict[str, float]  # each category's share of the pool's papers
    index: BatchIndex
    similarity: np.ndarray  # B x B cosines, for MMR
    word_forms: list[str]  # the batch papers' texts as _word_forms
    trend: np.ndarray
    # (phrase, where) -> which papers hold it (holding: excluded and literal keywords)
    phrases: dict[tuple[str, str], np.ndarray]
    semantic: SemanticScorer | None = None  # the targets' embeddings (the semantic extra)
    # T x T: content scores times it are smoothed (smooth_weight; None: off)
    smoother: sp.csr_matrix | None = None
    fields: Fields | None = None  # the pool's categories as centroids (field_weight)

    @functools.cached_property
    def pool_columns(self) -> sp.csr_matrix:
        """Return ``pool.T`` converted to CSR, in the scores' precision, once per process.

        ``text @ pool.T`` converts the transposed pool to CSR inside every product (a
        sixth of the chunk's pool product); the product with the converted copy is the
        same, since that is the matrix it multiplies by. float32 (precision.py): the
        product accumulates and emits the P x N queries against the pool in float32.
        """
        return sp.csr_matrix(self.pool.T, dtype=SCORES)

    @functools.cached_property
    def spellings(self) -> Spellings | None:
        """Return the two-part terms' other spellings in this space and pool (None: no
        listed term has both spellings in the vocabulary)."""
        return spellings(self.space, self.pool_columns)

    def pool_targets(self, mixer: sp.csr_matrix) -> np.ndarray:
        """Return ``mixer @ gram`` (mixer: P x N over the pool's rows): P x T.

        From the Gram's own columns when the N x T copy was not made; the same numbers
        (each entry sums the same products in the same order).
        """
        if self.gram is not None:
            product: np.ndarray = mixer @ self.gram
            return product
        return _columns(mixer @ self.pool_gram, self.in_pool)

    @functools.cached_property
    def target_columns(self) -> sp.csr_matrix:
        """Return ``targets.T`` as CSR in the scores' precision, once per process."""
        return sp.csr_matrix(self.targets.T, dtype=SCORES)

    @functools.cached_property
    def dense_columns(self) -> np.ndarray:
        """Return ``dense_targets.T`` in the scores' precision (k x T), once per process.

        The chunk's LSA product (P x k times k x T) then runs in single precision and
        writes a float32 P x T array; ``dense_targets`` stays float64 for the reasons.
        """
        return np.ascontiguousarray(self.dense_targets.T, dtype=SCORES)

    @functools.cached_property
    def titles(self) -> dict[str, str]:
        """Return folded title -> key for the earlier papers a profile's text may name.

        Earlier papers only (history and ``extra`` known by the first use): a batch paper
        a profile names would be its own top match. Of several papers with one title
        (versions, errata) the first the history lists is kept.
        """
        batch = {p.key for p in self.papers}
        titles: dict[str, str] = {}
        _index_titles(titles, (p for key, p in self.known.items() if key not in batch))
        return titles

    @functools.cached_property
    def target_texts(self) -> PhraseIndex:
        """Return every target's title and abstract as _word_forms (the batch's, then
        the calibration papers'), indexed by word. Made on first use (keywords and
        excluded phrases read it), before the fork (score_profiles)."""
        return index_phrases([*self.word_forms,
                              *(_word_forms(f"{p.title} {p.abstract}")
                                for p in self.target_papers[self.n_batch:])])

    @functools.cached_property
    def target_titles(self) -> PhraseIndex:
        """Return every target's title as _word_forms, indexed by word (as target_texts)."""
        return index_phrases([_word_forms(p.title) for p in self.target_papers])

    def holding(self, phrase: str, where: Literal["batch", "targets", "titles"]) -> np.ndarray:
        """Return which papers hold ``phrase`` (as _word_forms writes it), looked up once
        per phrase: the batch's title and abstract ("batch"), every target's ("targets"),
        or every target's title ("titles"); one flag a paper."""
        hits = self.phrases.get((phrase, where))
        if hits is None:
            texts = self.target_titles if where == "titles" else self.target_texts
            hits = texts.holding(phrase, self.n_batch if where == "batch"
                                 else len(self.target_papers))
            self.phrases[phrase, where] = hits
        return hits

    @property
    def n_batch(self) -> int:
        """Return how many of the targets are batch papers."""
        return len(self.papers)

    @property
    def dense_background(self) -> np.ndarray:
        """Return the background rows in LSA space (G x k, a view of the pool's)."""
        return self.dense_pool[: self.pool.shape[0] - self.n_batch]


def build_world(
    papers: list[Paper],
    space: Space,
    history: Sequence[Paper],
    options: RankOptions,
) -> World:
    """Compute what every profile shares: it depends on the papers only, not on profiles.

    BLAS runs one thread here, as in the scoring processes: OpenBLAS threads spin while
    they wait, so two of them on a box where anything else holds a core made the LSA fit
    3-8x slower (3 s of CPU became 9-28 s), and the numbers no longer depend on how many
    cores the machine has.
    """
    map_large_blocks()  # the day's and the chunks' large arrays are freed, not kept
    with threadpool_limits(1):
        return _build_world(papers, space, history, options)


def _build_world(
    papers: list[Paper],
    space: Space,
    history: Sequence[Paper],
    options: RankOptions,
) -> World:
    batch_keys = {p.key for p in papers}
    background = [p for p in _recent(history, MAX_BACKGROUND + len(papers))
                  if p.key not in batch_keys][-MAX_BACKGROUND:]
    n_bg, n_batch = len(background), len(papers)
    cores = min(2, resolve_processes(options.processes))
    with ThreadPoolExecutor(2, thread_name_prefix="digest-prepare") as side:
        bg_docs = space.transform(paper_text(p) for p in background)
        # With two cores the background's block of the Gram matrix (sparse products,
        # which release the GIL) is built beside the batch's tf-idf rows (Python), where
        # the other core idled; it is the same block the whole pool's product gives.
        head = side.submit(_gram, bg_docs) if cores > 1 and n_bg else None
        docs = space.transform(paper_text(p) for p in papers)
        docs.sort_indices()
        pool = sp.vstack([bg_docs, docs]).tocsr()
        calibration = np.arange(max(0, n_bg - options.calibration), n_bg)
        in_pool = np.concatenate([n_bg + np.arange(n_batch), calibration]).astype(np.intp)
        targets = pool[in_pool]
        fit = functools.partial(fit_lsa_projected, pool, options.lsa_dims,
                                iterations=options.lsa_iterations)  # None: lsa_dims <= 0
        # With two cores the LSA fit (BLAS and sparse products, which release the GIL)
        # runs beside the Gram matrix and the Python-side tables below.
        fitting = side.submit(fit) if options.lsa_dims > 0 and cores > 1 else None
        pool_gram = _gram(pool, workers=1 if fitting else cores,
                          head=head.result() if head is not None else None)
        # Two runs of columns (the batch, the calibration rows) copied as two slices:
        # the same array as pool_gram[:, in_pool] gathers, in 0.01 s instead of 0.14-0.42.
        gram = (np.ascontiguousarray(_columns(pool_gram, in_pool))
                if pool_gram.shape[0] * in_pool.size * 4 <= GRAM_COLUMNS_BYTES else None)
        known = {p.key: p for p in history}
        known.update({p.key: p for p in papers})
        target_papers = ([papers[i] for i in range(n_batch)]
                         + [background[i] for i in calibration])
        shares = category_shares([*background, *papers])
        pool_meta = pool_metadata([*background, *papers], in_pool, shares,
                                  options.category_lift)
        index = index_batch(papers)
        word_forms = [_word_forms(f"{p.title} {p.abstract}") for p in papers]
        scale = _example_scale(pool_gram, n_bg, calibration)
        fitted = fitting.result() if fitting is not None else fit()
    lsa = fitted[0] if fitted is not None else None
    k = lsa.components.shape[0] if lsa is not None else 0
    # The fit's own projection of the pool: the rows lsa.project gives, computed once.
    dense_pool = fitted[1] if fitted is not None else np.zeros((n_bg + n_batch, 0))
    dense_targets = dense_pool[in_pool]
    dense_background = dense_pool[:n_bg]
    if lsa is not None and n_bg:
        mean = dense_background.mean(axis=0)
        centred = dense_background - mean
        covariance = centred.T @ centred / n_bg
        inverse = background_inverse(dense_background, options.lsa_alpha)
    else:
        mean, covariance, inverse = np.zeros(k), np.zeros((k, k)), None

    upvotes = np.asarray([float(p.upvotes or 0) for p in papers])
    return World(
        papers=papers,
        space=space,
        docs=docs,
        doc_keys=(np.repeat(np.arange(len(papers), dtype=np.int64), np.diff(docs.indptr))
                  * np.int64(docs.shape[1]) + docs.indices),
        pool=pool,
        targets=targets,
        in_pool=in_pool,
        pool_gram=pool_gram,
        gram=gram,
        lsa=lsa,
        dense_targets=dense_targets,
        dense_pool=dense_pool,
        mean=mean,
        covariance=covariance,
        inverse=inverse,
        scale=scale,
        known=known,
        # The pool's first rows are the background's: example papers among them (as
        # the history knows them) are copied from there.
        bank=ExampleBank(space, lsa, transformed=pool,
                         row_of={p.key: i for i, p in enumerate(background)
                                 if known.get(p.key) is p}),
        example_meta=ExampleMetadata(target_papers, shares, options.example_category_lift),
        target_papers=target_papers,
        pool_meta=pool_meta,
        category_shares=shares,
        index=index,
        # The batch's block of the pool's Gram, a view: no B x B copy (in float64 it
        # was 512 MB at 8,000 papers). MMR with these float32 cosines picked the same
        # lists as with the float64 products for all 5,000 of bench/run.py's profiles
        # (2,000 papers, 2026-05-30).
        similarity=pool_gram[n_bg:, n_bg:],
        word_forms=word_forms,
        trend=np.log1p(upvotes) / max(1.0, float(np.log1p(upvotes.max(initial=0.0)))),
        phrases={},
        semantic=semantic_scorer(target_papers, n_batch, weight=options.semantic_weight,
                                 cache=options.semantic_cache, text_weight=options.text_weight,
                                 negative_weight=options.negative_weight),
        smoother=_smoother(pool_gram, in_pool, weight=options.smooth_weight,
                           neighbours=options.smooth_neighbours),
        fields=(field_model([*background, *papers], pool, in_pool,
                            min_papers=options.field_min_papers, power=options.field_power)
                if options.field_weight > 0 else None),
    )


FIELD_LEAST = 0.01  # a field with less of a text's share than this gets none of it
FIELD_NAMED = 0.3  # a field named in the reasons holds at least this share of the words'


@dataclass(frozen=True)
class Fields:
    """The pool's categories as tf-idf centroids, and which scored papers carry each."""

    names: tuple[str, ...]  # F categories
    columns: sp.csr_matrix  # V x F: each category's l2 centroid, a column
    members: np.ndarray  # F x T: 1 where the scored paper carries the category


def field_model(
    papers: Sequence[Paper], pool: sp.csr_matrix, in_pool: np.ndarray, *, min_papers: int = 1,
    power: float = 8.0,
) -> Fields | None:
    """Return the categories of ``papers`` (the pool's, in its row order) as centroids
    of their rows in ``pool``, with the scored rows' membership; None without any.

    A scored paper without categories (a feed that gives none: Hugging Face's, a
    publisher's) is in the fields its own words point to, as shares summing to 1 (as a
    profile's words are: field_shares), so it is not ranked below the papers that have
    them, nor is the bar calibrated on such papers set too low. A category's two arXiv
    codes (cs.IT and math.IT: models.CATEGORY_ALIASES) are one field, named by the
    code the alias stands for.
    """
    column: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for i, paper in enumerate(papers):
        # One code a field (a paper listed in cs.IT and math.IT is in it once, as one
        # in either; two fields halved the profile's share in each, and a paper giving
        # one code gained half what one giving both did), in the paper's order.
        for category in dict.fromkeys(CATEGORY_ALIASES.get(c, c) for c in paper.categories):
            rows.append(i)
            cols.append(column.setdefault(category, len(column)))
    if not column:
        return None
    member = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                           shape=(len(papers), len(column)))
    keep = np.flatnonzero(np.asarray(member.sum(axis=0)).ravel() >= min_papers)
    if keep.size == 0:
        return None
    member = sp.csr_matrix(member[:, keep])
    centroids = normalize(sp.csr_matrix(member.T @ pool))
    names = list(column)
    columns = sp.csr_matrix(centroids.T, dtype=SCORES)
    members = np.ascontiguousarray(member[in_pool].toarray(), dtype=SCORES)  # T x F
    bare = np.flatnonzero([not papers[i].categories for i in in_pool.tolist()])
    if bare.size:
        members[bare] = field_shares(pool[in_pool[bare]], columns, power)
    return Fields(names=tuple(names[i] for i in keep), columns=columns,
                  members=np.ascontiguousarray(members.T))


def field_shares(text: sp.csr_matrix, columns: sp.csr_matrix, power: float) -> np.ndarray:
    """Return which fields each row's words point to: its cosines to the fields'
    centroids raised to ``power``, summing to 1 a row (0 for a row without words); a
    field with less than FIELD_LEAST of a row's is 0."""
    shares: np.ndarray = (text.astype(SCORES) @ columns).toarray()
    np.maximum(shares, 0, out=shares)
    shares **= SCORES(power)
    total = shares.sum(axis=1, keepdims=True)
    shares /= np.where(total > 0, total, 1)
    # Most of a row's shares are ~0 once raised to the power; a sparse product of the
    # rest skips them.
    shares[shares < FIELD_LEAST] = 0
    return shares


def _interest_fields(
    compiled: Compiled, rows: np.ndarray, fields: Fields, options: RankOptions
) -> np.ndarray:
    """Return which fields the interests of the chunk's ``rows`` are about (rows x F,
    field_shares of their words); interests typed in parts, the mean of their parts'.

    Each part alike, as in the query (balance_parts): of two interests in two fields the
    whole text's cosines, raised to field_power, gave nearly all of the share to the
    one whose words are closer to their centroid ("robot manipulation and grasping;
    large language model reasoning" on the sample: cs.RO 0.00), as if the other had not
    been typed. digest eval (seed 1, with metadata; its subscribers type three titles
    of one label) loses: cold start 0.445 -> 0.416, thumbs 0.524 -> 0.510 (one title
    alone often points elsewhere than the three together); seed 0: 0.422 -> 0.415 and
    0.630 -> 0.622.
    """
    assert compiled.interests is not None
    shares = field_shares(compiled.interests[rows], fields.columns, options.field_power)
    if compiled.parts is None or not options.balance_parts:
        return shares
    size = compiled.interests.shape[0]
    parts = field_shares(compiled.parts, fields.columns, options.field_power)
    # A part of words no field has is not counted; the others are each a share summing
    # to 1 (less what fell below FIELD_LEAST), so their mean is one too: a part typed
    # twice reads as that part alone.
    counted = parts.any(axis=1)
    owner = compiled.part_owner[counted]
    mean = np.asarray(membership(owner, size) @ parts[counted], dtype=SCORES)
    mean[mean < FIELD_LEAST] = 0
    typed = np.zeros(size, dtype=bool)
    typed[owner] = True
    in_parts = typed[rows]
    shares[in_parts] = mean[rows[in_parts]]
    return shares


def _add_fields(
    content: np.ndarray, rows: np.ndarray, shares: np.ndarray, fields: Fields,
    options: RankOptions,
) -> np.ndarray:
    """Add to ``content[rows]`` the share of each paper's fields in the words' fields
    (``shares``: rows x F, _interest_fields), times RankOptions.field_weight; return
    what was added (rows x T)."""
    gained: np.ndarray = sp.csr_matrix(shares) @ fields.members
    gained *= SCORES(options.field_weight)
    content[rows] += gained
    return gained


def _leading_fields(
    size: int, rows: np.ndarray, shares: np.ndarray, fields: Fields
) -> list[AbstractSet[str]]:
    """Return per chunk row the fields holding at least FIELD_NAMED of its words', each
    by both its arXiv codes (a paper listed in math.IT alone is in cs.IT's field)."""
    out: list[AbstractSet[str]] = [frozenset()] * size
    for r, f in zip(*np.nonzero(shares >= FIELD_NAMED), strict=True):
        out[rows[r]] = out[rows[r]] | set(with_aliases((fields.names[f],)))
    return out


def _smoother(
    pool_gram: np.ndarray, in_pool: np.ndarray, *, weight: float, neighbours: int
) -> sp.csr_matrix | None:
    """Return the T x T matrix that smooths P x T content scores (None: no smoothing).

    ``scores @ smoother`` gives each scored paper ``(1 - weight)`` of its own score plus
    ``weight`` times the mean of its ``neighbours`` nearest scored papers' (by tf-idf
    cosine, ``pool_gram[in_pool][:, in_pool]``; each weighted by its cosine):
    ``neighbours + 1`` entries a column, so a chunk's smoothing is one sparse product. A
    paper that shares no word with any other keeps its own score. Built in blocks of
    rows (the neighbours' indices of all T x T cosines at once would be twice the
    cosines' size).
    """
    count = in_pool.size
    depth = min(neighbours, count - 1)
    if weight <= 0 or depth <= 0:
        return None
    top = np.empty((count, depth), dtype=np.intp)
    near = np.empty((count, depth))
    for start in range(0, count, GRAM_BLOCK):
        # A copy (the diagonal is cleared): the block's rows, at the targets' columns.
        sims = _columns(pool_gram[in_pool[start : start + GRAM_BLOCK]], in_pool)
        sims[np.arange(sims.shape[0]), np.arange(start, start + sims.shape[0])] = -np.inf
        block = np.argpartition(-sims, depth - 1, axis=1)[:, :depth]
        top[start : start + block.shape[0]] = block
        near[start : start + block.shape[0]] = np.take_along_axis(sims, block, axis=1)
    np.maximum(near, 0.0, out=near)
    totals = near.sum(axis=1)
    found = totals > 0
    near[found] /= totals[found, None]
    own = np.where(found, 1.0 - weight, 1.0)
    rows = np.arange(count)
    # Column j of the smoother is paper j's mix: its own share and its neighbours'.
    smoother = sp.csr_matrix(
        (np.concatenate([own, weight * near.ravel()]),
         (np.concatenate([rows, top.ravel()]), np.concatenate([rows, np.repeat(rows, depth)]))),
        shape=(count, count), dtype=SCORES)
    return smoother


def _gram(
    rows: sp.csr_matrix, *, workers: int = 1, head: np.ndarray | None = None
) -> np.ndarray:
    """Return the dense Gram matrix of l2 rows (float32), built in blocks to bound the peak.

    Entry (i, j) is what the sparse product gives it: row i's products summed in the
    order row i stores its columns. Row j sums the same products for (j, i); when both
    rows store their columns in the same direction (or share at most two, whose sum
    does not depend on the order) that is the same number, so such an entry is computed
    once and mirrored (about half the work); every other one is computed by its row.
    Every entry is written by exactly one block, so ``workers`` threads may build the
    blocks in any order (the sparse products release the GIL): the same matrix.

    ``head``: the Gram matrix of the first rows, built already (``_gram`` of them: the
    same entries); only the entries outside it are computed.
    """
    count = rows.shape[0]
    gram = np.zeros((count, count), dtype=np.float32)
    done = 0 if head is None else head.shape[0]
    if head is not None:
        gram[:done, :done] = head
    transposed = rows.T.tocsc()
    runs = _order_runs(rows)

    def place(top: int, left: int, block: np.ndarray) -> None:
        gram[top : top + block.shape[0], left : left + block.shape[1]] = block

    def build(task: tuple[int, int, int, int]) -> None:
        start, stop, run_start, order = task
        first = max(start, done)  # the columns before it are the head's
        block = (rows[start:stop] @ transposed[:, first:]).toarray()
        place(start, first, block)
        for a, b, other in runs:  # later rows that sum in this order: mirrored
            if order != 0 and other == order and b > stop:
                low = max(a, stop, first)
                place(low, start, block[:, low - first : b - first].T)
        if start < done:  # every earlier column of these rows is in the head
            return
        # Earlier columns whose rows sum in another order: computed here.
        earlier = [(a, b) for a, b, other in runs
                   if b <= run_start and (other == 0 or other != order)]
        if order == 0:  # this run's rows have no common direction
            earlier.append((run_start, start))
        for a, b in earlier:
            if a < b:
                place(start, a, (rows[start:stop] @ transposed[:, a:b]).toarray())

    tasks = [(start, stop, run_start, order)
             for run_start, run_stop, order in runs
             for start, stop in _blocks(run_start, run_stop, done)]
    if workers > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="digest-gram") as pool:
            list(pool.map(build, tasks))
    else:
        for task in tasks:
            build(task)
    return gram


def _blocks(start: int, stop: int, cut: int) -> Iterator[tuple[int, int]]:
    """Yield GRAM_BLOCK rows at a time from ``start`` to ``stop``, none across ``cut``."""
    for low, high in ((start, min(stop, cut)), (max(start, cut), stop)):
        for top in range(low, high, GRAM_BLOCK):
            yield top, min(top + GRAM_BLOCK, high)


def _order_runs(rows: sp.csr_matrix) -> list[tuple[int, int, int]]:
    """Return runs of consecutive rows by the direction they store their columns in.

    Each run is (start, stop, order): 1 ascending, -1 descending, 0 mixed. A row with at
    most two entries fits either direction (a sum of two products is the same both ways)
    and joins the run before it.
    """
    count = rows.shape[0]
    steps = np.sign(np.diff(rows.indices.astype(np.int64)))
    # A step inside a row, not from one row's last entry to the next row's first.
    inside = np.ones(steps.size, dtype=bool)
    ends = rows.indptr[1:-1] - 1
    inside[ends[(ends >= 0) & (ends < steps.size)]] = False
    owner = np.repeat(np.arange(count), np.maximum(np.diff(rows.indptr) - 1, 0))
    up = np.bincount(owner, weights=(steps[inside] > 0), minlength=count)
    down = np.bincount(owner, weights=(steps[inside] < 0), minlength=count)
    lengths = np.diff(rows.indptr)
    runs: list[tuple[int, int, int]] = []
    for i in range(count):
        if lengths[i] <= 2:
            order = runs[-1][2] if runs else 1
        else:
            order = 1 if down[i] == 0 else -1 if up[i] == 0 else 0
        if runs and runs[-1][2] == order:
            runs[-1] = (runs[-1][0], i + 1, order)
        else:
            runs.append((i, i + 1, order))
    return runs


def _example_scale(
    pool_gram: np.ndarray, n_bg: int, calibration: np.ndarray
) -> tuple[float, float]:
    """Return the typical mean and spread of a one-paper profile's scores today.

    The LSA example scores are standardised; this puts them back on the tf-idf cosine
    scale that text scores, boosts and ``min_score`` are expressed in. A property of the
    day's papers only, so a profile ranks the same alone or among thousands.
    """
    if n_bg < 2 or calibration.size < 2:
        return 0.0, 0.1
    probes = np.unique(np.linspace(0, n_bg - 1, min(SCALE_SAMPLE, n_bg)).astype(np.intp))
    sims = pool_gram[np.ix_(probes, calibration)].copy()
    sims[probes[:, None] == calibration[None, :]] = np.nan
    means = np.nanmean(sims, axis=1)
    spreads = np.nanstd(sims, axis=1)
    return float(np.median(means)), float(np.median(spreads))


def score_profiles(
    world: World,
    profiles: Sequence[Profile],
    *,
    extra: Sequence[Paper],
    limits: Sequence[int],
    exclude: Sequence[AbstractSet[str]],
    popularity: Sequence[float],
    options: RankOptions,
) -> tuple[list[list[ScoredPaper]], list[bool], list[float]]:
    """Score profiles against the world's batch in chunks; return top-k per profile.

    ``extra`` are papers profiles name that the history did not hold.
    """
    added = [paper for paper in extra if paper.key not in world.known]
    for paper in added:
        world.known[paper.key] = paper
    if options.named_titles:
        titles = world.titles
        _index_titles(titles, added)  # extra papers named by title are found from now on
        profiles = [named_seeds(profile, titles) for profile in profiles]
    if options.named_categories:
        profiles = [named_fields(profile) for profile in profiles]
    with _collection_paused():
        examples = world.bank.add(profiles, world.known)
    if world.semantic is not None:  # the model runs here, never in a chunk
        world.semantic.prepare(profiles, examples.keys, world.known)
    with _collection_paused():
        new_keys = examples.keys[world.example_meta.count:]  # the bank's rows, in order
        meta = world.example_meta.add([world.known[key] for key in new_keys])
    work = _Work(world, examples, meta, profiles, limits, exclude, popularity, options)
    starts = list(range(0, len(profiles), options.chunk))
    # Derived arrays every chunk reads, made here before the fork: each forked process
    # would otherwise make (and hold) its own copy on every page.
    _ = world.pool_columns, world.spellings, world.dense_columns, examples.reversible
    if options.nearest_example_weight > 0:
        _ = world.target_columns
    if any(profile.keywords or profile.exclude for profile in profiles):
        _ = world.target_texts, world.target_titles
    papers = world.papers
    scored = ScoredPaper  # positional arguments: a quarter cheaper, 100,000 times a page

    def lists(result: ChunkResult) -> tuple[list[list[ScoredPaper]], list[bool], list[float]]:
        with _collection_paused():
            return ([[scored(papers[j], v, w) for j, v, w in zip(chosen, values, why,
                                                                 strict=True)]
                     for chosen, values, why in zip(result.picks, result.scores,
                                                    result.reasons, strict=True)],
                    [not chosen for chosen in result.picks] if result.relevant is None
                    else [not reached for reached in result.relevant],
                    [round(float(b), 6) for b in result.bars])

    # One BLAS thread a process, in one process too (the same numbers): the processes
    # fill the CPUs. Each process's chunks reuse their arrays' memory (reused_heap). The
    # chunks' lists are built here as they come in, beside the other processes' scoring
    # (~2 s of CPU at 100,000 profiles: after the scoring, that was 2 s with one CPU idle).
    chunks = map_forked_then(work.chunk, lists, starts,
                             resolve_processes(options.processes), died=_scorer_died,
                             limit=_scoring_process)
    rankings: list[list[ScoredPaper]] = []
    empty: list[bool] = []
    thresholds: list[float] = []
    for chunk_lists, chunk_empty, chunk_thresholds in chunks:
        rankings.extend(chunk_lists)
        empty.extend(chunk_empty)
        thresholds.extend(chunk_thresholds)
    return rankings, empty, thresholds


def _index_titles(titles: dict[str, str], papers: Iterable[Paper]) -> None:
    """Add folded title -> key for the papers with titles long enough to be named."""
    for paper in papers:
        folded = _folded(paper.title)
        if folded.count(" ") - 1 >= TITLE_MIN_WORDS:
            titles.setdefault(folded, paper.key)


def title_parts(text: str) -> dict[str, str]:
    """Return the parts of a profile's text that may be paper titles: folded -> part.

    The whole text and each line or ";"-separated part (its spacing collapsed), of
    TITLE_MIN_WORDS words or more, once each. The pipeline looks them up in the
    database (papers older than the history it ranks with); the ranker among the
    papers it knows (named_seeds).
    """
    found: dict[str, str] = {}
    for folded, part in _folded_parts(text):
        if folded not in found:
            found[folded] = " ".join(part.split())
    return found


def _folded_parts(text: str) -> Iterator[tuple[str, str]]:
    """Yield (folded, part) for the parts of title_parts, repeats included."""
    parts = [text, *TEXT_PARTS.split(text)] if ";" in text or "\n" in text else [text]
    for part in parts:
        folded = _folded(part)
        if folded.count(" ") - 1 >= TITLE_MIN_WORDS:
            yield folded, part


def named_seeds(profile: Profile, titles: dict[str, str]) -> Profile:
    """Return the profile with the papers its text names by title added as seed papers.

    A researcher often describes a field by the titles of papers in it (their own, or
    ones they read). Each line or ";"-separated part of the interests, and the whole
    text, is looked up among ``titles`` (folded: case, punctuation and spacing do not
    matter); a match adds that paper to the seeds, after those given, once, unless the
    subscriber gave it a thumbs down. The text stays the profile's query as well.
    """
    text = profile.interests
    if not titles or not text.strip():
        return profile
    # The folded parts only (title_parts also writes each part out): called for every
    # profile of every rank call.
    named = [key for key in dict.fromkeys(titles.get(folded, "")
                                          for folded, _ in _folded_parts(text))
             if key and key not in profile.seeds and key not in profile.disliked]
    if not named:
        return profile
    return replace(profile, seeds=(*profile.seeds, *named))


def named_fields(profile: Profile) -> Profile:
    """Return the profile with the arXiv categories its interests name by name or code
    (taxonomy.named_categories: a line "Robotics", "Computer Vision and Pattern
    Recognition" or "cs.CV") added to its categories. The text stays its query too.
    """
    if not profile.interests:
        return profile
    named = [c for c in named_categories(profile.interests) if c not in profile.categories]
    if not named:
        return profile
    return replace(profile, categories=(*profile.categories, *named))


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many objects but no cycles are made.

    A page of 5,000 profiles builds ~55,000 ScoredPaper objects and lists; each 700
    allocations start a collection, and every few tens of thousands a full one over the
    whole heap (papers, profiles, earlier pages' lists): about half the assembly time.
    Nothing made here is cyclic garbage, so nothing is left for a collector to find.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class RankingError(DigestError):
    """Ranking could not finish (a scoring process died); a later run may succeed."""

    exit_code = 75  # EX_TEMPFAIL: rows planned before it stay; a rerun resumes


@dataclass(frozen=True)
class ChunkResult:
    """One chunk's lists as batch columns (cheap to send between processes)."""

    picks: list[list[int]]
    scores: list[list[float]]
    reasons: list[list[str]]
    bars: np.ndarray
    # With RankOptions.below_bar: per profile, whether a listed paper reached its bar.
    relevant: list[bool] | None = None


@dataclass(frozen=True)
class _Work:
    """What scoring a chunk reads: the world and every profile's inputs."""

    world: World
    examples: Examples
    meta: Metadata
    profiles: Sequence[Profile]
    limits: Sequence[int]
    exclude: Sequence[AbstractSet[str]]
    popularity: Sequence[float]
    options: RankOptions

    def chunk(self, start: int) -> ChunkResult:
        """Score the profiles from ``start`` (one chunk's worth)."""
        end = start + self.options.chunk
        return _score_chunk(self.world, self.examples, self.meta, self.profiles[start:end],
                            self.limits[start:end], self.exclude[start:end],
                            self.popularity[start:end], self.options)


@contextlib.contextmanager
def _scoring_process() -> Iterator[None]:
    """Where a process scores its chunks: one BLAS thread, large arrays kept for reuse."""
    with threadpool_limits(1), reused_heap():
        yield


def resolve_processes(wanted: int) -> int:
    """Return how many processes ``processes=wanted`` means on this machine."""
    if wanted > 0:
        return wanted
    return max(1, min(os.cpu_count() or 1, MAX_AUTO_PROCESSES))


# Held by every rank call (Ranker.rank): a fork copies only the forking thread, so no
# other thread of this process may be inside ranking code (BLAS holds locks of its own)
# when the scorers are forked. Rank calls in one process take turns.
RANK_LOCK = threading.RLock()


def _scorer_died() -> RankingError:
    return RankingError(
        "a ranking process died before it finished (killed, or out of memory?)",
        "run again; if it keeps dying, rank in one process: DIGEST_RANK_PROCESSES=1 for "
        "the daily job, --processes 1 for `digest rank`",
    )


def _score_chunk(
    world: World,
    examples: Examples,
    meta: Metadata,
    chunk: Sequence[Profile],
    limits: Sequence[int],
    exclude: Sequence[AbstractSet[str]],
    popularity: Sequence[float],
    options: RankOptions,
) -> ChunkResult:
    """Rank one chunk of profiles; return their lists (batch columns) and their bars.

    The P x T arrays are float32 (precision.py), and written in place where nothing
    reads them afterwards (each step computes the same numbers as a fresh array would
    hold). Whatever is added or multiplied into them is float32 too: a float64 operand
    makes numpy cast the whole array through a buffer, slower than the float64 step it
    replaces.
    """
    size = len(chunk)
    n_batch = world.n_batch
    compiled = compile_profiles(chunk, world.space, examples,
                                keyword_weight=options.keyword_weight,
                                balance_parts=options.balance_parts)
    has_text = compiled.has_text
    # Queries against the whole pool (the scored columns are a subset of it), in float32.
    pool_scores = _query_scores(compiled.text, world.pool_columns)
    for twins, owners in compiled.twins:
        # A paper writing a keyword in another spelling ("finetuning" for "fine-tuning")
        # scores as it would if the profile had typed that one. (One block at a time:
        # no profile twice in one, and at most the chunk's own rows held at once.)
        twin_scores = _query_scores(twins, world.pool_columns)
        pool_scores[owners] = np.maximum(pool_scores[owners], twin_scores, out=twin_scores)
    compiled = _spelled(compiled, pool_scores, world.spellings)
    text_scores = _columns(pool_scores, world.in_pool)  # a copy: this chunk's to overwrite
    fb = None
    if options.feedback_weight > 0:
        fb = feedback(pool_scores, world.pool_gram, depth=options.feedback_depth)
        text_scores = expanded_scores(text_scores, fb, world.pool_targets, has_text,
                                      pool_size=world.pool.shape[0],
                                      weight=options.feedback_weight, overwrite=True)
    del pool_scores
    content = text_scores
    has_examples = compiled.has_examples(size)
    text_rows = has_text & ~has_examples
    topic_rows = (np.flatnonzero(text_rows)
                  if options.text_lsa_weight > 0 and world.inverse is not None
                  else np.zeros(0, dtype=np.intp))
    if has_examples.any() or topic_rows.size:
        # One product scores both: example profiles' models, text-only profiles' topics.
        learned = _example_scores(world, examples, compiled, size, options,
                                  feedback=fb, topic_rows=topic_rows)
        # Per row, a share of the text scores plus a share of the learned ones: examples
        # alone (0, 1), examples and text (text_weight, 1 - text_weight), a text-only
        # topic (1 - text_lsa_weight, text_lsa_weight), text alone (1, 0).
        lsa_share = options.text_lsa_weight
        text_share = np.where(has_examples, np.where(has_text, options.text_weight, 0.0), 1.0)
        learned_share = np.where(has_examples,
                                 np.where(has_text, 1 - options.text_weight, 1.0), 0.0)
        text_share[topic_rows] = 1 - lsa_share
        learned_share[topic_rows] = lsa_share
        learned *= learned_share.astype(SCORES)[:, None]
        text_scores *= text_share.astype(SCORES)[:, None]
        learned += text_scores
        content = learned
        del text_scores
    if world.smoother is not None:
        # Before the metadata scores: categories and authors are the papers' own.
        content = _smoothed(content, world.smoother)
    if options.nearest_example_weight > 0 and has_examples.any():
        # After the smoothing, which pulls a narrow profile toward its field.
        _add_nearest_example(world, examples, compiled, content, options)
    every_row = np.arange(size)
    if has_examples.any():
        # Profile x example: which example papers each profile seeded or liked.
        owned = sp.csr_matrix(
            (np.ones(compiled.positive_owner.size),
             (compiled.positive_owner, compiled.positive_example)),
            shape=(size, len(examples.keys)),
        )
        _add_metadata(content, every_row, meta, owned, options.example_category_weight,
                      options.example_author_weight)
    if fb is not None and has_text.any():
        # Every profile with words, examples or not: the papers the words retrieve carry
        # categories and authors its seed or liked papers may not (digest eval, seeds
        # 0-3, with metadata: cold start, whose typed titles may be seed papers, 0.307/
        # 0.379/0.329/0.271 -> 0.329/0.409/0.352/0.308; thumbs 0.479/0.436/0.443/0.511
        # -> 0.494/0.448/0.459/0.525; text-only rows unchanged).
        found_rows = np.flatnonzero(has_text)
        mixer = feedback_mixer(fb, world.pool.shape[0],
                               depth=options.feedback_metadata_depth)[found_rows]
        _add_metadata(content, found_rows, world.pool_meta, mixer,
                      options.feedback_category_weight, options.feedback_author_weight)
    fields: list[AbstractSet[str]] | None = None
    field_gain = None
    field_rows = np.zeros(0, dtype=np.intp)
    interests = compiled.interests
    if world.fields is not None and interests is not None:
        # The interests only, of every profile with some (seed or liked papers or not:
        # the words say what of them matters): keywords ask for papers that write them,
        # whatever their field ("finetuning" put the day's cs.LG papers on other things
        # before the cs.CV papers writing it).
        field_rows = np.flatnonzero(interests.getnnz(axis=1) > 0)
        if field_rows.size:
            shares = _interest_fields(compiled, field_rows, world.fields, options)
            field_gain = _add_fields(content, field_rows, shares, world.fields, options)
            fields = _leading_fields(size, field_rows, shares, world.fields)
    literal, spelled = _literal_keywords(world, chunk,
                                         lifted=options.literal_keyword_weight > 0)
    for r, found in literal:
        # The profile's best score, so the papers holding the keyword rise above those
        # that share only its other words (a query of "generation" alone put video
        # generation first for "code generation"), in the order of their own scores; at
        # least the weight (a keyword of stop words alone scores nothing else).
        lift = SCORES(max(float(content[r].max()), options.literal_keyword_weight))
        for _, hits in found:
            content[r, hits] += lift
    if options.dislike_weight > 0 and compiled.negative_owner.size:
        _penalise_disliked(world, examples, compiled, content, options)
    positive = (compiled.positive_owner, compiled.positive_example)
    if world.semantic is not None:
        queries = world.semantic.queries(
            chunk, examples.keys, world.known, positive,
            (compiled.negative_owner, compiled.negative_example))
        content, semantic_parts = world.semantic.blend(content, queries, world.scale)
    scores, reference = content[:, :n_batch], content[:, n_batch:]
    # A paper passes the bar by its words, examples and the rest, not by its field: the
    # field orders what passes (on a day with nothing on a profile's topic, the papers
    # of its field would otherwise pass as they are the day's, and the calibration
    # papers of other fields or none set the bar below them).
    judged = content
    if field_gain is not None:
        judged = content.copy()
        judged[field_rows] -= field_gain
    bars = np.full(size, options.min_score)
    if options.threshold_quantile > 0 and reference.shape[1]:
        calibrated = _quantile_rows(judged[:, n_batch:], options.threshold_quantile)
        usable = reference.any(axis=1)
        bars[usable] = np.maximum(bars[usable], calibrated[usable])

    boost = boost_values(
        world.index, [with_aliases(p.categories) for p in chunk], [p.authors for p in chunk],
        category_boost=options.category_boost, author_boost=options.author_boost,
        judged=(has_text | has_examples).tolist(),
    )
    passing = judged[:, :n_batch] >= bars[:, None]
    passing[boost.vouched_rows, boost.vouched_cols] = True
    # A profile with categories and nothing to score papers by (no words, no known seed
    # or liked paper): every paper in them passes, ordered by the boost (primary before
    # cross-listed). Its scores are all zero, so the bar alone would pass none.
    bare = np.flatnonzero(~has_text & ~has_examples
                          & np.fromiter((bool(p.categories) for p in chunk), bool, size))
    if bare.size:
        passing[bare] |= boost.values[bare] > 0
    allowed = ~_blocked(world, chunk, exclude)
    passing &= allowed
    over_bar = None
    if options.below_bar:
        over_bar, passing = passing, allowed
    # The boosts go into the scores' own array unless the semantic reasons read them.
    ranked = np.add(scores, boost.values, out=scores if world.semantic is None else None)
    blend = np.asarray(popularity, dtype=np.float64)
    lifted = np.flatnonzero(blend > 0)
    tops = None
    if lifted.size:
        top = np.maximum(ranked[lifted].max(axis=1), 1e-6)
        # At most 1 - RELEVANCE_KEPT: a blend of 1 left every paper without upvotes (all
        # of them on a day without Hugging Face's list) at 0, listed in feed order.
        share = np.minimum(blend[lifted], 1.0 - RELEVANCE_KEPT)[:, None]
        # The near-duplicate penalty stays on the scale of the profile's own scores, as
        # shrunk by the blend: on the scale of the lifted papers' it outweighed what the
        # papers without upvotes differ by, and they came in order of unlikeness to the
        # papers listed above them (at 1, the profile's 24th paper before its 2nd).
        best = np.where(passing[lifted], ranked[lifted], -np.inf).max(axis=1, initial=0.0)
        tops = np.full(size, np.nan)
        tops[lifted] = (1.0 - share[:, 0]) * best
        ranked[lifted] = (1.0 - share) * ranked[lifted] + share * top[:, None] * world.trend
    picks = select_many(ranked, passing, world.similarity, np.asarray(limits),
                        diversity=options.diversity, tops=tops)
    if boost.vouched_rows.size:
        picks = keep_followed(picks, ranked, passing, boost.vouched_rows, boost.vouched_cols,
                              np.asarray(limits))
    context = Context(
        space=world.space, compiled=compiled, examples=examples, docs=world.docs,
        doc_keys=world.doc_keys,
        dense_docs=world.dense_targets[:n_batch], pool=world.pool, feedback=fb,
        index=world.index, category_weight=_category_weights(world, examples, compiled,
                                                             options),
        fields=fields or (),
    )
    reasons = explain_all(context, chunk, world.papers, picks,
                          trending=[b > 0 for b in blend],
                          literal=_named_keywords(literal, spelled, n_batch))
    if world.semantic is not None:
        reasons = world.semantic.explain(reasons, picks, scores, semantic_parts, positive,
                                         examples.titles)
    flat_rows = [r for r, chosen in enumerate(picks) for _ in chosen]
    flat_cols = [j for chosen in picks for j in chosen]
    # Rounded in float64: a float32 rounded to 6 decimals is only the nearest float32
    # (0.589449 would come back as the Python float 0.5894489884376526).
    values = iter(ranked[flat_rows, flat_cols].astype(np.float64).round(6).tolist())
    scores_out = [[next(values) for _ in chosen] for chosen in picks]
    relevant = (None if over_bar is None
                else [bool(over_bar[r, chosen].any()) for r, chosen in enumerate(picks)])
    return ChunkResult([list(map(int, c)) for c in picks], scores_out, reasons, bars,
                       relevant)


def seed_coherence(rows: sp.csr_matrix, owner: np.ndarray, count: int) -> np.ndarray:
    """Return per profile the mean tf-idf cosine between two of its example rows (0 for
    a profile with fewer than two): ``(|sum|^2 - sum |row|^2) / (n (n - 1))``."""
    sums = membership(owner, count, mean=False) @ rows
    total = np.asarray(sums.multiply(sums).sum(axis=1)).ravel()
    own = np.bincount(owner, weights=np.asarray(rows.multiply(rows).sum(axis=1)).ravel(),
                      minlength=count)
    n = np.bincount(owner, minlength=count).astype(float)
    pairs = n * (n - 1)
    return np.where(pairs > 0, (total - own) / np.maximum(pairs, 1.0), 0.0)


def _closest_per_owner(
    owners: np.ndarray, rows: np.ndarray, targets: int,
    similarities: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Return where each owner's run of ``owners`` (ascending) starts, and per run each
    target's largest similarity to one of its example ``rows``; ``similarities`` gives
    a block of rows' (EXAMPLE_BLOCK at a time: one profile may have thousands) as a
    float32 array.
    """
    opens = np.r_[True, owners[1:] != owners[:-1]]  # where each owner's run starts
    starts = np.flatnonzero(opens)
    closest = np.full((starts.size, targets), -np.inf, dtype=SCORES)
    run = np.cumsum(opens) - 1  # each entry's owner run
    for at in range(0, owners.size, EXAMPLE_BLOCK):
        block = slice(at, at + EXAMPLE_BLOCK)
        sims = similarities(rows[block])
        mine = run[block]
        first = np.flatnonzero(np.r_[True, mine[1:] != mine[:-1]])
        best = np.maximum.reduceat(sims, first, axis=0)
        np.maximum(closest[mine[first]], best, out=best)
        closest[mine[first]] = best
    return starts, closest


def _add_nearest_example(
    world: World, examples: Examples, compiled: Compiled, content: np.ndarray,
    options: RankOptions,
) -> None:
    """Add to each target's score its tf-idf cosine to the profile's closest seed or
    liked paper, times ``nearest_example_weight`` and the profile's share of it (by how
    alike its examples are: RankOptions.nearest_coherence), in place."""
    low, high = options.nearest_coherence
    coherence = seed_coherence(examples.rows[compiled.positive_example],
                               compiled.positive_owner, content.shape[0])
    share = np.clip((coherence - low) / (high - low), 0.0, 1.0)
    mine = share[compiled.positive_owner] > 0  # positive_owner ascending: so is owners
    if not mine.any():
        return
    owners = compiled.positive_owner[mine]
    columns = world.target_columns
    starts, closest = _closest_per_owner(
        owners, compiled.positive_example[mine], content.shape[1],
        lambda block: (examples.rows[block].astype(SCORES) @ columns).toarray())
    profiles = owners[starts]
    closest *= (options.nearest_example_weight * share[profiles]).astype(SCORES)[:, None]
    content[profiles] += closest


def _penalise_disliked(
    world: World, examples: Examples, compiled: Compiled, content: np.ndarray,
    options: RankOptions,
) -> None:
    """Lower the scores of papers close to a profile's disliked papers, in place.

    Each row with disliked papers loses, on every scored paper, ``dislike_weight`` times
    ``(c - floor) / (1 - floor)`` where ``c`` is the paper's cosine to the row's closest
    disliked paper (LSA; tf-idf without it), nothing where ``c`` is below the floor:
    today's papers like the one a subscriber said "less like this" to go down, the rest
    of the list stays. The calibration papers lose the same way, so the bar is set on the
    scores the batch is held to. The cosines are computed for a block of disliked papers
    at a time (one subscriber may have given thousands of thumbs).
    """
    owners, rows = compiled.negative_owner, compiled.negative_example  # owners ascending
    floor, weight = options.dislike_floor, options.dislike_weight

    def similarities(block: np.ndarray) -> np.ndarray:
        sims: np.ndarray = (
            examples.dense[block].astype(SCORES) @ world.dense_columns if world.lsa is not None
            else (examples.rows[block] @ world.targets.T).toarray().astype(SCORES))
        return sims

    starts, closest = _closest_per_owner(owners, rows, content.shape[1], similarities)
    closest -= SCORES(floor)
    np.maximum(closest, 0.0, out=closest)
    closest *= SCORES(weight / (1.0 - floor))
    content[owners[starts]] -= closest


def _query_scores(queries: sp.csr_matrix, columns: sp.csr_matrix) -> np.ndarray:
    """Return ``(queries @ columns).toarray()`` in the scores' precision, the same numbers.

    ``queries``: short rows (a profile's words, ~12 terms); ``columns``: V x N postings,
    each column at most once a row (World.pool_columns, canonical). scipy's sparse
    product counts each output row's entries in one pass and sums them into linked
    lists in another, then the result is made dense (a chunk's queries against the
    pool: ~1.3 million of its 2.5 million entries are nonzero). Here the rows' n-th
    terms are added for all rows at once, n = 0, 1, ...: their postings gathered in one
    row indexing, each one's products added into the dense rows. Within one step no
    entry is written twice (one term a row, one posting a column), and each entry
    receives its terms' products in the rows' stored order, as in scipy's loop, each
    product and sum rounded to float32 alike: the same array, bit for bit. ~13 against
    ~21 ms a chunk of 500 bench profiles (2,000 papers).
    """
    queries = queries.astype(SCORES)
    width = columns.shape[1]
    out = np.zeros((queries.shape[0], width), dtype=SCORES)
    flat = out.reshape(-1)
    posting_lengths = np.diff(columns.indptr)
    row_lengths = np.diff(queries.indptr)
    for step in range(int(row_lengths.max(initial=0))):
        rows = np.flatnonzero(row_lengths > step)
        at = queries.indptr[rows] + step
        terms = queries.indices[at]
        lengths = posting_lengths[terms]
        postings = columns[terms]
        where = postings.indices.astype(np.intp)
        where += np.repeat(rows * width, lengths)
        products = np.repeat(queries.data[at], lengths)
        products *= postings.data.astype(SCORES, copy=False)
        flat[where] += products
    return out


@dataclass(frozen=True)
class Spellings:
    """The vocabulary's two-part terms in their other spellings, for one pool.

    ``other`` (V x V, 1 at (a term, its other spelling)); ``lift`` (V x N postings, as
    World.pool_columns): per such term and pool paper, how much more the paper's other
    spelling weighs than the term itself (zero where it does not, absent mostly).
    """

    terms: np.ndarray  # V bools: the term has another spelling
    other: sp.csr_matrix
    lift: sp.csr_matrix


def spellings(space: Space, pool_columns: sp.csr_matrix) -> Spellings | None:
    """Return the listed two-part terms (profiles.two_part_columns) whose joined word and
    two-word term are both in the space's vocabulary, each way, and their lift over
    the pool (Spellings)."""
    pairs: list[tuple[int, int]] = []
    for _, (a, b) in two_part_columns(space):
        if a is not None and b is not None and a != b:
            pairs += [(a, b), (b, a)]
    if not pairs:
        return None
    size = len(space.terms)
    term, other_term = np.asarray(pairs, dtype=np.intp).T
    other = sp.csr_matrix((np.ones(term.size), (term, other_term)), shape=(size, size))
    terms = np.zeros(size, dtype=bool)
    terms[term] = True
    # Per (term, paper): the other spelling's weight less the term's, where positive.
    gain = (other @ pool_columns - sp.diags(terms.astype(SCORES)) @ pool_columns).tocsr()
    gain.data = np.maximum(gain.data, 0.0).astype(SCORES)
    gain.eliminate_zeros()
    gain.sort_indices()
    return Spellings(terms=terms, other=other.tocsr(), lift=sp.csr_matrix(gain, dtype=SCORES))


def _spelled(compiled: Compiled, pool_scores: np.ndarray,
             spelled: Spellings | None) -> Compiled:
    """Score a paper that writes a two-part term of the interests in another spelling
    ("finetuning" for "fine-tuning") as if it wrote the one typed, in ``pool_scores``
    (in place); return ``compiled`` with its ``named`` rows (Compiled.named).

    Term by term: each such term of a query counts at the larger of the paper's
    weights of its two spellings (a paper writing both counts the larger once).
    Keywords have their own queries in each spelling (Compiled.twins); only the
    interests' terms are read here.
    """
    interests = compiled.interests
    if spelled is None or interests is None:
        return compiled
    text = compiled.text
    key = text.copy()  # the query's entries at such terms that the interests hold
    key.data = np.where(spelled.terms[key.indices], key.data, 0.0)
    key.eliminate_zeros()
    if key.nnz == 0:
        return compiled
    held = interests.copy()
    held.data = np.ones_like(held.data)
    key = sp.csr_matrix(key.multiply(held))
    key.eliminate_zeros()
    rows = np.flatnonzero(key.getnnz(axis=1))
    if rows.size == 0:
        return compiled
    pool_scores[rows] += _query_scores(key[rows], spelled.lift)
    return replace(compiled, named=(text + key @ spelled.other).tocsr())


def _smoothed(content: np.ndarray, smoother: sp.csr_matrix) -> np.ndarray:
    """Return ``content @ smoother`` as a C-ordered float32 P x T array.

    scipy computes a dense-times-sparse product as the transposed sparse-times-dense
    one and hands back its transpose (column-ordered); the copy puts each profile's
    scores in one run of memory again for the row-wise steps that follow (the bar's
    partition, MMR). The product and the copy: ~6 ms of CPU a chunk of 500 profiles
    against 2,600 scored papers, ~3% of the chunk.
    """
    smoothed: np.ndarray = np.ascontiguousarray(content @ smoother, dtype=SCORES)
    return smoothed


def _add_metadata(
    content: np.ndarray, rows: np.ndarray, meta: Metadata, papers: sp.csr_matrix,
    category_weight: float, author_weight: float,
) -> None:
    """Add the category and author cosines of each row's papers (``papers``: row x paper).

    The author weight goes as far as one author runs through the row's papers
    (metadata.concentration, weighted by ``papers``): forty seed papers by one
    researcher, or three retrieved papers by one team, count fully; ten papers by ten
    teams a tenth, so one co-author does not steer a field's reader.
    """
    if category_weight > 0:
        add_metadata_scores(content, rows, meta, papers, 0, factor=category_weight)
    if author_weight > 0:
        add_metadata_scores(content, rows, meta, papers, 1,
                            factor=author_weight * concentration(papers, meta.rows[1]))


def _category_weights(
    world: World, examples: Examples, compiled: Compiled, options: RankOptions
) -> dict[str, float]:
    """Return the weight in the score of each category of the chunk's example papers."""
    if options.example_category_lift <= 0:
        return {}
    found = {c for e in set(compiled.positive_example.tolist())
             for c in examples.categories[e]}
    shares = world.category_shares
    return {c: rarity(shares.get(c, 0.0), options.example_category_lift) for c in found}


def _columns(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Return ``values[:, columns]``, copied run by run where the columns are a few runs.

    The scored columns are the pool's batch rows, then its calibration rows: two runs
    of consecutive pool rows, copied as two slices instead of gathered one by one.
    """
    if columns.size == 0:
        return values[:, columns]
    breaks = np.flatnonzero(np.diff(columns) != 1) + 1
    if breaks.size > 8:
        gathered: np.ndarray = values[:, columns]
        return gathered
    out = np.empty((values.shape[0], columns.size), dtype=values.dtype)
    starts = [0, *breaks.tolist()]
    ends = [*breaks.tolist(), columns.size]
    for start, end in zip(starts, ends, strict=True):
        first = int(columns[start])
        out[:, start:end] = values[:, first : first + end - start]
    return out


def _quantile_rows(values: np.ndarray, q: float) -> np.ndarray:
    """Return ``np.quantile(values, q, axis=1)`` (its linear method), the same numbers.

    np.quantile copies the rows into columns and partitions each at four places; this
    partitions the rows at the two order statistics the interpolation reads (and the
    last, where a NaN would sort) and interpolates them the way numpy does: the
    virtual index ``(n - 1) * q``, ``a + (b - a) * g``, or ``b - (b - a) * (1 - g)``
    from ``g >= 0.5`` on. tests/test_rank.py checks it against np.quantile.
    """
    count = values.shape[1]
    virtual = (count - 1) * q
    if virtual >= count - 1:
        low = high = count - 1
        floor = -1.0
    elif virtual < 0:
        low = high = 0
        floor = 0.0
    else:
        floor = float(np.floor(virtual))
        low, high = int(floor), int(floor) + 1
    gamma = virtual - floor
    ordered = np.partition(values, sorted({low, high, count - 1}), axis=1)
    before, after = ordered[:, low], ordered[:, high]
    step = after - before
    result: np.ndarray = (after - step * (1 - gamma) if gamma >= 0.5
                          else before + step * gamma)
    result[np.isnan(ordered[:, -1])] = np.nan
    return result


def _standardised(world: World, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return LSA vectors divided by their spread over the background, and their offsets.

    ``vector @ x - offset`` is then a score standardised on the background (mean and
    spread read from the background's mean and covariance, not from scoring it).
    """
    spread = np.sqrt(np.maximum(((part @ world.covariance) * part).sum(axis=1), 0.0))
    spread[spread <= 1e-12] = 1.0
    return part / spread[:, None], (part @ world.mean) / spread


def _on_text_scale(world: World, vector: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Return P x T standardised LSA scores put on the tf-idf cosine scale (see scale).

    ``mean + spread * (vector . x - offset) / 2``, computed in the product's array, in
    float32 (the vectors are computed in float64 and rounded for the product).
    """
    scaled: np.ndarray = vector.astype(SCORES) @ world.dense_columns
    scaled -= offset.astype(SCORES)[:, None]
    mean, spread = world.scale
    # One pass for both factors: halving is exact, so x * (spread / 2) rounds to what
    # (x * spread) / 2 does, bit for bit.
    scaled *= spread / 2.0
    scaled += mean
    return scaled


def _topic_part(
    world: World, compiled: Compiled, fb: Feedback | None, rows: np.ndarray,
    options: RankOptions,
) -> np.ndarray:
    """Return the LSA vectors of text queries: their projection plus their feedback's.

    The feedback part is the centroid of the papers the query's words retrieved
    (pseudo-relevance feedback), which carries the topic past the words typed.
    """
    assert world.lsa is not None
    # Every spelling's terms: "finetuning" and "fine-tuning" point to one topic.
    part = options.text_lsa_query * world.lsa.project(compiled.spelled[rows])
    if fb is not None:
        part = part + normalize(np.einsum("rd,rdk->rk", fb.weights[rows],
                                          world.dense_pool[fb.top[rows]]))
    unit: np.ndarray = normalize(part)
    return unit


def _example_scores(
    world: World, examples: Examples, compiled: Compiled, count: int, options: RankOptions,
    *, feedback: Feedback | None = None, topic_rows: np.ndarray | None = None,
) -> np.ndarray:
    """Return P x T example scores on the tf-idf cosine scale, in float32.

    With LSA: a ridge model (seeds and liked papers against the background, disliked
    ones as negatives) plus the example centroid, each standardised by its mean and
    spread over the background (read from the background's mean and covariance, not
    from scoring it), summed into one vector per profile: one dense product. The
    ``topic_rows`` (text-only profiles) get their queries' LSA vectors (_topic_part) in
    that same product.
    Without LSA (a tiny pool): the tf-idf centroid of the positives minus a share of the
    negatives' centroid.
    """
    if world.lsa is None or world.inverse is None:
        positive = normalize(membership(compiled.positive_owner, count)
                             @ examples.rows[compiled.positive_example])
        if compiled.negative_owner.size:
            negative = normalize(membership(compiled.negative_owner, count)
                                 @ examples.rows[compiled.negative_example])
            positive = positive - options.negative_weight * negative
        plain: np.ndarray = (sp.csr_matrix(positive) @ world.targets.T).toarray()
        return plain.astype(SCORES)
    positives = examples.dense[compiled.positive_example]
    negatives = examples.dense[compiled.negative_example]
    owner = np.concatenate([compiled.positive_owner, compiled.negative_owner])
    labels = np.concatenate([np.ones(len(positives)), -np.ones(len(negatives))])
    weights = ridge_lsa(world.dense_background, np.vstack([positives, negatives]), owner,
                        labels, count, alpha=options.lsa_alpha, inverse=world.inverse)
    centroid = normalize(membership(compiled.positive_owner, count, mean=False) @ positives)
    (model, model_offset), (middle, middle_offset) = (
        _standardised(world, part) for part in (weights, centroid))
    vector, offset = model + middle, model_offset + middle_offset
    if topic_rows is not None and topic_rows.size:  # rows without positives: zero so far
        # Their disliked papers alone still make a model (pointing away from them): a
        # share of it joins the topic, so "less like this" pushes a paper's kind down
        # before the subscriber has liked anything (without it the thumbs did nothing).
        disliking = topic_rows[np.isin(topic_rows, compiled.negative_owner)]
        against, against_offset = (options.negative_weight * model[disliking],
                                   options.negative_weight * model_offset[disliking])
        vector[topic_rows], offset[topic_rows] = _standardised(
            world, _topic_part(world, compiled, feedback, topic_rows, options))
        if options.part_topics and compiled.parts is not None:
            _part_topics(world, compiled, topic_rows, vector, offset, options)
        vector[disliking] += against
        offset[disliking] += against_offset
    return _on_text_scale(world, vector, offset)


def _part_topics(
    world: World, compiled: Compiled, topic_rows: np.ndarray, vector: np.ndarray,
    offset: np.ndarray, options: RankOptions,
) -> None:
    """Give text-only profiles typed in parts the mean of their parts' own topics."""
    assert world.lsa is not None and compiled.parts is not None
    mine = np.isin(compiled.part_owner, topic_rows)
    if not mine.any():
        return
    owner = compiled.part_owner[mine]
    rows = compiled.parts[np.flatnonzero(mine)]
    sims = _query_scores(rows, world.pool_columns)
    fb = feedback(sims, world.pool_gram, depth=options.feedback_depth)
    part = options.text_lsa_query * world.lsa.project(rows)
    if fb is not None:
        part = part + normalize(np.einsum("rd,rdk->rk", fb.weights,
                                          world.dense_pool[fb.top]))
    each, _ = _standardised(world, normalize(part))
    targets = np.unique(owner)
    # The mean of the parts' standardised topics, standardised again: its scores are
    # the mean of the parts' scores, spread as any one topic's.
    mean = (membership(owner, vector.shape[0]) @ each)[targets]
    vector[targets], offset[targets] = _standardised(world, mean)


@functools.lru_cache(maxsize=65536)
def literal_phrase(keyword: str) -> str | None:
    """Return a keyword as a phrase of word forms when the vocabulary loses a word of it
    (a word of the domain's stop list anywhere: "code generation", "task planning",
    "code"; at its start or end, any word that is no term: an English stop word, a
    letter: "system identification", "few-shot", "X-ray", "Q-learning"), or None when
    its terms say it all (or it is too short to look for: "C", "R").
    Found in a paper's title and abstract; a single word, in its title only.

    A word lost between two kept ones ("theory of mind") costs the query nothing: its
    neighbours still make the bigram ("theory mind") a paper writing it holds. One lost
    at an edge is in no term of the query, which then ranked by the rest alone: "system
    identification" as "identification" (biometric and person re-identification first),
    "X-ray" as "ray" (ray tracing first), "few-shot" as "shot" (zero-shot and video
    shots).
    """
    words = _NOT_ALNUM.sub(" ", fold_accents(keyword.lower())).split()
    if not words:
        return None
    lost = (any(w in DOMAIN_STOP_WORDS for w in words)
            or not tokenize(words[0]) or not tokenize(words[-1]))
    phrase = _word_forms(keyword).strip()
    if not lost or len(phrase.replace(" ", "")) < 3:
        return None
    return phrase


@functools.lru_cache(maxsize=65536)
def literal_phrases(keyword: str) -> tuple[tuple[str, ...], bool]:
    """Return the phrases (as _word_forms writes them) a keyword is looked for as, in
    every spelling of it (joins.other_spellings: "few-shot" and "fewshot"), when one
    spelling is lost to the vocabulary (literal_phrase); and whether one is more than
    a word (then looked for in titles and abstracts, else in titles). ((), False) when
    its terms say it all in every spelling.
    """
    spellings = (keyword, *other_spellings(keyword))
    if all(literal_phrase(spelling) is None for spelling in spellings):
        return (), False
    phrases = tuple(dict.fromkeys(p for p in map(_phrase_of, spellings) if p))
    return phrases, any(" " in phrase for phrase in phrases)


@functools.lru_cache(maxsize=65536)
def spelled_phrases(keyword: str) -> tuple[str, tuple[str, ...]]:
    """Return the phrase (as _word_forms writes it) of a keyword, and those of its other
    spellings (joins.other_spellings: 'finetuning' of 'fine-tuning')."""
    own = _phrase_of(keyword)
    return own, tuple(dict.fromkeys(p for p in map(_phrase_of, other_spellings(keyword))
                                    if p and p != own))


def excluded_phrases(excluded: str) -> tuple[str, ...]:
    """Return the phrases (as _word_forms writes them) an excluded phrase is looked for
    as: itself and its other spellings ('multi-agent' and 'multiagent')."""
    own, others = spelled_phrases(excluded)
    return (own, *others) if own else others


def _phrase_of(text: str) -> str:
    return _word_forms(text).strip()


KeywordHits = list[tuple[int, list[tuple[str, np.ndarray]]]]


def _literal_keywords(
    world: World, chunk: Sequence[Profile], *, lifted: bool = True
) -> tuple[KeywordHits, KeywordHits]:
    """Return, per chunk row with any, its literal keywords: (as typed, targets holding
    it in any spelling; none unless ``lifted``); and its other keywords (as typed, the
    batch papers holding one of its other spellings and not the typed one): a reason
    names those as typed ("matches: fine-tuning" of a paper writing "finetuning").
    """
    out: KeywordHits = []
    named: KeywordHits = []
    for r, profile in enumerate(chunk):
        found: list[tuple[str, np.ndarray]] = []
        spelled: list[tuple[str, np.ndarray]] = []
        for typed in profile.keywords:
            phrases, long = literal_phrases(typed)
            if not phrases:
                own, others = spelled_phrases(typed)
                if others:
                    held = _holding_any(world, others, "batch")
                    if own:
                        held &= ~world.holding(own, "batch")
                    if held.any():
                        spelled.append((" ".join(typed.split()), np.flatnonzero(held)))
                continue
            if not lifted:
                continue
            # One word ("code") is looked for in titles: in abstracts it is mostly the
            # phrase that made it a stop word ("code is available at").
            hits = np.flatnonzero(_holding_any(world, phrases, "targets" if long else "titles"))
            if hits.size:
                found.append((" ".join(typed.split()), hits))
        if found:
            out.append((r, found))
        if spelled:
            named.append((r, spelled))
    return out, named


def _named_keywords(
    literal: KeywordHits, spelled: KeywordHits, n_batch: int
) -> dict[int, list[tuple[str, np.ndarray]]]:
    """Return, per chunk row, the keywords a reason names as typed and the batch papers
    holding each (the literal ones' targets cut to the batch)."""
    named: dict[int, list[tuple[str, np.ndarray]]] = {
        r: [(typed, hits[hits < n_batch]) for typed, hits in found] for r, found in literal}
    for r, found in spelled:
        named.setdefault(r, []).extend(found)
    return named


def _holding_any(
    world: World, phrases: Sequence[str], where: Literal["batch", "targets", "titles"]
) -> np.ndarray:
    """Return which papers hold any of the phrases (a new array: the caller's to change)."""
    held = world.holding(phrases[0], where).copy()
    for phrase in phrases[1:]:
        held |= world.holding(phrase, where)
    return held


def _blocked(
    world: World, chunk: Sequence[Profile], sent: Sequence[AbstractSet[str]]
) -> np.ndarray:
    """Return which papers must never be shown: already sent, the profile's own seed,
    liked or disliked papers (a researcher who seeds with their own new paper is not
    sent it back as the day's best match), or an excluded phrase.

    Callers often pass one set object for many profiles (the papers outside a shared
    window); its columns are looked up once per chunk.
    """
    blocked = np.zeros((len(chunk), world.n_batch), dtype=bool)
    column = world.index.column
    seen: dict[int, np.ndarray] = {}
    for r, profile in enumerate(chunk):
        keys = sent[r]
        if keys:
            columns = seen.get(id(keys))
            if columns is None:
                found = [column.get(key) for key in keys]
                columns = np.asarray([j for j in found if j is not None], dtype=np.intp)
                seen[id(keys)] = columns
            blocked[r, columns] = True
        for key in (*profile.seeds, *profile.liked, *profile.disliked):
            j = column.get(key)
            if j is not None:
                blocked[r, j] = True
        for raw in profile.exclude:
            for phrase in excluded_phrases(raw):
                blocked[r] |= world.holding(phrase, "batch")
    return blocked
