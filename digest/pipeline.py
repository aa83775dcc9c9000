"""One daily run: ingest -> store -> rank -> render -> mail -> ledger. Safe to repeat.

A run has two phases. **Plan**: find the digests due now, rank their papers in batched
chunks, and write one ledger row per (subscriber, day) holding the chosen papers and
reasons. **Send**: claim each sendable row (``planned`` -> ``sending``), render it from
the row, hand it to the SMTP server, and mark it ``sent`` only after the 250 reply.
Nothing is held for the whole run, so memory stays flat in the number of subscribers,
and a crash at any point leaves rows a rerun can finish.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from digest import ingest, mail, rank, render, tokens
from digest.config import Config
from digest.due import due_days
from digest.errors import AuthenticationError, DeliveryError, DigestError
from digest.locking import run_lock
from digest.mail.bounces import apply_rejection
from digest.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestLinks,
    Paper,
    Profile,
    RenderedEmail,
    RunReport,
    ScoredPaper,
    SourceResult,
    Subscriber,
)
from digest.sources_config import effective_sources
from digest.store import Store, email_hash, open_store

TransportFactory = Callable[[], AbstractContextManager[mail.Transport]]
Clock = Callable[[], datetime]

# How far back a digest may reach for papers it has not mailed yet (after a pause or
# downtime); a weekly digest looks back over its whole week and a bit.
LOOKBACK = {"daily": timedelta(days=7), "weekly": timedelta(days=14)}
# Background papers that give the ranker its idf statistics and seed/liked texts.
HISTORY_LIMIT = 5000
# Subscribers ranked together: bounds memory while keeping the matrix products large.
# Each rank call pays a fixed ~5 s at 2,000 papers (vocabulary state, batch vectors,
# similarities), so 100k subscribers in chunks of 5,000 spent ~100 s on that alone.
RANK_CHUNK = 20000
# Rows leased and rendered together in the send phase. Small enough that many workers
# share a day's rows evenly and a killed worker strands few until its lease runs out; a
# claim is one short transaction, next to the two every message costs anyway.
SEND_CHUNK = 25
# How long a worker's lease on planned rows lasts before another worker may take them
# (the default of Config.lease_seconds, DIGEST_LEASE_SECONDS).
LEASE = timedelta(minutes=15)
# A row in "sending" this long belongs to a dead process (far past any SMTP timeout).
STALE_SENDING = timedelta(hours=1)
# Wait before the next attempt at a temporarily failed delivery, by attempts so far.
BACKOFF = (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6))


@dataclass
class _Plan:
    """One subscriber's digest that is due in this run."""

    subscriber: Subscriber
    day: date
    existing: Delivery | None = None


@dataclass
class _Tally:
    """Counts shared by the send workers (guarded by ``lock``)."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    unknown: int = 0
    consecutive_failures: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    aborted: str | None = None
    abort_exit: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Pacer:
    """Space sends so that no more than ``rate`` messages per second go out (0: no cap)."""

    def __init__(
        self,
        rate: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._monotonic = monotonic
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next send is allowed."""
        if not self.interval:
            return
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


def run(
    config: Config,
    *,
    now: datetime,
    day: date | None = None,
    only: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    do_ingest: bool = True,
    fetch: ingest.Fetch | None = None,
    transport: TransportFactory | None = None,
    clock: Clock | None = None,
    store: Store | None = None,
    wait_for_lock: bool = False,
    pacer: Pacer | None = None,
    workers: int | None = None,
    send_chunk: int = SEND_CHUNK,
    send: bool = True,
) -> RunReport:
    """Run the daily job once and return its report.

    Without ``day``, each active subscriber whose local send hour has come (and who has
    not had that local day's digest) gets one. With ``day`` (or ``force``), everyone
    active gets that day's digest now, regardless of hour. A ledger row per (subscriber,
    day) makes a repeat send nothing new.
    """
    own_store = store is None
    db = store or open_store(config.database_url)
    try:
        with run_lock(config.lock_path, wait=wait_for_lock):
            return _run_locked(
                config,
                db,
                now=now,
                day=day,
                only=only,
                dry_run=dry_run,
                force=force or day is not None,
                do_ingest=do_ingest,
                fetch=fetch,
                transport=transport or (lambda: mail.open_transport(config.smtp, config.maildir)),
                clock=clock or (lambda: now),
                pacer=pacer or Pacer(config.send_rate),
                workers=max(1, workers or config.connections),
                send_chunk=max(1, send_chunk),
                send=send,
            )
    finally:
        if own_store:
            db.close()


