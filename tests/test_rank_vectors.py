"""The tf-idf space's counting: the same numbers as scikit-learn's vectorizer, faster."""

from __future__ import annotations

import collections
import json
import re
import unicodedata
import zlib

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from digest.models import Paper
from digest.rank import scoring, vectors
from digest.rank.vectors import (
    STOP_WORDS,
    Space,
    analyze,
    paper_text,
    space_from_bytes,
    tokenize,
    update_space,
    written_text,
    written_words,
)
from tests.fixtures.corpus import mini_texts


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    return mini_texts()


def _plain_tokenize(text: str) -> list[str]:
    """The tokenizer written out directly (stop test and stemmer on every token)."""
    folded = re.sub(r"\b([A-Za-z0-9]*[A-Z])s\b", r"\1", text).lower()  # 'LLMs': 'LLM'
    if not folded.isascii():
        folded = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    folded = re.sub(r"\\[a-z]+", " ", folded)  # TeX commands are markup
    return [vectors._stem(t) for t in vectors._TOKEN.findall(folded) if t not in STOP_WORDS]


def test_tokenize_stems_and_drops_stop_words_like_the_plain_loop(papers: list[Paper]) -> None:
    texts = [paper_text(p) for p in papers] + [
        "Naïve Bayès studies of the proposed policies", "", "the of and", "3d 2x models",
    ]
    for text in texts:
        assert tokenize(text) == _plain_tokenize(text)
    assert tokenize("Naïve studies of policies and graphs") == ["naive", "policy", "graph"]


def test_an_acronyms_plural_is_its_singular_and_short_words_keep_their_s() -> None:
    """'LLMs' and 'LLM' are one term (lower-cased, 'llms' was too short to stem, and so
    were 'GNNs', 'APIs', 'KGs'); 'bias', 'news', 'lens' and 'SARS' are no plurals."""
    assert tokenize("LLMs, GNNs, ViTs, KGs, APIs and MLLMs") == tokenize(
        "LLM, GNN, ViT, KG, API and MLLM")
    assert tokenize("LLMs") == ["llm"]
    assert tokenize("bias news lens SARS DBMS") == ["bias", "news", "lens", "sars", "dbms"]
    assert analyze("LLMs for GNNs") == analyze("LLM for GNN") == ("llm", "gnn", "llm gnn")
    # A reason quotes it as written.
    words, text = written_text("We prompt LLMs as agents. LLM agents")
    assert words["llm"] == "llms" and text.phrase("llm agent") == "llms as agents"
    words, text = written_text("Naïve LLMs as agents")
    assert words["llm"] == "llms" and text.phrase("llm agent") == "llms as agents"


# A feed's abstract may hold one huge "word": a digit, letters, then an underscore (no
# word boundary at its end). The token pattern tried every split of the letters between
# two of its parts from that start: quadratic, 20,000 letters took 2 s, the megabytes a
# feed may carry hours. The timeout is a guard, not a benchmark.
@pytest.mark.timeout(60)
def test_a_huge_word_that_is_no_token_is_skipped_quickly() -> None:
    huge = "1" + "a" * 300_000 + "_"
    assert tokenize(f"graphs {huge} networks") == ["graph", "network"]
    assert tokenize(f"graphs {huge.upper()}é networks") == ["graph", "network"]
    assert tokenize("3d models of 2nd gpt4 2x_ runs") == ["3d", "model", "2nd", "gpt4", "runs"]


def test_tex_commands_are_markup_not_terms() -> None:
    """A reason said "matches: function, mathbb, characteristic" and "bound, ge, tight"."""
    assert tokenize(r"Bounds on $\mathbb{R}^n$ with $x \ge y$ and \mathrm{SO}(3) kernels"
                    ) == ["bound", "kernel"]
    assert tokenize(r"the \emph{graphs} of $\sim$ 10 nodes") == ["graph", "node"]


def test_a_full_word_table_starts_over_and_still_stems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors, "MAX_WORDS", 2)
    monkeypatch.setattr(vectors, "_WORDS", vectors._Words())
    assert tokenize("graphs models networks the graphs") == ["graph", "model", "network",
                                                             "graph"]
    assert len(vectors._WORDS) <= 2


