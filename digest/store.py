"""Every SQL statement: SQLAlchemy Core tables on SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from digest.errors import SchemaError, StoreError, UsageError
from digest.models import (
    Delivery,
    DeliveryStatus,
    Paper,
    Profile,
    RunReport,
    SourceResult,
    SourceSpec,
    Subscriber,
)

SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

papers = Table(
    "papers",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("title", Text, nullable=False),
    Column("abstract", Text, nullable=False, default=""),
    Column("authors", JSON, nullable=False),
    Column("categories", JSON, nullable=False),
    Column("url", Text, nullable=False, default=""),
    Column("pdf_url", Text, nullable=False, default=""),
    Column("source", String(300), nullable=False, default=""),
    Column("published", Date),
    Column("announce_type", String(20), nullable=False, default="new"),
    Column("version", Integer),
    Column("doi", String(300)),
    Column("comment", Text),
    Column("upvotes", Integer),
    Column("ai_summary", Text),
    Column("ai_keywords", JSON, nullable=False),
    # The day of the run that first stored the paper: the paper belongs to that batch and
    # never moves to a later one, so a replacement or a second source cannot re-send it.
    Column("batch_day", Date, nullable=False, index=True),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("status", String(20), nullable=False, index=True),
    Column("profile", JSON, nullable=False),
    Column("send_hour", Integer, nullable=False, default=7),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("cadence", String(10), nullable=False, default="daily"),
    Column("weekday", Integer, nullable=False, default=0),
    Column("max_papers", Integer, nullable=False, default=10),
    Column("empty_digest", String(10), nullable=False, default="skip"),
    Column("popularity", Float, nullable=False, default=0.0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("confirm_sent_at", DateTime(timezone=True)),
    # Never reuse a deleted subscriber's id: signed links carry the id, and an old
    # unsubscribe or preferences link must not open a later subscriber's account.
    sqlite_autoincrement=True,
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("day", Date, nullable=False, index=True),
    Column("status", String(20), nullable=False, index=True),
    Column("message_id", String(300), nullable=False, default=""),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("papers", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),
    # A worker's lease on a planned row: nothing of the message has been transmitted
    # yet, so when the lease runs out (the worker died) another worker may take it.
    Column("claimed_by", String(100)),
    Column("claimed_until", DateTime(timezone=True)),
    UniqueConstraint("subscriber_id", "day", name="uq_delivery_subscriber_day"),
)

sent_papers = Table(
    "sent_papers",
    metadata,
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("paper_key", String(200), primary_key=True),
    Column("day", Date, nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("paper_key", String(200), primary_key=True),
    Column("vote", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

source_state = Table(
    "source_state",
    metadata,
    Column("source", String(500), primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_status", String(20)),
    Column("last_error", Text),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_ok_at", DateTime(timezone=True)),
    Column("last_papers", Integer),
    Column("last_new", Integer),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Date, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("sent", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("report", JSON, nullable=False),
)

suppressions = Table(
    "suppressions",
    metadata,
    # A hash, not the address: a deleted subscriber leaves no readable address behind.
    Column("email_hash", String(64), primary_key=True),
    Column("reason", String(50), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

bounces = Table(
    "bounces",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # The report's Message-ID (plus recipient): scanning a mailbox twice records nothing twice.
    Column("report_id", String(500), nullable=False, unique=True),
    # A hash like suppressions: a removed subscriber leaves no readable address behind.
    Column("email_hash", String(64), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # hard, soft, complaint
    Column("status", String(20), nullable=False, default=""),
    Column("action", String(50), nullable=False, default=""),
    Column("diagnostic", Text, nullable=False, default=""),
    Column("source", String(500), nullable=False, default=""),
    Column("bounced_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

ranker_state = Table(
    "ranker_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Sources added with `digest sources add`; those from DIGEST_SOURCES(_FILE) are not stored.
source_specs = Table(
    "sources",
    metadata,
    Column("name", String(500), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("location", Text, nullable=False),
    Column("options", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def email_hash(email: str) -> str:
    """Return the suppression hash of an address (case-insensitive)."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


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
    )


