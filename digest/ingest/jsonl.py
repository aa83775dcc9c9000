"""Local JSON-lines files in the corpus schema (id, title, abstract, authors, categories)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from digest.errors import SourceError
from digest.ingest.base import Harvest, Validators, local_path
from digest.ingest.http import Fetch
from digest.ingest.keys import arxiv_key, doi_key, normalize_doi, parse_arxiv_id
from digest.models import Paper, SourceSpec, json_kind

_ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")


def paper_from_record(record: dict[str, Any], *, source: str = "jsonl") -> Paper:
    """Convert one corpus-schema record into a Paper; raise SourceError when unusable."""
    raw_id = str(record.get("id") or "").strip()
    title = " ".join(str(record.get("title") if record.get("title") is not None else "").split())
    if not raw_id or not title:
        raise SourceError("record has no id or no title", "every line needs 'id' and 'title'")
    key = arxiv_key(raw_id) or doi_key(raw_id) or f"{source}:{raw_id}"
    authors = record.get("authors") or []
    if isinstance(authors, str):
        authors = [a.strip() for a in authors.split(",")]
    categories = record.get("categories") or []
    if isinstance(categories, str):
        categories = categories.split()
    first_seen = record.get("first_seen") or record.get("published")
    published = None
    if first_seen:
        try:
            published = date.fromisoformat(str(first_seen)[:10])
        except ValueError:
            published = None
    arxiv_id = key.removeprefix("arxiv:") if key.startswith("arxiv:") else None
    upvotes = record.get("upvotes")
    parsed = parse_arxiv_id(raw_id) if arxiv_id else None
    version = parsed[1] if parsed else None
    announce = record.get("announce_type")
    keywords = record.get("ai_keywords") or []
    return Paper(
        key=key,
        title=title,
        abstract=" ".join(str(record.get("abstract") or record.get("summary") or "").split()),
        authors=tuple(str(a).strip() for a in authors if str(a).strip()),
        categories=tuple(str(c).strip() for c in categories if str(c).strip()),
        url=str(record.get("url") or (f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else "")),
        pdf_url=str(record.get("pdf") or (f"https://arxiv.org/pdf/{arxiv_id}" if arxiv_id else "")),
        source=source,
        published=published,
        comment=(str(record["comment"]) if record.get("comment") else None),
        upvotes=int(upvotes) if isinstance(upvotes, int | float) else None,
        announce_type=announce if announce in _ANNOUNCE_TYPES else "new",
        version=version,
        doi=normalize_doi(str(record["doi"])) if record.get("doi") else None,
        ai_summary=str(record["ai_summary"]) if record.get("ai_summary") else None,
        ai_keywords=tuple(str(k) for k in keywords if str(k).strip()),
    )


def iter_records(
    path: Path, *, what: str = "a record",
    hint: str = "each line must be one JSON object in the corpus schema",
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) from a .jsonl or .jsonl.gz file (a BOM on line 1 ok).

    A line that is not UTF-8, not JSON or not a JSON object is a SourceError naming the
    file and line (``what`` names the record in the message, ``hint`` says what to do).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as err:
                    raise SourceError(f"{path}:{number}: not UTF-8 text",
                                      "save the file as UTF-8") from err
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise SourceError(
                        f"{path}:{number}: not valid JSON ({err.msg} at column {err.pos + 1})",
                        hint,
                    ) from err
                if not isinstance(record, dict):
                    raise SourceError(
                        f"{path}:{number}: {what} must be a JSON object, not {json_kind(record)}",
                        hint,
                    )
                yield number, record
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err.strerror or err}", "check the path") from err


def load_jsonl(path: str | Path, *, source: str = "jsonl") -> list[Paper]:
    """Read every paper of a corpus-schema JSON-lines file (optionally gzipped)."""
    return [paper_from_record(record, source=source) for _, record in iter_records(Path(path))]


def read_jsonl(path: str | Path, *, source: str = "jsonl") -> tuple[list[Paper], list[str]]:
    """Read what can be read: the papers, and one problem per line that was left out.

    Each line is decoded on its own, strictly: a line that is not UTF-8 is left out and
    named, as iter_records refuses it, rather than stored with U+FFFD in its title and
    the source reported ok.
    """
    path = Path(path)
    papers: list[Paper] = []
    problems: list[str] = []
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            lines = list(handle)
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err.strerror or err}",
                          "check the path in DIGEST_SOURCES") from err
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            problems.append(f"line {number}: not UTF-8 text (byte 0x{raw[err.start]:02X} at "
                            f"column {err.start + 1}; save the file as UTF-8)")
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise SourceError("not a JSON object", "")
            papers.append(paper_from_record(record, source=source))
        except json.JSONDecodeError as err:
            problems.append(f"line {number}: not valid JSON ({err.msg})")
        except SourceError as err:
            problems.append(f"line {number}: {err.message}")
    return papers, problems


def read_jsonl_source(spec: SourceSpec, day: date, fetch: Fetch,
                      validators: Validators) -> Harvest:
    """Read a local JSON-lines source; bad lines are left out and reported."""
    path = local_path(spec.location.strip())
    if path is None:
        raise SourceError(f"jsonl source {spec.location!r} is not a local path",
                          "use jsonl:path/to/papers.jsonl (or .jsonl.gz)")
    papers, problems = read_jsonl(path, source=spec.name)
    summary: tuple[str, ...] = ()
    if problems:
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        summary = (f"{len(problems)} lines were left out: {shown}",)
    return Harvest(tuple(papers), len(papers) + len(problems), frozenset(), summary)