def _run_locked(
    config: Config,
    db: Store,
    *,
    now: datetime,
    day: date | None,
    only: str | None,
    dry_run: bool,
    force: bool,
    do_ingest: bool,
    fetch: ingest.Fetch | None,
    transport: TransportFactory,
    clock: Clock,
    pacer: Pacer,
    workers: int,
    send_chunk: int,
    send: bool,
) -> RunReport:
    if not dry_run:
        # A row still in "sending" whose process died (on this host), or that has been
        # sending for far too long (a worker elsewhere), became "unknown"; live
        # `digest send` workers keep theirs.
        db.mark_stale_sending(now=now, older_than=now - STALE_SENDING)
        db.release_dead_claims()  # leases of workers killed (kill -9) before their release
    batch_day = day or now.date()
    sources: tuple[SourceResult, ...] = ()
    if do_ingest:
        sources = ingest_sources(config, db, day=batch_day, now=now, fetch=fetch)
    plans, not_due = plan_due(config, db, now=now, day=day, only=only, force=force)
    tally = _Tally()
    env = render.make_environment(config.templates_dir)
    batch_size = 0
    fresh = [p for p in plans if p.existing is None]
    for start in range(0, len(fresh), RANK_CHUNK):
        chunk = fresh[start : start + RANK_CHUNK]
        chosen, pool_size = choose_papers(config, db, chunk, now=now)
        batch_size = max(batch_size, pool_size)
        if dry_run:
            _preview_chunk(config, chunk, chosen, env=env, now=now, tally=tally)
        else:
            _plan_chunk(config, db, chunk, chosen, now=now, tally=tally)
    if not dry_run:
        for plan in plans:
            if plan.existing is not None and not _sendable(plan.existing, config, now):
                tally.skipped += 1
    if not dry_run and send and plans:
        _send_all(
            config, db,
            days=sorted({p.day for p in plans}),
            subscriber_ids=[p.subscriber.id for p in plans] if only else None,
            env=env, now=now, tally=tally, transport=transport, pacer=pacer,
            workers=workers, send_chunk=send_chunk,
        )
    report = RunReport(
        day=batch_day,
        started_at=now,
        finished_at=clock(),
        sources=sources,
        sent=tally.sent,
        skipped=tally.skipped,
        failed=tally.failed,
        unknown=tally.unknown,
        not_due=not_due,
        batch_size=batch_size,
        dry_run=dry_run,
        deliveries=tuple(tally.deliveries),
        aborted=tally.aborted,
        abort_exit=tally.abort_exit,
    )
    if not dry_run:
        db.record_run(report)
    return report


# -- ingest -------------------------------------------------------------------------------


def ingest_sources(
    config: Config, db: Store, *, day: date, now: datetime, fetch: ingest.Fetch | None = None
) -> tuple[SourceResult, ...]:
    """Fetch every configured source, store its papers in ``day``'s batch, record health."""
    results = ingest.collect(
        effective_sources(config, db.list_sources()),
        day=day,
        user_agent=ingest.user_agent(config.contact),
        state=db.source_states(),
        fetch=fetch,
    )
    assessed: list[SourceResult] = []
    for result in results:
        new = 0
        if result.papers:
            # A replacement refreshes a known paper and keeps its batch day, so it is
            # never mailed again; an unknown one joins today's batch like a new paper.
            new, _updated = db.save_papers(result.papers, batch_day=day, now=now)
        checked = ingest.assess(result, new=new, day=day)
        db.record_source(checked, now=now)
        assessed.append(checked)
    return tuple(assessed)


# -- plan ---------------------------------------------------------------------------------


