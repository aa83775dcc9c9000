"""Due-day logic: each subscriber's own hour and zone, DST, grace after downtime."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from digest.due import due_days, newest_batch_day, send_instant
from digest.models import Profile, Subscriber

GRACE = timedelta(hours=18)


def sub(tz: str, hour: int, cadence: str = "daily", weekday: int = 0) -> Subscriber:
    return Subscriber(id=1, email="a@example.org", profile=Profile(interests="x"),
                      send_hour=hour, timezone=tz, cadence=cadence,  # type: ignore[arg-type]
                      weekday=weekday)


@pytest.mark.parametrize(
    ("tz", "hour"),
    [
        ("Europe/Berlin", 2),  # 02:00 falls inside the spring-forward gap
        ("Europe/Berlin", 7),
        ("America/New_York", 1),  # 01:00 repeats on the fall-back night
        ("America/New_York", 23),
        ("Australia/Sydney", 2),
        ("Asia/Kolkata", 0),
        ("UTC", 0),
    ],
)
def test_a_year_of_hourly_firings_sends_one_digest_per_local_day(tz: str, hour: int) -> None:
    s = sub(tz, hour)
    done: dict[date, datetime] = {}
    now = datetime(2026, 1, 1, 0, 7, tzinfo=UTC)
    end = datetime(2027, 1, 1, 0, 7, tzinfo=UTC)
    while now < end:
        for day in due_days(s, now, grace=GRACE, done=set(done)):
            assert day not in done
            done[day] = now
        now += timedelta(hours=1)
    first = min(done)
    last = max(done)
    expected = {first + timedelta(days=k) for k in range((last - first).days + 1)}
    assert set(done) == expected, "a local day was skipped"
    assert len(done) >= 364
    for day, sent_at in done.items():
        if day == first:
            continue  # the simulation's first firing may catch up a digest within grace
        # Sent in the firing right after the local send hour, never before it.
        assert sent_at >= send_instant(s, day)
        assert sent_at - send_instant(s, day) < timedelta(hours=1)


def test_weekly_subscriber_gets_one_digest_on_their_weekday() -> None:
    s = sub("Europe/Paris", 8, cadence="weekly", weekday=4)
    done: set[date] = set()
    now = datetime(2026, 3, 1, tzinfo=UTC)
    for _ in range(24 * 60):
        done.update(due_days(s, now, grace=GRACE, done=done))
        now += timedelta(hours=1)
    assert done and all(d.weekday() == 4 for d in done)
    assert len(done) in (8, 9)


def test_missed_digest_goes_out_late_within_grace_and_not_after() -> None:
    s = sub("UTC", 7)
    # The machine was down from 06:00 to 20:00: today's 07:00 digest goes out at 20:00.
    assert due_days(s, datetime(2026, 6, 3, 20, 0, tzinfo=UTC), grace=GRACE, done=set()) == [
        date(2026, 6, 3)
    ]
    # Down for two days: yesterday's is past the grace, today's is due.
    late = due_days(s, datetime(2026, 6, 4, 8, 0, tzinfo=UTC), grace=GRACE, done=set())
    assert late == [date(2026, 6, 4)]


def test_with_no_grace_a_digest_is_due_in_the_hour_after_its_instant_only() -> None:
    # DIGEST_GRACE_HOURS=0 (no late digests) still sends on time: in the hourly
    # firing after the instant (07:05), not at 08:05.
    s = sub("UTC", 7)
    none = timedelta(0)
    assert due_days(s, datetime(2026, 6, 3, 7, 5, tzinfo=UTC), grace=none, done=set()) == [
        date(2026, 6, 3)
    ]
    assert due_days(s, datetime(2026, 6, 3, 8, 5, tzinfo=UTC), grace=none, done=set()) == []


def test_not_due_before_the_local_hour() -> None:
    s = sub("America/Los_Angeles", 9)
    # 15:00 UTC is 08:00 in Los Angeles in summer.
    assert due_days(s, datetime(2026, 7, 1, 15, 0, tzinfo=UTC), grace=GRACE,
                    done={date(2026, 6, 30)}) == []
    assert due_days(s, datetime(2026, 7, 1, 16, 0, tzinfo=UTC), grace=GRACE,
                    done={date(2026, 6, 30)}) == [date(2026, 7, 1)]


@pytest.mark.parametrize(
    ("tz", "hour", "newest"),
    [
        ("UTC", 7, date(2026, 5, 26)),  # 07:00 UTC: the day's batch came at ~00:05
        ("UTC", 1, date(2026, 5, 25)),  # before the batch hour: the previous batch
        ("Asia/Tokyo", 7, date(2026, 5, 25)),  # 22:00 UTC the day before
        ("Asia/Shanghai", 8, date(2026, 5, 25)),  # 00:00 UTC, before the batch hour
        ("Asia/Shanghai", 10, date(2026, 5, 26)),  # 02:00 UTC, the batch hour
        ("Australia/Sydney", 7, date(2026, 5, 25)),  # 21:00 UTC the day before
        ("America/New_York", 7, date(2026, 5, 26)),  # 11:00 UTC
        ("America/Los_Angeles", 23, date(2026, 5, 27)),  # 06:00 UTC the day after
    ],
)
def test_a_digest_holds_the_batches_that_arrived_before_its_send_instant(
    tz: str, hour: int, newest: date
) -> None:
    assert newest_batch_day(sub(tz, hour), date(2026, 5, 26), batch_hour=2) == newest


def test_the_batch_day_of_consecutive_digests_never_goes_backwards_over_dst() -> None:
    # A day's digest never holds less than the day before's: each batch day belongs to
    # exactly one digest's window (the next one starts the day after).
    for tz, hour in (("Europe/Berlin", 2), ("America/New_York", 1), ("Australia/Sydney", 2),
                     ("Asia/Tokyo", 7), ("Pacific/Kiritimati", 0), ("Pacific/Pago_Pago", 23)):
        s = sub(tz, hour)
        day = date(2026, 1, 1)
        before = newest_batch_day(s, day, batch_hour=2)
        for _ in range(366):
            day += timedelta(days=1)
            newest = newest_batch_day(s, day, batch_hour=2)
            assert before <= newest <= before + timedelta(days=2), (tz, day)
            before = newest


def test_no_day_before_the_newest_digest_is_due() -> None:
    # Thursday's digest went out in Tokyo; at Thursday 03:00 UTC the subscriber is in
    # New York, where Wednesday's 07:00 (11:00 UTC) is 16 hours past: within the grace,
    # but a day before the digest they already have.
    s = sub("America/New_York", 7)
    now = datetime(2026, 5, 21, 3, 5, tzinfo=UTC)
    assert due_days(s, now, grace=GRACE, done=set()) == [date(2026, 5, 20)]
    newest = date(2026, 5, 21)
    assert due_days(s, now, grace=GRACE, done={newest}, newest=newest) == []
    # The newest day itself stays due while its row may still be sent (retried).
    later = datetime(2026, 5, 21, 12, 5, tzinfo=UTC)
    assert due_days(s, later, grace=GRACE, done=set(), newest=newest) == [newest]
