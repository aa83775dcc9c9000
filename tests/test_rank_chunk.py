"""The chunk scorer's cheaper steps compute the same numbers as the steps they replace.

Each check compares bit for bit (``array_equal`` on the bytes): the ranked lists,
scores and reasons depend on exact ties, so "close" is not enough.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from digest.evaluate import load_corpus
from digest.models import Paper, Profile
from digest.rank.metadata import (
    MIN_SHARE,
    BatchIndex,
    Metadata,
    _unit,
    add_metadata_scores,
    boost_values,
    category_lift,
    category_shares,
    concentration,
    example_metadata,
    normalize_name,
)
from digest.rank.profiles import compile_profiles, expanded_scores, feedback, feedback_mixer
from digest.rank.reasons import Context, _pair_products, _Written
from digest.rank.scoring import (
    RankOptions,
    World,
    _quantile_rows,
    build_world,
    prepare_space,
)
from digest.rank.vectors import tokenize

MINI = Path(__file__).resolve().parent / "data" / "rank" / "corpus_mini.jsonl"


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Return whether two float arrays hold the same bits (and shape)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def world() -> World:
    papers = load_corpus(MINI)
    days = sorted({p.published for p in papers if p.published})
    batch = sorted((p for p in papers if p.published in days[-2:]), key=lambda p: p.key)
    history = [p for p in papers if p.published not in days[-2:]]
    options = RankOptions(lsa_dims=48, processes=1)
    space = prepare_space(None, history, batch)
    return build_world(batch, space, history, options)


def profiles_of(world: World) -> list[Profile]:
    history = [p for p in world.known.values() if p.key not in world.index.column]
    author = next(a for p in world.papers for a in p.authors)
    return [
        Profile(interests=history[0].title, categories=("cs.LG",)),
        Profile(seeds=(history[3].key, history[40].key), categories=("cs.CV", "cs.LG")),
        Profile(interests="graph neural networks", authors=(author.upper(),)),
        Profile(interests="zzzq qqqx", categories=("no.such",)),
        Profile(liked=(world.papers[0].key,), categories=("cs.CL", "cs.AI"),
                authors=(author, "Nobody Known")),
        Profile(),
    ]


@pytest.mark.parametrize("count", [1, 2, 7, 600])
@pytest.mark.parametrize("q", [0.0, 0.1, 0.37, 0.5, 0.9, 0.999, 1.0])
def test_quantile_rows_is_np_quantile(count: int, q: float) -> None:
    rng = np.random.default_rng(count)
    wide = rng.normal(size=(9, count + 5))
    wide[1] = 0.0  # ties
    wide[2, : count // 2] = -0.0
    wide[3] = np.round(wide[3], 1)  # more ties
    values = wide[:, 5:]  # a strided view, as the chunk's calibration columns are
    assert same(_quantile_rows(values, q), np.quantile(values, q, axis=1))


def test_quantile_rows_keeps_nan_rows_nan() -> None:
    values = np.arange(40.0).reshape(4, 10)
    values[2, 3] = np.nan
    expected = np.quantile(values, 0.9, axis=1)
    assert same(_quantile_rows(values, 0.9), expected)
    assert np.isnan(expected[2])


def metadata_scores(
    meta: Metadata, weights: sp.csr_matrix, kind: int, dtype: type[np.floating] = np.float64
) -> np.ndarray:
    """The P x T metadata cosines as they were computed before (one sparse product).

    ``dtype``: the precision of the product (its operands rounded to it first).
    """
    summed = sp.csr_matrix(weights @ meta.rows[kind])
    lift = meta.lift[kind] if kind < len(meta.lift) else None
    if lift is not None:  # each feature weighed by its lift (a diagonal product)
        summed = sp.csr_matrix(summed @ sp.diags(lift))
    summed = _unit(summed).astype(dtype)
    scores: np.ndarray = (summed @ meta.targets[kind].T.astype(dtype)).toarray()
    return scores


def old_boosts(
    index: BatchIndex, categories: list[tuple[str, ...]], authors: list[tuple[str, ...]],
    *, category_boost: float, author_boost: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The P x B boosts as they were computed before (three dense products), in float32."""
    count = len(categories)
    wanted = index.categories.matrix(({c: 1.0 for c in cs} for cs in categories), count)
    primary = (wanted @ index.primary).toarray() > 0
    listed = (wanted @ index.listed).toarray() > 0
    follows = index.authors.matrix(
        ({normalize_name(a): 1.0 for a in names} for names in authors), count
    )
    vouched = (follows @ index.written).toarray() > 0
    boost = np.zeros(primary.shape, dtype=np.float32)
    boost[primary] += category_boost
    boost[listed & ~primary] += category_boost / 2
    boost[vouched] += author_boost
    return boost, vouched


