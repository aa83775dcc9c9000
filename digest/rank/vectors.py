"""The tf-idf space shared by papers and profiles, and its day-to-day state.

The state is a vocabulary with (decayed) document frequencies, stored as zlib-compressed
JSON: compact, and safe to load from a database because nothing is unpickled.
"""

from __future__ import annotations

import array
import bisect
import collections
import functools
import hashlib
import itertools
import json
import math
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.preprocessing import normalize

from digest.errors import DigestError
from digest.models import Paper

STATE_FORMAT = "digest-rank-vocab/1"
# How texts are split into terms. A stored vocabulary counted under another (older)
# splitting holds terms no text makes now and misses the counts of those it merged
# ('llms' into 'llm'); its document frequencies fade over hundreds of days, so it is
# rebuilt from the history instead (scoring.prepare_space). 2: acronym plurals.
TOKENS = 2
MAX_TERMS = 250_000
MIN_DF = 1.5  # a new term needs two papers; a kept one fades out slowly
DECAY = 0.995  # per update: a term unseen for a year keeps ~16% of its weight

# "\d+[a-z][a-z0-9]*", not "\d+[a-z]+[a-z0-9]*" (the same words): the two runs could
# share the letters of a long word in as many ways as it has letters, all tried when
# the word did not end there ("1aaa..._"), quadratic in a feed's one huge word.
_TOKEN = re.compile(r"(?u)\b[a-z][a-z0-9]+\b|\b\d+[a-z][a-z0-9]*\b")
# The same pattern for ASCII text, where ASCII word boundaries and digits are exactly
# the Unicode ones (a third faster: no Unicode tables).
_ASCII_TOKEN = re.compile(_TOKEN.pattern.removeprefix("(?u)"), re.ASCII)
# Words that carry no topic in abstracts, on top of sklearn's English list.
_DOMAIN_STOP_TEXT = """
    paper propose proposed proposes approach approaches method methods results result
    show shows shown novel new based using use used work works present presents existing
    also however extensive experiments experimental demonstrate demonstrates significantly
    state art outperforms performance achieve achieves achieving furthermore moreover
    code available github com https http www introduce introduces framework address
    study studies various different effective effectively task tasks"""
# Those of them a researcher may mean in a keyword ("code generation", "task planning"):
# not English stop words.
DOMAIN_STOP_WORDS = frozenset(_DOMAIN_STOP_TEXT.split()) - frozenset(ENGLISH_STOP_WORDS)
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | frozenset(_DOMAIN_STOP_TEXT.split())


def _stem(word: str) -> str:
    """Strip a few English plural and verbal endings so that 'models' meets 'model'."""
    if len(word) <= 4:
        return word
    if word.endswith("ies") and len(word) > 5:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


class _Words(dict[str, str | None]):
    """Raw token -> its stem, or None for a stop word; filled on first sight.

    Abstracts reuse a few tens of thousands of words, so one dict lookup per token
    replaces the stop-word test and the stemmer's string checks.
    """

    def __missing__(self, token: str) -> str | None:
        if len(self) >= MAX_WORDS:
            self.clear()  # an odd corpus cannot grow it without bound
        word = None if token in STOP_WORDS else _stem(token)
        self[token] = word
        return word


MAX_WORDS = 1_000_000
_WORDS = _Words()


