"""What the web pages need: confirmation mails, the opt-in, status moves, export."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, update

from digest.models import Profile
from digest.store.base import StoreBase
from digest.store.rows import _iso, _utc, email_hash
from digest.store.tables import (
    deliveries,
    feedback,
    sent_papers,
    signup_mails,
    signup_requests,
    subscribers,
    suppressions,
)

ConfirmOutcome = Literal["confirmed", "active", "stale", "gone"]
# Whether the sign-up form may mail now: yes, or which hourly cap is reached.
SignupAllowance = Literal["ok", "client", "site"]

# The subscriber columns a sign-up request may set (its schedule); nothing else of the
# row, whatever the stored JSON holds.
SCHEDULE_COLUMNS = (
    "send_hour", "timezone", "cadence", "weekday", "max_papers", "empty_digest", "popularity",
)


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

    def claim_signup(
        self, client: str, *, now: datetime, per_client: int, per_hour: int
    ) -> SignupAllowance:
        """Count a sign-up of ``client`` now, unless an hourly cap is reached (0: none).

        Return "ok" when counted, else "client" (this client's sign-ups in the last
        hour reached ``per_client``) or "site" (everyone's reached ``per_hour``).
        Sign-ups older than a day are forgotten. On SQLite the count and the insert
        hold the write lock together; on PostgreSQL two at the same instant may both
        pass at the cap, one over it.
        """
        hour = now - timedelta(hours=1)
        with self.begin() as conn:
            conn.execute(delete(signup_mails).where(
                signup_mails.c.sent_at < now - timedelta(days=1)))
            recent = signup_mails.c.sent_at > hour
            if per_client:
                mine = conn.execute(select(func.count()).select_from(signup_mails).where(
                    recent, signup_mails.c.client == client)).scalar_one()
                if mine >= per_client:
                    return "client"
            if per_hour:
                everyone = conn.execute(
                    select(func.count()).select_from(signup_mails).where(recent)).scalar_one()
                if everyone >= per_hour:
                    return "site"
            conn.execute(insert(signup_mails).values(client=client, sent_at=now))
        return "ok"

    def release_confirmation(self, subscriber_id: int) -> None:
        """Forget the last confirmation mail (it could not be sent), so a retry may send one."""
        with self.begin() as conn:
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(confirm_sent_at=None)
            )

    def add_signup_request(
        self,
        email: str,
        profile: Profile,
        schedule: Mapping[str, Any],
        *,
        now: datetime,
        expire_before: datetime,
    ) -> str:
        """Keep what a sign-up asked for until its owner confirms; return the request's id.

        Requests made before ``expire_before`` (their links have expired) are dropped.
        """
        request_id = secrets.token_urlsafe(12)
        with self.begin() as conn:
            conn.execute(
                delete(signup_requests).where(signup_requests.c.created_at < expire_before)
            )
            conn.execute(
                insert(signup_requests).values(
                    id=request_id,
                    email_hash=email_hash(email),
                    profile=profile.to_dict(),
                    schedule=dict(schedule),
                    created_at=now,
                )
            )
        return request_id

    def confirm_subscriber(
        self, subscriber_id: int, *, now: datetime, request: str | None = None
    ) -> ConfirmOutcome:
        """Activate a subscriber after the double opt-in and lift any suppression of the address.

        A pending subscriber is confirmed by any valid link. Anyone else only by the link
        of a sign-up ``request`` made after their row last changed: an older link (from
        before a pause or an unsubscribe, or one already used) must not undo that change.
        Confirming applies the request's settings (keeping the thumbs recorded before) and
        drops every request of the address.
        An active subscriber's own pending request older than their last change lifts the
        suppression of the address all the same (the click proves the mailbox) and is
        dropped, its settings unapplied.
        Return "confirmed", "active" (already on: nothing else to do), "stale" (the link
        is older than the subscriber's last change) or "gone" (no such subscriber).
        """
        with self.begin() as conn:
            row = conn.execute(
                select(
                    subscribers.c.email,
                    subscribers.c.status,
                    subscribers.c.profile,
                    subscribers.c.updated_at,
                ).where(subscribers.c.id == subscriber_id)
            ).first()
            if row is None:
                return "gone"
            hashed = email_hash(row.email)
            asked = None
            if request is not None:
                asked = conn.execute(
                    select(signup_requests).where(
                        signup_requests.c.id == request, signup_requests.c.email_hash == hashed
                    )
                ).first()
            changed = _utc(row.updated_at)
            fresh = asked is not None and (
                changed is None or (_utc(asked.created_at) or now) >= changed
            )
            if row.status != "pending" and not fresh:
                if asked is not None and row.status == "active":
                    # The request's settings are older than a change made since (kept),
                    # but the click of its link proves the mailbox works: the address
                    # was signed up again to lift a stop, then its preferences saved.
                    conn.execute(delete(signup_requests)
                                 .where(signup_requests.c.email_hash == hashed))
                    conn.execute(delete(suppressions).where(suppressions.c.email_hash == hashed))
                return "active" if row.status == "active" else "stale"
            values: dict[str, Any] = {"status": "active", "confirmed_at": now, "updated_at": now}
            if asked is not None:
                # Thumbs from earlier digests stay, as when the preferences form is saved.
                current = Profile.from_dict(row.profile or {})
                requested = Profile.from_dict(asked.profile or {})
                values["profile"] = replace(
                    requested, liked=current.liked, disliked=current.disliked
                ).to_dict()
                values.update(_schedule_columns(asked.schedule))
            conn.execute(
                update(subscribers).where(subscribers.c.id == subscriber_id).values(**values)
            )
            conn.execute(delete(signup_requests).where(signup_requests.c.email_hash == hashed))
            # The opt-in just proved the address owner wants mail again.
            conn.execute(delete(suppressions).where(suppressions.c.email_hash == hashed))
        return "confirmed"

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


def _schedule_columns(schedule: Any) -> dict[str, Any]:
    """Return the schedule columns a stored sign-up request sets."""
    if not isinstance(schedule, dict):
        return {}
    return {name: schedule[name] for name in SCHEDULE_COLUMNS if name in schedule}