def test_boost_values_are_the_dense_boosts(world: World) -> None:
    profiles = profiles_of(world)
    cats = [p.categories for p in profiles] + [tuple(world.papers[3].categories)]
    named = [p.authors for p in profiles] + [tuple(world.papers[3].authors[:2])]
    expected, vouched = old_boosts(world.index, cats, named, category_boost=0.05,
                                   author_boost=0.3)
    assert vouched.any() and (expected == 0.05).any() and (expected == 0.025).any()
    found = boost_values(world.index, cats, named, category_boost=0.05, author_boost=0.3)
    assert same(found.values, expected)
    mask = np.zeros_like(vouched)
    mask[found.vouched_rows, found.vouched_cols] = True
    assert (mask == vouched).all()


def test_add_metadata_scores_adds_the_same_cosines(world: World) -> None:
    profiles = profiles_of(world)
    examples = world.bank.add(profiles, world.known)
    compiled = compile_profiles(profiles, world.space, examples, keyword_weight=2.0)
    meta = example_metadata([world.known[k] for k in examples.keys], world.target_papers,
                            world.category_shares, 0.5)
    # Both sources weigh their categories by rarity (the defaults); the reference too.
    assert meta.lift[0] is not None and world.pool_meta.lift[0] is not None
    assert meta.lift[1] is None and world.pool_meta.lift[1] is None
    owned = sp.csr_matrix(
        (np.ones(compiled.positive_owner.size),
         (compiled.positive_owner, compiled.positive_example)),
        shape=(len(profiles), len(examples.keys)),
    )
    pool_scores = (compiled.text @ world.pool.T).toarray()
    fb = feedback(pool_scores, world.pool_gram, depth=10)
    assert fb is not None
    rows = np.asarray([0, 2, 4])
    mixer = feedback_mixer(fb, world.pool.shape[0])[rows]
    rng = np.random.default_rng(0)
    base = rng.normal(size=(len(profiles), len(world.target_papers))).astype(np.float32)
    dense_kinds = 0
    for source, weights, at in ((meta, owned, np.arange(len(profiles))),
                                (world.pool_meta, mixer, rows)):
        for kind in (0, 1):
            # The scores are float32; a dense kind's product is float32 too (the dense
            # copies' precision), a sparse kind's float64, both added in float32.
            dense = source.dense[kind] is not None
            dense_kinds += dense
            cosines = metadata_scores(source, weights, kind,
                                      np.float32 if dense else np.float64)
            expected = base.copy()
            expected[at] += (0.3 * cosines).astype(np.float32)
            out = base.copy()
            add_metadata_scores(out, at, source, weights, kind, factor=0.3)
            assert same(out, expected)
            # Without the dense copies: the sparse path, the float64 cosines added.
            plain = Metadata(rows=source.rows, targets=source.targets, lift=source.lift)
            exact = base.copy()
            exact[at] += (0.3 * metadata_scores(source, weights, kind)).astype(np.float32)
            out = base.copy()
            add_metadata_scores(out, at, plain, weights, kind, factor=0.3)
            assert same(out, exact)
            assert np.allclose(expected, exact, rtol=0.0, atol=1e-6)
    assert dense_kinds >= 2  # the categories take the dense path


def test_pool_columns_give_the_same_product(world: World) -> None:
    profiles = profiles_of(world)
    examples = world.bank.add(profiles, world.known)
    compiled = compile_profiles(profiles, world.space, examples, keyword_weight=2.0)
    columns = world.pool_columns
    assert world.pool_columns is columns
    text = compiled.text.astype(np.float32)
    found = (text @ columns).toarray()
    assert found.dtype == np.float32
    assert same(found, (text @ world.pool.T.astype(np.float32)).toarray())