def fold_accents(text: str) -> str:
    """Return the text without its accents ('é' -> 'e', composed or decomposed)."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# A TeX control word (\mathbb, \mathrm, \ge, \frac): markup, not a topic. Kept, it
# was a term like any other, and a reason said "matches: function, mathbb, ...".
_TEX_COMMAND = re.compile(r"\\[a-z]+")


# An acronym's plural: a capital and a lower-case "s" ending a word ('LLMs', 'GNNs',
# 'ViTs', 'KGs'). Lower-cased it is too short for the stemmer ('llms', 'kgs'), which
# cannot tell it from 'bias', 'lens', 'news' or 'SARS', so 'LLMs' and 'LLM' were two
# terms (in 20,000 corpus papers ~20,000 such plurals, 'LLMs' 9,566 times).
# Written as an "s" ending a word, then the capital before it: a search for the letter,
# ~6x faster than one looking behind every character for a capital.
_ACRONYM_PLURAL = re.compile(r"s\b(?<=[A-Z]s)")


def singular_acronyms(text: str) -> str:
    """Return the text with each acronym's plural "s" a space ('LLMs' -> 'LLM '): the
    same length, so that what is found in it is where the text writes it."""
    return _ACRONYM_PLURAL.sub(" ", text)


def tokenize(text: str) -> list[str]:
    """Lower-case, fold accents, drop TeX commands, split into word tokens, drop stop
    words, light-stem."""
    return [word for word in map(_WORDS.__getitem__, _raw_tokens(text)) if word is not None]


def _raw_tokens(text: str) -> list[str]:
    """Return the text's word tokens before stop words and stems: tokenize's first half."""
    folded = fold_accents(singular_acronyms(text).lower())
    if "\\" in folded:
        folded = _TEX_COMMAND.sub(" ", folded)
    pattern = _ASCII_TOKEN if folded.isascii() else _TOKEN
    return pattern.findall(folded)


# A written word (letters and digits), before it is folded and split like a token.
_WRITTEN = re.compile(r"[^\W_]+")
# What may stand between the two words of a bigram for the text between them to be
# shown as written ("graphs of networks"): stop words and spaces, no punctuation.
# Written as letters, digits and spaces in any order: "[^\W_]*(?:\s+[^\W_]*)*" says
# the same, but a run of spaces could be split among its repeats in 2^n ways, tried one
# by one when the gap then failed (a feed's title with 40 TeX commands in a row, each
# left a space, stalled the ranking for days).
_PLAIN_GAP = re.compile(r"(?:[^\W_]|\s)*|\s*-\s*")


def written_tokens(text: str) -> tuple[str, Iterator[tuple[str, str, int, int]]]:
    """Return the text as a reason quotes it (lower-cased, TeX commands out), and its
    tokens as :func:`tokenize` finds them, in order and as they are read (a search for
    one term stops at its first occurrence): (token, as written, start, end); a token
    that is only part of a written word ('x' of 'x̃y') has no span (-1, -1). An
    acronym's plural is its singular's token, written with its "s" ('llm', 'llms').
    """
    return _written_tokens(text, singular_acronyms(text))


def _written_tokens(
    text: str, singular: str
) -> tuple[str, Iterator[tuple[str, str, int, int]]]:
    """written_tokens of ``text``, given its singular_acronyms (``singular``)."""
    quoted, scanned = _quoted_and_scanned(text, singular)
    return quoted, _tokens_of(scanned, quoted)


def _quoted_and_scanned(text: str, singular: str) -> tuple[str, str]:
    """Return the text lower-cased with its TeX commands out, as written (quoted) and
    with its acronyms' plural "s" a space (scanned for tokens): the same length."""
    quoted = text.lower()
    same = singular is text
    scanned = quoted if same else singular.lower()
    if "\\" in quoted:
        quoted = _TEX_COMMAND.sub(" ", quoted)
        scanned = quoted if same else _TEX_COMMAND.sub(" ", scanned)
    if len(scanned) != len(quoted):  # a TeX command with a capital and an "s" ('\\Ms')
        quoted = scanned
    return quoted, scanned


def _end(scanned: str, quoted: str, end: int) -> int:
    """Return where a token ending at ``end`` ends as written: after its plural "s"."""
    if scanned is not quoted and quoted[end : end + 1] == "s" and scanned[end : end + 1] == " ":
        return end + 1
    return end


