"""What the plan phase reads from a ledger with history, a chunk of subscribers at a time.

A month into a 100,000-subscriber list the ledger holds millions of sent papers. The
plan phase asked for them by paper (no index leads with the paper: every page read
the whole table, 9-21 s a page of 5,000 at 14 days, bench/ledger.py), for every
subscriber's latest sent day across the whole ledger (1.8 s a page), and parsed the
papers of five days of rows per page to tell which digests were due. Here: the
answers, and that SQLite reads them down the ledger's (subscriber, day) index (its
query plan). The store runs on SQLite, and on PostgreSQL in the suite's PostgreSQL
pass (the ``store`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import event

from digest.models import Profile
from digest.store import Store

DAY = date(2026, 5, 25)
NOW = datetime(2026, 5, 25, 6, 0, tzinfo=UTC)


def sent(store: Store, sub_id: int, day: date, keys: list[str]) -> None:
    """Plan and send one digest of ``day`` holding ``keys``."""
    picks = [(key, 1.0, "matches: agents") for key in keys]
    store.plan_deliveries([(sub_id, day, picks, f"<{sub_id}.{day}@x>", "planned")], now=NOW)
    assert store.mark_sent(sub_id, day, tuple(keys), now=NOW)


def subscribers(store: Store, count: int) -> list[int]:
    return [store.add_subscriber(f"s{n}@example.org", Profile(interests="agents"), now=NOW).id
            for n in range(count)]


def test_sent_keys_since_a_day_reads_the_digests_of_that_day_and_later(store: Store) -> None:
    a, b, c = subscribers(store, 3)
    sent(store, a, DAY - timedelta(days=9), ["arxiv:old"])
    sent(store, a, DAY - timedelta(days=1), ["arxiv:1", "arxiv:2"])
    sent(store, b, DAY, ["arxiv:2", "arxiv:3"])
    sent(store, c, DAY, ["arxiv:1"])
    keys = ["arxiv:old", "arxiv:1", "arxiv:2", "arxiv:3", "arxiv:9"]
    assert store.sent_keys([a, b], keys) == {
        a: {"arxiv:old", "arxiv:1", "arxiv:2"}, b: {"arxiv:2", "arxiv:3"}}
    assert store.sent_keys([a, b], keys, since=DAY - timedelta(days=2)) == {
        a: {"arxiv:1", "arxiv:2"}, b: {"arxiv:2", "arxiv:3"}}
    assert store.sent_keys([c], ["arxiv:2"], since=DAY) == {}
    assert store.sent_keys([], keys) == {} and store.sent_keys([a], []) == {}


def test_last_delivered_days_of_some_subscribers(store: Store) -> None:
    a, b, c = subscribers(store, 3)
    sent(store, a, DAY - timedelta(days=3), ["arxiv:1"])
    sent(store, a, DAY - timedelta(days=1), ["arxiv:2"])
    sent(store, b, DAY, ["arxiv:3"])
    # A later row of a's that did not go out does not count.
    store.plan_deliveries([(a, DAY, [("arxiv:4", 1.0, "")], "<a@x>", "planned")], now=NOW)
    assert store.last_delivered_days([a, c]) == {a: DAY - timedelta(days=1)}
    assert store.last_delivered_days([a, b, c]) == {a: DAY - timedelta(days=1), b: DAY}
    assert store.last_delivered_days() == {a: DAY - timedelta(days=1), b: DAY}


def test_the_days_ledger_without_papers_has_what_tells_a_digest_due(store: Store) -> None:
    a, b = subscribers(store, 2)
    sent(store, a, DAY, ["arxiv:1", "arxiv:2"])
    store.plan_deliveries([(b, DAY, [("arxiv:3", 1.0, "")], "<b@x>", "planned")], now=NOW)
    full = store.deliveries_for_day(DAY, subscriber_ids=(a, b))
    light = store.deliveries_for_day(DAY, subscriber_ids=(a, b), papers=False)
    assert full[a].paper_keys == ("arxiv:1", "arxiv:2") and light[a].paper_keys == ()
    for sub_id in (a, b):
        for field in ("subscriber_id", "day", "status", "message_id", "attempts", "error",
                      "updated_at", "next_attempt_at"):
            assert getattr(light[sub_id], field) == getattr(full[sub_id], field), field
    assert store.deliveries_for_day(DAY, subscriber_ids=(b + 1, b + 5), papers=False) == {}


@contextmanager
def statements(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """Collect the SQL and parameters the store sends to the driver meanwhile."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: object, _cursor: object, sql: str, params: Any, *_: object) -> None:
        seen.append((sql, params))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def plan_of(store: Store, sql: str, params: Any) -> str:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " | ".join(str(row[-1]) for row in rows)


def test_sqlite_reads_the_chunks_ledger_through_the_subscriber_day_index(store: Store) -> None:
    if not store.is_sqlite:
        return  # PostgreSQL chooses its own plans; the answers are checked above
    ids = subscribers(store, 3)
    for sub_id in ids:
        sent(store, sub_id, DAY, ["arxiv:1", "arxiv:2"])
    for read in (lambda: store.sent_keys(ids, ["arxiv:1"], since=DAY - timedelta(days=2)),
                 lambda: store.last_delivered_days(ids)):
        with statements(store) as seen:
            read()
        [(sql, params)] = [s for s in seen if "deliveries" in s[0]]
        plan = plan_of(store, sql, params)
        # SQLite names a UNIQUE constraint's index sqlite_autoindex_<table>_<n>: here
        # (subscriber_id, day), uq_delivery_subscriber_day.
        assert "USING INDEX sqlite_autoindex_deliveries" in plan, plan
        assert "SCAN deliveries" not in plan and "sent_papers" not in plan, plan
