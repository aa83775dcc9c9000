"""Send workers' leases on ledger rows, and rows left behind by dead workers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from digest.models import Delivery
from digest.store.base import Prepared
from digest.store.delivery import DeliveryMixin
from digest.store.rows import _delivery_from_row, _local_worker_alive, email_hash
from digest.store.tables import deliveries, subscribers, suppressions

# Built once: a statement object caches its cache key, so executing it again skips
# rebuilding and re-hashing the expression (most of a per-message update's CPU).
_START_SENDING = (
    update(deliveries)
    .where(
        deliveries.c.subscriber_id == bindparam("b_subscriber_id"),
        deliveries.c.day == bindparam("b_day"),
        deliveries.c.claimed_by == bindparam("b_worker"),
        # Two comparisons rather than IN: an IN list is expanded on every execution.
        or_(deliveries.c.status == "planned", deliveries.c.status == "temp_failed"),
        # The subscriber as they are now, not as the worker read them when it leased
        # the chunk (or as the suppressions were when the phase began): someone who
        # unsubscribed or paused a moment ago, or whose address a bounce scan or a
        # complaint stopped meanwhile, is not mailed. Two lookups by primary key.
        exists().where(subscribers.c.id == bindparam("b_subscriber_id"),
                       subscribers.c.status == "active"),
        ~exists().where(suppressions.c.email_hash == bindparam("b_email_hash")),
    )
    .values(
        status="sending",
        attempts=deliveries.c.attempts + 1,
        updated_at=bindparam("b_now"),
        claimed_until=None,
    )
)


class LeaseMixin(DeliveryMixin):
    """Claim, start and release ledger rows for one send worker (on the ledger's rows)."""

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
        statements = self._claim_statements[(days is not None, subscriber_ids is not None)]
        candidates, claim, claimed = statements
        params: dict[str, Any] = {
            "b_now": now, "b_limit": limit, "b_max_attempts": max_attempts,
            "b_days": list(days or ()), "b_subscriber_ids": list(subscriber_ids or ()),
        }
        with self.begin() as conn:
            found = [int(row[0]) for query in candidates for row in conn.execute(query, params)]
            ids = sorted(found)[:limit]
            if not ids:
                return []
            conn.execute(claim, {**params, "b_ids": ids, "b_worker": worker,
                                 "b_until": now + lease})
            rows = conn.execute(claimed, {"b_ids": ids, "b_worker": worker})
            return [_delivery_from_row(row) for row in rows]

    @cached_property
    def _claim_statements(self) -> dict[tuple[bool, bool], tuple[Any, Any, Any]]:
        """Return claim_deliveries' statements by (by day, by subscriber), built once.

        With bound parameters, as _START_SENDING: a statement object caches its cache
        key, so executing it again skips rebuilding and re-hashing it (built anew for
        each claim, the four were ~1 ms of its ~5).
        """
        return {
            (by_day, by_subscriber): self._build_claim(by_day, by_subscriber)
            for by_day in (False, True)
            for by_subscriber in (False, True)
        }

    def _build_claim(self, by_day: bool, by_subscriber: bool) -> tuple[Any, Any, Any]:
        """Return (the candidate queries, the lease's UPDATE, the claimed rows' SELECT)."""
        now: Any = bindparam("b_now")
        free = or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now)
        planned = deliveries.c.status == "planned"
        retry = and_(
            deliveries.c.status == "temp_failed",
            deliveries.c.attempts < bindparam("b_max_attempts"),
            or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
        )
        # One query per status, not one with ``planned OR retry``: each walks its status
        # in the status index in id order and stops after ``limit`` free rows. With the
        # OR, SQLite read and sorted every planned row on every claim, under the write
        # lock (~120 ms a claim at 100,000 rows, ~6 ms now). The earliest ``limit`` ids
        # of the two are the earliest of the OR.
        queries = []
        for sendable in (planned, retry):
            query = select(deliveries.c.id).where(sendable, free)
            if by_day:
                # coalesce(day, day) is the day, but keeps SQLite off the day index: on
                # it the claim walked every row of the day, sent ones included.
                same_day = func.coalesce(deliveries.c.day, deliveries.c.day)
                query = query.where(same_day.in_(bindparam("b_days", expanding=True)))
            if by_subscriber:
                query = query.where(deliveries.c.subscriber_id.in_(
                    bindparam("b_subscriber_ids", expanding=True)))
            query = query.order_by(deliveries.c.id).limit(bindparam("b_limit"))
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            queries.append(query)
        ids: Any = bindparam("b_ids", expanding=True)
        claim = (
            update(deliveries)
            .where(deliveries.c.id.in_(ids), or_(planned, retry), free)
            .values(claimed_by=bindparam("b_worker"), claimed_until=bindparam("b_until"))
        )
        claimed = (
            select(deliveries)
            .where(deliveries.c.id.in_(ids), deliveries.c.claimed_by == bindparam("b_worker"))
            .order_by(deliveries.c.id)
        )
        return tuple(queries), claim, claimed

    def start_sending(
        self,
        subscriber_id: int,
        day: date,
        *,
        worker: str,
        now: datetime,
        sent: tuple[int, date, Sequence[str]] | None = None,
        recipient: str = "",
    ) -> bool:
        """Move a row leased to ``worker`` from planned/temp_failed to ``sending``.

        A compare-and-set: False when the lease was lost or the row moved on, or when
        its subscriber is no longer active or the address the message goes to
        (``recipient``) is suppressed, and the caller must then not transmit.
        ``sent`` (subscriber id, day, paper keys) is the worker's previous row, whose
        250 came back: it is recorded as ``mark_sent`` does, in the same transaction,
        so each message costs the ledger one commit.
        The earlier row is recorded whether or not this one starts.
        """
        statement = self._prepared_start_sending
        # Every parameter is made before the transaction, which on SQLite holds the write
        # lock the other send workers wait for (_sent_params).
        params = statement.params({
            "b_subscriber_id": subscriber_id, "b_day": day, "b_worker": worker, "b_now": now,
            "b_email_hash": email_hash(recipient) if recipient else "",
        })
        record = self._sent_params(*sent, now=now) if sent is not None else None
        with self.driver_transaction() as cursor:
            if record is not None:
                self._record_sent(cursor, record)
            cursor.execute(statement.sql, params)
            changed = cursor.rowcount
        return bool(changed)

    @cached_property
    def _prepared_start_sending(self) -> Prepared:
        return Prepared(_START_SENDING, self.engine)

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
