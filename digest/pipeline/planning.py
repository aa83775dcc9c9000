"""The plan phase: find the digests due, rank their papers in chunks, write ledger rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from digest.config import RANK_PAGE, Config
from digest.due import due_days, newest_batch_day, zone
from digest.errors import DeliveryError, DigestError, UsageError
from digest.forking import map_forked
from digest.models import (
    REPLACEMENTS,
    Delivery,
    DeliveryStatus,
    Digest,
    OutgoingMessage,
    Paper,
    Profile,
    ScoredPaper,
    Subscriber,
    with_aliases,
)
from digest.pipeline.composing import compose, message_id, write_ahead, write_preview
from digest.pipeline.sending import _Tally
from digest.store import Store, email_hash

if TYPE_CHECKING:  # the ranker (numpy, scipy, scikit-learn) loads when a run ranks
    from digest.rank import Ranker, RankOptions

# How far back a digest may reach for papers it has not mailed yet (after a pause or
# downtime); a weekly digest looks back over its whole week and a bit.
LOOKBACK = {"daily": timedelta(days=7), "weekly": timedelta(days=14)}
# Background papers that give the ranker its idf statistics and seed/liked texts.
HISTORY_LIMIT = 5000
# Digests written together in forked processes (see write_all).
WRITE_BATCH = 2000

T = TypeVar("T")


@dataclass
class _Plan:
    """One subscriber's digest that is due in this run."""

    subscriber: Subscriber
    day: date
    existing: Delivery | None = None  # read without its papers (deliveries_for_day)
    # Earlier due days with no row, folded into this digest (a run after downtime):
    # one email covering their papers instead of one a day, each repeating the last.
    merged: tuple[date, ...] = ()
    # Sent now whatever the hour (`digest run --date D` or --force): the digest holds
    # day D's batch too, as such a run files what it fetches under D.
    forced: bool = False


# A digest's window: its batch days (first, last), and when papers filed into earlier
# days count too ((first day, filed after), or None).
_Window = tuple[tuple[date, date], tuple[date, datetime] | None]


@dataclass(frozen=True)
class Looked:
    """What one digest chose from: how many papers, and from which first batch day.

    ``since`` is None when they are one day's batch; a window of several days (after
    days with nothing relevant, a pause, downtime) is not "today's" papers.
    """

    count: int
    since: date | None = None
    # The profile's categories that none of those papers is in, and whether any of them
    # is in a category at all (a bioRxiv or journal feed lists none): what the "nothing
    # relevant" note tells a reader whose categories could pick nothing.
    absent: tuple[str, ...] = ()
    categorised: bool = True


# -- plan ---------------------------------------------------------------------------------


def plan_pages(
    config: Config,
    db: Store,
    *,
    now: datetime,
    day: date | None,
    only: str | None,
    force: bool,
    page: int = RANK_PAGE,
) -> Iterator[tuple[list[_Plan], int]]:
    """Yield the digests due now a page of subscribers at a time, with how many are not due.

    Subscribers are read ``page`` at a time in id order, with only their own ledger
    rows, so a run holds one page of subscribers, never all of them.
    """
    suppressed = db.suppressed_hashes()
    if only:
        found = db.find_subscriber(only)
        subscribers = [found] if found is not None and found.status == "active" else []
        if not subscribers:
            raise UsageError(f"no active subscriber {only}", "check `digest subscribers list`")
        yield _plan_page(config, db, subscribers, suppressed, now=now, day=day, force=force)
        return
    after = None
    while True:
        subscribers = db.list_subscribers(status="active", after=after, limit=page)
        if not subscribers:
            return
        yield _plan_page(config, db, subscribers, suppressed, now=now, day=day, force=force)
        if len(subscribers) < page:
            return
        after = subscribers[-1].id


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
    plans: list[_Plan] = []
    not_due = 0
    for found, waiting in plan_pages(config, db, now=now, day=day, only=only, force=force):
        plans.extend(found)
        not_due += waiting
    return plans, not_due