def test_counts_are_scikit_learns_counts(papers: list[Paper]) -> None:
    space = update_space(None, papers[:200])
    texts = [paper_text(p) for p in papers[150:]] + ["", "the of", "zzzq qqqx"]
    mine = space.counts(texts)
    theirs = CountVectorizer(analyzer=analyze, vocabulary=space.index).transform(texts)
    theirs = theirs.tocsr().astype(np.float64)
    theirs.sort_indices()
    assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
    assert mine.has_sorted_indices
    assert np.array_equal(mine.indptr, theirs.indptr)
    assert np.array_equal(mine.indices, theirs.indices)
    assert np.array_equal(mine.data, theirs.data)
    assert mine[-3:].nnz == 0 and mine.nnz > 1000


def test_counts_of_nothing_or_over_no_vocabulary_are_empty_rows() -> None:
    space = Space(terms=("graph",), df=np.asarray([2.0]), n_docs=2.0)
    assert space.counts([]).shape == (0, 1)
    assert space.transform(["graphs of graphs", "nothing"]).toarray().tolist() == [[1.0], [0.0]]
    empty = Space(terms=(), df=np.zeros(0), n_docs=0.0)
    assert empty.counts(["graph"]).shape == (1, 0)


def test_document_frequencies_are_scikit_learns_binary_column_sums(
    papers: list[Paper],
) -> None:
    texts = [paper_text(p) for p in papers]
    mine = vectors._document_frequencies(texts)
    vectorizer = CountVectorizer(analyzer=analyze, binary=True)
    sums = np.asarray(vectorizer.fit_transform(texts).sum(axis=0)).ravel()
    theirs = dict(zip(vectorizer.get_feature_names_out().tolist(), sums.tolist(), strict=True))
    assert mine == theirs
    assert vectors._document_frequencies(["the of and", ""]) == {}


def _counted_as_strings(texts: list[str]) -> dict[str, int]:
    """The document frequencies as they were counted: one Counter of analyze()'s terms."""
    frequencies: collections.Counter[str] = collections.Counter()
    for text in texts:
        frequencies.update(set(analyze(text)))
    return dict(frequencies)


@pytest.mark.parametrize("block", [vectors.DF_BLOCK, 1, 7])
def test_document_frequencies_counted_as_numbers_are_the_string_counts(
    papers: list[Paper], monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Each text's distinct terms, found by sorting numbers in blocks of texts (one text
    a block, seven, all), are analyze()'s: a bigram across stop words, one repeated in a
    text, texts of stop words alone or nothing, accents and TeX among the rest."""
    monkeypatch.setattr(vectors, "DF_BLOCK", block)
    texts = [paper_text(p) for p in papers[:120]] + [
        "", "the of and", "Naïve Bayès \\mathbb{R} graphs of graphs and graphs", "x",
        "graph networks graph networks", "Graph, of networks!", paper_text(papers[0]),
        "of the", "3d 2x models",
    ]
    theirs = _counted_as_strings(texts)
    assert vectors._document_frequencies(texts) == theirs
    assert vectors._document_frequencies(texts, least=2) == {
        term: n for term, n in theirs.items() if n >= 2}
    assert theirs["graph network"] >= 2 and theirs["naive baye"] == 1


def _space_by_sklearn(space: Space | None, papers: list[Paper]) -> tuple[list[str], list[float]]:
    """update_space's arithmetic with scikit-learn counting (the earlier implementation)."""
    vectorizer = CountVectorizer(analyzer=analyze, binary=True)
    matrix = vectorizer.fit_transform([paper_text(p) for p in papers])
    terms = vectorizer.get_feature_names_out().tolist()
    counts = np.asarray(matrix.sum(axis=0)).ravel().astype(np.float64).tolist()
    if space is None:
        merged = dict(zip(terms, counts, strict=True))
    else:
        merged = {t: d * vectors.DECAY for t, d in zip(space.terms, space.df.tolist(), strict=True)}
        for term, count in zip(terms, counts, strict=True):
            merged[term] = merged.get(term, 0.0) + count
    kept = sorted((t, d) for t, d in merged.items() if d >= vectors.MIN_DF - 1e-9)
    return [t for t, _ in kept], [d for _, d in kept]