def plan_due(
    config: Config,
    db: Store,
    *,
    now: datetime,
    day: date | None,
    only: str | None,
    force: bool,
) -> tuple[list[_Plan], int]:
    """Return the digests due now, and how many active subscribers are not due yet."""
    subscribers = db.list_subscribers(status="active")
    if only:
        subscribers = [s for s in subscribers if s.email == only.strip().lower()]
        if not subscribers:
            raise DigestError(f"no active subscriber {only}", "check `digest subscribers list`")
    suppressed = db.suppressed_hashes()
    grace = timedelta(hours=config.grace_hours)
    plans: list[_Plan] = []
    not_due = 0
    ledger_cache: dict[date, dict[int, Delivery]] = {}

    def ledger(d: date) -> dict[int, Delivery]:
        if d not in ledger_cache:
            ledger_cache[d] = db.deliveries_for_day(d)
        return ledger_cache[d]

    for sub in subscribers:
        if email_hash(sub.email) in suppressed:
            continue
        if force:
            days = [day or now.date()]
        else:
            window = [now.date() + timedelta(days=k) for k in range(-(grace.days + 3), 2)]
            done = {
                d
                for d in window
                if (row := ledger(d).get(sub.id)) is not None and not _retryable(row, config)
            }
            days = due_days(sub, now, grace=grace, done=done)
            if not days:
                not_due += 1
                continue
        for target in days:
            plans.append(_Plan(subscriber=sub, day=target, existing=ledger(target).get(sub.id)))
    return plans, not_due


def _retryable(row: Delivery, config: Config) -> bool:
    """Return True for a ledger row that a run may still (re)try at some point."""
    if row.status == "planned":
        return True  # a crash before anything was transmitted: safe to send
    if row.status == "temp_failed":
        return row.attempts < config.max_attempts
    return False


def _sendable(row: Delivery, config: Config, now: datetime) -> bool:
    """Return True for a ledger row that may be sent right now."""
    if not _retryable(row, config):
        return False
    return row.next_attempt_at is None or row.next_attempt_at <= now


def choose_papers(
    config: Config, db: Store, plans: Sequence[_Plan], *, now: datetime
) -> tuple[list[list[ScoredPaper] | None], int]:
    """Rank every plan's candidates in one batched pass; return (choices, pool size).

    A plan's choice is None when its window held no papers at all (a quiet day), and an
    empty list when papers came in but none was relevant.
    """
    if not plans:
        return [], 0
    last_days = db.last_delivered_days()
    windows: list[tuple[date, date]] = []
    for plan in plans:
        sub = plan.subscriber
        upper = plan.day + timedelta(days=1)  # a zone ahead of UTC can be on the next day
        lower_bound = plan.day - LOOKBACK.get(sub.cadence, LOOKBACK["daily"])
        last = last_days.get(sub.id)
        if last is not None and last < plan.day:
            lower = max(last + timedelta(days=1), lower_bound)
        else:
            # A first digest (or a repeat day): the latest batch, not the whole archive.
            latest = db.latest_batch_day(upper)
            lower = latest if latest is not None else plan.day
        windows.append((lower, upper))
    first = min(w[0] for w in windows)
    last_day = max(w[1] for w in windows)
    pool = db.batch(first, last_day)
    if not pool:
        return [None] * len(plans), 0
    batch = [paper for paper, _ in pool]
    batch_days = {paper.key: d for paper, d in pool}
    ids = [p.subscriber.id for p in plans]
    votes = db.votes(ids)
    profiles = [_with_votes(p.subscriber.profile, votes.get(p.subscriber.id, {})) for p in plans]
    referenced = {k for prof in profiles for k in (*prof.seeds, *prof.liked, *prof.disliked)}
    history = db.history(first, limit=HISTORY_LIMIT)
    known = {p.key for p in history} | set(batch_days)
    history += list(db.get_papers(referenced - known).values())
    sent = db.sent_keys(ids, batch_days)
    excludes: list[set[str]] = []
    empty_window: list[bool] = []
    for plan, (lower, upper) in zip(plans, windows, strict=True):
        outside = {k for k, d in batch_days.items() if not lower <= d <= upper}
        excluded = sent.get(plan.subscriber.id, set()) | outside
        excludes.append(excluded)
        empty_window.append(len(excluded) >= len(batch_days))
    result = rank.rank(
        batch,
        profiles,
        history=history,
        top_k=[min(p.subscriber.max_papers, 50) for p in plans],
        exclude=excludes,
        popularity=[p.subscriber.popularity for p in plans],
        state=db.load_ranker_state(),
    )
    db.save_ranker_state(result.state, now=now)
    chosen: list[list[ScoredPaper] | None] = [
        None if empty else list(ranking)
        for ranking, empty in zip(result.rankings, empty_window, strict=True)
    ]
    return chosen, len(batch)


