"""A consistent copy of the SQLite database while runs, senders and the web app use it.

The database runs in WAL mode: the last transactions (today's ledger rows, a sign-up a
minute ago) may sit in ``digest.sqlite3-wal`` until a checkpoint, so a ``cp`` of the
main file alone can miss them, and a copy taken during a write may be torn. SQLite's
online backup copies the pages of one read snapshot: writers go on meanwhile (WAL lets
them), and the copy is checked before it takes the file's name.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.errors import ConfigError, StoreError, UsageError
from digest.store.base import StoreBase

# What a backup written into a folder is called: the UTC time it was taken, so the
# names sort by age and --keep knows which are the oldest.
PREFIX = "digest-"
SUFFIX = ".sqlite3"


@dataclass(frozen=True)
class Backup:
    """What a backup holds, for the operator's log line."""

    path: Path
    size: int
    subscribers: int
    papers: int
    deliveries: int
    removed: tuple[Path, ...] = ()


def backup_name(now: datetime) -> str:
    """Return the file name of a backup taken at ``now`` (UTC) inside a folder."""
    return f"{PREFIX}{now.strftime('%Y%m%dT%H%M%SZ')}{SUFFIX}"


def backup_database(
    store: StoreBase, dest: Path | str, *, now: datetime, force: bool = False, keep: int = 0
) -> Backup:
    """Copy the store's SQLite database to ``dest`` (a file, or a folder to name it in).

    ``dest`` is a folder when one exists there, when it is written with a final
    separator (``var/backups/``) or when ``keep`` is given: such a folder must exist
    (a folder not mounted yet must not become a file, nor a new folder on the wrong
    disk). The copy is written beside its destination under a temporary name, checked
    (``PRAGMA integrity_check``), made a self-contained file (rollback journal, no WAL
    beside it), flushed to disk and renamed into place: a crash leaves the old backup or
    the new one, never half of one. An existing file is kept unless ``force``. With
    ``keep`` > 0 and a folder, the oldest of its backups past the newest ``keep`` go.
    """
    if not store.is_sqlite:
        raise ConfigError(
            "digest backup copies an SQLite database; this one is PostgreSQL",
            "use PostgreSQL's own tools: pg_dump -Fc -f digest.dump \"$DATABASE\" "
            "(restore with pg_restore --clean -d \"$DATABASE\" digest.dump)",
        )
    typed = str(dest)
    dest = Path(dest)
    folder = dest.is_dir() or typed.endswith(("/", os.sep)) or keep > 0
    if folder and not dest.is_dir():
        if dest.exists():
            raise UsageError(f"{dest} is a file, not a folder (--keep and a final / "
                             "name a folder)", "name a folder, or the file alone with --force")
        raise UsageError(f"no folder {dest}",
                         f"create it first (mkdir -p {dest}), or name another path")
    target = dest / backup_name(now) if folder else dest
    live = store.engine.url.database
    if live:
        # --force onto the database in use would replace it under the running job, its
        # old -wal beside it.
        db = Path(live).resolve()
        if target.resolve() in {db, db.with_name(f"{db.name}-wal"), db.with_name(f"{db.name}-shm")}:
            raise UsageError(f"{target} is the database itself",
                             "name a file or folder elsewhere")
    if target.exists() and not force:
        raise UsageError(f"{target} exists", "pass --force to replace it, or name another file")
    if not target.parent.is_dir():
        raise UsageError(f"no folder {target.parent}", "create it first, or name another path")
    partial = target.with_name(f".{target.name}.part")
    try:
        _copy(store, partial)
        size = partial.stat().st_size
        counts = _counts(partial)
        _flush(partial)
        os.replace(partial, target)
        _flush(target.parent)
    except (OSError, sqlite3.OperationalError) as err:
        # A full disk or a folder not writable: SQLite says so as its own error
        # ("database or disk is full", "unable to open database file").
        _discard(partial)
        raise StoreError(f"cannot write the backup {target}: {err}",
                         "check the folder's free space and permissions") from err
    except BaseException:
        _discard(partial)
        raise
    removed = _rotate(target.parent, keep) if folder and keep > 0 else ()
    return Backup(target, size, *counts, removed=removed)


def _discard(partial: Path) -> None:
    """Remove what was written of a failed copy, if anything can be (a read-only
    folder refuses that too, and must not hide why the copy failed)."""
    with contextlib.suppress(OSError):
        partial.unlink(missing_ok=True)


def _copy(store: StoreBase, partial: Path) -> None:
    """Copy the database into ``partial`` through SQLite's online backup, and check it."""
    partial.unlink(missing_ok=True)
    raw = store.engine.raw_connection()
    try:
        source = raw.driver_connection
        if not isinstance(source, sqlite3.Connection):  # pragma: no cover - dialect checked
            raise TypeError("not an SQLite connection")
        copy = sqlite3.connect(partial)
        try:
            # All pages in one step: one read snapshot, so the copy is of one moment;
            # in WAL mode writers are not held up by it.
            source.backup(copy)
            found = copy.execute("PRAGMA integrity_check").fetchall()
            if found != [("ok",)]:
                problems = "; ".join(str(row[0]) for row in found[:3])
                raise StoreError(f"the backup copy failed SQLite's integrity check: {problems}",
                                 "the database itself may be damaged: run "
                                 "sqlite3 var/digest.sqlite3 'PRAGMA integrity_check'")
            # One file that needs nothing beside it (a WAL copy would need its -wal).
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
    finally:
        raw.close()


def _counts(path: Path) -> tuple[int, int, int]:
    """Return (subscribers, papers, ledger rows) in a backup file."""
    conn = sqlite3.connect(path)
    try:
        subscribers, papers, deliveries = (
            int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("subscribers", "papers", "deliveries"))
    finally:
        conn.close()
    return subscribers, papers, deliveries


def _flush(path: Path) -> None:
    """fsync a file or a folder, so a rename is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rotate(folder: Path, keep: int) -> tuple[Path, ...]:
    """Delete the folder's backups older than its newest ``keep``; return them."""
    found = sorted(p for p in folder.glob(f"{PREFIX}*{SUFFIX}")
                   if p.is_file() and len(p.name) == len(PREFIX) + 16 + len(SUFFIX))
    old = tuple(found[:-keep]) if len(found) > keep else ()
    for path in old:
        path.unlink(missing_ok=True)
    return old
