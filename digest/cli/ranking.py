"""Ranking commands: rank a batch from files, and evaluate the ranker on the corpus."""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path

import click

from digest import taxonomy
from digest.cli.base import main, warn
from digest.errors import SourceError, UsageError
from digest.ingest.jsonl import iter_records, paper_from_record, split_categories
from digest.ingest.keys import arxiv_doi_key, arxiv_key, doi_key
from digest.models import Paper, Profile, json_kind

_PROFILE_HINT = ('write one JSON object per line, e.g. {"id": "p1", "interests": '
                 '"robot learning", "seeds": ["2401.01234"]}')
_MAX_SHOWN = 10  # unknown ids named in one warning
_ID_FIELDS = {"seeds": ("seed id", "seed ids"), "liked": ("liked id", "liked ids"),
              "disliked": ("disliked id", "disliked ids")}


def _paper_key(raw: str, known: Mapping[str, Paper]) -> str | None:
    """Return the key of the known paper an id names, or None when none is known.

    An id may be a key (``arxiv:2401.01234``), a bare or versioned arXiv id, an
    ``arXiv:`` id, an abstract or PDF link (``.pdf`` or not), an arXiv DOI
    (``10.48550/arXiv.2401.01234``, or as a doi.org link), another DOI, or a non-arXiv
    record's id as written in the --papers or --history file.
    """
    raw = raw.strip()
    bare = raw[: -len(".pdf")] if raw.lower().endswith(".pdf") else raw
    for key in (raw, f"jsonl:{raw}", arxiv_doi_key(raw), doi_key(raw), arxiv_key(bare)):
        if key is not None and key in known:
            return key
    return None


def read_profiles(path: Path, known: dict[str, Paper]) -> list[tuple[str | int, Profile]]:
    """Read one profile per line: ``id`` plus any Profile field.

    Each profile comes with its ``id`` exactly as the line gave it, a string or a
    number, for the output to name it so (a caller matches the output by its own ids).

    Seed, liked and disliked ids may take any form ``_paper_key`` reads; one warning
    per profile on stderr names those that match no paper in ``known``. A line that is
    not a JSON object, or a field of the wrong type, is a UsageError naming the line.
    """
    try:
        return _read_profiles(path, known)
    except SourceError as err:  # a line that is not a JSON object: the caller's file
        raise UsageError(err.message, err.hint) from err


_PROFILE_FIELDS = ("id", *(f.name for f in dataclasses.fields(Profile)))


def _warn_unknown_fields(path: Path, lines: dict[str, list[int]]) -> None:
    """Warn once for each field no profile has (a typo ranks as if it were absent)."""
    for name, numbers in lines.items():
        close = difflib.get_close_matches(name.lower(), _PROFILE_FIELDS, n=1, cutoff=0.6)
        likely = f"; did you mean '{close[0]}'?" if close else ""
        where = f"{len(numbers)} lines from here" if len(numbers) > 1 else "this line"
        warn(f"{path}:{numbers[0]}: '{name}' is no profile field, ignored on {where}"
             f"{likely} (the fields: {', '.join(_PROFILE_FIELDS)})")


def _category_codes(known: Mapping[str, Paper]) -> dict[str, str]:
    """Return lower-cased code -> code: arXiv's taxonomy, and every code a paper carries."""
    codes = {c.lower(): c for p in known.values() for c in p.categories}
    codes.update((c.lower(), c) for c in taxonomy.category_codes())
    return codes


def _categories(values: tuple[str, ...], codes: Mapping[str, str]) -> tuple[
    tuple[str, ...], list[str]
]:
    """Return a profile's category codes, and those that are no code anyone knows.

    "cs.CL cs.CV" (as the corpus-schema writes a paper's) is two codes, and "cs.cl" is
    cs.CL: either, kept as typed, matched no paper and left the profile with nothing.
    """
    found: list[str] = []
    unknown: list[str] = []
    for value in values:
        for raw in split_categories(value):
            code = codes.get(raw.lower())
            if code is None:
                unknown.append(raw)
            found.append(code or raw)
    return tuple(dict.fromkeys(found)), unknown


