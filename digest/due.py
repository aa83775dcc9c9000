"""Which digest day is due for a subscriber at a given instant: pure calendar logic."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.models import Subscriber

# The job fires hourly (cron, `digest schedule`): a digest sent in the hour after its
# send instant is on time, whatever the grace, which counts only lateness beyond it.
ON_TIME = timedelta(hours=1)


def zone(name: str) -> ZoneInfo:
    """Return the time zone, falling back to UTC for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def send_instant(subscriber: Subscriber, day: date) -> datetime:
    """Return the UTC instant at which ``day``'s digest becomes due for the subscriber.

    Wall-clock times that do not exist (the spring-forward gap) resolve to the instant
    after the gap; repeated ones (fall-back) to the first occurrence, so a local day
    always has exactly one send instant.
    """
    local = datetime.combine(day, time(hour=subscriber.send_hour), tzinfo=zone(subscriber.timezone))
    # Round-trip through UTC normalises a time inside a DST gap to a real instant.
    return local.astimezone(UTC)


def newest_batch_day(subscriber: Subscriber, day: date, *, batch_hour: int) -> date:
    """Return the newest batch day that ``day``'s digest may hold for the subscriber.

    A batch is filed under the UTC day on which it arrives, normally by ``batch_hour``
    (UTC). The digest holds the batches that had arrived by its send instant: those up
    to the UTC day of that instant less ``batch_hour`` hours. So a subscriber whose hour
    comes before the day's batch (07:00 in Tokyo is 22:00 UTC the day before) gets the
    previous batch at their hour instead of waiting for the next one.
    """
    return (send_instant(subscriber, day) - timedelta(hours=batch_hour)).date()


def is_send_day(subscriber: Subscriber, day: date) -> bool:
    """Return True when the subscriber's cadence has a digest on this local day."""
    if subscriber.cadence == "weekly":
        return day.weekday() == subscriber.weekday
    return True


def due_days(
    subscriber: Subscriber,
    now: datetime,
    *,
    grace: timedelta,
    done: set[date],
    newest: date | None = None,
) -> list[date]:
    """Return the local digest days that are due at ``now`` and not yet in ``done``.

    Today's digest is due once its send instant has passed: in the hour after it (that
    hour's firing) whatever the grace, 0 included. A digest whose instant passed within
    ``grace`` (downtime, a missed cron firing) is still due, late rather than never;
    older ones are dropped, and so are days whose instant came before the subscriber
    existed (a sign-up at noon gets tomorrow's digest, not a late one).

    Nor is a day before ``newest``, the latest day the subscriber has a digest of
    (sent or not): after a move to a zone further west (Tokyo -> New York) the local
    day before comes round again with its hour in the grace, and its digest went out
    hours after the one of the day after, with that one's leftovers.
    """
    today = now.astimezone(zone(subscriber.timezone)).date()
    days: list[date] = []
    for offset in range(grace.days + 2, -1, -1):
        day = today - timedelta(days=offset)
        if day in done or not is_send_day(subscriber, day):
            continue
        if newest is not None and day < newest:
            continue
        instant = send_instant(subscriber, day)
        if subscriber.created_at is not None and instant < subscriber.created_at:
            continue
        if instant <= now and (now - instant < ON_TIME or now - instant <= grace):
            days.append(day)
    return days