class Store:
    """The database: open with ``open_store``; every read and write is a method here."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def is_sqlite(self) -> bool:
        """Return True on SQLite."""
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """Open one transaction, translating driver errors into StoreError."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as err:
            raise StoreError(
                f"database error: {err.orig}",
                "check DIGEST_DATABASE_URL and that the database is reachable; "
                "if it is locked, another run may be writing: try again later",
            ) from err

    # -- schema -------------------------------------------------------------------------

    def create(self) -> None:
        """Create every table and record the schema version (safe to repeat)."""
        with self.begin() as conn:
            metadata.create_all(conn)
            found = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version"))
            if found.scalar() is None:
                conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))

    def schema_version(self) -> int | None:
        """Return the stored schema version, or None for an empty database."""
        with self.begin() as conn:
            if not inspect(conn).has_table("meta"):
                return None
            value = conn.execute(
                select(meta.c.value).where(meta.c.key == "schema_version")
            ).scalar()
        return int(value) if value is not None else None

    def check(self, *, create: bool = True) -> None:
        """Verify the schema version; create the schema in an empty database when allowed."""
        version = self.schema_version()
        if version is None:
            if not create:
                raise SchemaError(
                    "the database has no digest schema", "run `digest init` first"
                )
            self.create()
            return
        if version != SCHEMA_VERSION:
            raise SchemaError(
                f"the database schema is version {version}, this digest expects "
                f"{SCHEMA_VERSION}",
                "upgrade digest to a release that knows this schema, or point "
                "DIGEST_DATABASE_URL at a new database",
            )

    # -- papers -------------------------------------------------------------------------

    def save_papers(
        self, items: Iterable[Paper], *, batch_day: date, now: datetime
    ) -> tuple[int, int]:
        """Insert new papers into ``batch_day``'s batch and update known ones.

        Return (new, updated). A known paper keeps its batch day, so it is never mailed
        again as new; its metadata is refreshed (a replacement's new version, merged
        categories, the latest upvotes).
        """
        new = updated = 0
        with self.begin() as conn:
            for paper in items:
                existing = conn.execute(select(papers).where(papers.c.key == paper.key)).first()
                if existing is None:
                    conn.execute(
                        insert(papers).values(
                            key=paper.key,
                            batch_day=batch_day,
                            stored_at=now,
                            updated_at=now,
                            **_paper_values(paper),
                        )
                    )
                    new += 1
                    continue
                merged = _merge_stored(_paper_from_row(existing), paper)
                conn.execute(
                    update(papers)
                    .where(papers.c.key == paper.key)
                    .values(updated_at=now, **_paper_values(merged))
                )
                updated += 1
        return new, updated

    def get_papers(self, keys: Iterable[str]) -> dict[str, Paper]:
        """Return the stored papers with these keys (missing keys are left out)."""
        wanted = sorted(set(keys))
        found: dict[str, Paper] = {}
        with self.begin() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                for row in conn.execute(select(papers).where(papers.c.key.in_(chunk))):
                    found[row.key] = _paper_from_row(row)
        return found

    def batch(self, first: date, last: date) -> list[tuple[Paper, date]]:
        """Return (paper, batch day) for every paper first stored between two days."""
        with self.begin() as conn:
            rows = conn.execute(
                select(papers)
                .where(papers.c.batch_day >= first, papers.c.batch_day <= last)
                .order_by(papers.c.batch_day, papers.c.key)
            )
            return [(_paper_from_row(row), row.batch_day) for row in rows]

    def latest_batch_day(self, on_or_before: date) -> date | None:
        """Return the most recent batch day not after the given day."""
        with self.begin() as conn:
            value = conn.execute(
                select(func.max(papers.c.batch_day)).where(papers.c.batch_day <= on_or_before)
            ).scalar()
        return value if isinstance(value, date) else None

    def history(self, before: date, limit: int = 5000) -> list[Paper]:
        """Return up to ``limit`` papers from batches before a day, newest first."""
        with self.begin() as conn:
            rows = conn.execute(
                select(papers)
                .where(papers.c.batch_day < before)
                .order_by(papers.c.batch_day.desc(), papers.c.key)
                .limit(limit)
            )
            return [_paper_from_row(row) for row in rows]

    def count_papers(self) -> int:
        """Return how many papers are stored."""
        with self.begin() as conn:
            return int(conn.execute(select(func.count()).select_from(papers)).scalar() or 0)

    # -- subscribers --------------------------------------------------------------------

    def add_subscriber(
        self,
        email: str,
        profile: Profile,
        *,
        now: datetime,
        name: str = "",
        status: str = "active",
        send_hour: int = 7,
        timezone: str = "UTC",
        cadence: str = "daily",
        weekday: int = 0,
        max_papers: int = 10,
        empty_digest: str = "skip",
        popularity: float = 0.0,
    ) -> Subscriber:
        """Insert a subscriber; raise UsageError when the address is already present."""
        values = {
            "email": email.strip().lower(),
            "name": name,
            "status": status,
            "profile": profile.to_dict(),
            "send_hour": send_hour,
            "timezone": timezone,
            "cadence": cadence,
            "weekday": weekday,
            "max_papers": max_papers,
            "empty_digest": empty_digest,
            "popularity": popularity,
            "created_at": now,
            "updated_at": now,
            "confirmed_at": now if status == "active" else None,
        }
        try:
            with self.begin() as conn:
                new_id = conn.execute(insert(subscribers).values(**values)).inserted_primary_key
        except IntegrityError as err:
            raise UsageError(
                f"{email} is already subscribed",
                "use `digest subscribers show EMAIL` to see the profile",
            ) from err
        assert new_id is not None
        found = self.get_subscriber(int(new_id[0]))
        assert found is not None
        return found

    def get_subscriber(self, subscriber_id: int) -> Subscriber | None:
        """Return one subscriber by id."""
        with self.begin() as conn:
            row = conn.execute(
                select(subscribers).where(subscribers.c.id == subscriber_id)
            ).first()
        return _subscriber_from_row(row) if row else None

    def get_subscribers(self, ids: Iterable[int]) -> dict[int, Subscriber]:
        """Return {id: subscriber} for these ids (missing ones are left out)."""
        wanted = sorted(set(ids))
        found: dict[int, Subscriber] = {}
        with self.begin() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                for row in conn.execute(select(subscribers).where(subscribers.c.id.in_(chunk))):
                    found[row.id] = _subscriber_from_row(row)
        return found

    def find_subscriber(self, email: str) -> Subscriber | None:
        """Return one subscriber by address (case-insensitive)."""
        with self.begin() as conn:
            row = conn.execute(
                select(subscribers).where(subscribers.c.email == email.strip().lower())
            ).first()
        return _subscriber_from_row(row) if row else None

    def list_subscribers(self, status: str | None = None) -> list[Subscriber]:
        """Return subscribers ordered by id, optionally only those with one status."""
        query = select(subscribers).order_by(subscribers.c.id)
        if status:
            query = query.where(subscribers.c.status == status)
        with self.begin() as conn:
            return [_subscriber_from_row(row) for row in conn.execute(query)]

    def update_subscriber(self, subscriber_id: int, *, now: datetime, **fields: Any) -> None:
        """Change subscriber fields (``profile`` takes a Profile)."""
        if "profile" in fields and isinstance(fields["profile"], Profile):
            fields["profile"] = fields["profile"].to_dict()
        if "email" in fields:
            fields["email"] = str(fields["email"]).strip().lower()
        with self.begin() as conn:
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(updated_at=now, **fields)
            )

    def remove_subscriber(self, subscriber_id: int, *, now: datetime, reason: str) -> None:
        """Delete a subscriber and everything about them, leaving a hashed suppression."""
        with self.begin() as conn:
            email = conn.execute(
                select(subscribers.c.email).where(subscribers.c.id == subscriber_id)
            ).scalar()
            if email is None:
                return
            for table in (deliveries, sent_papers, feedback):
                conn.execute(delete(table).where(table.c.subscriber_id == subscriber_id))
            conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))
            self._suppress(conn, str(email), reason=reason, now=now)

    def suppress(self, email: str, *, reason: str, now: datetime) -> None:
        """Put an address on the suppression list (idempotent)."""
        with self.begin() as conn:
            self._suppress(conn, email, reason=reason, now=now)

    def _suppress(self, conn: Connection, email: str, *, reason: str, now: datetime) -> None:
        # Insert-or-ignore, not check-then-insert: on PostgreSQL two workers may suppress
        # the same address at once, and the loser's plain INSERT would fail.
        conn.execute(
            self._insert_ignore(suppressions).values(
                email_hash=email_hash(email), reason=reason, created_at=now
            )
        )

    def unsuppress(self, email: str) -> None:
        """Lift a suppression (after a new opt-in)."""
        with self.begin() as conn:
            conn.execute(delete(suppressions).where(suppressions.c.email_hash == email_hash(email)))

    def is_suppressed(self, email: str) -> bool:
        """Return True when the address is on the suppression list."""
        with self.begin() as conn:
            found = conn.execute(
                select(suppressions.c.email_hash).where(
                    suppressions.c.email_hash == email_hash(email)
                )
            ).first()
        return found is not None

    def suppressed_hashes(self) -> set[str]:
        """Return every suppressed address hash."""
        with self.begin() as conn:
            return {row[0] for row in conn.execute(select(suppressions.c.email_hash))}

    # -- feedback -----------------------------------------------------------------------

    def record_vote(self, subscriber_id: int, paper_key: str, vote: int, *, now: datetime) -> None:
        """Record a thumbs up (+1) or down (-1); the latest vote on a paper wins."""
        if vote not in (1, -1):
            raise UsageError(f"a vote is +1 or -1, not {vote}", "")
        with self.begin() as conn:
            conn.execute(
                delete(feedback).where(
                    feedback.c.subscriber_id == subscriber_id, feedback.c.paper_key == paper_key
                )
            )
            conn.execute(
                insert(feedback).values(
                    subscriber_id=subscriber_id, paper_key=paper_key, vote=vote, created_at=now
                )
            )

    def votes(self, subscriber_ids: Sequence[int] | None = None) -> dict[int, dict[str, int]]:
        """Return {subscriber id: {paper key: vote}}."""
        query = select(feedback).order_by(feedback.c.created_at)
        if subscriber_ids is not None:
            query = query.where(feedback.c.subscriber_id.in_(list(subscriber_ids)))
        result: dict[int, dict[str, int]] = {}
        with self.begin() as conn:
            for row in conn.execute(query):
                result.setdefault(row.subscriber_id, {})[row.paper_key] = row.vote
        return result

    # -- deliveries ---------------------------------------------------------------------

    def plan_delivery(
        self,
        subscriber_id: int,
        day: date,
        *,
        picks: Sequence[tuple[str, float, str]],
        message_id: str,
        now: datetime,
        status: DeliveryStatus = "planned",
        error: str | None = None,
    ) -> bool:
        """Create the ledger row for (subscriber, day), normally as ``planned``.

        Return False when a row already exists: someone else planned it first, and the
        unique constraint is what guarantees one digest per subscriber per day.
        """
        try:
            with self.begin() as conn:
                conn.execute(insert(deliveries).values(**_plan_values(
                    subscriber_id, day, picks, message_id, now, status, error)))
        except IntegrityError:
            return False
        return True

    def plan_deliveries(
        self,
        rows: Sequence[tuple[int, date, Sequence[tuple[str, float, str]], str, DeliveryStatus]],
        *,
        now: datetime,
    ) -> int:
        """Plan many ledger rows (subscriber, day, picks, message id, status) at once.

        Rows that already exist are left alone; return how many were created. One
        transaction per call keeps a 100k-subscriber run from paying a commit per row.
        """
        if not rows:
            return 0
        created = 0
        with self.begin() as conn:
            days = sorted({day for _, day, _, _, _ in rows})
            ids = [sub_id for sub_id, _, _, _, _ in rows]
            existing: set[tuple[int, date]] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                found = conn.execute(
                    select(deliveries.c.subscriber_id, deliveries.c.day).where(
                        deliveries.c.subscriber_id.in_(chunk), deliveries.c.day.in_(days)
                    )
                )
                existing.update((int(a), b) for a, b in found)
            values = [
                _plan_values(sub_id, day, picks, message_id, now, status, None)
                for sub_id, day, picks, message_id, status in rows
                if (sub_id, day) not in existing
            ]
            if values:
                # A planner on another host may have planned some of these meanwhile
                # (PostgreSQL does not serialise writers): leave its rows alone.
                conn.execute(self._insert_ignore(deliveries), values)
                created = len(values)
        return created

    def get_delivery(self, subscriber_id: int, day: date) -> Delivery | None:
        """Return the ledger row for (subscriber, day)."""
        with self.begin() as conn:
            row = conn.execute(
                select(deliveries).where(
                    deliveries.c.subscriber_id == subscriber_id, deliveries.c.day == day
                )
            ).first()
        return _delivery_from_row(row) if row else None

    def deliveries_for_day(self, day: date) -> dict[int, Delivery]:
        """Return {subscriber id: ledger row} for one day."""
        with self.begin() as conn:
            rows = conn.execute(select(deliveries).where(deliveries.c.day == day))
            return {row.subscriber_id: _delivery_from_row(row) for row in rows}

    def last_delivered_days(self) -> dict[int, date]:
        """Return {subscriber id: day of their latest digest that was sent}.

        Only ``sent`` counts: papers of a day whose digest was skipped or failed stay
        candidates for the next digest, so nothing falls through a gap.
        """
        with self.begin() as conn:
            rows = conn.execute(
                select(deliveries.c.subscriber_id, func.max(deliveries.c.day))
                .where(deliveries.c.status == "sent")
                .group_by(deliveries.c.subscriber_id)
            )
            return {int(row[0]): row[1] for row in rows}

    def list_deliveries(
        self, *, status: str | None = None, day: date | None = None, limit: int = 1000
    ) -> list[tuple[Delivery, str]]:
        """Return (ledger row, subscriber email), newest first."""
        query = (
            select(deliveries, subscribers.c.email)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .order_by(deliveries.c.day.desc(), deliveries.c.subscriber_id)
            .limit(limit)
        )
        if status:
            query = query.where(deliveries.c.status == status)
        if day:
            query = query.where(deliveries.c.day == day)
        with self.begin() as conn:
            return [(_delivery_from_row(row), row.email) for row in conn.execute(query)]

    def set_delivery_status(
        self,
        subscriber_id: int,
        day: date,
        status: DeliveryStatus,
        *,
        now: datetime,
        error: str | None = None,
        attempt: bool = False,
        next_attempt_at: datetime | None = None,
        expect: Sequence[str] | None = None,
    ) -> bool:
        """Move a ledger row to a new status; with ``expect``, only from those statuses.

        Return True when the row changed. ``sent`` also records every paper of the
        digest as sent to the subscriber, in the same transaction.
        """
        values: dict[str, Any] = {"status": status, "updated_at": now, "error": error,
                                  "next_attempt_at": next_attempt_at}
        if attempt:
            values["attempts"] = deliveries.c.attempts + 1
        where = [deliveries.c.subscriber_id == subscriber_id, deliveries.c.day == day]
        if expect is not None:
            where.append(deliveries.c.status.in_(list(expect)))
        with self.begin() as conn:
            changed = conn.execute(update(deliveries).where(*where).values(**values)).rowcount
            if changed and status == "sent":
                keys = conn.execute(
                    select(deliveries.c.papers).where(
                        deliveries.c.subscriber_id == subscriber_id, deliveries.c.day == day
                    )
                ).scalar()
                rows = [
                    {"subscriber_id": subscriber_id, "paper_key": key, "day": day}
                    for key, _score, _reason in _picks(keys)
                ]
                if rows:
                    conn.execute(self._insert_ignore(sent_papers), rows)
        return bool(changed)

    def _insert_ignore(self, table: Table) -> Any:
        """Return an INSERT that skips rows whose primary key already exists."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()

    def sent_keys(self, subscriber_ids: Sequence[int], keys: Iterable[str]) -> dict[int, set[str]]:
        """Return {subscriber id: those of ``keys`` already mailed to them}."""
        wanted = list(set(keys))
        result: dict[int, set[str]] = {}
        if not wanted or not subscriber_ids:
            return result
        with self.begin() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = conn.execute(
                    select(sent_papers.c.subscriber_id, sent_papers.c.paper_key).where(
                        sent_papers.c.paper_key.in_(chunk)
                    )
                )
                allowed = set(subscriber_ids)
                for sub_id, key in rows:
                    if sub_id in allowed:
                        result.setdefault(int(sub_id), set()).add(str(key))
        return result

    def claim_deliveries(
        self,
        worker: str,
        *,
        now: datetime,
        lease: timedelta,
        limit: int,
        max_attempts: int,
        days: Sequence[date] | None = None,
        subscriber_ids: Sequence[int] | None = None,
    ) -> list[Delivery]:
        """Lease up to ``limit`` sendable rows to one worker and return them.

        Sendable: ``planned``, or ``temp_failed`` with its backoff passed and attempts
        left; not leased to a live worker. On PostgreSQL the candidates are locked with
        ``FOR UPDATE SKIP LOCKED``, so concurrent workers on many machines never wait for
        or take each other's rows; SQLite serialises writers anyway.
        """
        free = or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now)
        ready = or_(
            deliveries.c.status == "planned",
            and_(
                deliveries.c.status == "temp_failed",
                deliveries.c.attempts < max_attempts,
                or_(
                    deliveries.c.next_attempt_at.is_(None),
                    deliveries.c.next_attempt_at <= now,
                ),
            ),
        )
        query = select(deliveries.c.id).where(ready, free)
        if days is not None:
            query = query.where(deliveries.c.day.in_(list(days)))
        if subscriber_ids is not None:
            query = query.where(deliveries.c.subscriber_id.in_(list(subscriber_ids)))
        query = query.order_by(deliveries.c.id).limit(limit)
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self.begin() as conn:
            ids = [int(row[0]) for row in conn.execute(query)]
            if not ids:
                return []
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids), ready, free)
                .values(claimed_by=worker, claimed_until=now + lease)
            )
            rows = conn.execute(
                select(deliveries)
                .where(deliveries.c.id.in_(ids), deliveries.c.claimed_by == worker)
                .order_by(deliveries.c.id)
            )
            return [_delivery_from_row(row) for row in rows]

    def start_sending(self, subscriber_id: int, day: date, *, worker: str, now: datetime) -> bool:
        """Move a row leased to ``worker`` from planned/temp_failed to ``sending``.

        A compare-and-set: False when the lease was lost or the row moved on, and the
        caller must then not transmit.
        """
        with self.begin() as conn:
            changed = conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.subscriber_id == subscriber_id,
                    deliveries.c.day == day,
                    deliveries.c.claimed_by == worker,
                    deliveries.c.status.in_(("planned", "temp_failed")),
                )
                .values(
                    status="sending",
                    attempts=deliveries.c.attempts + 1,
                    updated_at=now,
                    claimed_until=None,
                )
            ).rowcount
        return bool(changed)

    def release_claims(self, worker: str) -> int:
        """Give back every lease a worker still holds on rows it did not start."""
        with self.begin() as conn:
            return int(
                conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.claimed_by == worker,
                        deliveries.c.status.in_(("planned", "temp_failed")),
                    )
                    .values(claimed_by=None, claimed_until=None)
                ).rowcount
            )

    def mark_stale_sending(
        self,
        *,
        now: datetime,
        older_than: datetime | None = None,
        alive: Callable[[str], bool] | None = None,
    ) -> int:
        """Turn rows left in ``sending`` by a dead process into ``unknown``.

        A row counts as dead when its worker was on this host and its process is gone
        (killed mid-send), or, for workers elsewhere, when it has been ``sending`` since
        before ``older_than`` (far past any SMTP timeout). Without ``older_than`` every
        ``sending`` row is taken as dead (only safe when no sender can be live). Such a
        row may or may not have reached the server, so it is never resent
        automatically; an operator decides with ``digest deliveries retry``.
        """
        check = alive or _local_worker_alive
        sending = deliveries.c.status == "sending"
        with self.begin() as conn:
            holders = {
                str(row[0])
                for row in conn.execute(
                    select(deliveries.c.claimed_by)
                    .where(sending, deliveries.c.claimed_by.is_not(None))
                    .distinct()
                )
            }
            dead = sorted(h for h in holders if not check(h))
            stale: list[ColumnElement[bool]] = [
                deliveries.c.claimed_by.is_(None),
                deliveries.c.claimed_by.in_(dead),
            ]
            if older_than is None:
                stale = [sending]
            else:
                stale.append(deliveries.c.updated_at < older_than)
            where = [sending, or_(*stale)]
            return int(
                conn.execute(
                    update(deliveries)
                    .where(*where)
                    .values(
                        status="unknown",
                        updated_at=now,
                        error="the run stopped while this message was being sent",
                    )
                ).rowcount
            )

    def delivery_counts(self, day: date | None = None) -> dict[str, int]:
        """Return {status: count} over the ledger, optionally for one day."""
        query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        if day:
            query = query.where(deliveries.c.day == day)
        with self.begin() as conn:
            return {str(row[0]): int(row[1]) for row in conn.execute(query)}

    # -- sources and runs ---------------------------------------------------------------

    def source_states(self) -> dict[str, tuple[str | None, str | None]]:
        """Return {source name: (etag, last_modified)} for conditional GETs."""
        with self.begin() as conn:
            rows = conn.execute(
                select(source_state.c.source, source_state.c.etag, source_state.c.last_modified)
            )
            return {row.source: (row.etag, row.last_modified) for row in rows}

    def record_source(self, result: SourceResult, *, now: datetime) -> None:
        """Store one source's outcome and validators for its next conditional GET."""
        values: dict[str, Any] = {
            "last_status": result.status,
            "last_error": result.error,
            "last_run_at": now,
            "last_papers": len(result.papers),
            "last_new": result.new,
        }
        if result.status != "error":
            values["last_ok_at"] = now
        if result.etag is not None or result.last_modified is not None:
            values["etag"] = result.etag
            values["last_modified"] = result.last_modified
        with self.begin() as conn:
            exists = conn.execute(
                select(source_state.c.source).where(source_state.c.source == result.source)
            ).first()
            if exists:
                conn.execute(
                    update(source_state)
                    .where(source_state.c.source == result.source)
                    .values(**values)
                )
            else:
                conn.execute(insert(source_state).values(source=result.source, **values))

    def source_health(self) -> list[dict[str, Any]]:
        """Return every source's last status, for `digest status` and `digest sources list`."""
        with self.begin() as conn:
            rows = conn.execute(select(source_state).order_by(source_state.c.source))
            return [
                {
                    "source": row.source,
                    "status": row.last_status,
                    "error": row.last_error,
                    "last_run_at": _iso(row.last_run_at),
                    "last_ok_at": _iso(row.last_ok_at),
                    "papers": row.last_papers,
                    "new": row.last_new,
                }
                for row in rows
            ]

    def record_run(self, report: RunReport) -> None:
        """Keep a run's report for `digest status`."""
        with self.begin() as conn:
            conn.execute(
                insert(runs).values(
                    day=report.day,
                    started_at=report.started_at,
                    finished_at=report.finished_at,
                    sent=report.sent,
                    failed=report.failed,
                    report=report.to_dict(),
                )
            )

    def recent_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """Return the latest run reports, newest first."""
        with self.begin() as conn:
            rows = conn.execute(select(runs.c.report).order_by(runs.c.id.desc()).limit(limit))
            return [dict(row[0]) for row in rows]

    # -- ranker state -------------------------------------------------------------------

    def load_ranker_state(self) -> bytes | None:
        """Return the stored vectorizer state, or None."""
        with self.begin() as conn:
            value = conn.execute(select(ranker_state.c.data).where(ranker_state.c.id == 1)).scalar()
        return bytes(value) if value is not None else None

    def save_ranker_state(self, data: bytes, *, now: datetime) -> None:
        """Replace the stored vectorizer state."""
        with self.begin() as conn:
            conn.execute(delete(ranker_state).where(ranker_state.c.id == 1))
            conn.execute(insert(ranker_state).values(id=1, data=data, updated_at=now))

    # -- deliveries and bounces ---------------------------------------------------------

    def retry_deliveries(
        self,
        *,
        status: DeliveryStatus,
        now: datetime,
        day: date | None = None,
        subscriber_id: int | None = None,
    ) -> int:
        """Move ``status`` rows back to ``planned`` (an operator's decision); return how many.

        The attempts count starts over, so a row that used up its retries gets a fresh
        budget. Only rows still in ``status`` move, so a row a run changed meanwhile is
        left alone.
        """
        where = [deliveries.c.status == status]
        if day is not None:
            where.append(deliveries.c.day == day)
        if subscriber_id is not None:
            where.append(deliveries.c.subscriber_id == subscriber_id)
        with self.begin() as conn:
            return int(
                conn.execute(
                    update(deliveries)
                    .where(*where)
                    .values(
                        status="planned",
                        attempts=0,
                        next_attempt_at=None,
                        updated_at=now,
                        error=f"retried by an operator (was {status})",
                    )
                ).rowcount
            )

    def record_bounce(
        self,
        email: str,
        *,
        kind: str,
        status: str,
        action: str,
        diagnostic: str,
        report_id: str,
        source: str,
        at: datetime,
        now: datetime,
    ) -> bool:
        """Record one bounce or complaint; return False if this report was recorded before."""
        try:
            with self.begin() as conn:
                conn.execute(
                    insert(bounces).values(
                        report_id=report_id[:500],
                        email_hash=email_hash(email),
                        kind=kind,
                        status=status[:20],
                        action=action[:50],
                        diagnostic=diagnostic,
                        source=source[:500],
                        bounced_at=at,
                        recorded_at=now,
                    )
                )
        except IntegrityError:
            return False
        return True

    def soft_bounce_days(self, email: str, *, since: datetime) -> int:
        """Return on how many distinct UTC days the address soft-bounced since ``since``."""
        with self.begin() as conn:
            rows = conn.execute(
                select(bounces.c.bounced_at).where(
                    bounces.c.email_hash == email_hash(email),
                    bounces.c.kind == "soft",
                    bounces.c.bounced_at >= since,
                )
            )
            days = {stamp.date() for (value,) in rows if (stamp := _utc(value)) is not None}
        return len(days)

    def release_dead_claims(self, *, alive: Callable[[str], bool] | None = None) -> int:
        """Give back leases on unstarted rows whose worker process is gone; return how many.

        A worker killed with SIGKILL never runs its ``release_claims``, and its leased
        rows would wait out the whole lease before a rerun could send them. A worker name
        starts with ``host:pid``; by default a worker on this host whose pid no longer
        exists is dead, and workers on other hosts are left to their lease.
        """
        check = alive or _local_worker_alive
        unstarted = deliveries.c.status.in_(("planned", "temp_failed"))
        with self.begin() as conn:
            holders = {
                str(row[0])
                for row in conn.execute(
                    select(deliveries.c.claimed_by)
                    .where(deliveries.c.claimed_by.is_not(None), unstarted)
                    .distinct()
                )
            }
            dead = sorted(h for h in holders if not check(h))
            if not dead:
                return 0
            return int(
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.claimed_by.in_(dead), unstarted)
                    .values(claimed_by=None, claimed_until=None)
                ).rowcount
            )

    def list_bounces(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Return the latest bounces, newest first, with the address when it is a subscriber's."""
        with self.begin() as conn:
            addresses = {
                email_hash(str(row[0])): str(row[0])
                for row in conn.execute(select(subscribers.c.email))
            }
            suppressed = {row[0] for row in conn.execute(select(suppressions.c.email_hash))}
            rows = conn.execute(
                select(bounces)
                .order_by(bounces.c.bounced_at.desc(), bounces.c.id.desc())
                .limit(limit)
            ).all()
        return [
            {
                "email": addresses.get(row.email_hash),
                "email_hash": row.email_hash,
                "kind": row.kind,
                "status": row.status,
                "action": row.action,
                "diagnostic": row.diagnostic,
                "source": row.source,
                "bounced_at": _iso(row.bounced_at),
                "suppressed": row.email_hash in suppressed,
            }
            for row in rows
        ]

    # -- web ----------------------------------------------------------------------------

    def claim_confirmation(
        self, subscriber_id: int, *, now: datetime, interval: timedelta
    ) -> bool:
        """Record that a confirmation mail goes out now; False if one went out within ``interval``.

        One conditional UPDATE, so two simultaneous sign-ups for an address cannot both
        send: at most one confirmation mail per address per interval.
        """
        recent = now - interval
        with self.begin() as conn:
            changed = conn.execute(
                update(subscribers)
                .where(
                    subscribers.c.id == subscriber_id,
                    (subscribers.c.confirm_sent_at.is_(None))
                    | (subscribers.c.confirm_sent_at <= recent),
                )
                .values(confirm_sent_at=now)
            ).rowcount
        return bool(changed)

    def release_confirmation(self, subscriber_id: int) -> None:
        """Forget the last confirmation mail (it could not be sent), so a retry may send one."""
        with self.begin() as conn:
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(confirm_sent_at=None)
            )

    def confirm_subscriber(self, subscriber_id: int, *, now: datetime) -> bool:
        """Activate a subscriber after the double opt-in and lift any suppression of the address.

        Return False when no such subscriber exists. Confirming twice changes nothing.
        """
        with self.begin() as conn:
            row = conn.execute(
                select(subscribers.c.email, subscribers.c.status).where(
                    subscribers.c.id == subscriber_id
                )
            ).first()
            if row is None:
                return False
            if row.status != "active":
                conn.execute(
                    update(subscribers)
                    .where(subscribers.c.id == subscriber_id)
                    .values(status="active", confirmed_at=now, updated_at=now)
                )
            # The opt-in just proved the address owner wants mail again.
            conn.execute(
                delete(suppressions).where(suppressions.c.email_hash == email_hash(row.email))
            )
        return True

    def change_status(
        self, subscriber_id: int, status: str, *, now: datetime, expect: Sequence[str]
    ) -> bool:
        """Move a subscriber to ``status`` only from one of ``expect``; return True if it moved."""
        with self.begin() as conn:
            changed = conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id, subscribers.c.status.in_(list(expect)))
                .values(status=status, updated_at=now)
            ).rowcount
        return bool(changed)

    def export_subscriber(self, subscriber_id: int) -> dict[str, Any] | None:
        """Return everything stored about one subscriber as a JSON-ready dict, or None."""
        with self.begin() as conn:
            row = conn.execute(
                select(subscribers).where(subscribers.c.id == subscriber_id)
            ).first()
            if row is None:
                return None
            votes = conn.execute(
                select(feedback)
                .where(feedback.c.subscriber_id == subscriber_id)
                .order_by(feedback.c.created_at)
            ).all()
            ledger = conn.execute(
                select(deliveries)
                .where(deliveries.c.subscriber_id == subscriber_id)
                .order_by(deliveries.c.day)
            ).all()
            sent = conn.execute(
                select(sent_papers)
                .where(sent_papers.c.subscriber_id == subscriber_id)
                .order_by(sent_papers.c.day, sent_papers.c.paper_key)
            ).all()
        return {
            "id": row.id,
            "email": row.email,
            "name": row.name,
            "status": row.status,
            "profile": Profile.from_dict(row.profile or {}).to_dict(),
            "send_hour": row.send_hour,
            "timezone": row.timezone,
            "cadence": row.cadence,
            "weekday": row.weekday,
            "max_papers": row.max_papers,
            "empty_digest": row.empty_digest,
            "popularity": row.popularity,
            "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at),
            "confirmed_at": _iso(row.confirmed_at),
            "confirm_sent_at": _iso(row.confirm_sent_at),
            "votes": [
                {"paper": v.paper_key, "vote": v.vote, "at": _iso(v.created_at)} for v in votes
            ],
            "deliveries": [
                {
                    "day": d.day.isoformat(),
                    "status": d.status,
                    "message_id": d.message_id,
                    "papers": list(d.papers or ()),
                    "attempts": d.attempts,
                }
                for d in ledger
            ],
            "sent_papers": [{"paper": s.paper_key, "day": s.day.isoformat()} for s in sent],
        }

    # -- sources ------------------------------------------------------------------------

    def list_sources(self) -> list[SourceSpec]:
        """Return the sources added with `digest sources add`, oldest first."""
        with self.begin() as conn:
            if not inspect(conn).has_table("sources"):
                return []  # a schema-1 database made before the table existed
            rows = conn.execute(
                select(source_specs).order_by(source_specs.c.created_at, source_specs.c.name)
            )
            return [
                SourceSpec(
                    name=row.name,
                    kind=row.kind,
                    location=row.location,
                    options=tuple((str(k), str(v)) for k, v in sorted((row.options or {}).items())),
                )
                for row in rows
            ]

    def add_source(self, spec: SourceSpec, *, now: datetime) -> None:
        """Store a source; raise UsageError when one of that name exists."""
        with self.begin() as conn:
            source_specs.create(conn, checkfirst=True)
            try:
                conn.execute(
                    insert(source_specs).values(
                        name=spec.name,
                        kind=spec.kind,
                        location=spec.location,
                        options=dict(spec.options),
                        created_at=now,
                    )
                )
            except IntegrityError as err:
                raise UsageError(
                    f"a source named {spec.name!r} is already stored",
                    "pick another --name, or `digest sources remove` the old one first",
                ) from err

    def remove_source(self, name: str) -> bool:
        """Forget a stored source and its health; return False when none had that name."""
        with self.begin() as conn:
            if not inspect(conn).has_table("sources"):
                return False
            removed = conn.execute(delete(source_specs).where(source_specs.c.name == name))
            if removed.rowcount:
                conn.execute(delete(source_state).where(source_state.c.source == name))
            return bool(removed.rowcount)


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
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets readers (web, status) proceed while a run writes; busy_timeout makes a
    # writer wait for another instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # Take over transaction control from pysqlite (see _sqlite_begin).
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # BEGIN IMMEDIATE takes the write lock up front. A deferred transaction that reads
    # and then writes fails at once with "database is locked" when another writer got
    # there first (SQLite cannot wait on a lock upgrade); an immediate one waits for
    # busy_timeout instead. Transactions here are short, so serialising them is cheap.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_store(url: str, *, create: bool = True) -> Store:
    """Connect to the database, creating an SQLite file's folder, and check the schema."""
    try:
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
    except (SQLAlchemyError, ImportError, ValueError) as err:
        raise StoreError(
            f"cannot open the database at DIGEST_DATABASE_URL: {err}",
            "check the URL; PostgreSQL needs `pip install 'digest[postgres]'`",
        ) from err
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    store = Store(engine)
    store.check(create=create)
    return store


def day_range(last: date, days: int) -> tuple[date, date]:
    """Return (first, last) covering ``days`` days ending at ``last``."""
    return last - timedelta(days=max(days, 1) - 1), last
