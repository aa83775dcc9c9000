"""Sources: stored source specs, their health and validators, and run reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from digest.errors import UsageError
from digest.models import RunReport, SourceResult, SourceSpec
from digest.store.base import StoreBase
from digest.store.rows import _iso
from digest.store.tables import runs, source_specs, source_state


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

    def record_source(self, result: SourceResult, *, now: datetime) -> None:
        """Store one source's outcome and validators for its next conditional GET."""
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
            exists = conn.execute(
                select(source_state.c.source).where(source_state.c.source == result.source)
            ).first()
            if exists:
                conn.execute(
                    update(source_state)
                    .where(source_state.c.source == result.source)
                    .values(**values)
                )
            else:
                conn.execute(insert(source_state).values(source=result.source, **values))

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
        """Keep a run's report for `digest status`."""
        with self.begin() as conn:
            conn.execute(
                insert(runs).values(
                    day=report.day,
                    started_at=report.started_at,
                    finished_at=report.finished_at,
                    sent=report.sent,
                    failed=report.failed,
                    report=report.to_dict(),
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