def _tokens_of(scanned: str, quoted: str) -> Iterator[tuple[str, str, int, int]]:
    if scanned.isascii():  # the tokens are the written words themselves
        for m in _ASCII_TOKEN.finditer(scanned):
            start, end = m.span()
            end = _end(scanned, quoted, end)
            yield m.group(), quoted[start:end], start, end
        return
    for found in _WRITTEN.finditer(scanned):
        written = found.group()
        folded = fold_accents(written)
        parts = (_ASCII_TOKEN if folded.isascii() else _TOKEN).findall(folded)
        if len(parts) == 1 and parts[0] == folded:
            start, end = found.span()
            end = _end(scanned, quoted, end)
            yield folded, quoted[start:end], start, end
        else:
            for part in parts:
                yield part, part, -1, -1


def written_words(text: str) -> dict[str, str]:
    """Return each word term of a text (a stem, as :func:`analyze` makes them) -> how
    the text first writes it, lower-cased with its accents: 'graph' -> 'graphs', 'cafe'
    -> 'café'. Terms are what a reason names; their stems ('cafe, graph') read as typos.
    """
    return written_text(text)[0]


def written_text(text: str) -> tuple[dict[str, str], WrittenText]:
    """Return the text's :func:`written_words` and its :class:`WrittenText`, read in
    one pass over its tokens.
    """
    lowered = text.lower()
    words: dict[str, str] = {}
    stems: list[str] = []
    spans = array.array("i")
    parts: dict[int, str] = {}
    stem_of = _WORDS.__getitem__
    singular = singular_acronyms(text)
    if singular is text and lowered.isascii() and "\\" not in lowered:
        # The tokens are the written words (no acronym's plural to read as its singular).
        for found in _ASCII_TOKEN.finditer(lowered):
            token = found.group()
            stem = stem_of(token)
            if stem is not None:
                if stem not in words:
                    words[stem] = token
                stems.append(stem)
                spans.extend(found.span())
    else:
        lowered, tokens = _written_tokens(text, singular)  # its acronyms read once
        for token, written, start, end in tokens:
            stem = stem_of(token)
            if stem is not None:
                if stem not in words:
                    words[stem] = written
                if start < 0:
                    parts[len(stems)] = written
                stems.append(stem)
                spans.extend((start, end))
    return words, WrittenText(lowered, " " + " ".join(stems) + " ", spans, parts)


class WrittenText:
    """A text's word stems in order (stop words out) and where each is written, so that
    any two-word term is found with one string search: a day's papers are looked up
    for many terms, and walking a paper's tokens again for each (~15,000 walks in each
    scoring process at 100,000 profiles) was a sixth of the reasons' CPU (explain_all
    for 50,000 bench profiles in one process: 10.6 -> 8.8 s with one pass a paper).
    """

    __slots__ = ("lowered", "parts", "spans", "stems")

    def __init__(self, lowered: str, stems: str, spans: array.array[int],
                 parts: dict[int, str]) -> None:
        self.lowered = lowered  # the text as a reason quotes it (:func:`written_tokens`)
        self.stems = stems  # " stem stem ... ", one space before and after each
        self.spans = spans  # start, end of each stem's written word; -1, -1 for a part
        self.parts = parts  # stem index -> its token, where that is part of a word

    def _written(self, index: int) -> str:
        part = self.parts.get(index)
        if part is not None:
            return part
        return self.lowered[self.spans[2 * index] : self.spans[2 * index + 1]]

    def phrase(self, bigram: str) -> str:
        """Return how the text writes a two-word term: the first span whose words are
        apart by spaces and stop words only, as written ('graph network' -> 'graphs of
        networks', 'training free' -> 'training-free'); else its first two words joined
        by a space ('networks graphs' across a full stop); the term itself if the text
        lacks it.
        """
        needle = f" {bigram} "
        at = self.stems.find(needle)
        joined = ""
        spans = self.spans
        index = counted = 0
        while at >= 0:
            # The first word's place among the stems, counted on from the last place
            # (from the start each time, a text writing the term apart often was
            # quadratic).
            index += self.stems.count(" ", counted, at)
            counted = at
            start, gap, after, end = spans[2 * index : 2 * index + 4]
            if start >= 0 and after >= 0 and _PLAIN_GAP.fullmatch(self.lowered[gap:after]):
                return self.lowered[start:end]
            joined = joined or f"{self._written(index)} {self._written(index + 1)}"
            at = self.stems.find(needle, at + 1)
        return joined or bigram


