"""Retention: drop the history no run reads any more once it is older than the setting."""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, bindparam, delete, or_, select

from digest.store.base import StoreBase
from digest.store.rows import _picks
from digest.store.tables import deliveries, meta, runs, sent_papers

# Ledger rows whose outcome is final: nothing sends them again and their papers are free
# or mailed. The others (planned, sending, to be retried, of unknown outcome) stay
# whatever their age: a send or an operator still has to decide them.
_FINAL = ("sent", "skipped", "perm_failed")
# Rows deleted a transaction: a year's backlog at 100,000 subscribers is 36 million
# ledger rows, and one transaction would hold the write lock for the whole of it.
PRUNE_BATCH = 2000


class RetentionMixin(StoreBase):
    """Delete ledger rows, sent papers and run reports from before a day."""

    def prune(self, *, before: date, batch: int = PRUNE_BATCH) -> dict[str, int]:
        """Delete the history from before ``before`` that no run reads; return counts.

        Ledger rows of a final outcome go, except each subscriber's latest sent one (the
        next digest's window starts after it, however long ago it was), with the sent
        papers recorded from them; run reports by their day. The plan phase reads a subscriber's
        ledger a few weeks back at most (a weekly digest's window and two days), so a
        ``before`` a month back or more changes no digest.
        """
        ledger, papers = self._prune_ledger(before, batch)
        return {"deliveries": ledger, "sent_papers": papers,
                "runs": self._prune_runs(before, batch)}

    def claim_prune_day(self, day: date) -> bool:
        """Return True, and remember ``day``, unless a prune was claimed for it already.

        Runs fire hourly; the history crosses the retention's cutoff a day at a time, so
        one prune a day does the work (the others would only look for nothing).
        """
        with self.begin() as conn:
            found = conn.execute(select(meta.c.value).where(meta.c.key == "pruned_on")).scalar()
            if found == day.isoformat():
                return False
            conn.execute(self._upsert(meta, {"key": "pruned_on", "value": day.isoformat()},
                                      key=("key",)))
        return True

    def _prune_ledger(self, before: date, batch: int) -> tuple[int, int]:
        """Delete old final ledger rows, and the sent-paper entries of their papers."""
        later = deliveries.alias()
        superseded = (
            select(later.c.id)
            .where(later.c.subscriber_id == deliveries.c.subscriber_id,
                   later.c.status == "sent", later.c.day > deliveries.c.day)
            .exists()
        )
        old = and_(
            deliveries.c.day < before,
            deliveries.c.status.in_(_FINAL),
            or_(deliveries.c.status != "sent", superseded),
        )
        done = papers_done = 0
        # A cursor over (day, id): rows kept (a subscriber's latest sent digest) are not
        # read again by every later batch.
        after: tuple[date, int] | None = None
        gone = delete(sent_papers).where(sent_papers.c.subscriber_id == bindparam("who"),
                                         sent_papers.c.paper_key == bindparam("key"))
        while True:
            query = select(deliveries.c.id, deliveries.c.day, deliveries.c.subscriber_id,
                           deliveries.c.status, deliveries.c.papers).where(old)
            if after is not None:
                query = query.where(or_(
                    deliveries.c.day > after[0],
                    and_(deliveries.c.day == after[0], deliveries.c.id > after[1]),
                ))
            with self.begin() as conn:
                found = conn.execute(
                    query.order_by(deliveries.c.day, deliveries.c.id).limit(batch)
                ).all()
                if not found:
                    return done, papers_done
                after = (found[-1][1], int(found[-1][0]))
                # A sent row's papers were recorded as sent from exactly its picks: their
                # entries go with it, by the table's key (an index on the sent papers'
                # day would cost every mailed paper an index update in the send phase).
                pairs = [{"who": int(r.subscriber_id), "key": key}
                         for r in found if r.status == "sent" for key, _, _ in _picks(r.papers)]
                if pairs:
                    papers_done += int(conn.execute(gone, pairs).rowcount)
                # Its outbox row, if any, goes with it (ON DELETE CASCADE).
                done += int(conn.execute(
                    delete(deliveries).where(deliveries.c.id.in_([int(r.id) for r in found]))
                ).rowcount)

    def _prune_runs(self, before: date, batch: int) -> int:
        done = 0
        while True:
            with self.begin() as conn:
                found = conn.execute(
                    select(runs.c.id).where(runs.c.day < before).limit(batch)
                ).scalars().all()
                if not found:
                    return done
                done += int(conn.execute(
                    delete(runs).where(runs.c.id.in_(list(found)))
                ).rowcount)
