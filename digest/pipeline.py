"""One daily run: ingest -> store -> rank -> render -> mail -> ledger. Safe to repeat."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from digest import ingest, mail, rank, render, tokens
from digest.config import Config
from digest.due import due_days
from digest.errors import AuthenticationError, DeliveryError, DigestError
from digest.locking import run_lock
from digest.models import (
    Delivery,
    Digest,
    DigestLinks,
    Profile,
    RenderedEmail,
    RunReport,
    ScoredPaper,
    SourceResult,
    Subscriber,
)
from digest.store import Store, open_store

TransportFactory = Callable[[], AbstractContextManager[mail.Transport]]
Clock = Callable[[], datetime]

# How far back a digest may reach for papers it has not mailed yet (after a pause or
# downtime); a weekly digest looks back over its whole week and a bit.
LOOKBACK = {"daily": timedelta(days=7), "weekly": timedelta(days=14)}
# Background papers that give the ranker its idf statistics and seed/liked texts.
HISTORY_LIMIT = 5000
# Backoff before the next attempt at a temporarily failed delivery, by attempt number.
BACKOFF = (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6))


@dataclass
class _Plan:
    """One subscriber's digest to build in this run."""

    subscriber: Subscriber
    day: date
    existing: Delivery | None = None
    papers: list[ScoredPaper] = field(default_factory=list)


