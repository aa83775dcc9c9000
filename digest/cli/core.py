"""Core commands: init, ingest, subscribe, run, preview, schedule, status, demo."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from pathlib import Path

import click

from digest import pipeline
from digest.addresses import normalize_email
from digest.cli.base import config_reader, echo_json, get_config, main, now_utc, parse_day
from digest.config import SAMPLE_BATCH, Config
from digest.errors import DigestError, LockedError, UsageError
from digest.models import Profile, RunReport
from digest.store import Store, open_store


def open_db(config: Config) -> Store:
    """Open the configured database, creating the schema on first use."""
    return open_store(config.database_url)


def summary(report: RunReport) -> str:
    """Return the one-line summary of a run."""
    sources = ", ".join(
        f"{s.source} {s.status}" + (f" ({s.new} new)" if s.papers else "")
        + (f" [{s.note}]" if s.note else "") for s in report.sources
    )
    line = (
        f"{report.day.isoformat()}: sent {report.sent}, skipped {report.skipped}, "
        f"failed {report.failed}, unknown {report.unknown}, not due {report.not_due}"
    )
    if report.papers_filed is not None:
        # What the day holds and what this run added: a rerun that only sends ranks
        # nothing, and "batch 0 papers" read as if the day had none.
        line += (f"; papers: {report.papers_filed} filed for {report.day.isoformat()}, "
                 f"{report.papers_new} new in this run")
        if report.batch_size:
            line += f", {report.batch_size} ranked"
    if report.dry_run:
        line = "dry run, nothing sent. " + line
    if sources:
        line += f"; sources: {sources}"
    if report.aborted:
        line += f"; ABORTED: {report.aborted}"
    if report.unknown:
        line += ("; digests of unknown outcome await a decision: "
                 "digest deliveries list --status unknown")
    return line


def exit_code(report: RunReport) -> int:
    """Map a report to cron's exit codes: 0 ok, 1 partial failure, 75/78 aborted."""
    if report.aborted:
        return report.abort_exit or 75
    return 0 if report.ok else 1


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the var/ folder and the database schema (safe to repeat)."""
    config = get_config(ctx)
    config.var_dir.mkdir(parents=True, exist_ok=True)
    db = open_db(config)
    db.close()
    click.echo(
        f"database ready at {_redact_url(config.database_url)}; mail goes to {config.delivery}"
    )


@main.command()
@click.option("--date", "day_text", help="Batch day to file new papers under (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def ingest(ctx: click.Context, day_text: str | None, as_json: bool) -> None:
    """Fetch every configured source and store its papers."""
    config = get_config(ctx)
    now = now_utc()
    day = parse_day(day_text, now.date())
    db = open_db(config)
    try:
        results = pipeline.ingest_sources(config, db, day=day, now=now)
    finally:
        db.close()
    if as_json:
        echo_json(
            [
                {
                    "source": r.source,
                    "status": r.status,
                    "papers": len(r.papers),
                    "new": r.new,
                    "error": r.error,
                }
                for r in results
            ]
        )
    else:
        for r in results:
            detail = f": {r.error}" if r.error else ""
            click.echo(f"{r.source}: {r.status}, {len(r.papers)} papers, {r.new} new{detail}")
    if any(r.status == "error" for r in results):
        ctx.exit(1)


@main.command()
@click.option("--date", "day_text", help="Send this day's digest to every active subscriber now.")
@click.option("--subscriber", "only", help="Only this subscriber (email).")
@click.option("--dry-run", is_flag=True, help="Rank and render, write previews, send nothing.")
@click.option("--force", is_flag=True,
              help="Ignore send hours: everyone's digest of their local today, now.")
@click.option("--no-ingest", is_flag=True, help="Use stored papers; fetch nothing.")
@click.option("--wait", is_flag=True, help="Wait for another run's lock instead of exiting.")
@click.option(
    "--no-send", is_flag=True, help="Plan only: leave delivery to `digest send` workers."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.pass_context
def run(
    ctx: click.Context,
    day_text: str | None,
    only: str | None,
    dry_run: bool,
    force: bool,
    no_ingest: bool,
    wait: bool,
    no_send: bool,
    as_json: bool,
) -> None:
    """Run the daily job: ingest, rank, render, deliver (safe to repeat)."""
    config = get_config(ctx)
    now = now_utc()
    day = parse_day(day_text, now.date()) if day_text else None
    try:
        with finish_sending_on_sigterm():
            report = pipeline.run(
                config,
                now=now,
                day=day,
                only=only,
                dry_run=dry_run,
                force=force,
                do_ingest=not no_ingest,
                clock=now_utc,
                wait_for_lock=wait,
                send=not no_send,
            )
    except LockedError as err:
        # Exit 0: the other run does the work; cron must not treat this as a failure.
        click.echo(f"{err.message}; nothing to do ({err.hint})", err=True)
        if as_json:
            echo_json({"sent": 0, "skipped": 0, "failed": 0, "locked": True})
        return
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(summary(report))
        if dry_run and config.preview_dir.exists():
            click.echo(f"previews in {config.preview_dir}")
    ctx.exit(exit_code(report))


@contextmanager
def finish_sending_on_sigterm() -> Iterator[None]:
    """While inside, a SIGTERM during a send phase lets the messages in flight finish.

    systemd stops or restarts a service, and `docker stop` a container, with SIGTERM.
    Its default action killed the process mid-message, and the message in flight (with
    the one before it, recorded with the next one's start) became "unknown": never
    resent, so a digest could be lost at each restart. Now the send phase ends after
    those messages are recorded (the run's exit is 75, the rest planned for the next
    run); a second SIGTERM, or one while nothing is being sent, ends the process at
    once, as before (a plan phase killed is safe: what it planned stays planned).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be set in the main thread
        return

    def handler(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends it at once
        if pipeline.request_stop():
            click.echo("SIGTERM: stopping after the messages being sent", err=True)
            return
        os.kill(os.getpid(), signal.SIGTERM)  # nothing on the wire: end now

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@main.command()
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="SMTP connections in this process (default DIGEST_SMTP_CONNECTIONS).")
@click.option("--follow", is_flag=True, help="Keep polling for planned digests.")
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True,
              help="Seconds between polls with --follow.")
