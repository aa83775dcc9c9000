"""One daily run: ingest -> store -> rank -> render -> mail -> ledger. Safe to repeat.

A run has two phases. **Plan**: find the digests due now, rank their papers in batched
chunks, write each digest's message, and file one ledger row per (subscriber, day)
holding the chosen papers and reasons, with its message in the outbox. **Send**: claim
each sendable row (``planned`` -> ``sending``), take its message (or render it from the
row when it has none), hand it to the SMTP server, and mark it ``sent`` only after the
250 reply.
Nothing is held for the whole run, so memory stays flat in the number of subscribers,
and a crash at any point leaves rows a rerun can finish.

``planning`` holds the plan phase, ``sending`` the send phase, and ``composing`` turns a
digest into a message; this module runs them (and ``send_pending``, the send phase
alone). Their submodule names are gerunds so none shadows a function exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from digest import ingest, mail, render
from digest.config import Config
from digest.errors import UsageError
from digest.locking import run_lock
from digest.models import Digest, RunReport, ScoredPaper, SourceResult, SourceSpec
from digest.pipeline.composing import (
    compose,
    digest_links,
    preview_path,
    prune_previews,
    write_preview,
)
from digest.pipeline.planning import (
    HISTORY_LIMIT,
    LOOKBACK,
    _plan_chunk,
    _preview_chunk,
    _sendable,
    check_ranking,
    choose_papers,
    plan_due,
    plan_pages,
)
from digest.pipeline.sending import (
    BACKOFF,
    SEND_CHUNK,
    Clock,
    Pacer,
    TransportFactory,
    _send_all,
    _Tally,
    clear_stop,
    preview_delivery,
    request_stop,
    stop_requested,
)
from digest.sources_config import effective_sources
from digest.store import Store, open_store

if TYPE_CHECKING:
    from digest.rank import Ranker

__all__ = [
    "BACKOFF",
    "HISTORY_LIMIT",
    "LOOKBACK",
    "SEND_CHUNK",
    "STALE_SENDING",
    "Clock",
    "Digest",
    "Pacer",
    "ScoredPaper",
    "TransportFactory",
    "check_ranking",
    "choose_papers",
    "clear_stop",
    "compose",
    "digest_links",
    "ingest_sources",
    "plan_due",
    "plan_pages",
    "preview_delivery",
    "preview_path",
    "prune",
    "prune_previews",
    "render",
    "request_stop",
    "retention_cutoff",
    "run",
    "send_pending",
    "stop_requested",
    "write_preview",
]

# A row in "sending" this long belongs to a dead process (far past any SMTP timeout).
STALE_SENDING = timedelta(hours=1)
# Ids of papers profiles name asked of arXiv in one run (100 a request, 3 s apart).
NAMED_PER_RUN = 500


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
    day) makes a repeat send nothing new. A run that had to wait for the lock
    (``wait_for_lock``) runs as of ``clock()`` once it holds it, not as of ``now``.
    """
    # DIGEST_SEMANTIC=1 without its extra fails every run, not only one that ranks.
    check_ranking(config)
    cutoff = retention_cutoff(config, now)
    if day is not None and cutoff is not None and day < cutoff:
        # The ledger of that day is pruned: what was mailed then is no longer known, so
        # a digest of it could repeat papers its subscribers already had.
        raise UsageError(
            f"{day.isoformat()} is older than the history kept (DIGEST_RETENTION_DAYS="
            f"{config.retention_days}: from {cutoff.isoformat()} on)",
            "pick a later --date, or raise DIGEST_RETENTION_DAYS before that day's "
            "history is pruned",
        )
    own_store = store is None
    db = store or open_store(config.database_url)
    try:
        with run_lock(config.lock_path, wait=wait_for_lock) as waited:
            if waited and clock is not None:
                # The run is for the instant it starts. Planned as of when it was asked
                # (`digest run --wait` behind a run still sending), the digests whose
                # hour came while it waited were not due in it, and the next firing,
                # finding the lock taken by it, did not send them either.
                now = clock()
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
    found_unknown = 0
    if not dry_run:
        # A row still in "sending" whose process died (on this host), or that has been
        # sending for far too long (a worker elsewhere), became "unknown"; live
        # `digest send` workers keep theirs. Counted in this run's report (exit 1), so
        # cron hears of the operator's decision waiting.
        found_unknown = db.mark_stale_sending(now=now, older_than=now - STALE_SENDING)
        db.release_dead_claims()  # leases of workers killed (kill -9) before their release
    batch_day = day or now.date()
    sources: tuple[SourceResult, ...] = ()
    if do_ingest and not (dry_run and day is not None and day != now.date()):
        # A run files the papers it fetches under its day. A dry run of another day
        # (a preview of a past or future digest) fetches nothing: it filed today's new
        # papers under that day, outside every later window, and nobody was sent them.
        sources = ingest_sources(config, db, day=batch_day, now=now, fetch=fetch)
    tally = _Tally()
    tally.unknown = found_unknown
    env = render.make_environment(config.templates_dir)
    batch_size = 0
    not_due = 0
    planned_days: set[date] = set()
    planned_ids: list[int] = []
    rankers: dict[tuple[date, date, tuple[str, ...]], Ranker] = {}
    warm: set[str] = set()  # papers whose rows this process has rendered in this run
    # A page of subscribers at a time: memory holds one page, whatever the list's size.
    page = config.rank_page
    for plans, waiting in plan_pages(config, db, now=now, day=day, only=only, force=force,
                                     page=page):
        not_due += waiting
        planned_days.update(p.day for p in plans)
        if only:
            planned_ids.extend(p.subscriber.id for p in plans)
        fresh = [p for p in plans if p.existing is None]
        for start in range(0, len(fresh), page):
            chunk = fresh[start : start + page]
            chosen, pool_size, looked = choose_papers(config, db, chunk, now=now,
                                                      rankers=rankers, supersede=not dry_run)
            batch_size = max(batch_size, pool_size)
            if dry_run:
                _preview_chunk(config, chunk, chosen, looked, env=env, now=now, tally=tally)
            else:
                _plan_chunk(config, db, chunk, chosen, looked, now=now, tally=tally, env=env,
                            warm=warm)
        if not dry_run:
            for plan in plans:
                if plan.existing is not None and not _sendable(plan.existing, config, now):
                    tally.skipped += 1
    if not dry_run and send and planned_days:
        _send_all(
            config, db,
            days=sorted(planned_days),
            subscriber_ids=planned_ids if only else None,
            env=env, clock=clock, tally=tally, transport=transport, pacer=pacer,
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
        papers_filed=db.count_batch(batch_day),
        dry_run=dry_run,
        deliveries=tuple(tally.deliveries), deliveries_omitted=tally.omitted,
        aborted=tally.aborted,
        abort_exit=tally.abort_exit,
    )
    if not dry_run:
        db.record_run(report)
        prune(config, db, now=now, daily=True)
    return report


