"""Less like this over days: how many papers like a disliked one do the next digests list?

Usage: .venv/bin/python bench/dislike.py [--starts N] [--set FIELD=VALUE ...]
           [--variant NAME:FIELD=VALUE,...]   (e.g. --variant old:dislike_weight=0)

On real daily batches of the corpus (full papers: titles, abstracts, categories,
authors), for each of a few start days D:

- profiles: TOPICS typed as interests ("typed"), and the same words with three seed
  papers, the papers of the days before D closest to them ("seeded");
- day D is ranked (top 10); each profile dislikes the 1, 2 or 3 (by profile, in turn)
  of its listed papers least like its own words (tf-idf cosine to the typed text):
  papers off its topic, what a researcher clicks "less like this" on;
- days D+1, D+2, D+3 are ranked (top 10) for the profiles with those thumbs and for the
  same profiles without them, in one rank call (the same day, the same world).

Counted per list: the papers "close" to a disliked paper, at the bar the reasons use
for "close to your seed paper" (digest/rank/reasons.py: tf-idf cosine >= 0.12 and LSA
cosine >= 0.5 to the same disliked paper; on sampled picks 52 of 60 such pairs were
truly close), and "like" one at the LSA bar alone (cosine >= 0.5: the same kind of
paper, not necessarily sharing its words). Beside them, what the thumbs cost the
profile's own topic: the papers of the list without thumbs kept, and the mean tf-idf
cosine of the listed papers to the typed words. The history of each day is the batches
before it (at most 5,000 papers, as the daily job's). A --variant ranks the thumbs lists
again with other scoring fields on the same day (a few minutes a run in all).
DIGEST_CORPUS overrides the corpus.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from corpus import corpus_path
from sklearn.preprocessing import normalize

from digest.evaluate import by_day, load_corpus
from digest.models import Paper, Profile
from digest.pipeline.planning import HISTORY_LIMIT
from digest.rank import Ranker, RankOptions
from digest.rank.reasons import CLOSE, CLOSE_DENSE
from digest.rank.vectors import paper_text

HISTORY = HISTORY_LIMIT  # the daily job's history limit
MIN_BATCH = 150  # a day of fewer papers (a weekend's stragglers) is no digest day
TOP = 10
TOPICS = (
    "machine unlearning",
    "robot manipulation and grasping",
    "speech recognition",
    "large language model reasoning",
    "graph neural networks",
    "medical image segmentation",
    "differential privacy",
    "recommender systems",
    "autonomous driving motion planning",
    "code generation with language models",
    "federated learning",
    "3D reconstruction from images",
    "reinforcement learning from human feedback",
    "diffusion models for image generation",
    "time series forecasting",
    "adversarial robustness of neural networks",
    "retrieval augmented generation",
    "multi-agent reinforcement learning",
    "knowledge graphs",
    "mechanistic interpretability of transformers",
    "hallucination in vision-language models",
    "quantization and compression of large language models",
    "neural architecture search",
    "causal inference",
    "protein structure prediction",
    "sentiment analysis",
    "video understanding",
    "formal verification of software",
    "scientific machine learning and PDE solvers",
    "AI safety and alignment",
)


@dataclass
class Tally:
    """Sums over one group of lists (typed or seeded, with or without thumbs)."""

    lists: int = 0
    close: int = 0
    like: int = 0
    kept: int = 0
    cosine: float = 0.0
    listed: int = 0
    dropped_close: int = 0  # lists where the thumbs lowered the close count
    rose_close: int = 0  # ... and raised it
    per_day: dict[int, list[int]] = field(default_factory=dict)


def _unit_rows(ranker: Ranker, papers: Sequence[Paper]) -> tuple[sp.csr_matrix, np.ndarray]:
    """Return the papers' tf-idf rows and LSA rows in the ranker's day."""
    world = ranker._world  # a bench reads the day the ranker prepared
    assert world is not None and world.lsa is not None
    rows = world.space.transform(paper_text(p) for p in papers)
    return rows, world.lsa.project(rows)


def _closeness(
    ranker: Ranker, listed: Sequence[Paper], disliked: Sequence[Paper]
) -> tuple[np.ndarray, np.ndarray]:
    """Return per listed paper: close to a disliked one (both bars), like one (LSA)."""
    if not listed or not disliked:
        return np.zeros(len(listed), bool), np.zeros(len(listed), bool)
    a, a_dense = _unit_rows(ranker, listed)
    b, b_dense = _unit_rows(ranker, disliked)
    words = (a @ b.T).toarray()
    dense = a_dense @ b_dense.T
    close = ((words >= CLOSE) & (dense >= CLOSE_DENSE)).any(axis=1)
    like = (dense >= CLOSE_DENSE).any(axis=1)
    return close, like


def _word_cosines(ranker: Ranker, words: str, papers: Sequence[Paper]) -> np.ndarray:
    """Return each paper's tf-idf cosine to the typed words."""
    world = ranker._world
    assert world is not None
    query = normalize(world.space.transform([words]))
    rows = world.space.transform(paper_text(p) for p in papers)
    return np.asarray((rows @ query.T).toarray()).ravel()


def _options(base: RankOptions, items: Sequence[str]) -> RankOptions:
    """Return the options with FIELD=VALUE items set."""
    for item in items:
        name, _, value = item.partition("=")
        kind = type(getattr(base, name))
        base = replace(base, **{name: value.lower() in ("1", "true") if kind is bool
                                else kind(value)})
    return base