def _read_profiles(path: Path, known: dict[str, Paper]) -> list[tuple[str | int, Profile]]:
    out: list[tuple[str | int, Profile]] = []
    unknown_fields: dict[str, list[int]] = {}
    _read_profile_lines(path, known, _category_codes(known), out, unknown_fields)
    _warn_unknown_fields(path, unknown_fields)
    return out


def _read_profile_lines(
    path: Path, known: dict[str, Paper], codes: Mapping[str, str],
    out: list[tuple[str | int, Profile]], unknown_fields: dict[str, list[int]],
) -> None:
    for number, record in iter_records(path, what="a profile", hint=_PROFILE_HINT):
        for name in record:
            if name not in _PROFILE_FIELDS:
                unknown_fields.setdefault(str(name), []).append(number)
        if "id" not in record:
            raise UsageError(f"{path}:{number}: profile has no 'id'", "add an \"id\" to each line")
        raw_id = record["id"]
        if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
            raise UsageError(
                f"{path}:{number}: the profile's 'id' must be a string, not {json_kind(raw_id)}",
                'give each line an "id" such as "p1"',
            )
        profile_id = str(raw_id)  # for messages; the output names it by raw_id
        try:
            profile = Profile.from_dict(record, strict=True)
        except ValueError as err:
            raise UsageError(
                f"{path}:{number}: profile {json.dumps(profile_id)}: {err}",
                'write text fields as strings and list fields as lists of strings, '
                'e.g. "keywords": ["robot learning"], "seeds": ["2401.01234"] '
                '(quote arXiv ids: 2401.01230 as a number loses its last 0)',
            ) from err
        resolved: dict[str, tuple[str, ...]] = {}
        missing: list[tuple[str, list[str]]] = []
        for name in _ID_FIELDS:
            keys: list[str] = []
            unknown: list[str] = []
            for raw in getattr(profile, name):
                key = _paper_key(raw, known)
                if key is None:
                    unknown.append(raw)
                    # As before: an id no paper has stays in the profile, and is ignored.
                    key = arxiv_key(raw) or raw
                keys.append(key)
            resolved[name] = tuple(keys)
            if unknown:
                missing.append((name, unknown))
        if missing:
            _warn_missing(profile_id, missing)
        categories, strange = _categories(profile.categories, codes)
        if strange:
            shown = ", ".join(strange[:_MAX_SHOWN]) + (", ..." if len(strange) > _MAX_SHOWN
                                                       else "")
            warn(f"profile {json.dumps(profile_id)}: {len(strange)} "
                 f"{'category' if len(strange) == 1 else 'categories'} neither arXiv nor "
                 f"any paper has, matching nothing: {shown} (codes look like cs.CL, math.PR)")
        out.append((raw_id, replace(profile, seeds=resolved["seeds"],
                                    liked=resolved["liked"],
                                    disliked=resolved["disliked"],
                                    categories=categories)))


def _warn_missing(profile_id: str, missing: list[tuple[str, list[str]]]) -> None:
    """Warn once for a profile: which of its ids name no paper in --papers or --history."""
    counts = ", ".join(
        f"{len(ids)} {_ID_FIELDS[name][0 if len(ids) == 1 else 1]}" for name, ids in missing
    )
    ids = [raw for _, unknown in missing for raw in unknown]
    shown = ", ".join(ids[:_MAX_SHOWN]) + (", ..." if len(ids) > _MAX_SHOWN else "")
    warn(f"profile {json.dumps(profile_id)}: {counts} not found in --papers or --history: "
         f"{shown}")