def test_query_scores_are_the_sparse_product(world: World) -> None:
    from digest.rank.scoring import _query_scores

    profiles = profiles_of(world)
    examples = world.bank.add(profiles, world.known)
    compiled = compile_profiles(profiles, world.space, examples, keyword_weight=2.0)
    # Rows as a chunk has them (its queries; an empty one), and long rows whose terms
    # meet on many papers in unsorted order: each entry sums many terms' products.
    long = world.pool[[0, 5, 9]].astype(np.float64)
    long.indices = long.indices[::-1].copy()  # one sum order, not the sorted one
    long.data = long.data[::-1].copy()
    for queries in (compiled.text, sp.vstack([compiled.text, long]).tocsr(), long,
                    sp.csr_matrix((2, world.pool.shape[1]))):
        expected = (queries.astype(np.float32) @ world.pool_columns).toarray()
        found = _query_scores(queries, world.pool_columns)
        assert found.flags.c_contiguous
        assert same(found, expected)
    assert (found == 0).all() and found.shape == (2, world.pool.shape[0])


def test_text_scale_halves_in_one_pass_as_in_two(world: World) -> None:
    from digest.rank.scoring import _on_text_scale

    rng = np.random.default_rng(5)
    vector = rng.normal(size=(7, world.dense_columns.shape[0]))
    offset = rng.normal(size=7)
    expected = vector.astype(np.float32) @ world.dense_columns
    expected -= offset.astype(np.float32)[:, None]
    mean, spread = world.scale
    expected *= spread
    expected /= 2.0
    expected += mean
    assert same(_on_text_scale(world, vector, offset), expected)


def test_expanded_scores_in_place_are_the_same(world: World) -> None:
    profiles = [replace(p, seeds=(), liked=()) for p in profiles_of(world)]
    examples = world.bank.add(profiles, world.known)
    compiled = compile_profiles(profiles, world.space, examples, keyword_weight=2.0)
    pool_scores = (compiled.text @ world.pool.T).toarray()
    fb = feedback(pool_scores, world.pool_gram, depth=10)
    text = pool_scores[:, world.in_pool]
    size = world.pool.shape[0]
    expected = expanded_scores(text, fb, world.pool_targets, compiled.has_text,
                               pool_size=size, weight=0.7)
    assert expected is not text
    mine = text.copy()
    found = expanded_scores(mine, fb, world.pool_targets, compiled.has_text,
                            pool_size=size, weight=0.7, overwrite=True)
    assert found is mine and same(found, expected)


def test_tfidf_rows_are_the_diagonal_product(world: World) -> None:
    from sklearn.preprocessing import normalize

    from digest.rank.profiles import _tfidf

    texts = [p.interests for p in profiles_of(world)] + ["graph graph neural", "", "x y"]
    counts = world.space.counts(texts)
    matrix = counts.copy()
    matrix.data = 1.0 + np.log(matrix.data)
    expected = normalize((matrix @ sp.diags(world.space.idf)).tocsr(), norm="l2")
    found = _tfidf(counts, world.space)
    assert expected.nnz > 0
    assert (found.indptr == expected.indptr).all()
    assert (found.indices == expected.indices).all()  # the same order, not only the set
    assert same(found.data, expected.data)


@pytest.mark.parametrize("columns", [
    [], [3], [5, 6, 7, 0, 1, 2], [9, 8, 7], list(range(2, 12)),
    [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11],  # many runs: gathered
])
def test_columns_is_a_gather(columns: list[int]) -> None:
    from digest.rank.scoring import _columns

    values = np.arange(48.0).reshape(4, 12)
    index = np.asarray(columns, dtype=np.intp)
    found = _columns(values, index)
    assert found.shape == (4, index.size) and (found == values[:, index]).all()
    found[:] = -1.0  # a copy
    assert (values >= 0).all()


