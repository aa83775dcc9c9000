"""Sources: stored source specs, their health and validators, and run reports."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from digest.errors import UsageError
from digest.models import ROUTINE_STATUSES, RunReport, SourceResult, SourceSpec
from digest.store.base import StoreBase
from digest.store.rows import _iso, _utc, in_chunks
from digest.store.tables import papers, runs, source_specs, source_state

# A source is stale when the freshest paper it lists was first stored longer ago than
# this, counting weekday hours only: arXiv announces once each weekday night, so a day
# and a half covers one missed announcement's worth of slack (a late feed, a run before
# the announcement) while a feed stuck for a whole announcement day is caught.
STALE_AFTER = timedelta(hours=36)


def weekday_time(start: datetime, end: datetime) -> timedelta:
    """Return how much of [start, end) falls on Monday to Friday (UTC)."""
    total = timedelta()
    moment = start
    while moment < end:
        if end - moment > timedelta(days=60):
            return timedelta(days=60)  # far past any cadence; no need to count exactly
        midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                        microsecond=0)
        upto = min(midnight, end)
        if moment.weekday() < 5:
            total += upto - moment
        moment = upto
    return total


class SourceMixin(StoreBase):
    """Sources, their health, and run reports."""

    # -- sources and runs ---------------------------------------------------------------

    def source_states(self) -> dict[str, tuple[str | None, str | None]]:
        """Return {source name: (etag, last_modified)} for conditional GETs."""
        with self.begin() as conn:
            rows = conn.execute(
                select(source_state.c.source, source_state.c.etag, source_state.c.last_modified)
            )
            return {row.source: (row.etag, row.last_modified) for row in rows}

    def announcements(self) -> dict[str, date]:
        """Return {source name: the last arXiv announcement day it read whole}."""
        with self.begin() as conn:
            rows = conn.execute(select(source_state.c.source, source_state.c.announced_on)
                                .where(source_state.c.announced_on.is_not(None)))
            return {row.source: row.announced_on for row in rows}

    def judge_source(self, result: SourceResult, *, now: datetime) -> SourceResult:
        """Return ``result`` marked stale when its source has fallen behind its cadence.

        A source that brought nothing new is stale only when even the freshest paper it
        lists was first stored (by it or by another source) more than STALE_AFTER of
        weekday time ago. So the second and later hourly runs of a day, which see the
        morning's papers again, stay ok; so does a Hugging Face list whose papers arXiv
        delivered first (its items merged into them: upvotes updated); and a feed that
        keeps serving an old copy is flagged within about a day and a half.
        """
        if result.status not in ("ok", "partial") or not result.papers or result.new:
            return result
        if all(p.announce_type in ("replace", "replace-cross") for p in result.papers):
            return result  # a day of only replacements is unusual but not a stale feed
        freshest: datetime | None = None
        keys = sorted({p.key for p in result.papers})
        with self.begin() as conn:
            for chunk in in_chunks(keys):
                found = _utc(conn.execute(
                    select(func.max(papers.c.stored_at)).where(papers.c.key.in_(chunk))
                ).scalar())
                if found is not None and (freshest is None or found > freshest):
                    freshest = found
        if freshest is None:
            return result  # not stored (digest sources test of an unknown source)
        behind = weekday_time(freshest, now)
        if behind <= STALE_AFTER:
            return result
        hours = int(behind.total_seconds() // 3600)
        stale = (f"all {len(result.papers)} papers were already seen; the newest was first "
                 f"stored {freshest:%Y-%m-%d %H:%M} UTC, {hours} weekday hours ago, and "
                 "nothing new came since (hint: check the source URL, and whether a cache or "
                 "proxy serves an old copy)")
        # A partial feed's own problem stays on record beside the staleness.
        error = f"{result.error}; {stale}" if result.error else stale
        return replace(result, status="stale", error=error)

    def record_source(self, result: SourceResult, *, now: datetime) -> SourceResult:
        """Store one source's outcome and validators; return it as recorded.

        The outcome is judged against the source's history first (judge_source), so a
        source that brought nothing new is recorded stale only when it is behind.
        """
        result = self.judge_source(result, now=now)
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
            if result.announced is not None:
                # Only forward: a cache's older copy of an arXiv feed, or a run for an
                # earlier day (`digest run --date`) reading that day's Hugging Face
                # list, is no later day read; taken back, the next run would ask again
                # for the days between, which were read.
                held = conn.execute(select(source_state.c.announced_on)
                                    .where(source_state.c.source == result.source)).scalar()
                if held is None or result.announced > held:
                    values["announced_on"] = result.announced
            conn.execute(self._upsert(source_state, {"source": result.source, **values},
                                      key=("source",)))
        return result

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
        """Keep a run's report for `digest status`, listing only the deliveries that
        went wrong.

        The ledger holds every digest's outcome; listed in the report too, each sent or
        skipped one cost ~150 bytes, ~15 MB a day at 100,000 subscribers, all parsed
        again by every `digest status`.
        """
        stored = report.to_dict()
        stored["deliveries"] = [d for d in stored["deliveries"]
                                if d["status"] not in ROUTINE_STATUSES]
        with self.begin() as conn:
            conn.execute(
                insert(runs).values(
                    day=report.day,
                    started_at=report.started_at,
                    finished_at=report.finished_at,
                    sent=report.sent,
                    failed=report.failed,
                    report=stored,
                )
            )

    def recent_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """Return the latest run reports, newest first."""
        with self.begin() as conn:
            rows = conn.execute(select(runs.c.report).order_by(runs.c.id.desc()).limit(limit))
            return [dict(row[0]) for row in rows]

    # -- sources ------------------------------------------------------------------------

    def list_sources(self) -> list[SourceSpec]:
        """Return the sources added with `digest sources add`, oldest first."""
        with self.begin() as conn:
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
            removed = conn.execute(delete(source_specs).where(source_specs.c.name == name))
            if removed.rowcount:
                conn.execute(delete(source_state).where(source_state.c.source == name))
            return bool(removed.rowcount)
