"""Operator retries of ledger rows, and recorded bounces and complaints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from digest.models import DeliveryStatus
from digest.store.base import StoreBase
from digest.store.rows import _iso, _no_nul, _utc, email_hash
from digest.store.tables import (
    bounces,
    deliveries,
    subscribers,
    suppressions,
    verified_bounces,
)


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
        verified_by: str | None = None,
    ) -> bool:
        """Record one bounce or complaint; return False if this report was recorded before.

        ``verified_by`` is what shows the report is about a message we sent to this
        address (see ``verified_bounces``); None records it as unverified. The report's
        text is a stranger's server's: a NUL character in it is dropped (PostgreSQL
        refuses one in text, and the mailbox scan stopped at that report).
        """
        key = _no_nul(report_id)[:500]
        try:
            with self.begin() as conn:
                conn.execute(
                    insert(bounces).values(
                        report_id=key,
                        email_hash=email_hash(email),
                        kind=kind,
                        status=_no_nul(status)[:20],
                        action=_no_nul(action)[:50],
                        diagnostic=_no_nul(diagnostic),
                        source=_no_nul(source)[:500],
                        bounced_at=at,
                        recorded_at=now,
                    )
                )
                if verified_by is not None:
                    conn.execute(
                        insert(verified_bounces).values(
                            report_id=key, evidence=_no_nul(verified_by)[:300]
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