def analyze_once(text: str) -> tuple[str, ...]:
    """Return the unigrams and bigrams of a text, the terms of the vector space."""
    tokens = tokenize(text)
    return (*tokens, *[f"{a} {b}" for a, b in itertools.pairwise(tokens)])


# The papers a run ranks with: the background (scoring.MAX_BACKGROUND, 3,000) and the
# day's batch, analysed again the next day as background. A cached analysis holds the
# text and its terms (~15 KB a paper of the sample batch, tracemalloc): with room for
# 65,536, a scheduler process that runs for weeks grew by each day's batch (~30 MB a
# day of 2,000 papers) up to ~1 GB; 8,192 keep a day's background and a batch of 5,000
# (~125 MB at most).
ANALYZE_CACHE = 8192
_analyze = functools.lru_cache(maxsize=ANALYZE_CACHE)(analyze_once)


def analyze(text: str) -> tuple[str, ...]:
    """Return the unigrams and bigrams of a text, the terms of the vector space.

    Memoised: the same history papers are analysed day after day in one process.
    """
    return _analyze(text)


def paper_text(paper: Paper) -> str:
    """Return the text a paper is known by: title (weighted twice) and abstract."""
    return f"{paper.title}. {paper.title}. {paper.abstract}"


def batch_fingerprint(papers: Sequence[Paper]) -> str:
    """Return a short hash of a batch's keys, to avoid counting one batch twice."""
    digest = hashlib.sha256("\n".join(sorted(p.key for p in papers)).encode()).hexdigest()
    return digest[:16]


@dataclass(frozen=True)
class Space:
    """A fixed vocabulary with idf weights: turns texts into l2-normalised tf-idf rows."""

    terms: tuple[str, ...]
    df: np.ndarray  # decayed document frequency per term
    n_docs: float
    fingerprints: tuple[str, ...] = ()
    tokens: int = TOKENS  # the splitting its terms were counted with

    @property
    def index(self) -> dict[str, int]:
        """Return term -> column."""
        return _index_of(self)

    @functools.cached_property
    def idf(self) -> np.ndarray:
        """Return the smoothed idf per term (computed once: a log over the vocabulary)."""
        return np.log((1.0 + self.n_docs) / (1.0 + self.df)) + 1.0

    def counts(self, texts: Iterable[str], *, memo: bool = True) -> sp.csr_matrix:
        """Return raw term counts, one row per text.

        ``memo=False`` for texts a process analyses once (the profiles' and their
        example papers'): kept in analyze()'s cache, they grew a run's memory with its
        subscribers (~60 MB at 100,000 bench subscribers), for nothing.
        """
        texts = list(texts)
        if not texts or not self.terms:
            return sp.csr_matrix((len(texts), len(self.terms)))
        terms = analyze if memo else analyze_once
        return count_terms([terms(text) for text in texts], self.index, len(self.terms))

    def transform(self, texts: Iterable[str], *, memo: bool = True) -> sp.csr_matrix:
        """Return sublinear-tf idf rows, l2-normalised (an empty text gives a zero row).

        ``memo`` as in counts().
        """
        matrix = self.counts(texts, memo=memo)
        if matrix.shape[0] == 0:
            return sp.csr_matrix((0, len(self.terms)))
        matrix.data = 1.0 + np.log(matrix.data)
        matrix = matrix @ sp.diags(self.idf)
        normalized: sp.csr_matrix = normalize(matrix.tocsr(), norm="l2", copy=False)
        return normalized

    def to_bytes(self) -> bytes:
        """Serialise to compressed JSON (no pickle)."""
        payload = {
            "format": STATE_FORMAT,
            "n_docs": round(float(self.n_docs), 4),
            "terms": list(self.terms),
            "df": list(map(round, self.df.tolist(), itertools.repeat(3))),
            "fingerprints": list(self.fingerprints),
            "tokens": self.tokens,
        }
        return zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 6)