def _plan_page(
    config: Config,
    db: Store,
    subscribers: Sequence[Subscriber],
    suppressed: set[str],
    *,
    now: datetime,
    day: date | None,
    force: bool,
) -> tuple[list[_Plan], int]:
    """Return the digests due for these subscribers (in id order), and how many are not due."""
    grace = timedelta(hours=config.grace_hours)
    plans: list[_Plan] = []
    not_due = 0
    ledger_cache: dict[date, dict[int, Delivery]] = {}
    ids = (subscribers[0].id, subscribers[-1].id)

    def ledger(d: date) -> dict[int, Delivery]:
        if d not in ledger_cache:
            ledger_cache[d] = db.deliveries_for_day(d, subscriber_ids=ids, papers=False)
        return ledger_cache[d]

    for sub in subscribers:
        if email_hash(sub.email) in suppressed:
            continue
        if force:
            # "Today" is the subscriber's: in Tokyo at 20:00 UTC, tomorrow's UTC date.
            # With the UTC date, a subscriber east of UTC who had not had their local
            # day's digest yet got a digest dated the day before, then their own hours
            # later; one west of it got the next day's a day early.
            days = [day or now.astimezone(zone(sub.timezone)).date()]
        else:
            window = [now.date() + timedelta(days=k) for k in range(-(grace.days + 3), 2)]
            rows = {d: row for d in window if (row := ledger(d).get(sub.id)) is not None}
            done = {d for d, row in rows.items() if not _retryable(row, config)}
            days = due_days(sub, now, grace=grace, done=done, newest=max(rows, default=None))
            if not days:
                not_due += 1
                continue
        latest = days[-1]
        if len(days) > 1 and ledger(latest).get(sub.id) is None:
            # Several days due at once: one digest, for the latest, whose window holds
            # the earlier days' papers. Their rows, if any, are superseded by it when it
            # is ranked (choose_papers); days without one are recorded as merged.
            merged = tuple(d for d in days[:-1] if ledger(d).get(sub.id) is None)
            plans.append(_Plan(subscriber=sub, day=latest, merged=merged))
            continue
        for target in days:
            plans.append(_Plan(subscriber=sub, day=target, existing=ledger(target).get(sub.id),
                               forced=force))
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
    config: Config,
    db: Store,
    plans: Sequence[_Plan],
    *,
    now: datetime,
    rankers: dict[tuple[date, date, tuple[str, ...]], Ranker] | None = None,
    supersede: bool = True,
) -> tuple[list[list[ScoredPaper] | None], int, list[Looked]]:
    """Rank every plan's candidates in one batched pass; return (choices, pool size,
    papers looked at).

    A plan's choice is None when its window held no papers at all (a quiet day), and an
    empty list when papers came in but none was relevant. A plan's papers looked at are
    those of its window it was not sent before (what its digest says it chose from).
    A window is of batch days: up to the newest batch that had arrived by the digest's
    send instant (``newest_batch_day``), from the day after the newest one its last sent
    digest could hold, so each batch is in one digest's window; with the papers filed
    into the days it held after it was planned (a source publishing in the afternoon).
    ``rankers`` keeps the prepared batch between chunks of one run (keyed by the days it
    spans), so the preparation is paid once per run, not once per chunk.

    A paper is chosen once per subscriber: not again after it was sent, nor while a
    digest holding it is planned, being sent, to be retried or of unknown outcome. Such
    a row of an earlier day that never went out (a run stopped by an SMTP outage, then
    the day's grace passed) is superseded by the new digest (``supersede``; a dry run
    only pretends), whose window holds its papers: one email, nothing lost or repeated.
    """
    if not plans:
        return [], 0, []
    cadences = sorted({p.subscriber.cadence for p in plans})
    if len(cadences) > 1:
        # Each cadence ranked apart: a page is ranked against the union of its windows,
        # and one weekly subscriber's week in it changed the daily ones' lists (ranked
        # among the week's papers: their smoothing, categories' rarity, relevance bar)
        # and made the page's ranking cost a week of papers.
        choices: list[list[ScoredPaper] | None] = [None] * len(plans)
        counts: list[Looked] = [Looked(0)] * len(plans)
        size = 0
        for cadence in cadences:
            members = [i for i, p in enumerate(plans) if p.subscriber.cadence == cadence]
            part, part_size, part_looked = choose_papers(
                config, db, [plans[i] for i in members], now=now, rankers=rankers,
                supersede=supersede)
            size = max(size, part_size)
            for i, choice, count in zip(members, part, part_looked, strict=True):
                choices[i], counts[i] = choice, count
        return choices, size, counts
    last_days = db.last_delivered_days([p.subscriber.id for p in plans])
    planned_at = _last_planned_at(db, plans, last_days)
    windows: list[tuple[date, date]] = []
    # Per plan, (first day, plan time of the last digest) of the papers filed into the
    # days that digest held after it was planned, or None.
    lates: list[tuple[date, datetime] | None] = []
    latest_by_upper: dict[date, date | None] = {}
    for plan in plans:
        sub = plan.subscriber
        upper = newest_batch_day(sub, plan.day, batch_hour=config.batch_hour)
        if plan.forced:
            upper = max(upper, plan.day)
        lower_bound = upper - LOOKBACK.get(sub.cadence, LOOKBACK["daily"])
        last = last_days.get(sub.id)
        late: tuple[date, datetime] | None = None
        if last is not None and last < plan.day:
            # The day after the newest batch the last digest sent could hold: an empty
            # window waits for its own batch (a late one), never sweeps in the next.
            held = newest_batch_day(sub, last, batch_hour=config.batch_hour)
            when = planned_at.get(sub.id)
            if when is not None:
                # Nor more than had arrived when it was planned (its window was fixed
                # then): after a change to a later hour or a zone further west (01:00
                # -> 07:00 UTC), the mapping of that day with today's settings is a day
                # on, and the batch between would be in no digest's window. The plan
                # time, not the send time: a digest planned at its hour and sent a UTC
                # day later (SMTP retries) held no more than at its planning. (Still a
                # gap if it was also planned a UTC day late, after the host was down:
                # the ledger does not keep the window.)
                held = min(held, (when - timedelta(hours=config.batch_hour)).date())
                if held >= lower_bound:
                    # A day's batch may grow after a digest holding it was planned (a
                    # source that publishes in the afternoon, Hugging Face's list, a
                    # late arXiv batch beside another source's papers): what came in
                    # since is this digest's, or no digest's.
                    late = (lower_bound, when)
            lower = max(held + timedelta(days=1), lower_bound)
        elif last is None and sub.cadence == "weekly":
            # A first weekly digest: the week's batches, as its text says ("from N new
            # this week"), not the last day's alone, the rest of the week in no digest.
            lower = upper - timedelta(days=6)
        else:
            # A first digest (or a repeat day): the latest batch, not the whole archive.
            if upper not in latest_by_upper:
                latest_by_upper[upper] = db.latest_batch_day(upper)
            latest = latest_by_upper[upper]
            lower = latest if latest is not None else plan.day
        windows.append((lower, upper))
        lates.append(late)
    first = min(w[0] for w in windows)
    last_day = max(w[1] for w in windows)
    rows = db.batch(first, last_day)
    filed_late: dict[str, datetime] = {}
    if any(lates):
        since = min(late[0] for late in lates if late)
        after = min(late[1] for late in lates if late)
        # A paper is filed late only for a window that starts after its day: from the
        # latest start on, no window needs its stored time (those days were read above,
        # and this was a second read of the whole day's batch).
        until = max(w[0] for w, late in zip(windows, lates, strict=True) if late)
        early: list[tuple[Paper, date]] = []
        for paper, day, stored in db.filed_after(since, until - timedelta(days=1), after):
            filed_late[paper.key] = stored
            if day < first:
                early.append((paper, day))
        rows = early + rows
    # A replacement of a paper never stored before is an old paper revised (arXiv
    # announces v2 of a 2020 paper beside the day's new ones): kept for the ranker's
    # history and to be updated, but it is no new paper and is not mailed as one.
    pool = [(paper, day) for paper, day in rows if paper.announce_type not in REPLACEMENTS]
    if not pool:
        return [None] * len(plans), 0, [Looked(0)] * len(plans)
    batch = [paper for paper, _ in pool]
    batch_days = {paper.key: d for paper, d in pool}
    ids = [p.subscriber.id for p in plans]
    votes = db.votes(ids)
    profiles = [_with_votes(p.subscriber.profile, votes.get(p.subscriber.id, {})) for p in plans]
    referenced = {k for prof in profiles for k in (*prof.seeds, *prof.liked, *prof.disliked)}
    cache = rankers if rankers is not None else {}
    # The batch days, and the papers of earlier days filed after a digest held them.
    pool_key = (first, last_day, tuple(k for k, d in batch_days.items() if d < first))
    ranker = cache.get(pool_key)
    if ranker is None:
        history = [paper for paper in db.history(first, limit=HISTORY_LIMIT)
                   if paper.key not in batch_days]
        from digest import rank  # here, not at the top: `digest send` never ranks

        ranker = rank.Ranker(batch, history=history, state=db.load_ranker_state(),
                             options=rank_options(config))
        db.save_ranker_state(ranker.state, now=now)
        cache[pool_key] = ranker
    if ranker.options.named_titles:
        # Papers a profile names by title that are older than the history: the ranker
        # makes them seed papers as it does the ones the history holds.
        referenced |= db.keys_titled(_lowered_titles(profiles))
    extra = list(db.get_papers(ranker.unknown(referenced)).values())
    # A paper filed on day B went out, if at all, in a digest of day B - 1 or later (a
    # digest holds the batches up to the day after its own at most: 23:00 at UTC-12):
    # earlier digests need not be read. Two days' margin.
    sent = db.sent_keys(ids, batch_days, since=min(batch_days.values()) - timedelta(days=2))
    for sub_id, keys in _taken(db, plans, now=now, supersede=supersede).items():
        # Only this pool's papers: the sets are counted against it below.
        sent[sub_id] = sent.get(sub_id, set()) | (keys & batch_days.keys())
    excludes: list[set[str]] = []
    empty_window: list[bool] = []
    looked: list[Looked] = []
    # Windows take only a few distinct values: build each one's outside set once, and
    # how many papers each of its batch days holds.
    outside_by_window: dict[_Window, set[str]] = {}
    days_by_window: dict[_Window, Counter[date]] = {}
    for window in set(zip(windows, lates, strict=True)):
        (lower, upper), late = window
        inside = {k for k, d in batch_days.items()
                  if lower <= d <= upper
                  or (late is not None and late[0] <= d < lower
                      and k in filed_late and filed_late[k] > late[1])}
        outside_by_window[window] = batch_days.keys() - inside
        days_by_window[window] = Counter(batch_days[k] for k in inside)
    # The categories each window's papers are in, for the profiles that name some.
    categories_by_window: dict[_Window, set[str]] = {}
    for plan, window in zip(plans, zip(windows, lates, strict=True), strict=True):
        outside = outside_by_window[window]
        already = sent.get(plan.subscriber.id)
        # The shared set itself when nothing was sent: the ranker looks it up once.
        excluded = already | outside if already else outside
        excludes.append(excluded)
        empty_window.append(len(excluded) >= len(batch_days))
        present: set[str] = set()
        if plan.subscriber.profile.categories:
            if window not in categories_by_window:
                categories_by_window[window] = {
                    c for paper in batch if paper.key not in outside for c in paper.categories}
            present = categories_by_window[window]
        absent = tuple(c for c in plan.subscriber.profile.categories
                       if present.isdisjoint(with_aliases((c,))))
        looked.append(Looked(max(0, len(batch_days) - len(excluded)),
                             _since(days_by_window[window], already, batch_days),
                             absent=absent, categorised=bool(present) or not absent))
    result = ranker.rank(
        profiles,
        top_k=[min(p.subscriber.max_papers, 50) for p in plans],
        exclude=excludes,
        popularity=[p.subscriber.popularity for p in plans],
        extra=extra,
    )
    chosen: list[list[ScoredPaper] | None] = [
        None if empty else list(ranking)
        for ranking, empty in zip(result.rankings, empty_window, strict=True)
    ]
    return chosen, len(batch), looked