def test_row_value_column_order_is_lexsort() -> None:
    from digest.rank.reasons import _by_row_value_column

    rng = np.random.default_rng(3)
    rows = np.sort(rng.integers(0, 40, 600))
    keys = np.unique(rows * 1000 + rng.integers(0, 1000, 600))  # one entry per (row, column)
    row_of, columns = keys // 1000, (keys % 1000).astype(np.int32)
    data = np.round(rng.random(keys.size), 2)  # many ties: the column decides
    data[::7] = -0.0
    expected = np.lexsort((columns, -data, row_of))
    assert (_by_row_value_column(row_of, data, columns, 40) == expected).all()
    empty = np.zeros(0)
    assert _by_row_value_column(empty.astype(np.intp), empty, empty.astype(np.int32), 3).size == 0


def test_ascending_example_rows_give_the_same_cosines(world: World) -> None:
    profiles = profiles_of(world)
    examples = world.bank.add(profiles, world.known)
    assert examples.reversible
    assert not examples.rows.has_canonical_format  # the general path before
    count = examples.rows.shape[0]
    best = np.repeat(np.arange(count), world.n_batch)
    columns = np.tile(np.arange(world.n_batch), count)
    ascending = examples.ascending_rows(best)
    assert ascending is not None and ascending.has_canonical_format
    expected = examples.rows[best].multiply(world.docs[columns])
    found = ascending.multiply(world.docs[columns])
    assert (found.indices == expected.indices).all() and same(found.data, expected.data)
    assert same(np.asarray(found.sum(axis=1)), np.asarray(expected.sum(axis=1)))


def test_example_rows_not_all_descending_are_not_reversed(world: World) -> None:
    examples = world.bank.add(profiles_of(world), world.known)
    rows = examples.rows.copy()
    rows.sort_indices()  # ascending already: reversed, a row of two entries or more is not
    sorted_examples = replace(examples, rows=rows)
    assert not sorted_examples.reversible
    assert sorted_examples.ascending_rows(np.arange(rows.shape[0])) is None


def test_feedback_finds_each_querys_most_similar_papers_in_order(world: World) -> None:
    profiles = profiles_of(world)
    examples = world.bank.add(profiles, world.known)
    compiled = compile_profiles(profiles, world.space, examples, keyword_weight=2.0)
    pool_scores = (compiled.text @ world.pool.T).toarray().astype(np.float32)
    found = feedback(pool_scores.copy(), world.pool_gram, depth=10)
    assert found is not None
    # Each row sorted whole: most similar first, ties (a profile with no words has
    # only zeros) to the lower pool row.
    rows = np.broadcast_to(np.arange(pool_scores.shape[1]), pool_scores.shape)
    top = np.lexsort((rows, -pool_scores), axis=1)[:, :10]
    weights = np.take_along_axis(pool_scores, top, axis=1).astype(np.float64)
    text_dot = (weights * np.where(weights < 0, 0.0, weights)).sum(axis=1)
    weights[weights < 0] = 0.0
    assert (found.top == top).all() and same(found.weights, weights)
    assert same(found.text_dot, text_dot)
    assert (np.diff(found.weights, axis=1) <= 0).all()


def test_feedback_mixer_keeps_each_querys_heaviest_papers_for_metadata() -> None:
    rng = np.random.default_rng(3)
    sims = rng.random((6, 40))
    sims[2] = 0.0
    sims[2, [4, 9, 17]] = [0.3, 0.9, 0.6]  # exactly three papers found
    gram = rng.random((40, 40)).astype(np.float32)
    fb = feedback(sims.copy(), gram, depth=10)
    assert fb is not None
    full = feedback_mixer(fb, 40).toarray()
    narrow = feedback_mixer(fb, 40, depth=3).toarray()
    for row in range(6):
        heaviest = np.sort(np.sort(sims[row])[-3:])
        kept = np.sort(narrow[row][narrow[row] != 0])
        np.testing.assert_array_equal(kept, heaviest[heaviest > 0])
        # The kept papers are the query's closest, with the weights the full mixer gives.
        columns = np.flatnonzero(narrow[row])
        np.testing.assert_array_equal(narrow[row, columns], full[row, columns])
        assert set(columns) <= set(np.argsort(sims[row])[-3:])
    assert set(np.flatnonzero(narrow[2])) == {4, 9, 17}
    # 0 (or a depth at least the feedback's) keeps every feedback paper.
    np.testing.assert_array_equal(feedback_mixer(fb, 40, depth=0).toarray(), full)
    np.testing.assert_array_equal(feedback_mixer(fb, 40, depth=10).toarray(), full)


