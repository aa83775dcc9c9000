"""The send phase's two ledger writes per message: ``sending`` before DATA, ``sent`` after 250.

Runs on SQLite, and on PostgreSQL in the suite's PostgreSQL pass (the ``config`` fixture).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from digest import pipeline
from digest.config import SAMPLE_BATCH, Config
from digest.ingest.jsonl import load_jsonl
from digest.models import Profile
from digest.store import Store, open_store

DAY = date(2026, 5, 25)
NOW = datetime(2026, 5, 25, 6, 0, tzinfo=UTC)
LEASE = timedelta(minutes=15)


def plan(store: Store, email: str, keys: list[str]) -> int:
    sub = store.add_subscriber(email, Profile(interests="agents"), now=NOW)
    picks = [(key, 1.0, "matches: agents") for key in keys]
    store.plan_deliveries([(sub.id, DAY, picks, f"<{sub.id}@x>", "planned")], now=NOW)
    return sub.id


def test_mark_sent_records_the_row_and_the_papers_it_is_given(store: Store) -> None:
    sub_id = plan(store, "a@example.org", ["arxiv:1", "arxiv:2"])
    assert store.claim_deliveries("w", now=NOW, lease=LEASE, limit=5, max_attempts=5)
    assert store.start_sending(sub_id, DAY, worker="w", now=NOW)
    assert store.mark_sent(sub_id, DAY, ("arxiv:1", "arxiv:2"), now=NOW)
    row = store.get_delivery(sub_id, DAY)
    assert row is not None and row.status == "sent" and row.attempts == 1
    assert row.error is None and row.next_attempt_at is None
    assert store.sent_keys([sub_id], ["arxiv:1", "arxiv:2", "arxiv:3"]) == {
        sub_id: {"arxiv:1", "arxiv:2"}
    }
    assert store.last_delivered_days() == {sub_id: DAY}


def test_mark_sent_again_or_without_papers_is_harmless(store: Store) -> None:
    sub_id = plan(store, "b@example.org", ["arxiv:1"])
    assert store.mark_sent(sub_id, DAY, ("arxiv:1",), now=NOW)
    assert store.mark_sent(sub_id, DAY, ("arxiv:1",), now=NOW)  # already recorded: no conflict
    empty = plan(store, "c@example.org", [])
    assert store.mark_sent(empty, DAY, (), now=NOW)
    assert store.sent_keys([sub_id, empty], ["arxiv:1"]) == {sub_id: {"arxiv:1"}}


def test_mark_sent_of_a_row_that_does_not_exist_changes_nothing(store: Store) -> None:
    sub_id = plan(store, "d@example.org", ["arxiv:1"])
    assert not store.mark_sent(sub_id, DAY + timedelta(days=1), ("arxiv:1",), now=NOW)
    assert store.sent_keys([sub_id], ["arxiv:1"]) == {}


def test_start_sending_needs_the_lease_and_a_planned_or_temp_failed_row(store: Store) -> None:
    sub_id = plan(store, "e@example.org", ["arxiv:1"])
    assert not store.start_sending(sub_id, DAY, worker="w", now=NOW)  # not leased
    assert store.claim_deliveries("w", now=NOW, lease=LEASE, limit=5, max_attempts=5)
    assert not store.start_sending(sub_id, DAY, worker="other", now=NOW)
    assert store.start_sending(sub_id, DAY, worker="w", now=NOW)
    assert not store.start_sending(sub_id, DAY, worker="w", now=NOW)  # already sending
    store.set_delivery_status(sub_id, DAY, "temp_failed", now=NOW)
    assert store.start_sending(sub_id, DAY, worker="w", now=NOW)  # still its lease
    row = store.get_delivery(sub_id, DAY)
    assert row is not None and row.status == "sending" and row.attempts == 2


def test_start_sending_records_the_previous_row_in_the_same_transaction(store: Store) -> None:
    first = plan(store, "f@example.org", ["arxiv:1", "arxiv:2"])
    second = plan(store, "g@example.org", ["arxiv:3"])
    assert len(store.claim_deliveries("w", now=NOW, lease=LEASE, limit=5, max_attempts=5)) == 2
    assert store.start_sending(first, DAY, worker="w", now=NOW)
    assert store.start_sending(second, DAY, worker="w", now=NOW,
                               sent=(first, DAY, ("arxiv:1", "arxiv:2")))
    assert store.get_delivery(first, DAY).status == "sent"  # type: ignore[union-attr]
    assert store.get_delivery(second, DAY).status == "sending"  # type: ignore[union-attr]
    assert store.sent_keys([first], ["arxiv:1", "arxiv:2"]) == {first: {"arxiv:1", "arxiv:2"}}
    # A start that fails (the lease was lost) still records the earlier row.
    third = plan(store, "h@example.org", ["arxiv:4"])
    assert not store.start_sending(third, DAY, worker="w", now=NOW,
                                   sent=(second, DAY, ("arxiv:3",)))
    assert store.get_delivery(second, DAY).status == "sent"  # type: ignore[union-attr]
    assert store.get_delivery(third, DAY).status == "planned"  # type: ignore[union-attr]


class LedgerChecker:
    """A transport that, at each message's DATA, reads the ledger through its own engine."""

    def __init__(self, url: str, ids: dict[str, int], keys: dict[int, tuple[str, ...]]) -> None:
        self.other = open_store(url)
        self.ids = ids
        self.keys = keys
        self.done: list[int] = []

    def send(self, message: EmailMessage) -> str:
        sub_id = self.ids[str(message["To"])]
        seen = {d.subscriber_id: d for d in self.other.deliveries_for_day(DAY).values()}
        # This message's row is committed as sending before any of it goes out...
        assert seen[sub_id].status == "sending"
        # ...and every earlier one was committed as sent, papers included, before this
        # message was started: a crash now cannot make them look unsent.
        for done in self.done:
            assert seen[done].status == "sent"
        sent = self.other.sent_keys(self.done, [k for d in self.done for k in self.keys[d]])
        assert sent == {d: set(self.keys[d]) for d in self.done if self.keys[d]}
        self.done.append(sub_id)
        return "250 OK"

    def send_wire(self, sender: str, recipients: Sequence[str], wire: bytes) -> str:
        parsed = BytesParser(policy=policy.SMTP).parsebytes(wire)
        assert isinstance(parsed, EmailMessage)
        return self.send(parsed)

    def close(self) -> None:
        self.other.close()

    def __enter__(self) -> LedgerChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def count_driver_transactions(monkeypatch: pytest.MonkeyPatch, store: Store) -> list[int]:
    """Count the store's driver transactions from now on (in a one-item list)."""
    count = [0]
    original = store.driver_transaction

    def counted() -> Any:
        count[0] += 1
        return original()

    monkeypatch.setattr(store, "driver_transaction", counted)
    return count