def _since(days: Counter[date], sent: set[str] | None,
           batch_days: dict[str, date]) -> date | None:
    """Return the first batch day of a window's papers not sent yet, if they span days."""
    if len(days) < 2:
        return None  # the common case: one day's batch
    left = Counter(days)
    left.subtract(batch_days[k] for k in sent or () if k in batch_days)
    held = sorted(d for d, count in left.items() if count > 0 and d in days)
    return held[0] if len(held) > 1 else None


def _last_planned_at(
    db: Store, plans: Sequence[_Plan], last_days: dict[int, date]
) -> dict[int, datetime]:
    """Return {subscriber id: when their last sent digest was planned}, for the plans
    that follow one (a query per distinct day, on the chunk's range of ids)."""
    by_day: dict[date, set[int]] = {}
    for plan in plans:
        last = last_days.get(plan.subscriber.id)
        if last is not None and last < plan.day:
            by_day.setdefault(last, set()).add(plan.subscriber.id)
    found: dict[int, datetime] = {}
    for day, ids in by_day.items():
        rows = db.deliveries_for_day(day, subscriber_ids=(min(ids), max(ids)), papers=False)
        for sub_id in ids:
            row = rows.get(sub_id)
            if row is not None and row.status == "sent" and row.created_at is not None:
                found[sub_id] = row.created_at
    return found


