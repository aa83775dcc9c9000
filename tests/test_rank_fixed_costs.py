"""The per-day preparation of the ranker: cheaper paths give the numbers the plain ones did."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
import scipy.sparse as sp

from digest.models import Paper
from digest.rank import lsa, scoring, vectors
from digest.rank.vectors import Space, paper_text, space_from_bytes, update_space
from tests.fixtures.corpus import mini_texts


def _full_gram(rows: sp.csr_matrix) -> np.ndarray:
    """The Gram matrix as the plain product gives it (every entry computed by its row)."""
    full: np.ndarray = (rows @ rows.T.tocsc()).toarray().astype(np.float32)
    return full


def _rows_in_orders(seed: int) -> sp.csr_matrix:
    """Random rows of magnitudes far apart, stored ascending, descending or shuffled."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 50))
    matrix = sp.random(n, 40, density=float(rng.uniform(0.02, 0.5)), format="csr",
                       random_state=int(rng.integers(1 << 30)))
    matrix.data = rng.random(matrix.data.size) * 10 ** rng.uniform(-3, 3, matrix.data.size)
    for r in range(n):
        a, b = matrix.indptr[r], matrix.indptr[r + 1]
        kind = int(rng.integers(3)) if seed % 2 else r * 3 // n  # shuffled runs, or three runs
        order = (np.arange(b - a), np.arange(b - a)[::-1], rng.permutation(b - a))[kind]
        matrix.indices[a:b] = matrix.indices[a:b][order]
        matrix.data[a:b] = matrix.data[a:b][order]
    matrix.has_sorted_indices = False
    return matrix


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("seed", range(24))
def test_the_mirrored_gram_is_the_full_product_bit_for_bit(
    seed: int, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "GRAM_BLOCK", 7)
    rows = _rows_in_orders(seed)
    gram = scoring._gram(rows, workers=workers)
    assert np.array_equal(gram, _full_gram(rows))


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("seed", range(24))
def test_the_gram_around_a_head_built_beforehand_is_the_full_product_bit_for_bit(
    seed: int, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The world builds the background's block first (beside the batch's tf-idf rows)
    # and the rest of the pool's Gram around it: cut anywhere, in any run of orders.
    monkeypatch.setattr(scoring, "GRAM_BLOCK", 7)
    rows = _rows_in_orders(seed)
    for cut in sorted({0, 1, rows.shape[0] // 3, rows.shape[0] - 1, rows.shape[0]}):
        head = scoring._gram(rows[:cut])
        gram = scoring._gram(rows, workers=workers, head=head)
        assert np.array_equal(gram, _full_gram(rows)), cut


def test_order_runs_group_rows_by_how_they_store_columns() -> None:
    rows = sp.csr_matrix(
        (np.ones(13), np.array([1, 2, 3, 5, 4, 2, 7, 9, 1, 3, 2, 6, 0]),
         np.array([0, 3, 6, 8, 8, 11, 13])),
        shape=(6, 10),
    )
    # ascending; descending; two entries (either way); empty; mixed; two entries
    assert scoring._order_runs(rows) == [(0, 1, 1), (1, 4, -1), (4, 6, 0)]


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    return mini_texts()


@pytest.mark.parametrize("text", [
    "3d point_cloud x2 2x 10k-shot a1b2 __init__ ab9 9 a _b b_ gpt4o l2-norm",
    "Über naïve café-au-lait 2ème αβγ δx mixed ascii",
])
def test_the_ascii_pattern_finds_what_the_unicode_one_does(text: str) -> None:
    folded = text.lower()
    if folded.isascii():
        assert vectors._ASCII_TOKEN.findall(folded) == vectors._TOKEN.findall(folded)
    assert vectors.tokenize(text) == [
        w for w in map(vectors._WORDS.__getitem__, vectors._TOKEN.findall(
            "".join(c for c in unicodedata.normalize("NFKD", folded)
                    if not unicodedata.combining(c)))) if w is not None
    ]


def test_the_corpus_tokenizes_the_same_with_either_pattern(papers: list[Paper]) -> None:
    for paper in papers:
        folded = paper_text(paper).lower()
        if folded.isascii():
            assert vectors._ASCII_TOKEN.findall(folded) == vectors._TOKEN.findall(folded)


def _same(a: Space, b: Space) -> bool:
    return (a.terms == b.terms and a.df.tobytes() == b.df.tobytes() and a.n_docs == b.n_docs
            and a.fingerprints == b.fingerprints)


@pytest.mark.parametrize("max_terms", [vectors.MAX_TERMS, 300])
def test_the_array_merge_is_the_dict_merge(
    papers: list[Paper], monkeypatch: pytest.MonkeyPatch, max_terms: int
) -> None:
    monkeypatch.setattr(vectors, "MAX_TERMS", max_terms)
    space: Space | None = None
    for day, start in enumerate(range(0, len(papers), 40)):
        batch = papers[start : start + 60]  # overlapping days: terms seen again and anew
        texts = [paper_text(p) for p in batch]
        updated = update_space(space, batch, fingerprint=f"day{day}")
        base = space if space is not None else Space((), np.zeros(0), 0.0)
        plain = vectors._merged_by_dict(base, vectors._document_frequencies(texts),
                                        updated.n_docs, updated.fingerprints)
        assert _same(updated, plain)
        assert len(updated.terms) <= max_terms
        space = updated
    assert space is not None and len(space.terms) > 100


def test_a_days_batch_is_analysed_once_for_its_counts_and_its_rows(papers: list[Paper]) -> None:
    space = update_space(None, papers[:150], fingerprint="a")
    batch = papers[150:]
    texts = [paper_text(p) for p in batch]
    vectors._analyze.cache_clear()
    updated = update_space(space, batch, fingerprint="b")
    assert vectors._analyze.cache_info().misses == len(set(texts))
    updated.transform(texts)  # the ranker's batch rows: no text analysed again
    assert vectors._analyze.cache_info().misses == len(set(texts))
    assert vectors._analysed_frequencies(texts) == vectors._document_frequencies(texts)


def test_a_space_of_unsorted_terms_still_merges_the_plain_way(papers: list[Paper]) -> None:
    shuffled = Space(terms=("zeta", "alpha", "alpha"), df=np.array([3.0, 1.0, 5.0]),
                     n_docs=4.0)
    updated = update_space(shuffled, papers[:20])
    plain = vectors._merged_by_dict(
        shuffled, vectors._document_frequencies([paper_text(p) for p in papers[:20]]),
        updated.n_docs, updated.fingerprints)
    assert _same(updated, plain) and "zeta" in updated.terms and "alpha" in updated.terms


def test_a_stored_state_loads_to_the_same_space(papers: list[Paper]) -> None:
    space = update_space(update_space(None, papers[:150], fingerprint="a"), papers[150:],
                         fingerprint="b")
    restored = space_from_bytes(space.to_bytes())
    assert restored.terms == space.terms and restored.fingerprints == ("a", "b")
    assert restored.to_bytes() == space.to_bytes()


def test_the_fits_own_projection_is_what_project_gives(papers: list[Paper]) -> None:
    space = update_space(None, papers)
    background = space.transform(paper_text(p) for p in papers[:200])
    batch = space.transform(paper_text(p) for p in papers[200:])
    batch.sort_indices()
    pool = sp.vstack([background, batch]).tocsr()  # rows in two storage orders
    fitted = lsa.fit_lsa_projected(pool, 32, iterations=2)
    assert fitted is not None
    model, projected = fitted
    alone = lsa.fit_lsa(pool, 32, iterations=2)
    assert alone is not None and np.array_equal(alone.components, model.components)
    assert np.array_equal(projected, model.project(pool))
    assert np.array_equal(projected[:200], model.project(background))
    rows = np.array([250, 3, 201, 199])
    assert np.array_equal(projected[rows], model.project(pool[rows]))
    assert lsa.fit_lsa_projected(pool[:10], 32) is None


def test_the_world_reads_the_pool_projection_for_its_dense_rows(papers: list[Paper]) -> None:
    space = update_space(None, papers)
    options = scoring.RankOptions(lsa_dims=32, calibration=50, processes=1)
    world = scoring.build_world(sorted(papers[200:], key=lambda p: p.key), space,
                                papers[:200], options)
    assert world.lsa is not None
    assert np.array_equal(world.dense_targets, world.lsa.project(world.targets))
    assert np.array_equal(world.dense_pool, world.lsa.project(world.pool))


def test_the_world_is_the_same_with_the_lsa_fit_beside_the_gram(papers: list[Paper]) -> None:
    # processes=2 fits the LSA space in a thread while the Gram matrix and the tables
    # are built; processes=1 does one after the other. The same world either way.
    space = update_space(None, papers)
    batch = sorted(papers[200:], key=lambda p: p.key)
    worlds = [scoring.build_world(batch, space, papers[:200],
                                  scoring.RankOptions(lsa_dims=32, calibration=50,
                                                      processes=processes))
              for processes in (1, 2)]
    one, two = worlds
    assert one.lsa is not None and two.lsa is not None
    for name in ("pool_gram", "gram", "similarity", "dense_pool", "dense_targets", "mean",
                 "covariance", "inverse"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
    assert np.array_equal(one.lsa.components, two.lsa.components)
    assert one.scale == two.scale and one.word_forms == two.word_forms
    assert one.index.column == two.index.column


def test_scored_papers_are_built_positionally_in_field_order() -> None:
    from dataclasses import fields

    from digest.models import ScoredPaper

    assert [f.name for f in fields(ScoredPaper)] == ["paper", "score", "reason"]


def test_the_collector_pause_restores_what_it_found() -> None:
    import gc

    assert gc.isenabled()
    with scoring._collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), scoring._collection_paused():
        raise RuntimeError("fails inside")
    assert gc.isenabled()
    gc.disable()
    try:
        with scoring._collection_paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


@pytest.mark.parametrize("text", [
    "".join(chr(c) for c in range(128)),
    "Attention Is  All_You-Need;\n\tDEEP residual\x1clearning (ResNet-50) v2.0",
    "Über naïve café: ÀÉÎ; ǅemal İstanbul straße x²",
])
def test_ascii_text_folds_as_the_regex_folds_it(text: str) -> None:
    assert scoring._folded(text) == (
        " " + " ".join(scoring._NOT_ALNUM.sub(" ", text.lower()).split()) + " ")


def test_the_corpus_titles_fold_as_the_regex_folds_them(papers: list[Paper]) -> None:
    for paper in papers:
        for text in (paper.title, paper.abstract):
            assert scoring._folded(text) == (
                " " + " ".join(scoring._NOT_ALNUM.sub(" ", text.lower()).split()) + " ")


def test_example_rows_copied_from_the_pool_are_the_transformed_ones(
    papers: list[Paper],
) -> None:
    from digest.models import Profile
    from digest.rank.profiles import ExampleBank

    space = update_space(None, papers)
    background = space.transform(paper_text(p) for p in papers[:100])
    model = lsa.fit_lsa(background, 32, iterations=2)
    known = {p.key: p for p in papers}
    plain = ExampleBank(space, model)
    copying = ExampleBank(space, model, transformed=background,
                          row_of={p.key: i for i, p in enumerate(papers[:100])})
    pages = [[Profile(seeds=(papers[150].key, papers[3].key), liked=(papers[99].key,)),
              Profile(disliked=(papers[120].key, papers[0].key))],
             [Profile(seeds=(papers[3].key, papers[40].key, papers[160].key))],
             [Profile(seeds=(papers[170].key,))]]  # none of the background's
    for page in pages:
        one, two = plain.add(page, known), copying.add(page, known)
        assert one.keys == two.keys
        for name in ("data", "indices", "indptr"):
            assert np.array_equal(getattr(one.rows, name), getattr(two.rows, name)), name
        assert np.array_equal(one.dense, two.dense)


def test_profiles_and_their_example_papers_leave_the_analysis_cache_as_it_was() -> None:
    # Texts a run analyses once (a profile's, the papers it names): kept in analyze()'s
    # cache, they grew the run's memory with its subscribers.
    from digest.models import Profile
    from digest.rank.profiles import ExampleBank, compile_profiles
    from digest.rank.scoring import prepare_space
    from tests.fixtures.corpus import mini_day

    batch, history = mini_day()
    space = prepare_space(None, history[:40], batch)
    named = history[40:60]
    known = {p.key: p for p in named}
    profiles = [Profile(interests=f"{p.title}; graph neural networks", keywords=("GNN",),
                        seeds=(p.key,)) for p in named]
    vectors._analyze.cache_clear()
    examples = ExampleBank(space, None).add(profiles, known)
    compiled = compile_profiles(profiles, space, examples, keyword_weight=2.0)
    assert vectors._analyze.cache_info().currsize == 0
    # The same rows as analysed through the cache.
    cached = space.transform(paper_text(p) for p in named)
    assert (examples.rows != cached).nnz == 0
    assert compiled.text.shape == (len(profiles), len(space.terms))


def test_the_analysis_cache_keeps_a_days_papers_and_no_more() -> None:
    # A scheduler process runs for weeks: the cache holds the next day's background (the
    # background and a 2,000-paper batch of the day before: bench/run.py's day), and is
    # bounded (it grew by each day's batch, up to ~1 GB).
    assert vectors._analyze.cache_info().maxsize == vectors.ANALYZE_CACHE
    assert scoring.MAX_BACKGROUND + 2000 <= vectors.ANALYZE_CACHE <= 10_000