def test_update_space_keeps_the_same_terms_and_frequencies(papers: list[Paper]) -> None:
    first = update_space(None, papers[:150], fingerprint="a")
    assert (list(first.terms), first.df.tolist()) == _space_by_sklearn(None, papers[:150])
    second = update_space(first, papers[150:], fingerprint="b")
    assert (list(second.terms), second.df.tolist()) == _space_by_sklearn(first, papers[150:])
    assert second.n_docs == first.n_docs * vectors.DECAY + len(papers[150:])
    restored = space_from_bytes(second.to_bytes())
    assert restored.terms == second.terms and restored.fingerprints == ("a", "b")


def test_a_state_counted_before_acronym_plurals_is_rebuilt_from_history(
    papers: list[Paper],
) -> None:
    """A vocabulary stored before 'LLMs' became 'LLM' held 'llms' and counted 'llm' only
    where a paper wrote the singular; counted on, its idf for 'llm' would stay too high
    for months (each day's counts fade at 0.995). It is rebuilt from the history."""
    history, batch = papers[:-20], papers[-20:]
    current = scoring.prepare_space(None, history, batch)
    payload = json.loads(zlib.decompress(current.to_bytes()))
    assert payload["tokens"] == vectors.TOKENS
    del payload["tokens"]  # what a state stored before it looks like
    payload["terms"][0:0] = ["llms"]
    payload["df"][0:0] = [40.0]
    old = zlib.compress(json.dumps(payload).encode())
    assert space_from_bytes(old).tokens == 1
    rebuilt = scoring.prepare_space(old, history, batch)
    assert "llms" not in rebuilt.terms
    assert rebuilt.terms == current.terms and rebuilt.n_docs == current.n_docs
    # A state of this splitting is counted on, as every day.
    assert scoring.prepare_space(current.to_bytes(), history, batch[:10]).n_docs > current.n_docs


@pytest.mark.parametrize("block", [7, 1000])
def test_the_gram_matrix_holds_the_batch_similarities_bit_for_bit(
    papers: list[Paper], monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(scoring, "GRAM_BLOCK", block)
    space = update_space(None, papers)
    background = space.transform(paper_text(p) for p in papers[:200])
    batch = space.transform(paper_text(p) for p in papers[200:])
    batch.sort_indices()  # as build_world keeps it
    pool = sp.vstack([background, batch]).tocsr()
    gram = scoring._gram(pool)
    assert np.array_equal(gram[200:, 200:], (batch @ batch.T).toarray().astype(np.float32))
    assert np.array_equal(gram, (pool @ pool.T).toarray().astype(np.float32))
    assert gram.shape == (292, 292) and gram[200, 200] == pytest.approx(1.0)


def test_written_forms_give_each_term_as_the_text_writes_it() -> None:
    """A reason said "matches: cafe, graph" to a subscriber who typed "café", "graphs"."""
    text = (r"Graphs of Networks for café owners. Training-free neural networks; we "
            r"use $\mathbb{R}$ embeddings. Networks, graphs.")
    words = written_words(text)
    assert words.keys() == set(tokenize(text))  # every word term of the space
    assert words["graph"] == "graphs"  # the first occurrence, lower-cased
    assert words["cafe"] == "café"  # accents kept
    assert words["embedding"] == "embeddings"
    assert "mathbb" not in " ".join(words.values())
    assert written_words("Graphs of Networks") == {"graph": "graphs", "network": "networks"}

    written = written_text(text)[1]

    def phrase(term: str) -> str:
        return written.phrase(term)

    assert phrase("graph network") == "graphs of networks"  # stop words between: as written
    assert phrase("training free") == "training-free"
    assert phrase("neural network") == "neural networks"
    # Across punctuation (or a TeX command) the two words are joined by a space.
    assert phrase("owner training") == "owners training"
    assert phrase("network embedding") == "networks embeddings"
    assert phrase("network graph") == "networks graphs"
    assert phrase("quantum graph") == "quantum graph"  # not in the text: the term
    # Every bigram of the text is found in it, as words that make that term again.
    terms = [t for t in analyze(text) if " " in t]
    assert len(terms) == 10
    assert all(tokenize(phrase(t)) == t.split(" ") for t in terms)
