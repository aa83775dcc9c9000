"""What the web pages need: confirmation mails, the opt-in, status moves, export."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from digest.models import Profile
from digest.store.base import StoreBase
from digest.store.rows import _iso, email_hash
from digest.store.tables import deliveries, feedback, sent_papers, subscribers, suppressions


class WebMixin(StoreBase):
    """Confirm, pause and export subscribers for the web pages."""

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
