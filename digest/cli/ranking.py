"""Ranking commands: rank a batch from files, and evaluate the ranker on the corpus."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from digest.cli.base import main
from digest.errors import UsageError
from digest.ingest.jsonl import iter_records, load_jsonl
from digest.ingest.keys import arxiv_key
from digest.models import Paper, Profile


def _paper_key(raw: str, known: dict[str, Paper]) -> str:
    """Map a bare arXiv id (or a key) to a paper key."""
    raw = raw.strip()
    if raw in known:
        return raw
    return arxiv_key(raw) or raw


def _display_id(paper: Paper) -> str:
    return paper.arxiv_id or paper.key


def read_profiles(path: Path, known: dict[str, Paper]) -> list[tuple[str, Profile]]:
    """Read one profile per line: ``id`` plus any Profile field; ids may be bare arXiv ids."""
    out: list[tuple[str, Profile]] = []
    for number, record in iter_records(path):
        if "id" not in record:
            raise UsageError(f"{path}:{number}: profile has no 'id'", "add an \"id\" to each line")
        data: dict[str, Any] = dict(record)
        for name in ("seeds", "liked", "disliked"):
            raw = data.get(name) or []
            values = [raw] if isinstance(raw, str) else list(raw)
            data[name] = [_paper_key(str(v), known) for v in values]
        out.append((str(record["id"]), Profile.from_dict(data)))
    return out


def semantic_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add --semantic, --semantic-weight and --semantic-cache to a command."""
    command = click.option(
        "--semantic-cache", type=click.Path(file_okay=False, path_type=Path),
        help="Keep paper embeddings in this directory between runs.")(command)
    command = click.option(
        "--semantic-weight", type=click.FloatRange(min=0.0),
        help="Weight of the semantic score (implies --semantic; default 2.0).")(command)
    return click.option(
        "--semantic", is_flag=True,
        help="Add sentence-embedding similarity (needs the semantic extra).")(command)


def semantic_setting(semantic: bool, weight: float | None) -> float:
    """Return the semantic weight asked for (0: off); fail clearly without the extra."""
    if not semantic and weight is None:
        return 0.0
    from digest.rank import semantic as extra

    extra.require()
    return extra.DEFAULT_WEIGHT if weight is None else weight


@main.command("rank")
@click.option("--papers", "papers_path", required=True, type=click.Path(exists=True,
              dir_okay=False, path_type=Path), help="Batch to rank (corpus-schema JSON lines).")
@click.option("--profiles", "profiles_path", required=True, type=click.Path(exists=True,
              dir_okay=False, path_type=Path), help="One profile per line (JSON).")
@click.option("--history", "history_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="Earlier papers: seeds, liked papers, background.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1),
              help="Papers per profile.")
@click.option("--all/--threshold", "show_all", default=False, show_default=True,
              help="List the top papers even when they fall below the relevance bar.")
@semantic_options
def rank_command(
    papers_path: Path, profiles_path: Path, history_path: Path | None, top: int,
    show_all: bool, semantic: bool, semantic_weight: float | None, semantic_cache: Path | None,
) -> None:
    """Rank a batch of papers for each profile; print one JSON line per profile."""
    from dataclasses import replace

    from digest.rank import RankOptions, rank

    weight = semantic_setting(semantic, semantic_weight)
    batch = load_jsonl(papers_path)
    history = load_jsonl(history_path) if history_path else []
    known = {p.key: p for p in [*history, *batch]}
    profiles = read_profiles(profiles_path, known)
    options = RankOptions(semantic_weight=weight,
                          semantic_cache=str(semantic_cache) if semantic_cache else "")
    if show_all:
        options = replace(options, min_score=float("-inf"), threshold_quantile=0.0)
    result = rank(batch, [p for _, p in profiles], history=history, top_k=top, options=options)
    for (profile_id, _), ranking, empty in zip(
        profiles, result.rankings, result.nothing_relevant, strict=True
    ):
        line = {
            "profile": profile_id,
            "papers": [
                {"id": _display_id(s.paper), "score": s.score, "reason": s.reason}
                for s in ranking
            ],
            "nothing_relevant": empty,
        }
        click.echo(json.dumps(line, ensure_ascii=False))


@main.command("eval")
@click.option("--corpus", "corpus_path", required=True, type=click.Path(exists=True,
              dir_okay=False, path_type=Path), help="Labelled corpus (JSON lines, .gz ok).")
@click.option("--days", default=8, show_default=True, type=click.IntRange(min=1),
              help="Test days replayed after the cutoff.")
@click.option("--subscribers", default=40, show_default=True, type=click.IntRange(min=1),
              help="Simulated subscribers of each kind.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--method", "methods", multiple=True,
              help="Only these methods (ours, ours+seed-metadata, random, keyword, "
              "tfidf-centroid, arxiv-sanity; ours+semantic with --semantic).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary and the paired comparisons as JSON.")
@semantic_options
def eval_command(
    corpus_path: Path, days: int, subscribers: int, seed: int, methods: tuple[str, ...],
    as_json: bool, semantic: bool, semantic_weight: float | None, semantic_cache: Path | None,
) -> None:
    """Replay the corpus day by day and score our ranker against the baselines."""
    from digest.evaluate import (
        PAIRED,
        REFERENCE,
        EvalConfig,
        evaluate,
        format_table,
        load_corpus,
    )

    weight = semantic_setting(semantic or "ours+semantic" in methods, semantic_weight)
    config = EvalConfig(days=days, subscribers=subscribers, seed=seed, methods=methods,
                        semantic_weight=weight,
                        semantic_cache=str(semantic_cache) if semantic_cache else "")
    papers = load_corpus(corpus_path)
    report = evaluate(papers, config, progress=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps({
            "summary": report.summary(seed),
            "paired": [asdict(pair) for method in PAIRED
                       for pair in report.paired(method, REFERENCE, seed=seed)],
        }))
    else:
        click.echo(format_table(report))
    sys.stdout.flush()