def _with_votes(profile: Profile, votes: dict[str, int]) -> Profile:
    """Fold the thumbs from the email into the profile's liked/disliked examples."""
    if not votes:
        return profile
    liked = [k for k in dict.fromkeys((*profile.liked, *votes)) if votes.get(k, 1) > 0]
    disliked = [k for k in dict.fromkeys((*profile.disliked, *votes)) if votes.get(k, -1) < 0]
    return replace(profile, liked=tuple(liked), disliked=tuple(disliked))


def _plan_chunk(
    config: Config,
    db: Store,
    plans: Sequence[_Plan],
    chosen: Sequence[list[ScoredPaper] | None],
    *,
    now: datetime,
    tally: _Tally,
) -> None:
    """Write ledger rows for freshly ranked plans (skipped ones record why)."""
    domain = _domain(config)
    rows: list[tuple[int, date, list[tuple[str, float, str]], str, DeliveryStatus]] = []
    for plan, papers in zip(plans, chosen, strict=True):
        sub = plan.subscriber
        if papers is None:
            # No new papers at all (a weekend, a quiet feed): no row, so a later run
            # today can still send once the batch arrives.
            tally.skipped += 1
            continue
        picks = [(sp.paper.key, sp.score, sp.reason) for sp in papers]
        if not picks and sub.empty_digest != "note":
            rows.append((sub.id, plan.day, [], "", "skipped"))
            tally.skipped += 1
            tally.deliveries.append(
                Delivery(sub.id, plan.day, "skipped", error="nothing relevant in the batch")
            )
            continue
        message_id = mail.make_message_id(sub.id, plan.day, domain)
        rows.append((sub.id, plan.day, picks, message_id, "planned"))
    db.plan_deliveries(rows, now=now)


def _preview_chunk(
    config: Config,
    plans: Sequence[_Plan],
    chosen: Sequence[list[ScoredPaper] | None],
    *,
    env: Any,
    now: datetime,
    tally: _Tally,
) -> None:
    """Render each plan into an HTML preview; change nothing else (dry run)."""
    for plan, papers in zip(plans, chosen, strict=True):
        sub = plan.subscriber
        if not papers and sub.empty_digest != "note":
            tally.skipped += 1
            tally.deliveries.append(Delivery(sub.id, plan.day, "skipped", error="nothing relevant"))
            continue
        digest = Digest(subscriber=sub, day=plan.day, papers=tuple(papers or ()))
        rendered, message = compose(config, digest, env=env, now=now)
        write_preview(config, sub, plan.day, rendered.html)
        keys = tuple(sp.paper.key for sp in papers or ())
        tally.deliveries.append(
            Delivery(sub.id, plan.day, "planned", str(message["Message-ID"]), paper_keys=keys)
        )


# -- send ---------------------------------------------------------------------------------


