"""Local JSON-lines files in the corpus schema (id, title, abstract, authors, categories)."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from digest.errors import SourceError
from digest.ingest.base import Harvest, Validators, count_of, local_path
from digest.ingest.http import Fetch
from digest.ingest.keys import arxiv_key, doi_key, normalize_doi, parse_arxiv_id
from digest.ingest.text import split_authors
from digest.models import Paper, SourceSpec, json_kind

_ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")


_GZIP_MAGIC = b"\x1f\x8b"
_CATEGORY_GAPS = re.compile(r"[\s,;]+")


def split_categories(text: str) -> list[str]:
    """Split categories written as one string: "cs.CL cs.AI", "cs.CL, cs.AI" or "cs.CL;cs.AI"."""
    return [code for code in _CATEGORY_GAPS.split(text) if code]


def _items(value: Any, split: Callable[[str], Iterable[str]]) -> list[str]:
    """Return a list field's items as text: a string split, null items and empty ones left out.

    An item may be ``{"name": ...}`` (arXiv's and Semantic Scholar's JSON authors); a
    lone number or true/false is one item, not a crash that loses the whole file.
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        items: Iterable[Any] = split(value)
    elif isinstance(value, list | tuple):
        items = (v.get("name") if isinstance(v, dict) else v for v in value)
    else:
        items = [value]
    return [str(v) for v in items if v is not None and str(v).strip()]


def paper_from_record(record: dict[str, Any], *, source: str = "jsonl") -> Paper:
    """Convert one corpus-schema record into a Paper; raise SourceError when unusable."""
    raw_id = str(record.get("id") or "").strip()
    title = " ".join(str(record.get("title") if record.get("title") is not None else "").split())
    if not raw_id or not title:
        raise SourceError("record has no id or no title", "every line needs 'id' and 'title'")
    key = arxiv_key(raw_id) or doi_key(raw_id) or f"{source}:{raw_id}"
    # "A, B and C" (arXiv's metadata, as the arXiv dataset on Kaggle writes it): a split
    # on commas alone left "B and C" one author, whom nobody following C found.
    authors = _items(record.get("authors"), split_authors)
    # "cs.CL cs.AI", or "cs.CL, cs.AI": a category code holds neither.
    categories = _items(record.get("categories"), split_categories)
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
    keywords = _items(record.get("ai_keywords"), lambda text: [text])
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
        upvotes=count_of(upvotes),
        announce_type=announce if announce in _ANNOUNCE_TYPES else "new",
        version=version,
        doi=normalize_doi(str(record["doi"])) if record.get("doi") else None,
        ai_summary=str(record["ai_summary"]) if record.get("ai_summary") else None,
        ai_keywords=tuple(str(k) for k in keywords if str(k).strip()),
    )


@contextmanager
def _open_bytes(path: Path) -> Iterator[Iterable[bytes]]:
    """Open a file for reading, unpacking it if it starts as gzip does, whatever its name.

    By the name alone, a gzipped batch.jsonl was "not UTF-8 text" (save it as UTF-8),
    and a plain papers.jsonl.gz "not a gzipped file". The start is peeked, not read, so
    a pipe (<(zcat ...)) loses nothing.
    """
    with open(path, "rb") as raw:
        if raw.peek(2)[:2] == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw) as packed:
                yield packed
        else:
            yield raw


# A .gz cut short raises EOFError (which click reports as "Aborted!"), a damaged one
# zlib.error or BadGzipFile: none names the file or says what to do.
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def _not_whole_gzip(path: Path, err: Exception, lines: int | None = None) -> SourceError:
    """Return the error for a gzipped file unreadable after ``lines`` lines (None: not
    counted)."""
    where = ("" if lines is None else
             f", unreadable after line {lines}" if lines else ", unreadable from its start")
    return SourceError(
        f"{path}: not a whole gzip file{where} ({err})",
        "the file is cut short or damaged: copy or download it again, or pass it unpacked",
    )


def iter_records(
    path: Path, *, what: str = "a record",
    hint: str = "each line must be one JSON object in the corpus schema",
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) from a .jsonl or .jsonl.gz file (a BOM on line 1 ok).

    A line that is not UTF-8, not JSON or not a JSON object is a SourceError naming the
    file and line (``what`` names the record in the message, ``hint`` says what to do).
    """
    number = 0
    try:
        with _open_bytes(path) as handle:
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
    except _GZIP_ERRORS as err:
        raise _not_whole_gzip(path, err, number) from err
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
        with _open_bytes(path) as handle:
            lines = list(handle)
    except _GZIP_ERRORS as err:
        raise _not_whole_gzip(path, err) from err
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