def retention_cutoff(config: Config, now: datetime) -> date | None:
    """Return the first day whose history is kept (None: DIGEST_RETENTION_DAYS=0)."""
    if not config.retention_days:
        return None
    return now.date() - timedelta(days=config.retention_days)


def prune(config: Config, db: Store, *, now: datetime, daily: bool = False) -> dict[str, int]:
    """Delete the history older than DIGEST_RETENTION_DAYS; return what went, by kind.

    Ledger rows of a final outcome (each subscriber's latest sent one stays), their sent
    papers, run reports and HTML previews. The first run of each UTC day does it after
    its report (``daily``: later runs that day find it done), so a day's work stays a
    day's work however long the list has run; `digest prune` does it on demand.
    """
    before = retention_cutoff(config, now)
    if before is None or (daily and not db.claim_prune_day(now.date())):
        return {}
    removed = db.prune(before=before)
    removed["previews"] = prune_previews(config, before=before)
    return removed


# -- ingest -------------------------------------------------------------------------------


def ingest_sources(
    config: Config, db: Store, *, day: date, now: datetime, fetch: ingest.Fetch | None = None
) -> tuple[SourceResult, ...]:
    """Fetch every configured source, store its papers in ``day``'s batch, record health."""
    specs = effective_sources(config, db.list_sources())
    results = ingest.collect(
        specs,
        day=day,
        user_agent=ingest.user_agent(config.contact),
        state=db.source_states(),
        announced=db.announcements(),
        arxiv_api=config.arxiv_api,
        fetch=fetch,
    )
    assessed: list[SourceResult] = []
    for result in results:
        new = 0
        if result.papers:
            # A replacement refreshes a known paper and keeps its batch day, so it is
            # never mailed again; an unknown one is filed but never mailed (planning).
            new, _updated = db.save_papers(result.papers, batch_day=day, now=now)
        # As recorded: judged against the source's history (stale only when behind), so
        # the run's report says what `digest status` says.
        checked = db.record_source(ingest.assess(result, new=new, day=day), now=now)
        assessed.append(checked)
    named = named_papers(config, db, specs, day=day, now=now, fetch=fetch)
    return (*assessed, named) if named is not None else tuple(assessed)


