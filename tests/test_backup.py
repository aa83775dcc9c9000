"""`digest backup`: a consistent copy of the SQLite database while it is in use.

Real parts: the store's SQLite file in WAL mode, a writer thread during the copy, and
the command through click's CliRunner.
"""

from __future__ import annotations

import resource
import shutil
import signal
import sqlite3
import threading
from datetime import UTC, date, datetime
from pathlib import Path

from click.testing import CliRunner, Result

from digest.cli import main
from digest.config import Config
from digest.models import Paper, Profile
from digest.store import open_store
from digest.store.backup import backup_database, backup_name
from tests.fixtures.config import fresh_postgres_url, make_config

NOW = datetime(2026, 5, 26, 6, 0, tzinfo=UTC)
DAY = date(2026, 5, 26)


def sqlite_config(tmp_path: Path) -> Config:
    var = tmp_path / "var"
    return make_config(var, database_url=f"sqlite:///{var / 'digest.sqlite3'}")


def invoke(config: Config, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj={"config": config})


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def papers(start: int, n: int) -> list[Paper]:
    return [Paper(key=f"arxiv:2605.{i:05d}", title=f"Paper number {i} about graphs",
                  abstract="An abstract.", source="test") for i in range(start, start + n)]


def test_a_backup_holds_what_a_copy_of_the_file_misses(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    db = open_store(config.database_url)
    try:
        db.add_subscriber("ada@example.org", Profile(interests="graphs"), now=NOW)
        # The last transaction waits in the -wal file (the store's pooled connection
        # keeps it open, so nothing checkpoints it): the main file alone lacks it.
        db.add_subscriber("grace@example.org", Profile(interests="compilers"), now=NOW)
        copied = tmp_path / "cp.sqlite3"
        shutil.copyfile(config.var_dir / "digest.sqlite3", copied)
        with sqlite3.connect(copied) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        # Here even the schema is still in the WAL: the copy has no table at all.
        assert "subscribers" not in tables or count(copied, "subscribers") < 2

        made = backup_database(db, tmp_path / "b.sqlite3", now=NOW)
    finally:
        db.close()
    assert made.path == tmp_path / "b.sqlite3" and made.subscribers == 2
    assert count(made.path, "subscribers") == 2
    # One self-contained file: no WAL to carry beside it, no temporary file left.
    with sqlite3.connect(made.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()
                  if p.is_file() and not p.name.startswith("cp.")) == ["b.sqlite3"]
    # What a restore opens: the store reads it as it is.
    restored = open_store(f"sqlite:///{made.path}", create=False)
    try:
        assert restored.find_subscriber("grace@example.org") is not None
    finally:
        restored.close()


def test_a_backup_beside_a_writer_is_one_consistent_moment(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    db = open_store(config.database_url)
    db.save_papers(papers(0, 500), batch_day=DAY, now=NOW)
    writer = open_store(config.database_url)  # another connection, as a run's would be
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        start = 1000
        while not stop.is_set():
            writer.save_papers(papers(start, 50), batch_day=DAY, now=NOW)
            start += 50
            written.append(start)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while len(written) < 2:  # the writer is under way
            stop.wait(0.01)
        made = [backup_database(db, tmp_path / f"b{i}.sqlite3", now=NOW) for i in range(3)]
    finally:
        stop.set()
        thread.join()
        writer.close()
        db.close()
    for backup in made:
        # Whole batches of 50 only: no copy holds half of a transaction.
        assert (backup.papers - 500) % 50 == 0 and backup.papers >= 600
        with sqlite3.connect(backup.path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_backups_into_a_folder_are_named_by_time_and_rotated(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    open_store(config.database_url).close()
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "notes.txt").write_text("the operator's own file")
    for hour in (1, 2, 3):
        made = backup_database(open_store(config.database_url), folder,
                               now=NOW.replace(hour=hour), keep=2)
        assert made.path.name == backup_name(NOW.replace(hour=hour))
    assert sorted(p.name for p in folder.iterdir()) == [
        "digest-20260526T020000Z.sqlite3", "digest-20260526T030000Z.sqlite3", "notes.txt"]


def test_the_command_says_what_it_copied_and_never_overwrites_unasked(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    db = open_store(config.database_url)
    db.add_subscriber("ada@example.org", Profile(interests="graphs"), now=NOW)
    db.close()
    dest = tmp_path / "digest-backup.sqlite3"
    first = invoke(config, "backup", str(dest))
    assert first.exit_code == 0, first.output
    assert f"backed up the database to {dest}" in first.output
    assert "1 subscribers, 0 papers, 0 ledger rows" in first.output
    again = invoke(config, "backup", str(dest))
    assert again.exit_code == 2
    assert "exists" in again.output and "--force" in again.output
    assert invoke(config, "backup", "--force", str(dest)).exit_code == 0
    nowhere = invoke(config, "backup", str(tmp_path / "no" / "such" / "b.sqlite3"))
    assert nowhere.exit_code == 2 and "create it first" in nowhere.output


def test_postgresql_is_pointed_at_its_own_tools(tmp_path: Path) -> None:
    config = make_config(tmp_path / "var", database_url=fresh_postgres_url("backup"))
    result = invoke(config, "backup", str(tmp_path / "b.sqlite3"))
    assert result.exit_code == 78
    assert "pg_dump" in result.output and not (tmp_path / "b.sqlite3").exists()


def test_a_folder_named_with_a_final_slash_or_keep_never_becomes_a_file(
        tmp_path: Path) -> None:
    # `digest backup var/backups/ --keep 14` (the README's line) before var/backups
    # existed wrote the backup as a FILE named var/backups, and every later night then
    # failed with "var/backups exists" (or, with --force, overwrote the one backup).
    config = sqlite_config(tmp_path)
    open_store(config.database_url).close()
    folder = tmp_path / "backups"
    result = invoke(config, "backup", f"{folder}/", "--keep", "14")
    assert result.exit_code == 2, result.output
    assert f"no folder {folder}" in result.output and "mkdir -p" in result.output
    assert not folder.exists()
    # --keep alone names a folder too: rotation of one file means nothing.
    result = invoke(config, "backup", str(folder), "--keep", "14")
    assert result.exit_code == 2 and not folder.exists()
    folder.mkdir()
    assert invoke(config, "backup", f"{folder}/", "--keep", "14").exit_code == 0
    (made,) = folder.iterdir()
    assert made.name.startswith("digest-") and made.suffix == ".sqlite3"
    # A file given as a folder is refused, not replaced.
    single = tmp_path / "one.sqlite3"
    assert invoke(config, "backup", str(single)).exit_code == 0
    result = invoke(config, "backup", str(single), "--keep", "3")
    assert result.exit_code == 2 and "is a file" in result.output


def test_a_full_disk_is_said_in_a_line_with_a_hint_and_leaves_no_partial_file(
        tmp_path: Path) -> None:
    # A folder on a full disk (here: a file-size limit, which SQLite meets as it does a
    # full disk) ended the command in a Python traceback, exit 1, without the hint.
    config = sqlite_config(tmp_path)
    db = open_store(config.database_url)
    db.save_papers(papers(0, 300), batch_day=DAY, now=NOW)
    db.close()
    folder = tmp_path / "backups"
    folder.mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, hard))
    try:
        result = invoke(config, "backup", str(folder))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    assert result.exit_code == 75, result.output
    assert "cannot write the backup" in result.output
    assert "free space" in result.output
    assert list(folder.iterdir()) == []


def test_the_database_itself_is_never_the_destination(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    open_store(config.database_url).close()
    live = config.var_dir / "digest.sqlite3"
    for dest in (live, config.var_dir / "digest.sqlite3-wal"):
        result = invoke(config, "backup", "--force", str(dest))
        assert result.exit_code == 2 and "is the database itself" in result.output
    assert count(live, "subscribers") == 0  # still the database it was
