"""What is left of a subscriber after `digest subscribers remove` or the web page's deletion.

The preferences page promises "Delete my subscription and everything stored about me";
the suppression that keeps a re-import from mailing them again is a hash. Each test
leaves a trace of the person somewhere real (a scanned bounce, a refused delivery, a
message in the Maildir), deletes them through the CLI, and reads back every row of every
table (and the files under var/) for their address.
"""

from __future__ import annotations

import mailbox
import sqlite3
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import insert, select

from digest import mail, packing
from digest.cli import main
from digest.config import Config
from digest.models import Profile
from digest.store import Store, open_store
from digest.store.base import _sqlite_pragmas as sqlite_pragmas
from digest.store.tables import bounces, metadata, outbox, verified_bounces

BOUNCES = Path(__file__).parent / "data" / "bounces"
NOW = datetime(2026, 5, 28, 9, 0, tzinfo=UTC)
ADDRESS = "bob@example.net"  # the recipient of the Postfix sample below


def run(config: Config, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj={"config": config})


def rows_naming(db: Store, needle: str) -> list[str]:
    """Return "table.column" for every stored value that spells ``needle`` (any case)."""
    found = []
    needle = needle.lower()
    with db.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in row._mapping.items():
                    if isinstance(value, bytes | memoryview):
                        data = bytes(value)
                        if table is outbox and column == "message":
                            data = packing.unpack(data)
                        text = data.decode("utf-8", "replace")
                    else:
                        text = str(value)
                    if needle in text.lower():
                        found.append(f"{table.name}.{column}")
    return found


def subscribe_and_send(db: Store) -> str:
    """Add the sample's recipient and record the digest it bounced; return its Message-ID."""
    sub = db.add_subscriber(ADDRESS, Profile(interests="LLM agents"), name="Bob",
                            now=NOW - timedelta(days=30))
    message_id = mail.make_message_id(2, date(2026, 5, 25), "example.org")
    db.plan_delivery(sub.id, date(2026, 5, 25), picks=[], message_id=message_id, now=NOW,
                     status="sent")
    return message_id


def bounce_mailbox(tmp_path: Path) -> Path:
    path = tmp_path / "bounces"
    box = mailbox.Maildir(str(path), create=True)
    box.add((BOUNCES / "postfix_user_unknown.eml").read_bytes())
    return path


def test_a_removed_subscribers_bounces_keep_no_readable_address(
    config: Config, tmp_path: Path,
) -> None:
    # The bounces table keeps the address as a hash ("a removed subscriber leaves no
    # readable address behind"), but each report's key, kept to recognise it on a
    # rescan, was "<report's Message-ID>/bob@example.net": after the deletion the
    # address was still there, in bounces and verified_bounces.
    db = open_store(config.database_url)
    subscribe_and_send(db)
    scanned = run(config, "bounces", "scan", "--maildir", str(bounce_mailbox(tmp_path)))
    assert scanned.exit_code == 0, scanned.output
    assert "1 hard" in scanned.output
    removed = run(config, "subscribers", "remove", ADDRESS, "--yes")
    assert removed.exit_code == 0, removed.output
    assert rows_naming(db, ADDRESS) == []
    assert db.is_suppressed(ADDRESS)
    # The mailbox scanned again still finds its report recorded, and writes nothing new.
    again = run(config, "bounces", "scan", "--maildir", str(tmp_path / "bounces"))
    assert "1 seen before" in again.output, again.output
    assert rows_naming(db, ADDRESS) == []
    db.close()


def test_removal_clears_the_address_from_bounces_an_older_release_recorded(
    config: Config, tmp_path: Path,
) -> None:
    db = open_store(config.database_url)
    message_id = subscribe_and_send(db)
    key = f"<20260525090102.4F2A31C0042@mx.example.net>/{ADDRESS}"  # as releases wrote it
    from digest.store import email_hash

    with db.begin() as conn:
        conn.execute(insert(bounces).values(
            report_id=key, email_hash=email_hash(ADDRESS), kind="hard", status="5.1.1",
            action="failed", diagnostic="550 5.1.1 <recipient>: User unknown",
            source="maildir", bounced_at=NOW, recorded_at=NOW))
        conn.execute(insert(verified_bounces).values(report_id=key, evidence=message_id))
    assert rows_naming(db, ADDRESS) != []
    seen = run(config, "bounces", "scan", "--maildir", str(bounce_mailbox(tmp_path)))
    assert "1 seen before" in seen.output, seen.output  # its old key still recognised
    removed = run(config, "subscribers", "remove", ADDRESS, "--yes")
    assert removed.exit_code == 0, removed.output
    assert rows_naming(db, ADDRESS) == []
    [row] = db.list_bounces()
    assert row["verified"] and row["kind"] == "hard"  # the record stays, without the address
    again = run(config, "bounces", "scan", "--maildir", str(tmp_path / "bounces"))
    assert "1 seen before" in again.output, again.output
    assert len(db.list_bounces()) == 1
    db.close()


