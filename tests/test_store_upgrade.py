"""A database made by an older release, opened by this one: upgraded in place, safely.

The old schema is the one `digest init` wrote at commit 8a0b653, kept as SQL in
tests/data/schema/ (SQLite's own text of it); rows are written as that release wrote them.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from digest import pipeline
from digest.models import Profile
from digest.store import Store, open_store
from tests.fixtures.config import make_config

OLD_SCHEMA = Path(__file__).parent / "data" / "schema" / "sqlite-8a0b653.sql"
NOW = datetime(2026, 5, 25, 7, 0, tzinfo=UTC)
DAY = date(2026, 5, 25)
PROFILE = ('{"interests": "machine unlearning, model editing", "keywords": ["unlearning"], '
           '"exclude": [], "categories": [], "authors": [], "seeds": [], "liked": [], '
           '"disliked": []}')


def old_database(path: Path) -> str:
    """Write a database as the release of 8a0b653 left it: one subscriber, one digest sent."""
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA.read_text())
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute(
            "INSERT INTO subscribers VALUES (1, 'a@example.org', '', 'active', ?, 7, 'UTC', "
            "'daily', 0, 10, 'skip', 0.0, '2026-05-20 06:00:00.000000', "
            "'2026-05-20 06:00:00.000000', '2026-05-20 06:00:00.000000', NULL)", (PROFILE,))
        conn.execute(
            "INSERT INTO deliveries VALUES (1, 1, '2026-05-22', 'sent', "
            "'<digest.1.2026-05-22.75ae3c1edf30@example.org>', 1, NULL, "
            "'[\"arxiv:2605.00001\"]', '2026-05-22 07:00:00.000000', "
            "'2026-05-22 07:00:00.000000', NULL)")
    conn.close()
    return f"sqlite:///{path}"


def columns(store: Store, table: str) -> set[str]:
    with store.engine.connect() as conn:
        return {column["name"] for column in inspect(conn).get_columns(table)}


def test_a_database_made_before_the_ledger_leases_gets_them_and_runs(tmp_path: Path) -> None:
    # The ledger's leases (deliveries.claimed_by, claimed_until) came within schema
    # version 1, and opening the database added only missing tables: every run, preview
    # and `deliveries list` failed on "no such column: deliveries.claimed_by" and exited
    # 75, "try again later", at every hourly firing for good.
    url = old_database(tmp_path / "old.sqlite3")
    config = make_config(tmp_path / "var", database_url=url)
    report = pipeline.run(config, now=NOW, day=DAY)
    assert (report.sent, report.failed) == (1, 0)
    store = open_store(url)  # a second open finds nothing left to do
    try:
        assert {"claimed_by", "claimed_until"} <= columns(store, "deliveries")
        rows = [(row.day.isoformat(), row.status) for row, _ in store.list_deliveries()]
        assert rows == [("2026-05-25", "sent"), ("2026-05-22", "sent")]
    finally:
        store.close()


def test_an_upgrade_killed_midway_leaves_the_database_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = old_database(tmp_path / "old.sqlite3")
    real = Store._add_column
    added: list[str] = []

    def dies_after_one(self: Store, conn: Any, table: Any, column: Any) -> None:
        if added:
            raise KeyboardInterrupt  # the process stopped between two columns
        real(self, conn, table, column)
        added.append(column.name)

    monkeypatch.setattr(Store, "_add_column", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        open_store(url)
    with sqlite3.connect(tmp_path / "old.sqlite3") as conn:
        found = {row[1] for row in conn.execute("PRAGMA table_info(deliveries)")}
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert added and not {"claimed_by", "claimed_until"} & found
    assert "outbox" not in tables  # the tables it had created went with it
    monkeypatch.setattr(Store, "_add_column", real)
    store = open_store(url)
    try:
        assert {"claimed_by", "claimed_until"} <= columns(store, "deliveries")
    finally:
        store.close()


def test_a_database_made_before_the_web_app_never_gives_a_removed_subscribers_id_again(
    tmp_path: Path,
) -> None:
    # SQLite hands out max(id) + 1 unless the table was made with AUTOINCREMENT, which
    # the subscribers table gained with the web app (66852d3). In a database made
    # before, the newest subscriber's removal gave their id to the next sign-up, and
    # every link in the removed one's digests (unsubscribe and preferences never
    # expire) opened the newcomer's account: their address, profile, export, deletion.
    url = old_database(tmp_path / "old.sqlite3")
    store = open_store(url)
    try:
        gone = store.add_subscriber("b@example.org", Profile(interests="robots"), now=NOW)
        store.plan_delivery(gone.id, DAY, picks=[("arxiv:1", 1.0, "")], message_id="<m@x>",
                            now=NOW)
        store.remove_subscriber(gone.id, now=NOW, reason="removed")
        newcomer = store.add_subscriber("c@example.org", Profile(interests="graphs"), now=NOW)
        assert newcomer.id > gone.id
        # The rebuilt table keeps its rows, and the ledger's foreign keys still act.
        first = store.get_subscriber(1)
        assert first is not None and first.email == "a@example.org"
        assert first.profile.keywords == ("unlearning",)
        store.remove_subscriber(1, now=NOW, reason="removed")
        assert store.list_deliveries() == []
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "old.sqlite3") as conn:
        assert not conn.execute("PRAGMA foreign_key_check").fetchall()
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "ix_subscribers_status" in names and "subscribers_upgrade" not in names


def test_a_database_made_before_the_title_index_gets_it(tmp_path: Path) -> None:
    # Typed titles are looked up by lower(title) (Store.keys_titled, every rank of a
    # profile that names a paper); the index came after 8a0b653 and opening the database
    # added only tables and columns, so every such lookup read the whole papers table.
    url = old_database(tmp_path / "old.sqlite3")
    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            indexes = {name for (name,) in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index'")}
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT key FROM papers WHERE lower(title) = 'x'"))
    finally:
        store.close()
    assert "ix_papers_title_lower" in indexes
    assert "ix_papers_title_lower" in plan
    open_store(url).close()  # a second open finds it there
