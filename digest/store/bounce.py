"""Operator retries of ledger rows, and recorded bounces and complaints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from digest.models import DeliveryStatus, hide_address, without_nul
from digest.store.base import StoreBase
from digest.store.delivery import UNSETTLED
from digest.store.rows import _iso, _picks, _utc, bounce_key, email_hash
from digest.store.tables import (
    bounces,
    deliveries,
    outbox,
    subscribers,
    suppressions,
    verified_bounces,
)

# Rows whose papers the subscriber has had, or may have had, or is to get.
_HOLDING = ("sent", *UNSETTLED)


@dataclass
class RetryResult:
    """What an operator's retry did: rows planned again, papers they no longer hold
    (mailed since, or waiting in another digest), rows skipped with none left."""

    planned: int = 0
    left_out: int = 0
    skipped: int = 0


class BounceMixin(StoreBase):
    """Retry deliveries; record and list bounces."""

    # -- deliveries and bounces ---------------------------------------------------------

    def retry_deliveries(
        self,
        *,
        status: DeliveryStatus,
        now: datetime,
        day: date | None = None,
        subscriber_id: int | None = None,
    ) -> RetryResult:
        """Move ``status`` rows back to ``planned`` (an operator's decision).

        The attempts count starts over, so a row that used up its retries gets a fresh
        budget. Only rows still in ``status`` move, so a row a run changed meanwhile is
        left alone.

        A row keeps only the papers its subscriber has not had since, nor awaits in
        another digest: a failed or given-up row's papers are free for the next digest
        (a ``perm_failed`` row's were mailed in the next day's), and retried as they
        were, the row mailed them a second time. A row left with none of its papers is
        skipped instead, saying which digests hold them.
        """
        where = [deliveries.c.status == status]
        if day is not None:
            where.append(deliveries.c.day == day)
        if subscriber_id is not None:
            where.append(deliveries.c.subscriber_id == subscriber_id)
        result = RetryResult()
        with self.begin() as conn:
            rows = [
                (int(sub_id), row_day, _picks(papers))
                for sub_id, row_day, papers in conn.execute(
                    select(deliveries.c.subscriber_id, deliveries.c.day,
                           deliveries.c.papers).where(*where)
                )
            ]
            held = self._papers_held(conn, rows)
            # Newest first: of two retried rows of one subscriber holding the same paper
            # (the older one failed, and its papers went into the newer), the newer keeps it.
            rows.sort(key=lambda row: row[1], reverse=True)
            for sub_id, row_day, picks in rows:
                holders = held.setdefault(sub_id, {})
                keep = [pick for pick in picks if pick[0] not in holders]
                dropped = len(picks) - len(keep)
                values: dict[str, Any] = {
                    "status": "planned", "attempts": 0, "next_attempt_at": None,
                    "updated_at": now, "error": f"retried by an operator (was {status})",
                }
                if dropped:
                    days = sorted({holders[key] for key, _, _ in picks if key in holders})
                    named = ", ".join(d.isoformat() for d in days)
                    values["papers"] = [
                        {"key": key, "score": round(float(score), 6), "reason": reason}
                        for key, score, reason in keep
                    ]
                    if keep:
                        values["error"] += (f"; {dropped} of its papers left out, mailed or "
                                            f"to be mailed in the digest of {named}")
                    else:
                        values.update(status="skipped", error=(
                            f"retried by an operator (was {status}): every paper it held "
                            f"is mailed or to be mailed in the digest of {named}"))
                changed = conn.execute(
                    update(deliveries)
                    .where(deliveries.c.subscriber_id == sub_id, deliveries.c.day == row_day,
                           deliveries.c.status == status)
                    .values(**values)
                ).rowcount
                if not changed:
                    continue
                if dropped:
                    # Its message (a temp_failed row's is kept) holds the papers left out:
                    # the send writes the row's digest anew from what it holds now.
                    conn.execute(delete(outbox).where(outbox.c.subscriber_id == sub_id,
                                                      outbox.c.day == row_day))
                if values["status"] == "skipped":
                    result.skipped += 1
                else:
                    result.planned += 1
                    result.left_out += dropped
                    for key, _, _ in keep:
                        holders.setdefault(key, row_day)
        return result

    @staticmethod
    def _papers_held(
        conn: Connection, rows: Sequence[tuple[int, date, Sequence[tuple[str, float, str]]]]
    ) -> dict[int, dict[str, date]]:
        """Return {subscriber id: {paper key: day of a digest of theirs holding it}}, for
        the papers of ``rows``, from their other rows sent or unsettled.

        A digest holds papers of batches at most 14 days (a weekly digest's look-back)
        before its day and one after it, so no row more than 16 days before a retried
        one can hold its papers: those are not read.
        """
        wanted: dict[int, set[str]] = {}
        own: set[tuple[int, date]] = set()
        first: dict[int, date] = {}
        for sub_id, row_day, picks in rows:
            wanted.setdefault(sub_id, set()).update(key for key, _, _ in picks)
            own.add((sub_id, row_day))
            first[sub_id] = min(row_day, first.get(sub_id, row_day))
        held: dict[int, dict[str, date]] = {}
        for sub_id, keys in wanted.items():
            if not keys:
                continue
            found = conn.execute(
                select(deliveries.c.day, deliveries.c.status, deliveries.c.papers).where(
                    deliveries.c.subscriber_id == sub_id,
                    deliveries.c.day >= first[sub_id] - timedelta(days=16),
                )
            )
            for row_day, row_status, papers in found:
                if (sub_id, row_day) in own or row_status not in _HOLDING:
                    continue
                for key, _, _ in _picks(papers):
                    if key in keys:
                        held.setdefault(sub_id, {}).setdefault(key, row_day)
        return held

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
        verified_by: str | None = None,
    ) -> bool:
        """Record one bounce or complaint; return False if this report was recorded before.

        ``verified_by`` is what shows the report is about a message we sent to this
        address (see ``verified_bounces``); None records it as unverified. The report's
        text is a stranger's server's: a NUL character in it is dropped (PostgreSQL
        refuses one in text, and the mailbox scan stopped at that report).
        """
        given = without_nul(report_id)
        key = bounce_key(given, email)
        try:
            with self.begin() as conn:
                # A report an older release recorded under its key with the address.
                if key != given[:500] and conn.execute(
                    select(bounces.c.id).where(bounces.c.report_id == given[:500])
                ).first() is not None:
                    return False
                conn.execute(
                    insert(bounces).values(
                        report_id=key,
                        email_hash=email_hash(email),
                        kind=kind,
                        status=without_nul(status)[:20],
                        action=without_nul(action)[:50],
                        diagnostic=without_nul(diagnostic),
                        source=without_nul(source)[:500],
                        bounced_at=at,
                        recorded_at=now,
                    )
                )
                if verified_by is not None:
                    conn.execute(
                        insert(verified_bounces).values(
                            report_id=key, evidence=without_nul(verified_by)[:300]
                        )
                    )
        except IntegrityError:
            return False
        return True

    def sent_message_id(self, email: str, message_ids: Sequence[str]) -> str | None:
        """Return one of these Message-IDs that the ledger holds for this address, or None.

        Only the subscriber with this address counts: a Message-ID of ours that went to
        someone else verifies nothing about this address.
        """
        wanted = [mid for mid in message_ids if mid]
        if not wanted:
            return None
        with self.begin() as conn:
            found = conn.execute(
                select(deliveries.c.message_id)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(
                    subscribers.c.email == email.strip().lower(),
                    deliveries.c.message_id.in_(wanted),
                )
                .limit(1)
            ).scalar()
        return str(found) if found is not None else None

    def soft_bounce_days(self, email: str, *, since: datetime) -> int:
        """Return on how many distinct UTC days the address soft-bounced since ``since``.

        Only verified bounces count: unverified ones could be anyone's forgeries.
        """
        with self.begin() as conn:
            rows = conn.execute(
                select(bounces.c.bounced_at)
                .join(verified_bounces, verified_bounces.c.report_id == bounces.c.report_id)
                .where(
                    bounces.c.email_hash == email_hash(email),
                    bounces.c.kind == "soft",
                    bounces.c.bounced_at >= since,
                )
            )
            days = {stamp.date() for (value,) in rows if (stamp := _utc(value)) is not None}
        return len(days)

    def list_bounces(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Return the latest bounces, newest first, with the address when it is a subscriber's."""
        with self.begin() as conn:
            addresses = {
                email_hash(str(row[0])): str(row[0])
                for row in conn.execute(select(subscribers.c.email))
            }
            suppressed = {row[0] for row in conn.execute(select(suppressions.c.email_hash))}
            rows = conn.execute(
                select(bounces, verified_bounces.c.evidence)
                .outerjoin(
                    verified_bounces, verified_bounces.c.report_id == bounces.c.report_id
                )
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
                "verified": row.evidence is not None,
            }
            for row in rows
        ]


def forget_bounce_addresses(conn: Connection, email: str) -> None:
    """Take the address out of the keys and texts of its recorded bounces.

    The records stay (a rescan finds them; the suppression is a hash): those a
    release before bounce_key recorded still spell the address in their key, and
    perhaps their diagnostic. verified_bounces refers to the key, so its row moves.
    """
    hashed = email_hash(email)
    rows = conn.execute(
        select(bounces.c.id, bounces.c.report_id, bounces.c.diagnostic)
        .where(bounces.c.email_hash == hashed)
    ).all()
    for row in rows:
        key = bounce_key(row.report_id, email)
        diagnostic = hide_address(row.diagnostic, email, "recipient")
        if key == row.report_id:
            if diagnostic != row.diagnostic:
                conn.execute(update(bounces).where(bounces.c.id == row.id)
                             .values(diagnostic=diagnostic))
            continue
        evidence = conn.execute(
            select(verified_bounces.c.evidence)
            .where(verified_bounces.c.report_id == row.report_id)
        ).scalar()
        conn.execute(delete(verified_bounces)
                     .where(verified_bounces.c.report_id == row.report_id))
        taken = conn.execute(
            select(bounces.c.id).where(bounces.c.report_id == key)
        ).first() is not None
        if taken:  # recorded under both keys: keep one record
            conn.execute(delete(bounces).where(bounces.c.id == row.id))
            continue
        conn.execute(update(bounces).where(bounces.c.id == row.id)
                     .values(report_id=key, diagnostic=diagnostic))
        if evidence is not None:
            conn.execute(insert(verified_bounces).values(report_id=key, evidence=evidence))