@dataclass
class _Tally:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    unknown: int = 0
    consecutive_failures: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    aborted: str | None = None
    abort_exit: int = 0


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
) -> RunReport:
    """Run the daily job once and return its report.

    Without ``day``, each active subscriber whose local send hour has come (and who has
    not had that local day's digest) gets one. With ``day`` (or ``force``), everyone
    active gets ``day``'s digest now, regardless of hour. A ledger row per (subscriber,
    day) makes a repeat send nothing new.
    """
    clock = clock or (lambda: now)
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
                force=force,
                do_ingest=do_ingest,
                fetch=fetch,
                transport=transport,
                clock=clock,
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
    transport: TransportFactory | None,
    clock: Clock,
) -> RunReport:
    if not dry_run:
        db.mark_stale_sending(now=now)
    batch_day = day or now.date()
    sources: tuple[SourceResult, ...] = ()
    if do_ingest:
        sources = ingest_sources(config, db, day=batch_day, now=now, fetch=fetch)
    plans, not_due = plan_due(config, db, now=now, day=day, only=only, force=force or bool(day))
    tally = _Tally()
    batch_size = rank_plans(config, db, plans, now=now)
    factory = transport or (lambda: mail.open_transport(config.smtp, config.maildir))
    env = render.make_environment(config.templates_dir)
    with ExitStack() as stack:
        opened: list[mail.Transport] = []

        def get_transport() -> mail.Transport:
            # Connect lazily: a run with nothing to send never touches the SMTP server.
            if not opened:
                opened.append(stack.enter_context(factory()))
            return opened[0]

        def reset_transport() -> None:
            # After a network error the connection is suspect; the next send reconnects.
            if opened:
                stack.close()
                opened.clear()

        for plan in plans:
            if tally.aborted:
                break
            _deliver(
                config,
                db,
                plan,
                env=env,
                now=now,
                dry_run=dry_run,
                tally=tally,
                get_transport=get_transport,
                reset_transport=reset_transport,
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


def ingest_sources(
    config: Config, db: Store, *, day: date, now: datetime, fetch: ingest.Fetch | None = None
) -> tuple[SourceResult, ...]:
    """Fetch every configured source, store its papers in ``day``'s batch, record health."""
    results = ingest.collect(
        config.sources,
        day=day,
        user_agent=f"digest/0.1 (+{config.base_url}; mailto:{config.contact})",
        state=db.source_states(),
        fetch=fetch,
    )
    assessed: list[SourceResult] = []
    for result in results:
        new = 0
        if result.papers:
            new, _updated = db.save_papers(
                [p for p in result.papers if p.announce_type != "replace"], batch_day=day, now=now
            )
            replaced = [p for p in result.papers if p.announce_type == "replace"]
            if replaced:
                # A replacement refreshes a known paper; an unknown one is stored but put
                # in the batch too, since nobody has seen it yet.
                more, _ = db.save_papers(replaced, batch_day=day, now=now)
                new += more
        checked = ingest.assess(result, new=new, day=day)
        db.record_source(checked, now=now)
        assessed.append(checked)
    return tuple(assessed)


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
    from digest.store import email_hash

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
            target = day or now.date()
            days = [target]
        else:
            window = [now.date() + timedelta(days=k) for k in range(-(grace.days + 3), 2)]
            done = {
                d
                for d in window
                if (row := ledger(d).get(sub.id)) is not None and not _retryable(row, config, now)
            }
            days = due_days(sub, now, grace=grace, done=done)
            if not days:
                not_due += 1
                continue
        for target in days:
            plans.append(_Plan(subscriber=sub, day=target, existing=ledger(target).get(sub.id)))
    return plans, not_due


def _retryable(row: Delivery, config: Config, now: datetime) -> bool:
    """Return True for a ledger row that this run should (re)try."""
    if row.status == "planned":
        return True  # a crash before anything was transmitted: safe to send
    if row.status == "temp_failed":
        return row.attempts < config.max_attempts
    return False


def rank_plans(config: Config, db: Store, plans: Sequence[_Plan], *, now: datetime) -> int:
    """Choose each plan's papers with one batched ranking pass; return the pool size."""
    fresh = [p for p in plans if p.existing is None or not p.existing.paper_keys]
    retried = [p for p in plans if p not in fresh]
    if retried:
        stored = db.get_papers(k for p in retried for k in p.existing.paper_keys)  # type: ignore[union-attr]
        for plan in retried:
            keys = plan.existing.paper_keys if plan.existing else ()
            plan.papers = [
                ScoredPaper(paper=stored[k], score=0.0, reason="") for k in keys if k in stored
            ]
    if not fresh:
        return 0
    last_days = db.last_delivered_days()
    windows: dict[int, tuple[date, date]] = {}
    for plan in fresh:
        sub = plan.subscriber
        upper = plan.day + timedelta(days=1)
        lower_bound = plan.day - LOOKBACK.get(sub.cadence, LOOKBACK["daily"])
        last = last_days.get(sub.id)
        if last is not None and last < plan.day:
            lower = max(last + timedelta(days=1), lower_bound)
        else:
            latest = db.latest_batch_day(upper)
            lower = latest if latest is not None else plan.day
        windows[id(plan)] = (lower, upper)
    first = min(w[0] for w in windows.values())
    last_day = max(w[1] for w in windows.values())
    pool = db.batch(first, last_day)
    if not pool:
        return 0
    batch = [paper for paper, _ in pool]
    batch_days = {paper.key: d for paper, d in pool}
    votes = db.votes([p.subscriber.id for p in fresh])
    profiles = [_with_votes(p.subscriber.profile, votes.get(p.subscriber.id, {})) for p in fresh]
    referenced = {k for prof in profiles for k in (*prof.seeds, *prof.liked, *prof.disliked)}
    history = db.history(first, limit=HISTORY_LIMIT)
    known = {p.key for p in history}
    history += [p for k, p in db.get_papers(referenced - known).items() if k not in batch_days]
    sent = db.sent_keys([p.subscriber.id for p in fresh], batch_days)
    excludes: list[set[str]] = []
    for plan in fresh:
        lower, upper = windows[id(plan)]
        outside = {k for k, d in batch_days.items() if not lower <= d <= upper}
        excludes.append(sent.get(plan.subscriber.id, set()) | outside)
    result = rank.rank(
        batch,
        profiles,
        history=history,
        top_k=[min(p.subscriber.max_papers, config.max_papers * 5) for p in fresh],
        exclude=excludes,
        popularity=[p.subscriber.popularity for p in fresh],
        state=db.load_ranker_state(),
    )
    db.save_ranker_state(result.state, now=now)
    for plan, chosen in zip(fresh, result.rankings, strict=True):
        plan.papers = list(chosen)
    return len(batch)


def _with_votes(profile: Profile, votes: dict[str, int]) -> Profile:
    """Fold the thumbs from the email into the profile's liked/disliked examples."""
    if not votes:
        return profile
    liked = tuple(dict.fromkeys((*profile.liked, *(k for k, v in votes.items() if v > 0))))
    disliked = tuple(dict.fromkeys((*profile.disliked, *(k for k, v in votes.items() if v < 0))))
    liked = tuple(k for k in liked if votes.get(k, 1) > 0)
    return replace(profile, liked=liked, disliked=disliked)


def digest_links(config: Config, subscriber_id: int, papers: Sequence[ScoredPaper]) -> DigestLinks:
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
) -> tuple[RenderedEmail, Any]:
    """Render one digest and build its message; return (rendered parts, EmailMessage)."""
    sub = digest.subscriber
    links = digest_links(config, sub.id, digest.papers)
    if digest.papers:
        rendered = render.render_digest(
            digest, links, env=env, list_name=config.from_name or "Research Digest"
        )
    else:
        rendered = render.render_empty_note(
            digest, links, env=env, list_name=config.from_name or "Research Digest"
        )
    domain = config.from_addr.rpartition("@")[2] or "localhost"
    message = mail.build_message(
        rendered,
        from_name=config.from_name,
        from_addr=config.from_addr,
        to_name=sub.name,
        to_addr=sub.email,
        message_id=mail.make_message_id(sub.id, digest.day, domain),
        date=now,
        list_id=config.list_id,
        list_unsubscribe=links.unsubscribe,
    )
    return rendered, message