_INDEX_CACHE: dict[int, tuple[Space, dict[str, int]]] = {}



_T = TypeVar("_T")


def kept_for(cache: dict[int, tuple[Space, _T]], space: Space,
             make: Callable[[Space], _T]) -> _T:
    """Return the table ``cache`` keeps for a space, made for it on first use (one space
    at a time: a new day's space replaces the last one's table).
    """
    held = cache.get(id(space))
    if held is None or held[0] is not space:
        cache.clear()
        held = cache[id(space)] = (space, make(space))
    return held[1]


def _index_of(space: Space) -> dict[str, int]:
    cached = _INDEX_CACHE.get(id(space))
    if cached is not None and cached[0] is space:
        return cached[1]
    index = {term: i for i, term in enumerate(space.terms)}
    if len(_INDEX_CACHE) > 8:
        _INDEX_CACHE.clear()
    _INDEX_CACHE[id(space)] = (space, index)
    return index


def count_terms(
    analysed: Sequence[tuple[str, ...]], index: dict[str, int], width: int
) -> sp.csr_matrix:
    """Return the term counts of analysed texts over a vocabulary, one row per text.

    The same matrix as scikit-learn's CountVectorizer with that vocabulary (float
    counts, sorted column indices, no explicit zeros), built with one C-level dict
    lookup per term and one sort instead of a Python loop per term.
    """
    get = index.get
    columns: list[int] = []
    lengths = np.zeros(len(analysed), dtype=np.int64)
    for row, terms in enumerate(analysed):
        columns.extend(map(get, terms, itertools.repeat(-1)))
        lengths[row] = len(terms)
    found = np.asarray(columns, dtype=np.int64)
    keys = np.repeat(np.arange(len(analysed), dtype=np.int64), lengths) * width + found
    keys, counts = np.unique(keys[found >= 0], return_counts=True)
    rows, cols = np.divmod(keys, width)
    indptr = np.searchsorted(rows, np.arange(len(analysed) + 1))
    return sp.csr_matrix(
        (counts.astype(np.float64), cols.astype(np.int32), indptr.astype(np.int32)),
        shape=(len(analysed), width),
    )


def space_from_bytes(data: bytes) -> Space:
    """Load a stored state; raise DigestError when it is not one of ours."""
    hint = "drop the stored ranking state; the next run rebuilds it from history"
    try:
        payload = json.loads(zlib.decompress(data, bufsize=1 << 20).decode())
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DigestError("stored ranking state is unreadable", hint) from err
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise DigestError("stored ranking state has an unknown format", hint)
    terms = payload.get("terms")
    df = payload.get("df")
    if not isinstance(terms, list) or not isinstance(df, list) or len(terms) != len(df):
        raise DigestError("stored ranking state is inconsistent", hint)
    return Space(
        terms=tuple(map(str, terms)),
        df=np.asarray(df, dtype=np.float64),
        n_docs=float(payload.get("n_docs") or 0.0),
        fingerprints=tuple(str(f) for f in payload.get("fingerprints") or ())[-64:],
        tokens=int(payload.get("tokens") or 1),  # states before TOKENS had none
    )


class _StemIds(dict[str, int]):
    """Raw token -> the number of its stem among those seen so far, -1 for a stop word."""

    def __init__(self) -> None:
        super().__init__()
        self.stems: dict[str, int] = {}

    def __missing__(self, token: str) -> int:
        stem = _WORDS[token]
        number = -1 if stem is None else self.stems.setdefault(stem, len(self.stems))
        self[token] = number
        return number


DF_BLOCK = 4096  # texts whose (text, term) pairs are sorted at a time