@click.option("--json", "as_json", is_flag=True, help="Print each report as JSON.")
@click.pass_context
def send(
    ctx: click.Context, workers: int | None, follow: bool, interval: float, as_json: bool
) -> None:
    """Deliver planned digests (a delivery worker: run several, on several machines)."""
    config = get_config(ctx)
    code = 0
    while True:
        with finish_sending_on_sigterm():
            report = pipeline.send_pending(config, now=now_utc(), clock=now_utc,
                                           workers=workers)
        if as_json:
            echo_json(report.to_dict())
        elif report.sent or report.failed or report.unknown or not follow:
            click.echo(summary(report))
        code = max(code, exit_code(report))
        if not follow or report.aborted:
            break
        time.sleep(interval)
    ctx.exit(code)


@main.command()
@click.argument("email")
@click.option("--date", "day_text", help="Digest day (default today).")
@click.pass_context
def preview(ctx: click.Context, email: str, day_text: str | None) -> None:
    """Render one subscriber's digest from stored papers into an HTML file; send nothing."""
    config = get_config(ctx)
    now = now_utc()
    day = parse_day(day_text, now.date())
    address = normalize_email(email)
    db = open_db(config)
    try:
        report = pipeline.run(
            config,
            now=now,
            day=day,
            only=address,
            dry_run=True,
            do_ingest=False,
            clock=now_utc,
            store=db,
            wait_for_lock=True,
        )
        sub = db.find_subscriber(address)
        if sub is None:
            raise UsageError(f"no subscriber {address}", "see `digest subscribers list`")
        planned = [d for d in report.deliveries if d.subscriber_id == sub.id]
        path = pipeline.preview_path(config, sub, day)
        if planned and planned[0].status == "planned" and path.exists():
            click.echo(f"wrote {path} ({len(planned[0].paper_keys)} papers)")
            return
        # The day's digest is in the ledger already (planned or sent): the dry run
        # plans nothing twice, so show the one the ledger holds.
        row = db.get_delivery(sub.id, day)
        if row is not None and row.picks:
            path, count = pipeline.preview_delivery(config, db, sub, row)
            click.echo(f"wrote {path} ({count} papers; the digest of that day, {row.status})")
            return
    finally:
        db.close()
    click.echo(f"nothing relevant for {address} on {day.isoformat()}; no preview written")


