"""The delivery ledger: one row per (subscriber, day), and the papers sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from digest.models import Delivery, DeliveryStatus, OutgoingMessage
from digest.store.base import Prepared, StoreBase
from digest.store.outbox import _outbox_values
from digest.store.rows import _delivery_from_row, _picks, _plan_values, _utc, in_chunks
from digest.store.tables import deliveries, outbox, sent_papers, subscribers

# Built once: a statement object caches its cache key, so executing it again skips
# rebuilding and re-hashing the expression (most of a per-message update's CPU).
_MARK_SENT = (
    update(deliveries)
    .where(
        deliveries.c.subscriber_id == bindparam("b_subscriber_id"),
        deliveries.c.day == bindparam("b_day"),
    )
    .values(status="sent", updated_at=bindparam("b_now"), error=None, next_attempt_at=None)
)

# Rows neither sent nor given up: planned, being sent, to be retried, or of unknown
# outcome (maybe delivered). Their papers are not free for another digest.
UNSETTLED = ("planned", "sending", "temp_failed", "unknown")


class DeliveryMixin(StoreBase):
    """Plan ledger rows, move them between statuses, read them back."""

    @cached_property
    def _sent_papers_insert(self) -> Any:
        """Return the INSERT of sent papers that skips ones already recorded (built once)."""
        return self._insert_ignore(sent_papers)

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
        messages: Mapping[tuple[int, date], OutgoingMessage] | None = None,
    ) -> int:
        """Plan many ledger rows (subscriber, day, picks, message id, status) at once.

        Rows that already exist are left alone; return how many were created. One
        transaction per call keeps a 100k-subscriber run from paying a commit per row.
        ``messages`` are digests written for some of the rows: each goes into the
        outbox with its row, in the same transaction, and only if the row is created.
        """
        if not rows:
            return 0
        created = 0
        with self.begin() as conn:
            days = sorted({day for _, day, _, _, _ in rows})
            ids = [sub_id for sub_id, _, _, _, _ in rows]
            existing: set[tuple[int, date]] = set()
            for chunk in in_chunks(ids):
                found = conn.execute(
                    select(deliveries.c.subscriber_id, deliveries.c.day).where(
                        deliveries.c.subscriber_id.in_(chunk), deliveries.c.day.in_(days)
                    )
                )
                existing.update((int(a), b) for a, b in found)
            # A subscriber deleted since the page was read (the preferences page's
            # "Delete me", `digest subscribers remove`) gets no row: inserted, it broke
            # the foreign key, which no "ignore" covers, and failed the whole run. On
            # PostgreSQL the rows found are locked against deletion until the commit.
            present: set[int] = set()
            for chunk in in_chunks(sorted(set(ids))):
                query = select(subscribers.c.id).where(subscribers.c.id.in_(chunk))
                if self.engine.dialect.name == "postgresql":
                    query = query.with_for_update(key_share=True)
                present.update(int(sub_id) for (sub_id,) in conn.execute(query))
            values = [
                _plan_values(sub_id, day, picks, message_id, now, status, None)
                for sub_id, day, picks, message_id, status in rows
                if (sub_id, day) not in existing and sub_id in present
            ]
            if values:
                # A planner on another host may have planned some of these meanwhile
                # (PostgreSQL does not serialise writers): leave its rows alone, and
                # file messages only for the rows this insert created.
                insert_rows = self._insert_ignore(deliveries).returning(
                    deliveries.c.subscriber_id, deliveries.c.day
                )
                made = [(int(a), b) for a, b in conn.execute(insert_rows, values)]
                created = len(made)
                stored = [
                    _outbox_values(sub_id, day, messages[(sub_id, day)], now)
                    for sub_id, day in made
                    if messages and (sub_id, day) in messages
                ]
                if stored:
                    conn.execute(insert(outbox), stored)
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

    def deliveries_for_day(
        self, day: date, *, subscriber_ids: tuple[int, int] | None = None,
        papers: bool = True,
    ) -> dict[int, Delivery]:
        """Return {subscriber id: ledger row} for one day (ids in an inclusive range).

        ``papers=False`` leaves each row's papers out (empty ``picks`` and
        ``paper_keys``): what the plan phase reads to tell which digests are due, five
        days of rows for every page of subscribers. Parsing their papers was most of
        that phase's time on a ledger with history (bench/ledger.py).
        """
        if papers:
            query = select(deliveries)
        else:
            c = deliveries.c
            query = select(c.subscriber_id, c.status, c.message_id, c.attempts, c.error,
                           c.updated_at, c.next_attempt_at, c.created_at)
        query = query.where(deliveries.c.day == day)
        if subscriber_ids is not None:
            low, high = subscriber_ids
            query = query.where(deliveries.c.subscriber_id.between(low, high))
        with self.begin() as conn:
            rows = conn.execute(query)
            if papers:
                return {row.subscriber_id: _delivery_from_row(row) for row in rows}
            # Built from the tuple here rather than by _delivery_from_row on the row
            # without its papers: every column but the papers, read by attribute, took
            # due-ness in bench/ledger.py (20,000 x 14 days) from 1.9-2.6 s to 3.1-3.7 s.
            return {
                sub_id: Delivery(subscriber_id=sub_id, day=day, status=status,
                                 message_id=message_id, attempts=attempts, error=error,
                                 updated_at=_utc(updated), next_attempt_at=_utc(next_at),
                                 created_at=_utc(created))
                for sub_id, status, message_id, attempts, error, updated, next_at, created
                in rows
            }

    def last_delivered_days(
        self, subscriber_ids: Sequence[int] | None = None
    ) -> dict[int, date]:
        """Return {subscriber id: day of their latest digest that was sent}, for these
        subscribers (None: everyone).

        Only ``sent`` counts: papers of a day whose digest was skipped or failed stay
        candidates for the next digest, so nothing falls through a gap. For given
        subscribers, each one's newest sent row is read down the (subscriber, day)
        index from its newest row, a row or two each whatever the ledger's length: a
        query over the whole ledger, as for every page of the plan phase before, cost
        1.8 s a page at 100,000 subscribers with 14 days of digests (bench/ledger.py).
        """
        latest = (
            select(deliveries.c.day)
            .where(deliveries.c.subscriber_id == subscribers.c.id,
                   deliveries.c.status == "sent")
            .order_by(deliveries.c.day.desc())
            .limit(1)
            .scalar_subquery()
        )
        query = select(subscribers.c.id, latest)
        with self.begin() as conn:
            if subscriber_ids is None:
                rows = list(conn.execute(query))
            else:
                rows = [row for chunk in in_chunks(sorted(set(subscriber_ids)))
                        for row in conn.execute(query.where(subscribers.c.id.in_(chunk)))]
        return {int(sub_id): day for sub_id, day in rows if day is not None}

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
        give_back: bool = False,
    ) -> bool:
        """Move a ledger row to a new status; with ``expect``, only from those statuses.

        Return True when the row changed. ``sent`` also records every paper of the
        digest as sent to the subscriber, in the same transaction. ``give_back``
        returns the attempt its start counted (nothing of the message went out).
        """
        values: dict[str, Any] = {"status": status, "updated_at": now, "error": error,
                                  "next_attempt_at": next_attempt_at}
        if attempt:
            values["attempts"] = deliveries.c.attempts + 1
        elif give_back:
            values["attempts"] = deliveries.c.attempts - 1
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
                    conn.execute(self._sent_papers_insert, rows)
        return bool(changed)

    def mark_sent(
        self, subscriber_id: int, day: date, paper_keys: Sequence[str], *, now: datetime
    ) -> bool:
        """Record the server's 250: the row is ``sent`` and each of its papers too.

        ``paper_keys`` are the row's papers as claimed (a planned row's papers never
        change), so nothing is read back. One transaction, committed before the
        caller transmits anything else. Return True when the row changed.
        """
        record = self._sent_params(subscriber_id, day, paper_keys, now=now)
        with self.driver_transaction() as cursor:
            return self._record_sent(cursor, record)

    def _sent_params(
        self, subscriber_id: int, day: date, paper_keys: Sequence[str], *, now: datetime,
    ) -> tuple[Any, list[Any]]:
        """Return mark_sent's parameters (the UPDATE's, each sent paper's INSERT's).

        Built before the transaction: on SQLite it holds the write lock, which every
        send worker's message waits for in turn, so the lock is held only to run them.
        """
        mark, insert_sent = self._prepared_mark_sent
        return (
            mark.params({"b_subscriber_id": subscriber_id, "b_day": day, "b_now": now}),
            insert_sent.params_each({"b_subscriber_id": subscriber_id, "b_day": day},
                                    "b_paper_key", paper_keys) if paper_keys else [],
        )

    def _record_sent(self, cursor: Any, record: tuple[Any, list[Any]]) -> bool:
        """mark_sent's statements (with _sent_params' parameters), on an open driver
        transaction's cursor."""
        mark, insert_sent = self._prepared_mark_sent
        cursor.execute(mark.sql, record[0])
        changed = cursor.rowcount
        if changed and record[1]:
            cursor.executemany(insert_sent.sql, record[1])
        return bool(changed)

    @cached_property
    def _prepared_mark_sent(self) -> tuple[Prepared, Prepared]:
        """Return mark_sent's UPDATE and its INSERT of sent papers, compiled once."""
        insert_sent = self._sent_papers_insert.values(
            subscriber_id=bindparam("b_subscriber_id"),
            paper_key=bindparam("b_paper_key"),
            day=bindparam("b_day"),
        )
        return Prepared(_MARK_SENT, self.engine), Prepared(insert_sent, self.engine)

    def unsettled_deliveries(self, subscriber_ids: Sequence[int]) -> dict[int, list[Delivery]]:
        """Return {subscriber id: their rows not sent and not given up (UNSETTLED)}.

        Their papers are on their way (planned, being sent, to be retried) or may have
        arrived (unknown): a later digest must not pick them again, unless the row is
        superseded by it first (supersede_deliveries).
        """
        found: dict[int, list[Delivery]] = {}
        with self.begin() as conn:
            for chunk in in_chunks(sorted(set(subscriber_ids))):
                rows = conn.execute(select(deliveries).where(
                    deliveries.c.subscriber_id.in_(chunk),
                    deliveries.c.status.in_(UNSETTLED),
                ))
                for row in rows:
                    found.setdefault(int(row.subscriber_id), []).append(_delivery_from_row(row))
        return found

    def supersede_deliveries(
        self, rows: Sequence[tuple[int, date, date]], *, now: datetime
    ) -> set[tuple[int, date]]:
        """Skip each (subscriber, day) row that is still planned or to be retried, in
        favour of the digest of a later day (the third item); return the rows skipped.

        A compare-and-set, as a send's start is: a row a worker has started sending
        stays as it is (its papers then count as taken), and a worker holding the lease
        of a skipped row finds it no longer planned and leaves it.
        """
        moved: set[tuple[int, date]] = set()
        with self.begin() as conn:
            for subscriber_id, day, later in rows:
                changed = conn.execute(
                    update(deliveries)
                    .where(deliveries.c.subscriber_id == subscriber_id,
                           deliveries.c.day == day,
                           deliveries.c.status.in_(("planned", "temp_failed")))
                    .values(status="skipped", updated_at=now, next_attempt_at=None,
                            error=f"superseded by the digest of {later.isoformat()}, "
                                  "which covers its papers")
                ).rowcount
                if changed:
                    moved.add((subscriber_id, day))
        return moved

    def sent_keys(
        self, subscriber_ids: Sequence[int], keys: Iterable[str], *, since: date | None = None
    ) -> dict[int, set[str]]:
        """Return {subscriber id: those of ``keys`` already mailed to them}, looking only
        at digests of ``since`` or later (None: all of them).

        Read from the subscribers' sent ledger rows (a row's papers are what was mailed:
        the sent papers are recorded from them), down the (subscriber, day) index: the
        papers the plan phase asks about are the newest, mailed by recent digests if at
        all. Asked by paper from the sent papers (no index leads with the paper), each
        500 keys read that whole table: 9-21 s a page of 5,000 subscribers at 100,000
        subscribers with 14 days of digests (14 million rows). An index there would
        cost every mailed paper's insert an update more, in the send phase.
        """
        wanted = set(keys)
        result: dict[int, set[str]] = {}
        if not wanted or not subscriber_ids:
            return result
        with self.begin() as conn:
            for chunk in in_chunks(sorted(set(subscriber_ids))):
                # The status is compared here, not in SQL: given "status = 'sent'", SQLite
                # (with no statistics gathered) reads down the status index instead,
                # every sent row of the ledger.
                query = select(deliveries.c.subscriber_id, deliveries.c.status,
                               deliveries.c.papers).where(
                    deliveries.c.subscriber_id.in_(chunk))
                if since is not None:
                    query = query.where(deliveries.c.day >= since)
                for sub_id, status, picks in conn.execute(query):
                    if status != "sent":
                        continue
                    mailed = {key for key, _, _ in _picks(picks)} & wanted
                    if mailed:
                        result.setdefault(int(sub_id), set()).update(mailed)
        return result

    def delivery_counts(self, day: date | None = None) -> dict[str, int]:
        """Return {status: count} over the ledger, optionally for one day."""
        query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        if day:
            query = query.where(deliveries.c.day == day)
        with self.begin() as conn:
            return {str(row[0]): int(row[1]) for row in conn.execute(query)}
