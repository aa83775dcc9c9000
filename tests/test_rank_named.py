"""Papers a profile's text names by title become seed papers (scoring.named_seeds).

Runs on tests/data/rank/corpus_mini.jsonl (real arXiv papers, see its SOURCES.md): the
last day is the batch, the days before it the history.
"""

from __future__ import annotations

from dataclasses import replace

from digest.models import Profile
from digest.rank import rank
from digest.rank.scoring import RankOptions, _folded, named_seeds
from tests.fixtures.corpus import mini_day

OPTIONS = RankOptions(lsa_dims=48, processes=1)


def test_lines_and_parts_of_the_text_that_are_titles_name_those_papers() -> None:
    titles = {_folded("Attention Is All You Need"): "arxiv:1706.03762",
              _folded("Deep Residual Learning for Image Recognition"): "arxiv:1512.03385"}
    text = "attention is  all you need;\nDEEP residual learning for image-recognition.\nGNNs"
    profile = named_seeds(Profile(interests=text, seeds=("arxiv:2401.00001",)), titles)
    # Case, punctuation and spacing do not matter; the given seeds come first.
    assert profile.seeds == ("arxiv:2401.00001", "arxiv:1706.03762", "arxiv:1512.03385")
    assert profile.interests == text
    # The whole text may be the title; a named paper already a seed is not added twice.
    whole = Profile(interests="Attention is all you need", seeds=("arxiv:1706.03762",))
    assert named_seeds(whole, titles) is whole
    # A paper the subscriber gave a thumbs down stays a negative example only.
    disliked = Profile(interests=text, disliked=("arxiv:1706.03762",))
    assert named_seeds(disliked, titles).seeds == ("arxiv:1512.03385",)
    # Text that only contains a title, or nothing, names nothing.
    for text in ("transformers: attention is all you need", "", "  "):
        assert named_seeds(Profile(interests=text), titles).seeds == ()


def test_a_typed_title_ranks_as_the_same_text_with_that_paper_as_seed() -> None:
    batch, history = mini_day()
    named = history[10]
    assert len(named.title.split()) >= 4
    typed = f"{named.title.upper()}; graph neural networks"
    profiles = [Profile(interests=typed),
                Profile(interests=typed, seeds=(named.key,))]
    result = rank(batch, profiles, history=history, options=OPTIONS)
    lists = [[(s.paper.key, s.score, s.reason) for s in r] for r in result.rankings]
    assert lists[0], "the profile should get papers on the mini corpus"
    assert lists[0] == lists[1]
    # Switched off, the text is only a query: a different list or different scores.
    off = rank(batch, profiles[:1], history=history,
               options=replace(OPTIONS, named_titles=False))
    assert [(s.paper.key, s.score) for s in off.rankings[0]] != [
        (key, score) for key, score, _ in lists[0]]


def test_short_titles_and_batch_papers_are_not_named() -> None:
    batch, history = mini_day()
    short = replace(history[4], title="Graph Neural Networks")  # three words
    history = [*history[:4], short, *history[5:]]
    profiles = [Profile(interests=short.title), Profile(interests=batch[0].title)]
    plain = replace(OPTIONS, named_titles=False)
    for options in (OPTIONS, plain):
        result = rank(batch, profiles, history=history, options=options)
        assert result.rankings[1] and result.rankings[1][0].paper.key == batch[0].key
    on = rank(batch, profiles, history=history, options=OPTIONS).rankings
    off = rank(batch, profiles, history=history, options=plain).rankings
    assert [[(s.paper.key, s.score, s.reason) for s in r] for r in on] == [
        [(s.paper.key, s.score, s.reason) for s in r] for r in off]


def test_words_bring_the_categories_and_authors_of_what_they_retrieve_with_examples_too() -> (
        None):
    batch, history = mini_day()
    seed = history[10].key
    profiles = [Profile(interests="graph neural networks for molecules", seeds=(seed,)),
                Profile(interests="graph neural networks for molecules"),
                Profile(seeds=(seed,))]
    quiet = replace(OPTIONS, feedback_category_weight=0.0, feedback_author_weight=0.0)
    every = dict(top_k=len(batch), options=replace(OPTIONS, min_score=-1.0,
                                                   threshold_quantile=0.0))
    scores = [{s.paper.key: s.score for s in r}
              for r in rank(batch, profiles, history=history, **every).rankings]
    every["options"] = replace(quiet, min_score=-1.0, threshold_quantile=0.0)
    plain = [{s.paper.key: s.score for s in r}
             for r in rank(batch, profiles, history=history, **every).rankings]
    # Words, with or without a seed paper: the retrieved papers' metadata counts.
    assert scores[0] != plain[0] and scores[1] != plain[1]
    assert sum(scores[0].values()) > sum(plain[0].values())
    # A seed paper alone retrieves nothing by words.
    assert scores[2] == plain[2]