def named_papers(
    config: Config, db: Store, specs: Sequence[SourceSpec], *, day: date, now: datetime,
    fetch: ingest.Fetch | None = None,
) -> SourceResult | None:
    """Fetch from arXiv the papers that profiles name and the store does not hold.

    A seed paper older than the store (a researcher's own 2019 paper, a BibTeX
    library's) or a liked paper retention dropped was unknown to the ranker and did
    nothing. Only an instance that reads arXiv itself asks (or one whose
    DIGEST_ARXIV_API is set); at most NAMED_PER_RUN ids a run, the rest in later runs.
    They are filed as "named" papers under the day: read by the ranker, never mailed
    as new. None when there was nothing to ask.
    """
    if not ingest.may_ask_api(specs, config.arxiv_api):
        return None
    wanted = [key for key in db.named_keys() if key.startswith("arxiv:")]
    keys = db.to_look_up(wanted, now=now)[:NAMED_PER_RUN]
    if not keys:
        return None
    result, settled = ingest.fetch_named_papers(
        keys, day=day, user_agent=ingest.user_agent(config.contact), api=config.arxiv_api,
        fetch=fetch)
    new = 0
    if result.papers:
        new, _updated = db.save_papers(result.papers, batch_day=day, now=now)
    db.record_lookups(settled, (p.key for p in result.papers), now=now)
    # Recorded like a source's outcome: a failure exits the run 1, and `digest status`
    # is where the operator looks for why.
    return db.record_source(ingest.assess(result, new=new, day=day), now=now)


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
    by a worker that died long ago (past any SMTP timeout) become ``unknown``. A report
    is saved only when the call sent, skipped, failed, left unknown or aborted.
    """
    own_store = store is None
    db = store or open_store(config.database_url)
    try:
        tally = _Tally()
        tally.unknown = db.mark_stale_sending(now=now, older_than=now - STALE_SENDING)
        _send_all(
            config, db, days=None, subscriber_ids=None,
            env=render.make_environment(config.templates_dir), clock=clock or (lambda: now),
            tally=tally,
            transport=transport or (lambda: mail.open_transport(config.smtp, config.maildir)),
            pacer=pacer or Pacer(config.send_rate), workers=max(1, workers or config.connections),
            send_chunk=max(1, send_chunk),
        )
        report = RunReport(
            day=now.date(), started_at=now, finished_at=(clock or (lambda: now))(),
            sent=tally.sent, skipped=tally.skipped, failed=tally.failed, unknown=tally.unknown,
            deliveries=tuple(tally.deliveries), deliveries_omitted=tally.omitted,
            aborted=tally.aborted, abort_exit=tally.abort_exit,
        )
        # A follower polls every 30 s: a report of each empty poll would push the runs
        # that did something out of the history `digest status` shows.
        if report.sent or report.skipped or report.failed or report.unknown or report.aborted:
            db.record_run(report)
        return report
    finally:
        if own_store:
            db.close()