def _document_frequencies(texts: Sequence[str], least: int = 1) -> dict[str, int]:
    """Return term -> how many of the texts hold it (terms fewer hold than ``least`` out).

    The terms are analyze()'s, counted as numbers: a stem is its number, a bigram the
    pair of its stems' numbers, and each text's distinct terms are found by sorting.
    Counting analyze()'s strings through one Counter built every bigram string of every
    text and hashed it into a table of all the terms (1.3 million for the 20,000 history
    papers `digest rank` counts a vocabulary from): 10 s of its 26 s of CPU. Now only the
    terms counted are written as strings, once each; and the texts do not fill
    analyze()'s cache (a third of the command's 800 MB, for texts never analysed again).
    """
    ids = _StemIds()
    number = ids.__getitem__
    flat: list[int] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for row, text in enumerate(texts):
        tokens = _raw_tokens(text)
        flat.extend(map(number, tokens))
        lengths[row] = len(tokens)
    words = list(ids.stems)
    width = len(words)
    if not width:
        return {}
    numbers = np.asarray(flat, dtype=np.int64)
    del flat
    rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    kept = numbers >= 0  # stop words out, as tokenize leaves them, before pairing
    numbers, rows = numbers[kept], rows[kept]
    # Term codes: a stem is its number (< width), the bigram (a, b) is width + a*width + b.
    span = width + width * width
    block = max(1, min(DF_BLOCK, (2**62) // span))
    bounds = np.searchsorted(rows, np.arange(0, len(texts) + block, block))
    distinct: list[np.ndarray] = []
    for start, end in itertools.pairwise(bounds.tolist()):
        if start == end:
            continue
        stems, within = numbers[start:end], rows[start:end] - rows[start]
        pairs = within[:-1] == within[1:]  # neighbours in one text: a bigram
        codes = np.concatenate([stems, width + stems[:-1][pairs] * width + stems[1:][pairs]])
        keys = np.concatenate([within, within[:-1][pairs]]) * span + codes
        keys.sort()
        distinct.append(keys[_firsts(keys)] % span)
    codes = np.concatenate(distinct)
    codes.sort()
    starts = np.flatnonzero(_firsts(codes))
    counts = np.diff(np.append(starts, codes.size))
    found = starts[counts >= least]
    frequencies: dict[str, int] = {}
    for code, count in zip(codes[found].tolist(), counts[counts >= least].tolist(), strict=True):
        if code < width:
            frequencies[words[code]] = count
        else:
            first, second = divmod(code - width, width)
            frequencies[f"{words[first]} {words[second]}"] = count
    return frequencies


def _analysed_frequencies(texts: Sequence[str]) -> dict[str, int]:
    """Return term -> how many of the texts hold it, from analyze()'s terms."""
    return dict(collections.Counter(
        itertools.chain.from_iterable(set(analyze(text)) for text in texts)))


def _firsts(ordered: np.ndarray) -> np.ndarray:
    """Return where each run of equal values of a sorted array starts (a mask)."""
    mask = np.ones(ordered.size, dtype=bool)
    mask[1:] = ordered[1:] != ordered[:-1]
    return mask


def update_space(
    space: Space | None, papers: Sequence[Paper], *, fingerprint: str | None = None
) -> Space:
    """Count the papers into the vocabulary (decaying old counts); prune rare terms.

    A batch whose fingerprint is already recorded is not counted again, so a re-run of
    the same day leaves the space unchanged.
    """
    if space is not None and fingerprint is not None and fingerprint in space.fingerprints:
        return space
    texts = [paper_text(p) for p in papers]
    if space is None:
        # A first vocabulary keeps the terms of two papers or more: the others are not
        # counted.
        df_new = _document_frequencies(texts, least=math.ceil(MIN_DF - 1e-9))
    else:
        # A day's batch: the ranker transforms these texts right after, so they are
        # analysed (memoised) once for both; the same counts as _document_frequencies.
        df_new = _analysed_frequencies(texts)
    if space is None:
        n_docs = float(len(papers))
        fingerprints: tuple[str, ...] = ()
    else:
        n_docs = space.n_docs * DECAY + len(papers)
        fingerprints = space.fingerprints
    if fingerprint is not None:
        fingerprints = (*fingerprints, fingerprint)[-64:]
    if space is not None and not _strictly_sorted(space.terms):
        return _merged_by_dict(space, df_new, n_docs, fingerprints)
    terms, df = _merged(space, df_new)
    if len(terms) > MAX_TERMS:
        # The most frequent terms, ties to the first in term order: the terms are sorted,
        # so a stable sort of their places by frequency is the sort by (-df, term) of
        # (term, df) pairs it replaces (~300,000 tuples and a key call for each).
        places = np.sort(np.argsort(-df, kind="stable")[:MAX_TERMS])
        terms = [terms[i] for i in places.tolist()]
        df = df[places]
    return Space(terms=tuple(terms), df=df, n_docs=n_docs, fingerprints=fingerprints)


def _strictly_sorted(terms: Sequence[str]) -> bool:
    return all(map(str.__lt__, terms, itertools.islice(terms, 1, None)))


def _merged(space: Space | None, df_new: dict[str, int]) -> tuple[list[str], np.ndarray]:
    """Return the decayed old frequencies plus the new counts, terms kept and sorted.

    The stored terms are sorted already, so only the new terms that are kept are sorted
    and slotted in: the same terms and the same numbers as merging the two into one
    dict and sorting all of it (_merged_by_dict), at array speed.
    """
    floor = MIN_DF - 1e-9
    keys = list(df_new)
    counts = np.fromiter(df_new.values(), dtype=np.float64, count=len(keys))
    if space is None:
        old_terms: list[str] = []
        old_df = np.zeros(0)
        where = np.full(len(keys), -1, dtype=np.int64)
    else:
        old_terms = list(space.terms)
        old_df = space.df * DECAY
        get = _index_of(space).get
        where = np.fromiter(map(get, keys, itertools.repeat(-1)), dtype=np.int64,
                            count=len(keys))
        seen = where >= 0
        old_df[where[seen]] += counts[seen]
    # A term the space did not hold has 0.0 + count, as in the dict merge.
    fresh = np.flatnonzero((where < 0) & (counts >= floor))
    fresh_terms = sorted(keys[i] for i in fresh.tolist())
    fresh_df = np.asarray([df_new[t] for t in fresh_terms], dtype=np.float64)
    kept = np.flatnonzero(old_df >= floor)
    kept_terms = [old_terms[i] for i in kept.tolist()]
    # Where each new term goes among the kept old ones (both sorted, no term in both).
    slots = np.asarray([bisect.bisect_left(kept_terms, t) for t in fresh_terms],
                       dtype=np.int64)
    total = len(kept_terms) + len(fresh_terms)
    new_at = slots + np.arange(len(fresh_terms))
    old_at = np.arange(len(kept_terms)) + np.searchsorted(slots, np.arange(len(kept_terms)),
                                                          side="right")
    terms: list[str] = [""] * total
    for i, term in zip(new_at.tolist(), fresh_terms, strict=True):
        terms[i] = term
    for i, term in zip(old_at.tolist(), kept_terms, strict=True):
        terms[i] = term
    df = np.empty(total, dtype=np.float64)
    df[new_at] = fresh_df
    df[old_at] = old_df[kept]
    return terms, df


def _merged_by_dict(
    space: Space, df_new: dict[str, int], n_docs: float, fingerprints: tuple[str, ...]
) -> Space:
    """The merge written out as one dict (a space whose terms are not sorted and unique)."""
    merged = {t: d * DECAY for t, d in zip(space.terms, space.df.tolist(), strict=True)}
    for term, count in df_new.items():
        merged[term] = merged.get(term, 0.0) + count
    kept = [(t, d) for t, d in merged.items() if d >= MIN_DF - 1e-9]
    if len(kept) > MAX_TERMS:
        kept.sort(key=lambda item: (-item[1], item[0]))
        kept = kept[:MAX_TERMS]
    kept.sort(key=lambda item: item[0])
    return Space(
        terms=tuple(t for t, _ in kept),
        df=np.asarray([d for _, d in kept], dtype=np.float64),
        n_docs=n_docs,
        fingerprints=fingerprints,
    )