def _send_all(
    config: Config,
    db: Store,
    *,
    days: Sequence[date] | None,
    subscriber_ids: Sequence[int] | None,
    env: Any,
    now: datetime,
    tally: _Tally,
    transport: TransportFactory,
    pacer: Pacer,
    workers: int,
    send_chunk: int,
) -> None:
    """Send every sendable ledger row (optionally only some days or subscribers).

    Each of ``workers`` threads holds one SMTP connection and leases rows in chunks, so
    the same loop serves one process or many (``digest send --worker`` on many
    machines): a row is transmitted only by the worker that moved it to ``sending``.
    """
    suppressed = db.suppressed_hashes()
    prefix = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

    def worker(number: int) -> None:
        name = f"{prefix}:{number}"
        try:
            with _Connection(transport) as connection:
                while not tally.aborted:
                    rows = db.claim_deliveries(
                        name, now=now, lease=timedelta(seconds=config.lease_seconds),
                        limit=send_chunk,
                        max_attempts=config.max_attempts, days=days,
                        subscriber_ids=subscriber_ids,
                    )
                    if not rows:
                        return
                    subs = db.get_subscribers(row.subscriber_id for row in rows)
                    papers = db.get_papers(k for row in rows for k in row.paper_keys)
                    for row in rows:
                        if tally.aborted:
                            return
                        _send_one(
                            config, db, row, subs.get(row.subscriber_id), papers,
                            worker=name, env=env, now=now, tally=tally,
                            connection=connection, pacer=pacer, suppressed=suppressed,
                        )
        finally:
            db.release_claims(name)

    if workers == 1:
        worker(0)
        return
    errors: list[BaseException] = []

    def guarded(number: int) -> None:
        try:
            worker(number)
        except BaseException as err:  # re-raised below: a thread must not fail silently
            with tally.lock:
                tally.aborted = tally.aborted or f"a send worker failed: {err}"
            errors.append(err)

    threads = [
        threading.Thread(target=guarded, args=(n,), name=f"digest-send-{n}")
        for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def send_pending(
    config: Config,
    *,
    now: datetime,
    store: Store | None = None,
    transport: TransportFactory | None = None,
    clock: Clock | None = None,
    pacer: Pacer | None = None,
    workers: int | None = None,
    send_chunk: int = SEND_CHUNK,
) -> RunReport:
    """Send every planned ledger row, whichever run planned it (a delivery worker).

    Needs no run lock: leases keep concurrent workers apart. Rows left in ``sending``
    by a worker that died long ago (past any SMTP timeout) become ``unknown``.
    """
    own_store = store is None
    db = store or open_store(config.database_url)
    try:
        db.mark_stale_sending(now=now, older_than=now - STALE_SENDING)
        tally = _Tally()
        _send_all(
            config, db, days=None, subscriber_ids=None,
            env=render.make_environment(config.templates_dir), now=now, tally=tally,
            transport=transport or (lambda: mail.open_transport(config.smtp, config.maildir)),
            pacer=pacer or Pacer(config.send_rate), workers=max(1, workers or config.connections),
            send_chunk=max(1, send_chunk),
        )
        report = RunReport(
            day=now.date(), started_at=now, finished_at=(clock or (lambda: now))(),
            sent=tally.sent, skipped=tally.skipped, failed=tally.failed, unknown=tally.unknown,
            deliveries=tuple(tally.deliveries), aborted=tally.aborted,
            abort_exit=tally.abort_exit,
        )
        db.record_run(report)
        return report
    finally:
        if own_store:
            db.close()


class _Connection:
    """One lazily opened transport: a run with nothing to send never connects."""

    def __init__(self, factory: TransportFactory) -> None:
        self._factory = factory
        self._stack = ExitStack()
        self._transport: mail.Transport | None = None

    def get(self) -> mail.Transport:
        if self._transport is None:
            self._transport = self._stack.enter_context(self._factory())
        return self._transport

    def reset(self) -> None:
        """Drop the connection after a network error; the next send reconnects."""
        self._transport = None
        # Closing a broken connection may fail; it is gone either way.
        with contextlib.suppress(OSError, DeliveryError):
            self._stack.close()
        self._stack = ExitStack()

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()


def _send_one(
    config: Config,
    db: Store,
    row: Delivery,
    sub: Subscriber | None,
    papers: dict[str, Paper],
    *,
    worker: str,
    env: Any,
    now: datetime,
    tally: _Tally,
    connection: _Connection,
    pacer: Pacer,
    suppressed: set[str],
) -> None:
    """Start one leased ledger row, render it, send it, and record the outcome."""
    if sub is None or sub.status != "active" or email_hash(sub.email) in suppressed:
        # Unsubscribed, paused or suppressed since the row was planned: never send.
        db.set_delivery_status(
            row.subscriber_id, row.day, "skipped", now=now,
            error="the subscriber is no longer active", expect=("planned", "temp_failed"),
        )
        with tally.lock:
            tally.skipped += 1
        return
    items = tuple(
        ScoredPaper(paper=papers[key], score=score, reason=reason)
        for key, score, reason in row.picks
        if key in papers
    )
    digest = Digest(subscriber=sub, day=row.day, papers=items)
    rendered, message = compose(config, digest, env=env, now=now)
    if config.smtp is None:
        write_preview(config, sub, row.day, rendered.html)
    # A compare-and-set on the lease: of two runs or workers, exactly one moves the row.
    if not db.start_sending(sub.id, row.day, worker=worker, now=now):
        with tally.lock:
            tally.skipped += 1
        return
    pacer.wait()
    try:
        connection.get().send(message)
    except AuthenticationError as err:
        # Refused before any message data: nothing went out, so the row goes back.
        db.set_delivery_status(sub.id, row.day, "planned", now=now, error=err.message)
        with tally.lock:
            tally.aborted = f"SMTP authentication failed: {err.message}"
            tally.abort_exit = err.exit_code
        return
    except DeliveryError as err:
        if err.code is None or err.code == 421:
            # A network error or a closing server: reconnect for the next message. A
            # refusal with a reply (550 at RCPT...) leaves a usable, RSET connection.
            connection.reset()
        _record_failure(config, db, row, err, now=now, tally=tally)
        apply_rejection(db, sub.email, err, now=now)  # "no such user": suppress the address
        return
    db.set_delivery_status(sub.id, row.day, "sent", now=now)
    with tally.lock:
        tally.sent += 1
        tally.consecutive_failures = 0
        tally.deliveries.append(
            Delivery(sub.id, row.day, "sent", row.message_id, paper_keys=row.paper_keys)
        )


def _record_failure(
    config: Config, db: Store, row: Delivery, err: DeliveryError, *, now: datetime, tally: _Tally
) -> None:
    attempts = row.attempts + 1
    next_attempt: datetime | None = None
    status: DeliveryStatus
    if getattr(err, "after_data", False):
        status = "unknown"  # the server may have queued it: never resend automatically
    elif err.permanent or attempts >= config.max_attempts:
        status = "perm_failed"
    else:
        status = "temp_failed"
        next_attempt = now + BACKOFF[min(attempts, len(BACKOFF)) - 1]
    db.set_delivery_status(
        row.subscriber_id, row.day, status, now=now, error=err.message,
        next_attempt_at=next_attempt,
    )
    with tally.lock:
        if status == "unknown":
            tally.unknown += 1
        else:
            tally.failed += 1
        tally.deliveries.append(Delivery(row.subscriber_id, row.day, status, error=err.message))
        tally.consecutive_failures += 1
        if tally.consecutive_failures >= config.error_budget and not tally.aborted:
            tally.aborted = (
                f"stopped after {tally.consecutive_failures} consecutive delivery failures "
                f"(last: {err.message})"
            )
            tally.abort_exit = 75


# -- render -------------------------------------------------------------------------------


def digest_links(
    config: Config, subscriber_id: int, papers: Sequence[ScoredPaper]
) -> DigestLinks:
    """Return the signed links that go into one subscriber's digest."""
    base, key = config.base_url, config.secret_key
    return DigestLinks(
        unsubscribe=tokens.unsubscribe_url(base, key, subscriber_id),
        preferences=tokens.preferences_url(base, key, subscriber_id),
        more={
            sp.paper.key: tokens.feedback_url(base, key, subscriber_id, sp.paper.key, 1)
            for sp in papers
        },
        less={
            sp.paper.key: tokens.feedback_url(base, key, subscriber_id, sp.paper.key, -1)
            for sp in papers
        },
    )


def compose(
    config: Config, digest: Digest, *, env: Any, now: datetime
) -> tuple[RenderedEmail, EmailMessage]:
    """Render one digest and build its message; return (rendered parts, message)."""
    sub = digest.subscriber
    links = digest_links(config, sub.id, digest.papers)
    list_name = config.from_name or "Research Digest"
    if digest.papers:
        rendered = render.render_digest(digest, links, env=env, list_name=list_name)
    else:
        rendered = render.render_empty_note(digest, links, env=env, list_name=list_name)
    message = mail.build_message(
        rendered,
        from_name=config.from_name,
        from_addr=config.from_addr,
        to_name=sub.name,
        to_addr=sub.email,
        message_id=mail.make_message_id(sub.id, digest.day, _domain(config)),
        date=now,
        list_id=config.list_id,
        list_unsubscribe=links.unsubscribe,
    )
    return rendered, message


def _domain(config: Config) -> str:
    return config.from_addr.rpartition("@")[2] or "localhost"


def preview_path(config: Config, subscriber: Subscriber, day: date) -> Path:
    """Return where the HTML preview of one subscriber's digest for a day is written."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", subscriber.email)
    return config.preview_dir / day.isoformat() / f"{subscriber.id:06d}-{safe}.html"


def write_preview(config: Config, subscriber: Subscriber, day: date, html: str) -> Path:
    """Write a digest's HTML beside the Maildir, for a browser; return its path."""
    path = preview_path(config, subscriber, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path