def test_each_row_is_sending_during_data_and_every_earlier_one_already_sent(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    papers = load_jsonl(SAMPLE_BATCH, source="sample")[:12]
    store.save_papers(papers, batch_day=DAY, now=NOW)
    keys = [p.key for p in papers]
    ids = {
        f"r{n}@example.org": plan(store, f"r{n}@example.org", keys[n : n + 3])
        for n in range(6)
    }
    rows = {row.subscriber_id: row.paper_keys for row in store.deliveries_for_day(DAY).values()}
    checker = LedgerChecker(config.database_url, ids, rows)
    commits = count_driver_transactions(monkeypatch, store)
    report = pipeline.send_pending(
        config, now=NOW, store=store, transport=lambda: checker, workers=1, send_chunk=4
    )
    assert report.sent == 6 and len(checker.done) == 6
    # One ledger commit a message (its start records the previous 250), and one more
    # at the end of each chunk of 4 for its last row: 6 + 2.
    assert commits == [8]
    assert store.delivery_counts(DAY) == {"sent": 6}
    assert store.sent_keys(list(ids.values()), keys) == {
        sub_id: set(rows[sub_id]) for sub_id in ids.values()
    }


def test_the_driver_path_stores_the_same_values_as_sqlalchemy(store: Store) -> None:
    # start_sending and mark_sent run precompiled SQL on the DBAPI cursor; what they
    # store must be what SQLAlchemy's own statements store (SQLite keeps datetimes as
    # text in SQLAlchemy's format), read raw, column by column.
    from sqlalchemy import select

    from digest.store.tables import deliveries, sent_papers

    fast = plan(store, "fast@example.org", ["arxiv:1"])
    slow = plan(store, "slow@example.org", ["arxiv:1"])
    assert store.claim_deliveries("w", now=NOW, lease=LEASE, limit=5, max_attempts=5)
    later = NOW + timedelta(minutes=3, microseconds=250)
    assert store.start_sending(fast, DAY, worker="w", now=later)
    assert store.mark_sent(fast, DAY, ("arxiv:1",), now=later)
    assert store.set_delivery_status(slow, DAY, "sending", now=later, attempt=True)
    assert store.set_delivery_status(slow, DAY, "sent", now=later)
    columns = ("status", "attempts", "error", "updated_at", "next_attempt_at", "day")
    with store.begin() as conn:
        rows = {
            sub_id: conn.exec_driver_sql(
                f"SELECT {', '.join(columns)} FROM deliveries WHERE subscriber_id = {sub_id}"
            ).one()
            for sub_id in (fast, slow)
        }
        papers = {
            sub_id: conn.exec_driver_sql(
                f"SELECT paper_key, day FROM sent_papers WHERE subscriber_id = {sub_id}"
            ).all()
            for sub_id in (fast, slow)
        }
        typed = conn.execute(
            select(deliveries.c.updated_at).where(deliveries.c.subscriber_id == fast)
        ).scalar_one()
        assert conn.execute(select(sent_papers.c.day)).scalars().all() == [DAY, DAY]
    assert tuple(rows[fast]) == tuple(rows[slow])
    assert papers[fast] == papers[slow]
    assert typed.replace(tzinfo=UTC) == later


def test_a_failed_driver_transaction_changes_nothing(store: Store) -> None:
    sub_id = plan(store, "f@example.org", ["arxiv:1"])
    assert store.claim_deliveries("w", now=NOW, lease=LEASE, limit=5, max_attempts=5)
    statement = store._prepared_start_sending
    params = {"b_subscriber_id": sub_id, "b_day": DAY, "b_worker": "w", "b_now": NOW,
              "b_email_hash": ""}
    try:
        with store.driver_transaction() as cursor:
            cursor.execute(statement.sql, statement.params(params))
            assert cursor.rowcount == 1
            raise RuntimeError("the process fails before the commit")
    except RuntimeError:
        pass
    row = store.get_delivery(sub_id, DAY)
    assert row is not None and row.status == "planned" and row.attempts == 0
    assert store.start_sending(sub_id, DAY, worker="w", now=NOW)  # the lease still holds


def test_a_pinned_thread_runs_its_driver_transactions_on_one_connection(store: Store) -> None:
    from digest.errors import StoreError

    pool = store.engine.pool
    with store.pinned_connection():
        with store.driver_transaction() as cursor:
            first = cursor.connection
        with store.pinned_connection(), store.driver_transaction() as cursor:  # nested
            assert cursor.connection is first
        assert pool.checkedout() == 1  # type: ignore[attr-defined]
        # A failing transaction gives its connection back; the next one takes another
        # from the pool and keeps it.
        failing = (StoreError, store.engine.dialect.loaded_dbapi.Error)
        with pytest.raises(failing), store.driver_transaction() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
        with store.driver_transaction() as cursor:
            again = cursor.connection
        with store.driver_transaction() as cursor:
            assert cursor.connection is again
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    sub_id = plan(store, "p@example.org", ["arxiv:1"])
    assert store.mark_sent(sub_id, DAY, ("arxiv:1",), now=NOW)  # unpinned, as before


def test_a_send_worker_takes_one_connection_for_its_ledger_commits(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import event

    for n in range(5):
        plan(store, f"q{n}@example.org", [])
    checkouts = [0]
    ledger = [0, 0]  # ledger transactions, pool checkouts they made

    def checkout(*_args: Any) -> None:
        checkouts[0] += 1

    event.listen(store.engine.pool, "checkout", checkout)
    original = store.driver_transaction

    @contextlib.contextmanager
    def counted() -> Iterator[Any]:
        before = checkouts[0]
        with original() as cursor:
            ledger[0] += 1
            ledger[1] += checkouts[0] - before
            yield cursor

    monkeypatch.setattr(store, "driver_transaction", counted)
    sent: list[str] = []

    class Accept:
        def send_wire(self, sender: str, recipients: Sequence[str], wire: bytes) -> str:
            sent.extend(recipients)
            return "250 OK"

        def __enter__(self) -> Accept:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    report = pipeline.send_pending(config, now=NOW, store=store, transport=Accept,
                                   workers=1, send_chunk=10)
    event.remove(store.engine.pool, "checkout", checkout)
    assert report.sent == 5 and len(sent) == 5
    # Five starts (each recording the previous 250) and the chunk's last 250, on the
    # one connection the worker took for them.
    assert ledger == [6, 1]


class Recorder:
    """A transport that accepts every message and appends its recipients to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send_wire(self, sender: str, recipients: Sequence[str], wire: bytes) -> str:
        with self.path.open("a") as out:
            out.write("".join(f"{address}\n" for address in recipients))
        return "250 OK"

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_a_worker_killed_between_a_250_and_its_record_is_unknown_and_never_resent(
    config: Config, store: Store, tmp_path: Path
) -> None:
    import multiprocessing
    import os
    import signal

    ids = {f"k{n}@example.org": plan(store, f"k{n}@example.org", [f"arxiv:{n}"])
           for n in range(3)}
    received = tmp_path / "received"

    def killed_after_the_first_250() -> None:
        db = open_store(config.database_url)
        original = db.start_sending
        starts = [0]

        def start(*args: Any, **kwargs: Any) -> bool:
            starts[0] += 1
            if starts[0] == 2:  # the first row's 250 is in; this start would record it
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        db.start_sending = start  # type: ignore[method-assign]
        pipeline.send_pending(config, now=NOW, store=db,
                              transport=lambda: Recorder(received), workers=1)

    child = multiprocessing.get_context("fork").Process(target=killed_after_the_first_250)
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    first = "k0@example.org"
    assert received.read_text().split() == [first]
    row = store.get_delivery(ids[first], DAY)
    assert row is not None and row.status == "sending"  # delivered, but not recorded
    # A run after the lease finds the dead worker's row: unknown (maybe delivered),
    # never resent; the rows it had leased but not started go out.
    later = NOW + timedelta(seconds=config.lease_seconds + 60)
    report = pipeline.send_pending(config, now=later, store=store,
                                   transport=lambda: Recorder(received), workers=1)
    assert report.unknown == 1 and report.sent == 2
    assert sorted(received.read_text().split()) == sorted(ids)
    assert store.get_delivery(ids[first], DAY).status == "unknown"  # type: ignore[union-attr]
    assert store.sent_keys([ids[first]], ["arxiv:0"]) == {}


def test_threads_past_the_pinning_limit_take_a_pooled_connection_each_time(
    store: Store,
) -> None:
    import threading

    from digest.store.base import PINNED_MAX

    pool = store.engine.pool
    pinned, release = threading.Barrier(PINNED_MAX + 1), threading.Event()

    def pin() -> None:
        with store.pinned_connection():
            with store.driver_transaction():
                pass
            pinned.wait(30)
            release.wait(30)

    threads = [threading.Thread(target=pin) for _ in range(PINNED_MAX)]
    for thread in threads:
        thread.start()
    try:
        pinned.wait(30)
        assert pool.checkedout() == PINNED_MAX  # type: ignore[attr-defined]
        # One more pinning thread would leave too little of the pool: this one's
        # transactions give their connection back, as without pinning.
        with store.pinned_connection():
            with store.driver_transaction():
                assert pool.checkedout() == PINNED_MAX + 1  # type: ignore[attr-defined]
            assert pool.checkedout() == PINNED_MAX  # type: ignore[attr-defined]
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    with store.pinned_connection(), store.driver_transaction():  # the slots are free again
        pass
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