def _taken(
    db: Store, plans: Sequence[_Plan], *, now: datetime, supersede: bool
) -> dict[int, set[str]]:
    """Return {subscriber id: papers of their other unsettled digests}, after
    superseding those of earlier days that are still only planned or to be retried."""
    day_of: dict[int, date] = {}
    for plan in plans:
        day_of[plan.subscriber.id] = max(plan.day, day_of.get(plan.subscriber.id, plan.day))
    unsettled = db.unsettled_deliveries(list(day_of))
    stale = [(sub_id, row.day, day_of[sub_id]) for sub_id, rows in unsettled.items()
             for row in rows
             if row.day < day_of[sub_id] and row.status in ("planned", "temp_failed")]
    if supersede:
        freed = db.supersede_deliveries(stale, now=now) if stale else set()
    else:
        freed = {(sub_id, day) for sub_id, day, _ in stale}
    taken: dict[int, set[str]] = {}
    planned_days = {(plan.subscriber.id, plan.day) for plan in plans}
    for sub_id, rows in unsettled.items():
        for row in rows:
            if (sub_id, row.day) not in freed and (sub_id, row.day) not in planned_days:
                taken.setdefault(sub_id, set()).update(row.paper_keys)
    return taken


def _lowered_titles(profiles: Sequence[Profile]) -> set[str]:
    """Return the parts of the profiles' interests that may be titles, lowered.

    As the database compares them with ``lower(title)``: without a final period too.
    """
    from digest.rank.scoring import title_parts

    out: set[str] = set()
    for profile in profiles:
        if profile.interests:
            for part in title_parts(profile.interests).values():
                lowered = part.lower()
                out.update((lowered, lowered.rstrip(".").rstrip()))
    return out