def _deliver(
    config: Config,
    db: Store,
    plan: _Plan,
    *,
    env: Any,
    now: datetime,
    dry_run: bool,
    tally: _Tally,
    get_transport: Callable[[], mail.Transport],
    reset_transport: Callable[[], None],
) -> None:
    sub = plan.subscriber
    existing = plan.existing
    if existing is not None and not _retryable(existing, config, now):
        tally.skipped += 1
        return
    if existing is not None and existing.status == "temp_failed" and existing.updated_at:
        wait = (
            BACKOFF[min(existing.attempts, len(BACKOFF)) - 1] if existing.attempts else timedelta()
        )
        if now < existing.updated_at + wait:
            tally.skipped += 1
            return
    papers = plan.papers
    if not papers and sub.empty_digest != "note":
        if not dry_run and existing is None:
            # Record the empty day so hourly runs don't re-rank it; nothing is mailed.
            db.plan_delivery(sub.id, plan.day, paper_keys=[], message_id="", now=now)
            db.set_delivery_status(
                sub.id, plan.day, "skipped", now=now, error="nothing relevant in the batch"
            )
        tally.skipped += 1
        tally.deliveries.append(Delivery(sub.id, plan.day, "skipped", error="nothing relevant"))
        return
    digest = Digest(subscriber=sub, day=plan.day, papers=tuple(papers))
    rendered, message = compose(config, digest, env=env, now=now)
    message_id = str(message["Message-ID"])
    keys = [sp.paper.key for sp in papers]
    if config.smtp is None or dry_run:
        write_preview(config, sub, plan.day, rendered.html)
    if dry_run:
        tally.deliveries.append(
            Delivery(sub.id, plan.day, "planned", message_id, paper_keys=tuple(keys))
        )
        return
    if existing is None:
        planned = db.plan_delivery(
            sub.id, plan.day, paper_keys=keys, message_id=message_id, now=now
        )
        if planned is None:
            tally.skipped += 1  # another run planned it first
            return
    if not db.set_delivery_status(
        sub.id, plan.day, "sending", now=now, attempt=True, expect=("planned", "temp_failed")
    ):
        tally.skipped += 1
        return
    try:
        get_transport().send(message)
    except AuthenticationError as err:
        # Rejected before any message data: nothing went out, so the row may be retried.
        db.set_delivery_status(sub.id, plan.day, "planned", now=now, error=err.message)
        tally.aborted = f"SMTP authentication failed: {err.message}"
        tally.abort_exit = err.exit_code
        return
    except DeliveryError as err:
        reset_transport()
        _record_failure(config, db, plan, err, now=now, tally=tally)
        return
    db.set_delivery_status(sub.id, plan.day, "sent", now=now)
    tally.sent += 1
    tally.consecutive_failures = 0
    tally.deliveries.append(Delivery(sub.id, plan.day, "sent", message_id, paper_keys=tuple(keys)))


def _record_failure(
    config: Config, db: Store, plan: _Plan, err: DeliveryError, *, now: datetime, tally: _Tally
) -> None:
    sub = plan.subscriber
    if getattr(err, "after_data", False):
        status = "unknown"
        tally.unknown += 1
    elif err.permanent:
        status = "perm_failed"
        tally.failed += 1
    else:
        attempts = (plan.existing.attempts if plan.existing else 0) + 1
        status = "temp_failed" if attempts < config.max_attempts else "perm_failed"
        tally.failed += 1
    db.set_delivery_status(sub.id, plan.day, status, now=now, error=err.message)  # type: ignore[arg-type]
    tally.deliveries.append(Delivery(sub.id, plan.day, status, error=err.message))  # type: ignore[arg-type]
    tally.consecutive_failures += 1
    if tally.consecutive_failures >= config.error_budget:
        tally.aborted = (
            f"stopped after {tally.consecutive_failures} consecutive delivery failures "
            f"(last: {err.message})"
        )


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