# The level is in every line: the service has no exit code per run, so a failed run must
# be found by its level (journalctl -u digest-scheduler -p warning, or grep ERROR).
SCHEDULE_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def schedule_logging() -> None:
    """Log at INFO in SCHEDULE_LOG_FORMAT; APScheduler's own lines only from WARNING.

    At INFO APScheduler wrapped each firing's summary in two lines of its own ('Running
    job "daily digest run (trigger: cron[minute='0'], next run at: ...)"' and '...
    executed successfully'), three lines a firing where one says what it did. Its
    warnings (a firing missed or skipped) still show.
    """
    logging.basicConfig(level=logging.INFO, format=SCHEDULE_LOG_FORMAT)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def scheduled_run(
    config: Config,
    log: logging.Logger,
    *,
    clock: Callable[[], datetime],
    run: Callable[..., RunReport] = pipeline.run,
) -> None:
    """Run the job once for the scheduler and log its summary at the level its outcome has.

    An aborted run (what `digest run` exits 75 or 78 for) is an error, a partial failure
    (exit 1: failed deliveries or sources, digests of unknown outcome) a warning; a run
    that went well, or found the lock taken, is information.
    """
    try:
        report = run(config, now=clock(), clock=clock)
    except LockedError as err:
        log.info("%s; skipping this firing", err.message)
        return
    except DigestError as err:
        # Keep the service alive: the next firing retries, the log says what to fix.
        log.error("run failed: %s (hint: %s)", err.message, err.hint)
        return
    except Exception as err:  # the service outlives one firing's bug
        # APScheduler logged these as 'Job "daily digest run (trigger: cron[...], next
        # run at: ...)" raised an exception' and a traceback: no word of what it means
        # for the mail or what to do.
        log.error("run failed: %s: %s (hint: the service goes on and the next firing "
                  "retries; what was planned stays planned; if it repeats, report it "
                  "with the traceback below)", type(err).__name__, err, exc_info=True)
        return
    code = exit_code(report)
    level = logging.INFO if code == 0 else logging.WARNING if code == 1 else logging.ERROR
    log.log(level, summary(report))


class Firings:
    """The service's job: read the configuration again, then run once (scheduled_run).

    `digest schedule` read .env once, at its start: an operator who set DIGEST_SMTP_URL
    (or a source, a sender, a rate) in .env saw every later firing run on the old
    settings, mail still going to the Maildir, until someone restarted the service,
    while the same edit reaches the next run from cron or the systemd timer. Each
    firing now reads it as `digest run` would. A .env that no longer reads (a typo) is
    logged as an error and the firings go on with the configuration in use; a changed
    DIGEST_SEND_AT minute or DIGEST_TIMEZONE moves the firings after this one.
    """

    def __init__(
        self,
        config: Config,
        read: Callable[[], Config],
        log: logging.Logger,
        *,
        clock: Callable[[], datetime],
        run: Callable[..., RunReport] = pipeline.run,
    ) -> None:
        self.config = config
        self._read = read
        self._log = log
        self._clock = clock
        self._run = run
        self._trigger = _trigger_settings(config)
        # Moves the firings to a changed trigger (set by `digest schedule`).
        self.reschedule: Callable[[Config], None] | None = None

    def reload(self, why: str) -> None:
        """Read the configuration again; keep the one in use if the new one is unusable."""
        try:
            fresh = self._read()
            pipeline.check_ranking(fresh)
        except DigestError as err:
            self._log.error(
                "%s: the configuration does not read, firings go on with the one in use "
                "(mail to %s): %s (hint: %s)",
                why, self.config.delivery, err.message, err.hint,
            )
            return
        changed = [f.name for f in fields(Config)
                   if getattr(fresh, f.name) != getattr(self.config, f.name)]
        self.config = fresh
        if changed:
            self._log.info("%s: configuration changed (%s); mail to %s",
                           why, ", ".join(changed), fresh.delivery)
        elif why != "firing":
            self._log.info("%s: configuration read again, nothing changed", why)

    def __call__(self) -> None:
        self.reload("firing")
        if _trigger_settings(self.config) != self._trigger and self.reschedule is not None:
            self.reschedule(self.config)
            self._trigger = _trigger_settings(self.config)
            self._log.info("firing hourly at minute %02d (%s) from now on",
                           self.config.send_at[1], self.config.timezone)
        scheduled_run(self.config, self._log, clock=self._clock, run=self._run)


def _trigger_settings(config: Config) -> tuple[str, int]:
    """Return what the scheduler's trigger is made of (make_trigger)."""
    return config.timezone, config.send_at[1]