def main() -> None:
    """Run the start days, print the counts with and without thumbs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--starts", type=int, default=5, help="start days (spread)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a RankOptions field for this run")
    parser.add_argument("--variant", action="append", default=[],
                        metavar="NAME:FIELD=VALUE,...",
                        help="also rank the later days with these scoring fields (on the "
                             "same day's world: not fields the world is built from)")
    args = parser.parse_args()
    options = _options(RankOptions(), args.set)
    variants = {"": options}
    for spec in args.variant:
        name, _, fields = spec.partition(":")
        variants[name] = _options(options, fields.split(","))
    days = by_day(load_corpus(str(corpus_path())))
    dates = [d for d, batch in days.items() if len(batch) >= MIN_BATCH]
    # Start days spread over the last third of the corpus, each with three days after.
    usable = list(range(len(dates) * 2 // 3, len(dates) - 3))
    starts = [usable[int(i)] for i in np.linspace(0, len(usable) - 1, args.starts)]
    groups = ("typed", "seeded")
    kinds = ("plain", *(f"thumbs{name}" for name in variants))
    tallies = {(g, t): Tally() for g in groups for t in kinds}
    disliked_cos: list[float] = []
    others_cos: list[float] = []
    known_disliked = 0
    for at in starts:
        day = dates[at]
        before = [p for d in dates[max(0, at - 20):at] for p in days[d]][-HISTORY:]
        ranker = Ranker(days[day], history=before, options=options)
        typed = [Profile(interests=t) for t in TOPICS]
        first = ranker.rank(typed, top_k=TOP)  # prepares the world too
        # Seeds: the three papers before D closest to the words (the researcher's field).
        seeded = []
        recent = [p for d in dates[max(0, at - 10):at] for p in days[d]]
        for profile in typed:
            cos = _word_cosines(ranker, profile.interests, recent)
            seeds = tuple(recent[int(i)].key for i in np.argsort(-cos)[:3])
            seeded.append(replace(profile, seeds=seeds))
        lists = first.rankings + ranker.rank(seeded, top_k=TOP).rankings
        profiles = [*typed, *seeded]
        thumbs: list[Profile] = []
        for i, (profile, ranking) in enumerate(zip(profiles, lists, strict=True)):
            listed = [s.paper for s in ranking]
            cos = _word_cosines(ranker, profile.interests, listed)
            k = 1 + i % 3
            chosen = [listed[int(j)] for j in np.argsort(cos, kind="stable")[:k]]
            disliked_cos.extend(sorted(cos)[:k])
            others_cos.extend(sorted(cos)[k:])
            thumbs.append(replace(profile, disliked=tuple(p.key for p in chosen)))
        for ahead in (1, 2, 3):
            later = dates[at + ahead]
            history = [p for d in dates[max(0, at + ahead - 20):at + ahead]
                       for p in days[d]][-HISTORY:]
            known = {p.key: p for p in history}
            ranker = Ranker(days[later], history=history, options=options)
            result = ranker.rank([*profiles, *thumbs], top_k=TOP).rankings
            for name, chosen in variants.items():
                if name:
                    ranker.options = chosen  # the world is the day's; scoring differs
                    result += ranker.rank(thumbs, top_k=TOP).rankings
            ranker.options = options
            n = len(profiles)
            for i in range(n):
                group = groups[i // len(typed)]
                disliked = [known[k] for k in thumbs[i].disliked if k in known]
                known_disliked += len(disliked)
                plain_list = [s.paper for s in result[i]]
                counts = []
                for v, kind in enumerate(kinds):
                    ranking = result[v * n + i]
                    listed = [s.paper for s in ranking]
                    close, like = _closeness(ranker, listed, disliked)
                    tally = tallies[group, kind]
                    tally.lists += 1
                    tally.close += int(close.sum())
                    tally.like += int(like.sum())
                    tally.kept += len({p.key for p in listed} & {p.key for p in plain_list})
                    tally.cosine += float(_word_cosines(ranker, profiles[i].interests,
                                                        listed).sum())
                    tally.listed += len(listed)
                    tally.per_day.setdefault(ahead, [0, 0])
                    tally.per_day[ahead][0] += int(close.sum())
                    tally.per_day[ahead][1] += int(like.sum())
                    counts.append(int(close.sum()))
                for v, kind in enumerate(kinds[1:], start=1):
                    tallies[group, kind].dropped_close += counts[v] < counts[0]
                    tallies[group, kind].rose_close += counts[v] > counts[0]
    print(f"start days: {', '.join(str(dates[a]) for a in starts)}; "
          f"{len(TOPICS)} topics x (typed, seeded); days D+1..D+3, top {TOP}")
    print(f"disliked papers' tf-idf cosine to the words: mean {np.mean(disliked_cos):.3f} "
          f"(the other listed papers: {np.mean(others_cos):.3f}); "
          f"disliked papers in the later days' history: {known_disliked}")
    print(f"close: tf-idf >= {CLOSE} and LSA >= {CLOSE_DENSE} to one disliked paper; "
          f"like: LSA >= {CLOSE_DENSE}")
    for group in groups:
        print(f"{group}: {tallies[group, 'plain'].lists} lists")
        for kind in kinds:
            t = tallies[group, kind]
            label = "without thumbs" if kind == "plain" else f"with {kind}"
            days_text = " ".join(f"D+{a}: {c}/{lk}" for a, (c, lk) in sorted(t.per_day.items()))
            fewer = (f"  fewer close: {t.dropped_close} lists, more: {t.rose_close}"
                     if kind != "plain" else "")
            print(f"  {label:18s} close {t.close:4d} ({t.close / t.lists:.3f}/list)  "
                  f"like {t.like:4d} ({t.like / t.lists:.3f}/list)  "
                  f"kept {t.kept / max(1, t.listed):.3f}  "
                  f"word cosine {t.cosine / max(1, t.listed):.4f}  [{days_text}]{fewer}")


if __name__ == "__main__":
    main()
