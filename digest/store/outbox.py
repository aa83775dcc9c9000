"""The outbox: digests written in the plan phase, read back by the send phase."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select

from digest.models import OutgoingMessage
from digest.store.base import StoreBase
from digest.store.rows import in_chunks
from digest.store.tables import deliveries, outbox

# Ledger statuses a send may still take a row from; the outbox keeps those rows' messages.
_OPEN = ("planned", "temp_failed", "sending")
# Messages dropped a transaction by purge_outbox.
PURGE_BATCH = 500

# Built once, with expanding lists: a statement object caches its compiled form, so a
# send worker's read of each chunk's messages skips building and compiling it anew (a
# third of the read's CPU). Two lists rather than a row-value IN, which SQLite answers
# by scanning the whole table; these use the primary key. Pairs not asked for that the
# lists also match are dropped by the caller.
_STORED = select(
    outbox.c.subscriber_id, outbox.c.day, outbox.c.sender, outbox.c.recipients,
    outbox.c.to_email, outbox.c.to_name, outbox.c.message, outbox.c.stuffed,
).where(
    outbox.c.subscriber_id.in_(bindparam("b_ids", expanding=True)),
    outbox.c.day.in_(bindparam("b_days", expanding=True)),
)


def _outbox_values(
    subscriber_id: int, day: date, message: OutgoingMessage, now: datetime
) -> dict[str, Any]:
    return {
        "subscriber_id": subscriber_id,
        "day": day,
        "sender": message.sender,
        "recipients": list(message.recipients),
        "to_email": message.to_email,
        "to_name": message.to_name,
        "message": message.packed,
        "stuffed": message.stuffed,
        "created_at": now,
    }


class OutboxMixin(StoreBase):
    """Read the messages written ahead of their send; drop those no send needs."""

    def stored_messages(
        self, keys: Iterable[tuple[int, date]]
    ) -> dict[tuple[int, date], OutgoingMessage]:
        """Return {(subscriber id, day): message} for those of ``keys`` in the outbox."""
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[int, date], OutgoingMessage] = {}
        if not wanted:
            return found
        wanted_set = set(wanted)
        with self.read() as conn:
            for chunk in in_chunks(wanted):
                rows = conn.execute(_STORED, {
                    "b_ids": sorted({sub_id for sub_id, _ in chunk}),
                    "b_days": sorted({day for _, day in chunk}),
                })
                for row in rows:
                    if (int(row.subscriber_id), row.day) not in wanted_set:
                        continue
                    found[(int(row.subscriber_id), row.day)] = OutgoingMessage(
                        sender=row.sender,
                        recipients=tuple(row.recipients),
                        to_email=row.to_email,
                        to_name=row.to_name,
                        packed=bytes(row.message),
                        stuffed=bool(row.stuffed),
                    )
        return found

    def purge_outbox(self, *, batch: int = PURGE_BATCH) -> int:
        """Drop the messages of ledger rows no send will take again; return how many.

        ``batch`` rows a transaction: a day's worth (~600 MB at 100,000 digests) took
        ~10 s in one, holding the write lock while other send processes still had
        messages to record. A row an operator moves back to ``planned`` later (``digest
        deliveries retry``) has its digest written again at its send, from the same
        picks.
        """
        still_open = (
            select(deliveries.c.id)
            .where(
                deliveries.c.subscriber_id == outbox.c.subscriber_id,
                deliveries.c.day == outbox.c.day,
                deliveries.c.status.in_(_OPEN),
            )
            .exists()
        )
        done = 0
        while True:
            with self.begin() as conn:
                found = conn.execute(
                    select(outbox.c.subscriber_id, outbox.c.day).where(~still_open).limit(batch)
                ).all()
                if not found:
                    return done
                # The two lists may also match pairs not found here; the same condition
                # keeps any of them that a send may still take.
                done += int(conn.execute(
                    delete(outbox).where(
                        outbox.c.subscriber_id.in_(sorted({int(row[0]) for row in found})),
                        outbox.c.day.in_(sorted({row[1] for row in found})),
                        ~still_open,
                    )
                ).rowcount)