@main.command()
@click.option(
    "--show",
    type=click.IntRange(1, 100),
    default=None,
    help="Print the next N fire times and exit instead of running.",
)
@click.pass_context
def schedule(ctx: click.Context, show: int | None) -> None:
    """Run as a service: fire the job hourly; each subscriber gets theirs at their hour."""
    from digest import schedule as sched

    config = get_config(ctx)
    if show:
        for at in sched.next_fires(config, now_utc(), show):
            click.echo(at.isoformat())
        return
    # A setting no firing can run with stops the service now (78: systemd does not
    # restart it), rather than an error logged at every hour that ranks someone.
    pipeline.check_ranking(config)
    schedule_logging()
    log = logging.getLogger("digest.schedule")

    firings = Firings(config, config_reader(ctx), log, clock=sched.utc_now)

    def job() -> None:
        firings()
        if pipeline.stop_requested():
            # SIGTERM came while this firing was sending (finish_sending_on_sigterm): it
            # has ended after its messages in flight; so does the service.
            log.info("stopping: SIGTERM during the send phase")
            scheduler.shutdown(wait=False)

    scheduler = sched.build_scheduler(config, job)
    firings.reschedule = lambda fresh: sched.reschedule(scheduler, fresh)
    fire = sched.next_fire(config, sched.utc_now())
    click.echo(
        f"scheduler started: hourly at minute {config.send_at[1]:02d} ({config.timezone}); "
        f"next run {fire.isoformat() if fire else 'never'}; mail to {config.delivery}"
    )
    try:
        with finish_sending_on_sigterm(), reload_on_sighup(firings):
            scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        click.echo("scheduler stopped")


@contextmanager
def reload_on_sighup(firings: Firings) -> Iterator[None]:
    """While inside, SIGHUP reads the configuration again (`systemctl reload`).

    Its default action ended the service at once: `kill -HUP` (a daemon's reload, by
    convention), `systemctl reload` or a closed terminal killed it, mid-message if a
    firing was sending (that digest "unknown", never resent), and systemd counts death
    by SIGHUP as a clean stop, so Restart=on-failure did not bring it back: no more
    digests, without a line in the log. Now it reads .env again, logs what changed (or
    what does not read), and the next firing runs with it; a firing in progress goes on.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be set in the main thread
        return

    def handler(_signum: int, _frame: object) -> None:
        firings.reload("SIGHUP")

    previous = signal.signal(signal.SIGHUP, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


# What an operator does about the ledger rows that wait on someone, by status.
STATUS_TODO = {
    "unknown": "the server may have taken them; check its log, see `digest deliveries "
               "list --status unknown`, then `digest deliveries retry --status unknown` "
               "(may duplicate)",
    "perm_failed": "refused for good; see `digest deliveries list --status perm_failed` "
                   "and retry after a fix",
    "temp_failed": "the next runs try again (up to DIGEST_MAX_ATTEMPTS)",
    # Left by a run stopped mid-send (75: an SMTP outage, SIGTERM), by `run --no-send`
    # or by a retry: a plain `digest run` sends only the digests due at that hour, so an
    # older day's row waited unnamed, until a later digest superseded it.
    "planned": "not sent yet; `digest send` sends them now (a `digest run` sends only "
               "the digests due at its hour)",
}


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the last runs, delivery counts and source health."""
    config = get_config(ctx)
    db = open_db(config)
    try:
        counts = db.delivery_counts()
        sources = db.source_health()
        runs = db.recent_runs(5)
        data: dict[str, object] = {
            "database": _redact_url(config.database_url),
            "delivery": config.delivery,
            "papers": db.count_papers(),
            "subscribers": len(db.list_subscribers(status="active")),
            "deliveries": counts,
            "suppressed": len(db.suppressed_hashes()),
            "sources": sources,
            "runs": runs,
        }
    finally:
        db.close()
    if as_json:
        echo_json(data)
        return
    click.echo(f"database {data['database']}; mail to {data['delivery']}")
    click.echo(f"{data['papers']} papers stored, {data['subscribers']} active subscribers, "
               f"{data['suppressed']} addresses suppressed")
    shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    click.echo(f"deliveries: {shown or 'none'}")
    for state, todo in STATUS_TODO.items():
        if counts.get(state):
            click.echo(f"  {counts[state]} {state}: {todo}")
    for src in sources:
        err = f" - {src['error']}" if src["error"] else ""
        click.echo(
            f"source {src['source']}: {src['status']} at {src['last_run_at']}, "
            f"{src['papers']} papers, {src['new']} new{err}"
        )
    for rep in runs:
        aborted = f", aborted: {rep['aborted']}" if rep.get("aborted") else ""
        click.echo(
            f"run {rep['day']} at {rep['started_at']}: sent {rep['sent']}, "
            f"failed {rep['failed']}, unknown {rep.get('unknown', 0)}, "
            f"skipped {rep['skipped']}{aborted}"
        )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was deleted as JSON.")