def check_ranking(config: Config) -> None:
    """Raise ConfigError when the configured ranking cannot run here (the semantic extra).

    Checked when a run or the scheduler starts, not first at the hour that ranks someone.
    Without the semantic setting there is nothing to check: importing the ranker here
    cost every run ~1.3 s, hourly runs with nobody due included.
    """
    if config.semantic:
        rank_options(config)


def rank_options(config: Config) -> RankOptions:
    """Return the ranker's options for this configuration (semantic ranking or not)."""
    from digest.rank import RankOptions, semantic

    if not config.semantic:
        return RankOptions(processes=config.rank_processes)
    semantic.require()  # the extra missing: a configuration error, with the commands
    weight = semantic.DEFAULT_WEIGHT if config.semantic_weight is None else config.semantic_weight
    return RankOptions(semantic_weight=weight, semantic_cache=str(config.embedding_dir),
                       processes=config.rank_processes)


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
    looked: Sequence[Looked],
    *,
    now: datetime,
    tally: _Tally,
    env: Any,
    warm: set[str],
) -> None:
    """Write ledger rows for freshly ranked plans (skipped ones record why).

    Each planned row's digest is written now too and filed in the outbox with the row
    (``write_all``), so the send phase only delivers. Filed WRITE_BATCH digests at a
    time, each batch with the rows before it: the page's messages are never all held
    at once. Filed a page at a time, they were most of this process's peak at the
    largest pages: bench/run.py at 100,000 in pages of 20,000, its own peak RSS 1,135
    -> 900 MB (the peak of all its processes, while ranking, 1,138 -> 1,108); in
    pages of 5,000, 828 -> 786 MB.
    """
    rows: list[tuple[int, date, list[tuple[str, float, str]], str, DeliveryStatus]] = []
    digests: list[Digest] = []

    def file_rows() -> None:
        if not rows:
            return
        written = write_all(config, digests, env=env, warm=warm)
        messages = {
            (digest.subscriber.id, digest.day): message
            for digest, message in zip(digests, written, strict=True)
            if message is not None
        }
        db.plan_deliveries(rows, now=now, messages=messages)
        rows.clear()
        digests.clear()

    for plan, papers, count in zip(plans, chosen, looked, strict=True):
        sub = plan.subscriber
        if papers is None:
            # No new papers at all (a weekend, a quiet feed, a late batch): no row, so
            # a later run can still send once its batch arrives (within the grace; the
            # next day's batch is outside its window).
            tally.skipped += 1
            continue
        for earlier in plan.merged:
            if db.plan_delivery(sub.id, earlier, picks=[], message_id="", now=now,
                                status="skipped",
                                error=f"merged into the digest of {plan.day.isoformat()}"):
                tally.skipped += 1
        picks = [(sp.paper.key, sp.score, sp.reason) for sp in papers]
        if not picks and sub.empty_digest != "note":
            rows.append((sub.id, plan.day, [], "", "skipped"))
            tally.skipped += 1
            tally.note(
                Delivery(sub.id, plan.day, "skipped", error="nothing relevant in the batch")
            )
            continue
        rows.append((sub.id, plan.day, picks, message_id(config, sub.id, plan.day),
                     "planned"))
        digests.append(Digest(subscriber=sub, day=plan.day, papers=tuple(papers),
                              batch_size=count.count, since=count.since,
                              absent_categories=count.absent,
                              categorised=count.categorised))
        if len(digests) >= WRITE_BATCH:
            file_rows()
    file_rows()


