"""APScheduler 3.x: fire the daily job so each subscriber gets theirs at their own hour."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from digest.config import Config

log = logging.getLogger("digest.schedule")

# A firing missed while the process was down still runs if it is at most this late;
# the run itself decides, per subscriber, what is still due (see digest.due).
MISFIRE_GRACE_S = 6 * 3600
JOB_ID = "digest-run"


def make_trigger(config: Config) -> CronTrigger:
    """Return the trigger: every hour at DIGEST_SEND_AT's minute, in DIGEST_TIMEZONE.

    Subscribers choose their own hour and time zone, so the job fires hourly and each
    run sends to those whose local hour has come. DIGEST_SEND_AT's hour is the default
    hour of new subscribers.
    """
    _hour, minute = config.send_at
    return CronTrigger(minute=minute, timezone=config.timezone)


def next_fire(config: Config, now: datetime) -> datetime | None:
    """Return when the scheduler will next fire after ``now``."""
    fire: datetime | None = make_trigger(config).get_next_fire_time(None, now)
    return fire


def next_fires(config: Config, now: datetime, count: int) -> list[datetime]:
    """Return the scheduler's next ``count`` fire times after ``now``."""
    fires: list[datetime] = []
    at = now
    while len(fires) < count:
        fire = next_fire(config, at)
        if fire is None:
            break
        fires.append(fire)
        # Step on in UTC: a fire time is local, and adding to the second of a repeated
        # hour (the autumn change) lands in its first occurrence again, an hour back.
        at = fire.astimezone(UTC) + timedelta(seconds=1)
    return fires


def build_scheduler(config: Config, job: Callable[[], object]) -> BlockingScheduler:
    """Return a blocking scheduler running ``job`` on the trigger (coalesced, one at a time)."""
    scheduler = BlockingScheduler(timezone=config.timezone)
    scheduler.add_job(
        job,
        trigger=make_trigger(config),
        id=JOB_ID,
        name="daily digest run",
        coalesce=True,  # after downtime, one catch-up run, not one per missed hour
        max_instances=1,
        misfire_grace_time=MISFIRE_GRACE_S,
        replace_existing=True,
    )
    return scheduler


def reschedule(scheduler: BlockingScheduler, config: Config) -> None:
    """Move the job of build_scheduler to ``config``'s trigger (a changed minute or zone)."""
    scheduler.reschedule_job(JOB_ID, trigger=make_trigger(config))


def utc_now() -> datetime:
    """Read the clock (the scheduler is one of the two places allowed to)."""
    return datetime.now(UTC)