def test_a_refused_delivery_leaves_no_address_in_the_run_reports(
    config: Config, smtp_server: Any,
) -> None:
    # Real servers name the address they refuse ("550 5.1.1 <bob@example.net>: Recipient
    # address rejected"). The ledger row holding that text goes with the subscriber,
    # but the run's stored report (kept for `digest status`, a year by default) kept
    # it, in its deliveries' errors.
    config = replace(config, smtp=smtp_server.settings())
    added = run(config, "subscribe", "Bob@Example.net", "--interests", "LLM agents")
    assert added.exit_code == 0, added.output
    smtp_server.fail("rcpt", "550 5.1.1 <bob@example.net>: Recipient address rejected: "
                     "User unknown in virtual mailbox table", recipient=ADDRESS)
    ran = run(config, "run", "--date", "2026-05-25", "--json")
    assert ran.exit_code == 1, ran.output
    db = open_store(config.database_url)
    sub = db.find_subscriber(ADDRESS)
    assert sub is not None
    row = db.get_delivery(sub.id, date(2026, 5, 25))
    assert row is not None and row.status == "perm_failed"
    assert "550 5.1.1" in (row.error or "") and "User unknown" in (row.error or "")
    assert db.is_suppressed(ADDRESS)  # our own server said so
    removed = run(config, "subscribers", "remove", ADDRESS, "--yes")
    assert removed.exit_code == 0, removed.output
    assert rows_naming(db, ADDRESS) == []
    db.close()


def test_removal_deletes_the_subscribers_messages_from_the_local_maildir(
    config: Config,
) -> None:
    # Without SMTP every digest (and confirmation mail) is delivered into var/mail/ on
    # this machine: "everything stored about me" holds those messages, which spell the
    # address, the name and the interests. The HTML previews beside them went with the
    # subscriber; the messages stayed.
    for address, interests in ((ADDRESS, "LLM agents"), ("ada@example.org", "robots")):
        added = run(config, "subscribe", address, "--interests", interests, "--name", "X Y")
        assert added.exit_code == 0, added.output
    ran = run(config, "run", "--date", "2026-05-25")
    assert ran.exit_code == 0, ran.output
    confirm = run(config, "subscribe", "new@example.org", "--interests", "optics",
                  "--confirm")
    assert confirm.exit_code == 0, confirm.output
    box = mailbox.Maildir(str(config.maildir), create=False)

    def recipients() -> list[str]:
        return sorted(str(box.get_message(key)["To"]) for key in box.iterkeys())

    assert len(recipients()) == 3
    removed = run(config, "subscribers", "remove", ADDRESS, "--yes")
    assert removed.exit_code == 0, removed.output
    assert not any(ADDRESS in to.lower() for to in recipients())
    assert len(recipients()) == 2  # the others' mail stays
    pending = run(config, "subscribers", "remove", "new@example.org", "--yes")
    assert pending.exit_code == 0, pending.output
    assert [ADDRESS not in to and "ada@example.org" in to for to in recipients()] == [True]
    files = [p for p in config.var_dir.rglob("*") if p.is_file()]
    assert not [p for p in files if ADDRESS in p.name or "new@example.org" in p.name]


def test_removal_drops_the_digests_written_ahead_in_the_outbox(config: Config) -> None:
    # A run that only plans (`--no-send`) writes each message, address and all, into
    # the outbox for the send workers; a deletion before they send must take it too.
    added = run(config, "subscribe", ADDRESS, "--interests", "LLM agents", "--name", "Bob")
    assert added.exit_code == 0, added.output
    planned = run(config, "run", "--date", "2026-05-25", "--no-send")
    assert planned.exit_code == 0, planned.output
    db = open_store(config.database_url)
    assert {"outbox.to_email", "outbox.message"} <= set(rows_naming(db, ADDRESS))
    removed = run(config, "subscribers", "remove", ADDRESS, "--yes")
    assert removed.exit_code == 0, removed.output
    assert rows_naming(db, ADDRESS) == []
    db.close()
    sent = run(config, "send")
    assert sent.exit_code == 0, sent.output
    assert not config.maildir.exists() or not any(config.maildir.rglob("*.*"))


def test_every_sqlite_connection_overwrites_deleted_rows(tmp_path: Path) -> None:
    # Whatever the SQLite build's default (Debian's is on; others' off): a deleted
    # subscriber's rows must not stay readable in the file's free pages.
    raw = sqlite3.connect(tmp_path / "d.sqlite3")
    try:
        raw.execute("PRAGMA secure_delete=OFF")  # as a build with it off by default
        sqlite_pragmas(raw, None)
        assert raw.execute("PRAGMA secure_delete").fetchone() == (1,)
    finally:
        raw.close()
    store = open_store(f"sqlite:///{tmp_path / 'e.sqlite3'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    finally:
        store.close()