def write_all(
    config: Config, digests: Sequence[Digest], *, env: Any, warm: set[str]
) -> list[OutgoingMessage | None]:
    """Write each digest's message for the outbox, in the plan phase's processes.

    None for a digest this mailer cannot write (an address stored before addresses were
    checked as they are now): its send writes it again and fails the row with what to do.
    The renderer's caches (a paper's inlined row, ~1.4 ms the first time) are filled in
    this process first, by writing here the digests that hold papers ``warm`` does not
    name yet, so the forked processes inherit them instead of each filling its own.
    """
    from digest.rank.scoring import resolve_processes

    def write(digest: Digest) -> OutgoingMessage | None:
        try:
            return write_ahead(config, digest, env=env)
        except DeliveryError:
            return None

    here: list[int] = []
    rest: list[int] = []
    for index, digest in enumerate(digests):
        keys = [item.paper.key for item in digest.papers]
        if not here or not warm.issuperset(keys):
            here.append(index)
            warm.update(keys)
        else:
            rest.append(index)
    results: list[OutgoingMessage | None] = [None] * len(digests)
    for index, message in zip(here, _in_own_heap(lambda: [write(digests[i]) for i in here]),
                              strict=True):
        results[index] = message
    processes = resolve_processes(config.rank_processes)
    # A batch at a time: a forked writer's own memory (the objects it touches, the
    # messages it sends back) stays that of one batch, not of a page of subscribers.
    for start in range(0, len(rest), WRITE_BATCH):
        batch = rest[start : start + WRITE_BATCH]
        forked = map_forked(write, [digests[i] for i in batch], processes, died=_writer_died,
                            here=_in_own_heap)
        for index, message in zip(batch, forked, strict=True):
            results[index] = message
    return results


def _in_own_heap(work: Callable[[], T]) -> T:
    """Return ``work()``, run in a thread of its own: in glibc's heap of that thread.

    glibc gives a thread its own heap (arena). Writing digests here fills the
    renderer's caches and leaves garbage (pages, messages) between them; in the main
    heap, the next page's ranking allocations went into those holes, in this process
    and in each forked ranker, on pages they shared: each process copied those pages,
    20-25 MB private more in each from the second page of subscribers on (bench/run.py,
    15,000 subscribers in pages of 5,000). The thread's heap is reused by the next.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="digest-write") as thread:
        return thread.submit(work).result()


def _writer_died() -> DigestError:
    return DigestError(
        "a process writing digests died before it finished (killed, or out of memory?)",
        "run again (nothing was planned for these subscribers); if it keeps dying, set "
        "DIGEST_RANK_PROCESSES=1 to plan in one process",
    )


def _preview_chunk(
    config: Config,
    plans: Sequence[_Plan],
    chosen: Sequence[list[ScoredPaper] | None],
    looked: Sequence[Looked],
    *,
    env: Any,
    now: datetime,
    tally: _Tally,
) -> None:
    """Render each plan into an HTML preview; change nothing else (dry run)."""
    for plan, papers, count in zip(plans, chosen, looked, strict=True):
        sub = plan.subscriber
        if not papers and sub.empty_digest != "note":
            tally.skipped += 1
            tally.note(Delivery(sub.id, plan.day, "skipped", error="nothing relevant"))
            continue
        digest = Digest(subscriber=sub, day=plan.day, papers=tuple(papers or ()),
                        batch_size=count.count, since=count.since,
                        absent_categories=count.absent, categorised=count.categorised)
        rendered, message = compose(config, digest, env=env, now=now)
        write_preview(config, sub, plan.day, rendered.html)
        keys = tuple(sp.paper.key for sp in papers or ())
        tally.note(
            Delivery(sub.id, plan.day, "planned", str(message["Message-ID"]), paper_keys=keys)
        )
