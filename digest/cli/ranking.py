"""Ranking commands: rank a batch from files, and evaluate the ranker on the corpus."""

from __future__ import annotations

import json
import sys
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
def rank_command(
    papers_path: Path, profiles_path: Path, history_path: Path | None, top: int,
    show_all: bool,
) -> None:
    """Rank a batch of papers for each profile; print one JSON line per profile."""
    from dataclasses import replace

    from digest.rank import RankOptions, rank

    batch = load_jsonl(papers_path)
    history = load_jsonl(history_path) if history_path else []
    known = {p.key: p for p in [*history, *batch]}
    profiles = read_profiles(profiles_path, known)
    options = RankOptions()
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
              "tfidf-centroid, arxiv-sanity).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def eval_command(
    corpus_path: Path, days: int, subscribers: int, seed: int, methods: tuple[str, ...],
    as_json: bool,
) -> None:
    """Replay the corpus day by day and score our ranker against the baselines."""
    from digest.evaluate import EvalConfig, evaluate, format_table, load_corpus

    config = EvalConfig(days=days, subscribers=subscribers, seed=seed, methods=methods)
    papers = load_corpus(corpus_path)
    report = evaluate(papers, config, progress=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps(report.summary(seed)))
    else:
        click.echo(format_table(report))
    sys.stdout.flush()