def read_papers(path: Path, given: dict[str, object] | None = None) -> list[Paper]:
    """Read the papers of a --papers or --history file (corpus-schema JSON lines).

    ``given``, when passed, receives each paper's ``id`` exactly as the file wrote it
    (by key; of two lines with one key, the later), for the output to name it so.
    A line that is not a JSON object, or a record without an id or a title, is a
    UsageError naming the file and the line: the command's input, not a source's.
    """
    papers: list[Paper] = []
    try:
        for number, record in iter_records(path, what="a paper"):
            try:
                paper = paper_from_record(record)
            except SourceError as err:
                raise UsageError(f"{path}:{number}: {err.message}", err.hint) from err
            papers.append(paper)
            if given is not None:
                given[paper.key] = record["id"]
    except SourceError as err:
        raise UsageError(err.message, err.hint) from err
    return papers


def semantic_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add --semantic, --semantic-weight and --semantic-cache to a command."""
    command = click.option(
        "--semantic-cache", type=click.Path(file_okay=False, path_type=Path),
        help="Keep paper embeddings in this directory between runs (implies "
        "--semantic).")(command)
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
@click.option("--processes", default=0, show_default=True, type=click.IntRange(min=0),
              help="Processes that score profiles (0: one per CPU, at most 4); the "
              "output is the same for any number.")
@semantic_options
def rank_command(
    papers_path: Path, profiles_path: Path, history_path: Path | None, top: int,
    show_all: bool, processes: int, semantic: bool, semantic_weight: float | None,
    semantic_cache: Path | None,
) -> None:
    """Rank a batch of papers for each profile; print one JSON line per profile."""
    from digest.rank import RankOptions, rank

    # A cache asked for is semantic ranking asked for: without it, tf-idf alone, silently.
    weight = semantic_setting(semantic or semantic_cache is not None, semantic_weight)
    # The output names each paper by the id its --papers line gave (a versioned,
    # "arXiv:" or non-arXiv id as written), which is what a caller matches it by.
    given: dict[str, object] = {}
    batch = read_papers(papers_path, given)
    history = read_papers(history_path) if history_path else []
    known = {p.key: p for p in [*history, *batch]}
    profiles = read_profiles(profiles_path, known)
    options = RankOptions(semantic_weight=weight, processes=processes,
                          semantic_cache=str(semantic_cache) if semantic_cache else "")
    if show_all:
        options = replace(options, below_bar=True)
    result = rank(batch, [p for _, p in profiles], history=history, top_k=top, options=options)
    for (profile_id, _), ranking, empty in zip(
        profiles, result.rankings, result.nothing_relevant, strict=True
    ):
        line = {
            "profile": profile_id,
            "papers": [
                {"id": given[s.paper.key], "score": s.score, "reason": s.reason}
                for s in ranking
            ],
            "nothing_relevant": empty,
        }
        click.echo(_json_line(line))


def _json_line(line: Mapping[str, object]) -> str:
    """Return a line of output as JSON, non-ASCII text as itself where UTF-8 can write it.

    Half of a UTF-16 pair (an input's "\\ud835", text cut inside a pair) has no UTF-8
    form: printing it raised UnicodeEncodeError midway through the output. Escaped
    (json's default), it reads back as the very string the input gave.
    """
    text = json.dumps(line, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(line)
    return text


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
              "tfidf-centroid, arxiv-sanity, arxiv-sanity+seed-metadata; ours+semantic "
              "and minilm with --semantic).")
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
        EvalConfig,
        evaluate,
        format_table,
        load_corpus,
    )

    weight = semantic_setting(
        semantic or semantic_cache is not None
        or any(m in methods for m in ("ours+semantic", "minilm")), semantic_weight)
    config = EvalConfig(days=days, subscribers=subscribers, seed=seed, methods=methods,
                        semantic_weight=weight,
                        semantic_cache=str(semantic_cache) if semantic_cache else "")
    papers = load_corpus(corpus_path)
    report = evaluate(papers, config, progress=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps({
            "summary": report.summary(seed),
            "paired": [asdict(pair) for method, reference in PAIRED
                       for pair in report.paired(method, reference, seed=seed)],
        }))
    else:
        click.echo(format_table(report))
    sys.stdout.flush()
