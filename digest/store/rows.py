"""Convert database rows to records and back, and the small helpers the areas share."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Row

from digest.models import REPLACEMENTS, Delivery, Paper, Profile, Subscriber, hide_address

T = TypeVar("T")


def email_hash(email: str) -> str:
    """Return the suppression hash of an address (case-insensitive)."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


def bounce_key(report_id: str, email: str) -> str:
    """Return the stored key of a report about ``email``: the address in it as its hash.

    The key names the report so that a rescanned mailbox records nothing twice; it
    was the report's Message-ID and the address, and so kept the address readable
    after the subscriber was deleted.
    """
    return hide_address(report_id, email, email_hash(email))[:500]


def _utc(value: datetime | None) -> datetime | None:
    """Return an aware UTC datetime (SQLite hands back naive ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _paper_from_row(row: Row[Any]) -> Paper:
    return Paper(
        key=row.key,
        title=row.title,
        abstract=row.abstract,
        authors=tuple(row.authors or ()),
        categories=tuple(row.categories or ()),
        url=row.url,
        pdf_url=row.pdf_url,
        source=row.source,
        published=row.published,
        announce_type=row.announce_type,
        version=row.version,
        doi=row.doi,
        comment=row.comment,
        upvotes=row.upvotes,
        ai_summary=row.ai_summary,
        ai_keywords=tuple(row.ai_keywords or ()),
    )


def _paper_values(paper: Paper) -> dict[str, Any]:
    return {
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": list(paper.authors),
        "categories": list(paper.categories),
        "url": paper.url,
        "pdf_url": paper.pdf_url,
        "source": paper.source,
        "published": paper.published,
        "announce_type": paper.announce_type,
        "version": paper.version,
        "doi": paper.doi,
        "comment": paper.comment,
        "upvotes": paper.upvotes,
        "ai_summary": paper.ai_summary,
        "ai_keywords": list(paper.ai_keywords),
    }


def _subscriber_from_row(row: Row[Any]) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        status=row.status,
        profile=Profile.from_dict(row.profile or {}),
        send_hour=row.send_hour,
        timezone=row.timezone,
        cadence=row.cadence,
        weekday=row.weekday,
        max_papers=row.max_papers,
        empty_digest=row.empty_digest,
        popularity=row.popularity,
        created_at=_utc(row.created_at),
    )


def _picks(raw: Any) -> tuple[tuple[str, float, str], ...]:
    picks = []
    for item in raw or ():
        if isinstance(item, dict):
            score = float(item.get("score", 0.0))
            picks.append((str(item["key"]), score, str(item.get("reason", ""))))
        else:
            picks.append((str(item), 0.0, ""))
    return tuple(picks)


def _delivery_from_row(row: Row[Any]) -> Delivery:
    picks = _picks(row.papers)
    return Delivery(
        subscriber_id=row.subscriber_id,
        day=row.day,
        status=row.status,
        message_id=row.message_id,
        attempts=row.attempts,
        error=row.error,
        paper_keys=tuple(key for key, _, _ in picks),
        updated_at=_utc(row.updated_at),
        picks=picks,
        next_attempt_at=_utc(row.next_attempt_at),
        created_at=_utc(row.created_at),
    )


def _plan_values(
    subscriber_id: int,
    day: date,
    picks: Sequence[tuple[str, float, str]],
    message_id: str,
    now: datetime,
    status: str,
    error: str | None,
) -> dict[str, Any]:
    return {
        "subscriber_id": subscriber_id,
        "day": day,
        "status": status,
        "message_id": message_id,
        "attempts": 0,
        "error": error,
        "papers": [
            {"key": key, "score": round(float(score), 6), "reason": reason}
            for key, score, reason in picks
        ],
        "created_at": now,
        "updated_at": now,
    }


def _local_worker_alive(worker: str) -> bool:
    """Return False only for a ``host:pid:...`` worker of this host whose process is gone."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine (or an unknown name): its lease runs out on its own
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _iso(value: datetime | None) -> str | None:
    stamp = _utc(value)
    return stamp.isoformat() if stamp else None


def _merge_stored(old: Paper, new: Paper) -> Paper:
    """Merge a fresh copy of a known paper into the stored one without losing signals."""
    categories = tuple(dict.fromkeys(old.categories + new.categories))
    return replace(
        old,
        title=new.title or old.title,
        abstract=new.abstract if len(new.abstract) >= len(old.abstract) else old.abstract,
        authors=new.authors or old.authors,
        categories=categories,
        url=old.url or new.url,
        pdf_url=old.pdf_url or new.pdf_url,
        version=max(filter(None, (old.version, new.version)), default=None),
        doi=old.doi or new.doi,
        comment=new.comment or old.comment,
        upvotes=new.upvotes if new.upvotes is not None else old.upvotes,
        ai_summary=new.ai_summary or old.ai_summary,
        ai_keywords=new.ai_keywords or old.ai_keywords,
        published=old.published or new.published,
        # Announced as new by one source, it is new, whichever source was saved first.
        announce_type=(new.announce_type if old.announce_type in REPLACEMENTS
                       and new.announce_type not in REPLACEMENTS else old.announce_type),
    )



# Values bound into one SQL IN (...) list: SQLite caps bound parameters per statement.
IN_CHUNK = 500


def in_chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """Yield consecutive slices of at most ``size`` values, for IN (...) queries."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