@click.pass_context
def prune(ctx: click.Context, as_json: bool) -> None:
    """Delete the history older than DIGEST_RETENTION_DAYS (the first run of a day does too)."""
    config = get_config(ctx)
    now = now_utc()
    db = open_db(config)
    try:
        removed = pipeline.prune(config, db, now=now)
    finally:
        db.close()
    cutoff = pipeline.retention_cutoff(config, now)
    if as_json:
        echo_json({"before": cutoff.isoformat() if cutoff else None, "removed": removed})
        return
    if cutoff is None:
        click.echo("DIGEST_RETENTION_DAYS=0: everything is kept, nothing deleted")
        return
    shown = ", ".join(f"{count} {kind}" for kind, count in removed.items())
    click.echo(f"deleted the history before {cutoff.isoformat()}: {shown}")


@main.command()
# A str, not a Path: "var/backups/" names a folder, and a Path drops the final "/".
@click.argument("dest", type=click.Path())
@click.option("--keep", type=click.IntRange(min=0), default=0, show_default=True,
              help="With a folder: keep its newest N backups, delete older ones (0: all).")
@click.option("--force", is_flag=True, help="Replace DEST if it is a file that exists.")
@click.pass_context
def backup(ctx: click.Context, dest: str, keep: int, force: bool) -> None:
    """Copy the SQLite database consistently while it is in use (DEST: a file or folder).

    A folder (one that exists, or DEST written with a final /) gets
    digest-<UTC time>.sqlite3. Safe beside a run, senders and the web
    app; a cp of the file can miss the last transactions (they wait in its -wal file).
    """
    from digest.store.backup import backup_database

    config = get_config(ctx)
    db = open_db(config)
    try:
        made = backup_database(db, dest, now=now_utc(), force=force, keep=keep)
    finally:
        db.close()
    click.echo(f"backed up the database to {made.path} ({made.size / 1e6:.1f} MB: "
               f"{made.subscribers} subscribers, {made.papers} papers, "
               f"{made.deliveries} ledger rows)")
    for path in made.removed:
        click.echo(f"removed the older backup {path}")


DEMO_SUBSCRIBERS = (
    (
        "ada@example.org",
        "Ada Lovelace",
        Profile(
            interests="LLM agents that use tools, plan and reflect; agent memory and skills; "
            "reinforcement learning for reasoning",
            keywords=("agent", "tool use", "reasoning"),
        ),
    ),
    (
        "grace@example.org",
        "Grace Hopper",
        Profile(
            interests="image and video generation with diffusion models, 3D reconstruction, "
            "vision-language models",
            keywords=("diffusion", "video", "3D"),
            categories=("cs.CV",),
        ),
    ),
    (
        "claude@example.org",
        "Claude Shannon",
        Profile(
            interests="coding theory, channel capacity, wireless communication and "
            "information-theoretic limits",
            keywords=("codes", "channel", "capacity"),
            categories=("cs.IT",),
        ),
    ),
)


@main.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run the real daily job on the sample batch and deliver into the local Maildir."""
    config = get_config(ctx)
    if not any(s.kind == "jsonl" and Path(s.location) == SAMPLE_BATCH for s in config.sources):
        click.echo("note: DIGEST_SOURCES is set; the demo uses it instead of the sample batch")
    now = now_utc()
    db = open_db(config)
    try:
        for email, name, profile in DEMO_SUBSCRIBERS:
            if db.find_subscriber(email) is None:
                db.add_subscriber(
                    email, profile, now=now, name=name, send_hour=0, timezone="UTC", max_papers=8
                )
        report = pipeline.run(
            config, now=now, day=now.date(), clock=now_utc, store=db, wait_for_lock=True
        )
        subs = {s.id: s for s in db.list_subscribers()}
        rows = db.deliveries_for_day(now.date())
        papers = db.get_papers(k for d in rows.values() for k in d.paper_keys)
    finally:
        db.close()
    click.echo(summary(report))
    click.echo(f"mail delivered to {config.delivery}")
    for sub_id, row in sorted(rows.items()):
        sub = subs.get(sub_id)
        if sub is None:
            continue
        click.echo(f"\n{sub.email}: {row.status}, {len(row.paper_keys)} papers")
        for key in row.paper_keys:
            paper = papers.get(key)
            if paper:
                click.echo(f"  - {paper.title[:90]}")
        path = pipeline.preview_path(config, sub, now.date())
        if path.exists():
            click.echo(f"  preview: {path}")
    if config.smtp is None:
        click.echo(f"\nread the messages with: mutt -f {config.maildir}")
    ctx.exit(exit_code(report))


def _redact_url(url: str) -> str:
    """Hide a database password in output."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        creds, _, host = tail.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{head}://{user}:***@{host}"
    return url
