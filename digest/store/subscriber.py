"""Subscribers, the suppression list, and their thumbs up/down feedback."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from digest.errors import UsageError
from digest.models import Profile, Subscriber
from digest.store.base import StoreBase
from digest.store.bounce import forget_bounce_addresses
from digest.store.rows import _subscriber_from_row, email_hash, in_chunks
from digest.store.tables import (
    deliveries,
    feedback,
    sent_papers,
    signup_requests,
    subscribers,
    suppressions,
)

# What a send of a digest already written reads of its subscribers (get_subscribers
# with full=False); built once, as outbox._STORED: read for every chunk a worker sends.
_BRIEF = select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                subscribers.c.status).where(
    subscribers.c.id.in_(bindparam("b_ids", expanding=True)))


class SubscriberMixin(StoreBase):
    """Subscribers, suppressions and votes."""

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

    def get_subscribers(self, ids: Iterable[int], *, full: bool = True) -> dict[int, Subscriber]:
        """Return {id: subscriber} for these ids (missing ones are left out).

        ``full=False`` reads only the id, address, name and status, every other field
        left at its default (an empty profile): what a send of a digest already written
        looks at. Parsing each subscriber's profile was ~60-85 us of the send phase's
        ~1.3 ms of CPU a message, for a profile the send never reads.
        """
        wanted = sorted(set(ids))
        found: dict[int, Subscriber] = {}
        c = subscribers.c
        with self.read() as conn:
            for chunk in in_chunks(wanted):
                if full:
                    for row in conn.execute(select(subscribers).where(c.id.in_(chunk))):
                        found[row.id] = _subscriber_from_row(row)
                    continue
                for sub_id, email, name, status in conn.execute(_BRIEF, {"b_ids": chunk}):
                    found[sub_id] = Subscriber(id=sub_id, email=email, name=name, status=status)
        return found

    def find_subscriber(self, email: str) -> Subscriber | None:
        """Return one subscriber by address (case-insensitive)."""
        with self.begin() as conn:
            row = conn.execute(
                select(subscribers).where(subscribers.c.email == email.strip().lower())
            ).first()
        return _subscriber_from_row(row) if row else None

    def list_subscribers(
        self, status: str | None = None, *, after: int | None = None, limit: int | None = None
    ) -> list[Subscriber]:
        """Return subscribers ordered by id, optionally only those with one status.

        ``after`` and ``limit`` page through them (ids above ``after``, at most ``limit``).
        """
        query = select(subscribers).order_by(subscribers.c.id)
        if status:
            query = query.where(subscribers.c.status == status)
        if after is not None:
            query = query.where(subscribers.c.id > after)
        if limit is not None:
            query = query.limit(limit)
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

    def change_subscriber(
        self, subscriber_id: int, change: Callable[[Subscriber], dict[str, Any]], *,
        now: datetime,
    ) -> bool:
        """Change subscriber fields computed by ``change`` from the row as it is now.

        The read and the write are one transaction (the row locked on PostgreSQL), so a
        change made meanwhile (an unsubscribe, a saved preferences page) is what
        ``change`` sees, not overwritten with an older read. Return False when the
        subscriber is gone.
        """
        query = select(subscribers).where(subscribers.c.id == subscriber_id)
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update()
        with self.begin() as conn:
            row = conn.execute(query).first()
            if row is None:
                return False
            fields = change(_subscriber_from_row(row))
            if "profile" in fields and isinstance(fields["profile"], Profile):
                fields["profile"] = fields["profile"].to_dict()
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(updated_at=now, **fields)
            )
        return True

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
            # An unconfirmed sign-up's settings are stored data about the address too.
            conn.execute(
                delete(signup_requests).where(signup_requests.c.email_hash == email_hash(email))
            )
            # Bounce records stay (the address as a hash), their texts without it.
            forget_bounce_addresses(conn, str(email))
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
        return self.suppression(email) is not None

    def suppression(self, email: str) -> tuple[str, datetime] | None:
        """Return (reason, since when) if the address is suppressed, else None."""
        with self.begin() as conn:
            row = conn.execute(
                select(suppressions.c.reason, suppressions.c.created_at).where(
                    suppressions.c.email_hash == email_hash(email)
                )
            ).first()
        return None if row is None else (str(row.reason), row.created_at)

    def suppressed_hashes(self) -> set[str]:
        """Return every suppressed address hash."""
        with self.begin() as conn:
            return {row[0] for row in conn.execute(select(suppressions.c.email_hash))}

    # -- feedback -----------------------------------------------------------------------

    def record_vote(self, subscriber_id: int, paper_key: str, vote: int, *, now: datetime) -> None:
        """Record a thumbs up (+1) or down (-1); the latest vote on a paper wins."""
        if vote not in (1, -1):
            raise UsageError(f"a vote is +1 or -1, not {vote}", "")
        values = {"subscriber_id": subscriber_id, "paper_key": paper_key, "vote": vote,
                  "created_at": now}
        with self.begin() as conn:
            conn.execute(self._upsert(feedback, values, key=("subscriber_id", "paper_key")))

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

    def forget_votes(
        self, subscriber_id: int, paper_keys: Sequence[str] | None, *, now: datetime
    ) -> int:
        """Forget a subscriber's thumbs on these papers (None: on every paper); return how many.

        Both kinds go: the votes from the email's links and the liked and disliked papers
        the profile holds (an import's, `export --csv` writes votes so). The read and the
        write are one transaction, so a vote or a save made meanwhile is not undone.
        """
        wanted = None if paper_keys is None else set(paper_keys)
        query = select(subscribers.c.profile).where(subscribers.c.id == subscriber_id)
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update()
        with self.begin() as conn:
            row = conn.execute(query).first()
            if row is None:
                return 0
            voted = select(feedback.c.paper_key).where(feedback.c.subscriber_id == subscriber_id)
            keys = {str(k) for k in conn.execute(voted).scalars()}
            profile = Profile.from_dict(row.profile or {})
            keys.update(profile.liked, profile.disliked)
            gone = keys if wanted is None else keys & wanted
            if not gone:
                return 0
            for chunk in in_chunks(sorted(gone)):
                conn.execute(delete(feedback).where(feedback.c.subscriber_id == subscriber_id,
                                                    feedback.c.paper_key.in_(chunk)))
            kept = replace(profile, liked=tuple(k for k in profile.liked if k not in gone),
                           disliked=tuple(k for k in profile.disliked if k not in gone))
            if kept != profile:
                conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                             .values(profile=kept.to_dict(), updated_at=now))
        return len(gone)