def test_category_lift_lets_the_field_examples_share_beyond_the_usual_one_lead() -> None:
    # The day's papers: half in cs.LG, one in twenty in cs.RO.
    day = [Paper(key=f"d{i}", title="t", categories=("cs.LG",) if i % 2 else ("cs.CV",))
           for i in range(38)]
    day += [Paper(key="r1", title="t", categories=("cs.RO",)),
            Paper(key="r2", title="t", categories=("cs.RO", "cs.LG"))]
    shares = category_shares(day)
    assert shares["cs.LG"] == 20 / 40 and shares["cs.RO"] == 2 / 40
    # Examples of a robot-learning reader: cs.LG on every one, cs.RO on half.
    seeds = [Paper(key=f"s{i}", title="t", categories=cats) for i, cats in
             enumerate([("cs.LG",), ("cs.LG",), ("cs.LG", "cs.RO"), ("cs.RO", "cs.LG")])]
    targets = [Paper(key="lg", title="t", categories=("cs.LG",)),
               Paper(key="ro", title="t", categories=("cs.RO",))]
    owned = sp.csr_matrix(np.ones((1, len(seeds))))

    def scores(lift: float) -> np.ndarray:
        meta = example_metadata(seeds, targets, shares, lift)
        out = np.zeros((1, 2), dtype=np.float32)
        add_metadata_scores(out, np.arange(1), meta, owned, 0, factor=1.0)
        return out[0]

    plain, lifted = scores(0.0), scores(1.0)
    assert plain[0] > plain[1]  # by counts alone the common field leads
    assert lifted[1] > lifted[0]  # by rarity the field they share beyond it does
    assert example_metadata(seeds, targets, shares, 0.0).lift == (None, None)
    # A category none of the day's papers carries counts as the rarest allowed.
    column = {"cs.LG": 0, "q-bio.NC": 1}
    lift = category_lift(column, shares, 1.5)
    assert lift is not None
    assert lift[0] == pytest.approx(0.5 ** -1.5) and lift[1] == pytest.approx(MIN_SHARE ** -1.5)


def test_concentration_is_the_share_of_a_profiles_papers_its_most_common_feature_is_on(
) -> None:
    # Papers x authors: A on papers 0-3, B on 1, C on 4, nobody on 5.
    rows = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 0, 0],
                                   [0, 0, 1], [0, 0, 0]], dtype=float))
    weights = sp.csr_matrix(np.array([
        [1, 1, 1, 1, 0, 0],  # all four by A
        [0, 0, 0, 1, 1, 0],  # one by A, one by C
        [0, 0, 0, 0, 0, 0],  # no papers
        [0, 0, 0, 0, 0, 1],  # one paper without authors
        [1, 1, 0, 0, 1, 1],  # A on two of four
    ], dtype=float))
    np.testing.assert_allclose(concentration(weights, rows), [1.0, 0.5, 0.0, 0.0, 0.5])


def test_a_factor_per_row_scales_each_rows_cosines(world: World) -> None:
    profiles = profiles_of(world)
    examples = world.bank.add(profiles, world.known)
    compiled = compile_profiles(profiles, world.space, examples, keyword_weight=2.0)
    meta = example_metadata([world.known[k] for k in examples.keys], world.target_papers)
    owned = sp.csr_matrix(
        (np.ones(compiled.positive_owner.size),
         (compiled.positive_owner, compiled.positive_example)),
        shape=(len(profiles), len(examples.keys)),
    )
    factors = np.linspace(0.1, 1.0, len(profiles))
    for kind in (0, 1):
        for source in (meta, Metadata(rows=meta.rows, targets=meta.targets)):  # dense, sparse
            together = np.zeros((len(profiles), len(world.target_papers)), dtype=np.float32)
            add_metadata_scores(together, np.arange(len(profiles)), source, owned, kind,
                                factor=factors)
            assert together.any()
            for r, factor in enumerate(factors):
                alone = np.zeros((1, together.shape[1]), dtype=np.float32)
                add_metadata_scores(alone, np.arange(1), source, owned[r], kind,
                                    factor=float(factor))
                np.testing.assert_allclose(together[r], alone[0], rtol=1e-6, atol=1e-7)


