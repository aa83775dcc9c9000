"""Claims take the earliest sendable rows by id, planned and due retries alike.

Runs on SQLite, and on PostgreSQL in the suite's PostgreSQL pass (the ``config`` fixture).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from digest.models import DeliveryStatus, Profile
from digest.store import Store

DAY = date(2026, 5, 25)
NOW = datetime(2026, 5, 25, 6, 0, tzinfo=UTC)
LEASE = timedelta(minutes=15)


def ledger(store: Store, rows: list[tuple[date, DeliveryStatus]]) -> list[int]:
    """Plan one row per (day, status), in this order; return their subscriber ids."""
    ids = []
    for n, (day, status) in enumerate(rows):
        sub = store.add_subscriber(f"r{n}@example.org", Profile(interests="x"), now=NOW)
        store.plan_deliveries([(sub.id, day, [], f"<{n}>", "planned")], now=NOW)
        if status != "planned":
            store.set_delivery_status(sub.id, day, status, now=NOW)
        ids.append(sub.id)
    return ids


def claim(store: Store, worker: str, limit: int, **kw: object) -> list[int]:
    rows = store.claim_deliveries(
        worker, now=NOW, lease=LEASE, limit=limit, max_attempts=3, **kw  # type: ignore[arg-type]
    )
    return [row.subscriber_id for row in rows]


def test_planned_rows_and_due_retries_are_claimed_in_id_order(store: Store) -> None:
    statuses: list[DeliveryStatus] = [
        "temp_failed", "planned", "sent", "temp_failed", "planned", "skipped", "planned",
        "temp_failed",
    ]
    ids = ledger(store, [(DAY, s) for s in statuses])
    # Not due yet, and out of attempts: neither is sendable.
    store.set_delivery_status(ids[3], DAY, "temp_failed", now=NOW,
                              next_attempt_at=NOW + timedelta(minutes=5))
    for _ in range(3):
        store.set_delivery_status(ids[7], DAY, "temp_failed", now=NOW, attempt=True)
    assert claim(store, "w1", 2) == [ids[0], ids[1]]
    assert claim(store, "w2", 5) == [ids[4], ids[6]]  # w1's leases are skipped
    assert claim(store, "w3", 5) == []
    assert store.release_claims("w1") == 2
    assert claim(store, "w3", 5) == [ids[0], ids[1]]


def test_a_claim_for_some_days_or_subscribers_takes_only_theirs(store: Store) -> None:
    other = DAY + timedelta(days=1)
    ids = ledger(store, [(other, "planned"), (DAY, "planned"), (other, "temp_failed"),
                         (DAY, "temp_failed"), (DAY, "planned")])
    assert claim(store, "w1", 2, days=[DAY]) == [ids[1], ids[3]]
    assert claim(store, "w2", 5, days=[DAY, other], subscriber_ids=[ids[0], ids[4]]) == [
        ids[0], ids[4]
    ]
    assert claim(store, "w3", 5, days=[other]) == [ids[2]]


def test_a_claim_past_many_sent_rows_still_finds_the_rest(store: Store) -> None:
    ids = ledger(store, [(DAY, "sent")] * 30 + [(DAY, "planned")] * 3)
    assert claim(store, "w1", 25, days=[DAY]) == ids[30:]