def test_a_large_page_reads_the_targets_columns_from_the_gram_the_same(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Past GRAM_COLUMNS_BYTES (a weekly page of thousands of papers) the pool x targets
    # columns are not copied out of the Gram; the lists, scores and reasons are the same.
    from digest.rank import scoring

    monkeypatch.setattr(scoring, "GRAM_COLUMNS_BYTES", 0)
    batch, history = world.papers, [p for p in world.known.values()
                                    if p.key not in world.index.column]
    options = RankOptions(lsa_dims=48, processes=1)
    lean = build_world(batch, prepare_space(None, history, batch), history, options)
    assert lean.gram is None and world.gram is not None
    assert same(lean.smoother.toarray(), world.smoother.toarray())  # type: ignore[union-attr]
    profiles = profiles_of(world)
    kept, read = (scoring.score_profiles(w, profiles, extra=(), limits=[10] * len(profiles),
                                         exclude=[set()] * len(profiles),
                                         popularity=[0.0] * len(profiles), options=options)
                  for w in (world, lean))
    assert kept == read and any(kept[0])


def test_feedback_is_none_only_when_every_similarity_is_zero() -> None:
    gram = np.eye(6, dtype=np.float32)
    assert feedback(np.zeros((3, 6), dtype=np.float32), gram, depth=2) is None
    # Every row's best similarity is 0, yet one is not all zero: feedback as before.
    sims = np.zeros((3, 6), dtype=np.float32)
    sims[1, 4] = -0.5
    found = feedback(sims, gram, depth=2)
    assert found is not None and (found.weights == 0).all()


def test_pair_products_of_long_unsorted_rows_are_the_merged_products(world: World) -> None:
    # Centroids of example papers: long rows, their columns unsorted (a product's).
    profiles = profiles_of(world)
    examples = world.bank.add(profiles, world.known)
    rows = examples.rows
    query = sp.csr_matrix(sp.csr_matrix(np.ones((rows.shape[0], 1))).T @ rows)
    query = sp.csr_matrix(sp.vstack([rows[::-1], query]).tocsr())
    assert not query.has_sorted_indices
    count = query.shape[0] * 3
    pairs = np.arange(count) % query.shape[0]
    cols = (np.arange(count) * 7) % world.n_batch
    context = Context(
        space=world.space, compiled=compile_profiles(profiles, world.space, examples,
                                                     keyword_weight=2.0),
        examples=examples, docs=world.docs, doc_keys=world.doc_keys,
        dense_docs=world.dense_targets[: world.n_batch], pool=world.pool, feedback=None,
        index=world.index,
    )
    found = _pair_products(context, query, pairs, cols)
    expected = sp.csr_matrix(query[pairs].multiply(world.docs[cols]))
    expected.eliminate_zeros()
    assert int(np.diff(query.indptr)[pairs].sum()) > int(np.diff(world.docs.indptr)[cols].sum())
    found.sort_indices()
    expected.sort_indices()
    assert (found.indptr == expected.indptr).all() and (found.indices == expected.indices).all()
    assert same(found.data, expected.data)


def test_written_terms_are_looked_up_per_vocabulary(world: World) -> None:
    written = _Written(world.papers)
    paper = world.papers[0]
    words = sorted(set(world.space.terms) & set(tokenize(f"{paper.title} {paper.abstract}")))
    first, second = (" " + words[0], words[0]), (" " + words[1], words[1])
    width = len(first)
    # The same key (paper 0, column 1) names another term in another vocabulary.
    assert written.keyed_terms([1], first) == [written.term(0, words[0])]
    assert written.keyed_terms([1, 1], second) == [written.term(0, words[1])] * 2
    assert written.keyed_terms([width + 1], first) == [
        written.term(1, words[0])]
