"""The send phase: lease ledger rows, render each, hand it to SMTP, record the outcome."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from digest import mail, render
from digest.config import Config
from digest.errors import AuthenticationError, DeliveryError
from digest.mail.bounces import apply_rejection
from digest.models import (
    ROUTINE_STATUSES,
    Delivery,
    DeliveryStatus,
    Digest,
    OutgoingMessage,
    Paper,
    ScoredPaper,
    Subscriber,
    dot_unstuffed,
    hide_address,
)
from digest.pipeline.composing import compose_wire, html_part, write_preview
from digest.store import Store, email_hash

TransportFactory = Callable[[], AbstractContextManager[mail.Transport]]
# A row whose 250 came back, not yet recorded: (subscriber id, day, paper keys).
_Sent = tuple[int, date, tuple[str, ...]]
Clock = Callable[[], datetime]

# Rows leased and rendered together in the send phase. Small enough that many workers
# share a day's rows evenly and a killed worker strands few until its lease runs out; a
# claim is one short transaction, next to the two every message costs anyway.
SEND_CHUNK = 25
# Papers a send worker keeps between chunks: a day's digests draw on one batch of papers,
# so after the first chunks nearly every paper a row names is already at hand.
PAPERS_KEPT = 20000
# Why a planned row was not sent: its subscriber stopped their digest since it was planned.
NO_LONGER_ACTIVE = "the subscriber is no longer active"
# Wait before the next attempt at a temporarily failed delivery, by attempts so far.
BACKOFF = (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6))



# Routine outcomes (models.ROUTINE_STATUSES) a run's report lists one by one, at most; the
# rest are counted (RunReport.deliveries_omitted). Every other outcome is listed. Listed
# all, a sender held every digest's Delivery until its run ended: ~1.2 KB each with its
# paper keys, ~120 MB at 100,000 digests in one process, growing with the list.
ROUTINE_LISTED = 1000


@dataclass
class _Tally:
    """Counts shared by the send workers (guarded by ``lock``)."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    unknown: int = 0
    consecutive_failures: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    routine_listed: int = 0
    omitted: int = 0  # routine outcomes past ROUTINE_LISTED, counted only
    aborted: str | None = None
    abort_exit: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, delivery: Delivery) -> None:
        """List an outcome in the run's report (a routine one while fewer than
        ROUTINE_LISTED are); the caller holds ``lock`` where threads share the tally."""
        if delivery.status in ROUTINE_STATUSES:
            if self.routine_listed >= ROUTINE_LISTED:
                self.omitted += 1
                return
            self.routine_listed += 1
        self.deliveries.append(delivery)


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


# -- send ---------------------------------------------------------------------------------

# A stop asked for from outside (the CLI's SIGTERM handler: systemd stopping or restarting
# the service, `docker stop`, `kill`): each send worker finishes the message it is
# sending, records it and gives back its claims, and the phase ends as an aborted run
# (75), the rows not started left planned. Killed mid-message instead, the message in
# flight and the one sent before it (recorded with the next one's start) became
# "unknown": never resent, so possibly a digest lost each restart.
_STOP = threading.Event()
_ACTIVE = [0]  # send phases running in this process
_ACTIVE_LOCK = threading.Lock()
STOPPED = "stopped on request (SIGTERM) after the messages in flight; the rest stay planned"


def request_stop() -> bool:
    """Ask every send phase of this process to end after the messages in flight.

    Return True when one is running (it ends shortly), False when none is (the caller
    may end the process at once: nothing is on the wire).
    """
    _STOP.set()
    with _ACTIVE_LOCK:
        return _ACTIVE[0] > 0


def stop_requested() -> bool:
    """Return True once request_stop was called (and not cleared)."""
    return _STOP.is_set()


def clear_stop() -> None:
    """Forget a stop request (for a process that goes on sending afterwards)."""
    _STOP.clear()


def _stopping(tally: _Tally) -> bool:
    """Return True when the phase must end: aborted, or a stop was requested."""
    if _STOP.is_set() and not tally.aborted:
        with tally.lock:
            if not tally.aborted:
                tally.aborted, tally.abort_exit = STOPPED, 75
    return bool(tally.aborted)


def _send_all(
    config: Config,
    db: Store,
    *,
    days: Sequence[date] | None,
    subscriber_ids: Sequence[int] | None,
    env: Any,
    clock: Clock,
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
    ``clock`` is read for each claim and each message: a send phase paced to a relay's
    rate runs for hours, and stamped with its start, its later claims were expired
    leases when made (other workers' to take), its rows in ``sending`` looked an hour
    old to another worker's stale-row check (reported ``unknown`` mid-send), and its
    messages carried the phase's start as their Date.
    """
    suppressed = db.suppressed_hashes()
    prefix = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

    def worker(number: int) -> None:
        name = f"{prefix}:{number}"
        papers: dict[str, Paper] = {}
        # The last row whose 250 came back: recorded as sent together with the start of
        # the next row (one commit a message), at the latest when its chunk ends.
        sent: _Sent | None = None
        try:
            with db.pinned_connection(), _Connection(transport) as connection:
                # The row started (``sending``), its message's data not yet written: with
                # SMTP the server has said 354 to its envelope. Its data goes out with the
                # next row's envelope in one write (_finish), or alone at the chunk's end.
                current: _Ready | None = None
                try:
                    while not _stopping(tally):
                        rows = db.claim_deliveries(
                            name, now=clock(), lease=timedelta(seconds=config.lease_seconds),
                            limit=send_chunk,
                            max_attempts=config.max_attempts, days=days,
                            subscriber_ids=subscriber_ids,
                        )
                        if not rows:
                            return
                        subs, ready, papers = _chunk_inputs(db, rows, papers)
                        for row in rows:
                            if _stopping(tally):
                                break
                            prepared = _prepare(
                                config, db, row, subs.get(row.subscriber_id), papers,
                                ready[(row.subscriber_id, row.day)], env=env, now=clock(),
                                tally=tally, suppressed=suppressed)
                            if prepared is None:
                                continue
                            if current is not None:
                                # A paced envelope waits its turn (_begin), not beside the
                                # message before: no envelope ahead under a pace.
                                sent = _finish(config, db, current,
                                               then=None if pacer.interval else prepared,
                                               connection=connection, tally=tally)
                                current = None
                            current = _begin(config, db, prepared, sent, worker=name,
                                             connection=connection, pacer=pacer, tally=tally)
                            sent = None  # recorded by the start, whether or not it started
                            if current is not None and _opening(connection.get(), current) is None:
                                # Sent whole (a Maildir, a message written here): at once.
                                sent = _finish(config, db, current, then=None,
                                               connection=connection, tally=tally)
                                current = None
                        if current is not None:
                            sent = _finish(config, db, current, then=None,
                                           connection=connection, tally=tally)
                            current = None
                        if sent is not None:
                            db.mark_sent(*sent, now=clock())
                            sent = None
                finally:
                    if current is not None:
                        # Left by an error between its start and its data: the row is
                        # ``sending`` and the server waits for the data, so it goes out
                        # (dropped instead, the digest would be "unknown" though nothing
                        # was delivered).
                        sent = _finish(config, db, current, then=None,
                                       connection=connection, tally=tally)
        finally:
            try:
                if sent is not None:
                    db.mark_sent(*sent, now=clock())
            finally:
                db.release_claims(name)

    with _ACTIVE_LOCK:
        _ACTIVE[0] += 1
    try:
        _run_workers(worker, workers, tally)
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE[0] -= 1
    # The messages of rows now final (sent, skipped, failed) are of no further use.
    db.purge_outbox()


def _chunk_inputs(
    db: Store, rows: Sequence[Delivery], papers: dict[str, Paper],
) -> tuple[dict[int, Subscriber], dict[tuple[int, date], OutgoingMessage | None],
           dict[str, Paper]]:
    """Read what a chunk's rows need: subscribers, stored messages, papers to render.

    Return (subscribers by id, per row its usable stored message, the papers kept).
    """
    # Address, name and status only: a digest written in the plan phase needs no more.
    # A row whose digest is written here gets the whole subscriber (its cadence, for
    # the wording) below.
    subs = db.get_subscribers((row.subscriber_id for row in rows), full=False)
    stored = db.stored_messages((row.subscriber_id, row.day) for row in rows)
    ready = {
        (row.subscriber_id, row.day): _usable(
            stored.get((row.subscriber_id, row.day)), subs.get(row.subscriber_id)
        )
        for row in rows
    }
    written_here = [
        row.subscriber_id for row in rows
        if ready[(row.subscriber_id, row.day)] is None and row.subscriber_id in subs
    ]
    if written_here:
        subs.update(db.get_subscribers(written_here))
    # Papers only for the rows whose digest is written here, at the send.
    keys = {
        k for row in rows if ready[(row.subscriber_id, row.day)] is None
        for k in row.paper_keys
    }
    missing = keys - papers.keys()
    if len(papers) + len(missing) > PAPERS_KEPT:
        papers = {}
        missing = keys
    if missing:
        papers.update(db.get_papers(missing))
    return subs, ready, papers


def _usable(stored: OutgoingMessage | None, sub: Subscriber | None) -> OutgoingMessage | None:
    """Return the message written in the plan phase, unless the address or name changed."""
    if stored is None or sub is None:
        return None
    if stored.to_email != sub.email or stored.to_name != sub.name:
        return None
    return stored


def _run_workers(worker: Callable[[int], None], workers: int, tally: _Tally) -> None:
    """Run ``worker(n)`` for each n below ``workers``: in threads, or here when just one."""
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


@dataclass(frozen=True)
class _Ready:
    """A row to send: its subscriber, its message (bytes without Date), when taken up."""

    row: Delivery
    sub: Subscriber
    sender: str
    recipients: tuple[str, ...]
    payload: bytes
    stuffed: bool  # the payload is dot-stuffed (as the plan phase stores digests)
    now: datetime


def _prepare(
    config: Config,
    db: Store,
    row: Delivery,
    sub: Subscriber | None,
    papers: dict[str, Paper],
    stored: OutgoingMessage | None,
    *,
    env: Any,
    now: datetime,
    tally: _Tally,
    suppressed: set[str],
) -> _Ready | None:
    """Return a leased row's message, ready to go; None when the row is not sent (its
    subscriber stopped, its message cannot be written: recorded here).

    The message is the one written in the plan phase (``stored``), or, for a row that
    has none, rendered here from the row's picks.
    """
    if sub is None or sub.status != "active" or email_hash(sub.email) in suppressed:
        # Unsubscribed, paused or suppressed since the row was planned: never send.
        db.set_delivery_status(
            row.subscriber_id, row.day, "skipped", now=now,
            error=NO_LONGER_ACTIVE, expect=("planned", "temp_failed"),
        )
        with tally.lock:
            tally.skipped += 1
        return None
    try:
        sender, recipients, payload, stuffed, html = _message(config, row, sub, papers, stored,
                                                              env=env)
    except DeliveryError as err:
        # A message this mailer cannot write (an address stored before addresses were
        # checked as they are now): nothing went out. The row fails with what to do, and
        # the others go on; not a delivery failure, so the error budget is not spent.
        db.set_delivery_status(sub.id, row.day, "perm_failed", now=now, error=err.message,
                               expect=("planned", "temp_failed"))
        with tally.lock:
            tally.failed += 1
            tally.note(Delivery(sub.id, row.day, "perm_failed", error=err.message))
        return None
    if config.smtp is None:
        try:
            if html is None:
                html = html_part(dot_unstuffed(payload) if stuffed else payload)
            write_preview(config, sub, row.day, html)
        except OSError as err:
            # A full disk or a folder this user cannot write: nothing of this row has
            # started, so it stays planned; the run stops with what to fix (75), as it
            # does when the Maildir beside the previews cannot be written.
            with tally.lock:
                if not tally.aborted:
                    tally.aborted = (f"cannot write the HTML preview under "
                                     f"{config.preview_dir}: {err}")
                    tally.abort_exit = 75
            return None
    return _Ready(row, sub, sender, tuple(recipients), payload, stuffed, now)


def _begin(
    config: Config,
    db: Store,
    ready: _Ready,
    sent: _Sent | None,
    *,
    worker: str,
    connection: _Connection,
    pacer: Pacer,
    tally: _Tally,
) -> _Ready | None:
    """Start a row: wait for its turn under the pace, say its envelope (SMTP: up to the
    server's 354) and move the row to ``sending``; return it, its data to go out next
    (_finish), or None when it does not start (skipped, refused: recorded here).

    ``sent`` is the worker's previous row whose 250 is not recorded yet: the start
    records it, in one transaction, whether or not this row starts. The envelope goes
    first: said while the row is still planned, it delivers nothing, so a process killed
    before the start leaves the row planned (sent later), never "unknown". A refusal of
    the envelope (or a server that cannot be reached) is recorded on the started row,
    as one of the data would be.
    """
    row, sub, now = ready.row, ready.sub, ready.now
    # Before the envelope: a relay waiting for data the pace holds back may time out,
    # which would leave the row "unknown" though nothing was delivered.
    pacer.wait()
    try:
        smtp = _opening(connection.get(), ready)
        if smtp is not None:
            smtp.open_data(ready.sender, ready.recipients)
    except DeliveryError as err:
        if db.start_sending(sub.id, row.day, worker=worker, now=now, sent=sent,
                            recipient=sub.email):
            _failed(config, db, ready, err, connection=connection, tally=tally)
        else:
            _not_started(db, ready, tally)
        return None
    # A compare-and-set on the lease: of two runs or workers, exactly one moves the row;
    # and on the subscriber as they are now: the chunk's read of them (and the phase's of
    # the suppressions) may be minutes old on a paced relay.
    if not db.start_sending(sub.id, row.day, worker=worker, now=now, sent=sent,
                            recipient=sub.email):
        connection.reset()  # the server waits for data that will not come: drop it
        _not_started(db, ready, tally)
        return None
    return ready


def _not_started(db: Store, ready: _Ready, tally: _Tally) -> None:
    """Record a row its start refused: skipped if its subscriber stopped meanwhile."""
    if _stopped_since(db, ready.sub):
        # Unsubscribed, paused, deleted or suppressed since this chunk was read.
        db.set_delivery_status(
            ready.row.subscriber_id, ready.row.day, "skipped", now=ready.now,
            error=NO_LONGER_ACTIVE, expect=("planned", "temp_failed"),
        )
    with tally.lock:
        tally.skipped += 1


def _finish(
    config: Config,
    db: Store,
    ready: _Ready,
    *,
    then: _Ready | None,
    connection: _Connection,
    tally: _Tally,
) -> _Sent | None:
    """Send a started row's message and record a failure; return the row when the
    server accepted it (its 250 recorded with the next start, or at the chunk's end).

    ``then``: the next row to start, whose envelope rides in the same write where the
    transport can (SMTP with PIPELINING): a message costs one round trip, not two.
    """
    row, sub = ready.row, ready.sub
    try:
        transport = connection.get()
        data = mail.with_date(ready.payload, ready.now)
        smtp = _opening(transport, ready)
        if smtp is not None:
            following = None
            if then is not None and _opening(smtp, then) is not None:
                following = (then.sender, then.recipients)
            # The Date line starts no line with ".": put before stuffed bytes, it
            # leaves them so.
            smtp.finish_data(data + b".\r\n", then=following)
        else:
            transport.send_wire(ready.sender, ready.recipients,
                                dot_unstuffed(data) if ready.stuffed else data)
    except DeliveryError as err:
        _failed(config, db, ready, err, connection=connection, tally=tally)
        return None
    # Recorded before the next message is started (with that start), at the latest when
    # the chunk ends: a crash before that leaves it "sending", which a later run turns
    # into "unknown", never resent; it cannot look unsent.
    with tally.lock:
        tally.sent += 1
        tally.consecutive_failures = 0
        tally.note(
            Delivery(sub.id, row.day, "sent", row.message_id, paper_keys=row.paper_keys)
        )
    return (sub.id, row.day, row.paper_keys)


def _opening(transport: mail.Transport, ready: _Ready) -> mail.SmtpTransport | None:
    """Return the transport when the row's message is sent in two steps, envelope then
    data: to an SMTP server, a message stored dot-stuffed (as the plan phase writes
    them); None when it is sent whole.
    """
    return transport if ready.stuffed and isinstance(transport, mail.SmtpTransport) else None


def _failed(
    config: Config,
    db: Store,
    ready: _Ready,
    err: DeliveryError,
    *,
    connection: _Connection,
    tally: _Tally,
) -> None:
    """Record what a started row's failure means: given back, or failed."""
    row, now = ready.row, ready.now
    if isinstance(err, AuthenticationError):
        # Refused before any message data: nothing went out, so the row goes back.
        _give_back(db, row, err, now=now, tally=tally,
                   why=f"SMTP authentication failed: {err.message}", exit_code=err.exit_code)
        return
    if isinstance(err, mail.SendError) and err.stage in ("connect", "tls", "auth"):
        # The server could not be reached, greeted or log us in (a temporary auth
        # failure; wrong credentials are AuthenticationError): not this message's failure,
        # and every other would fail alike. Spending an attempt of each row per run
        # lost a day's digests to an outage of some hours (5 attempts, then
        # perm_failed); the run stops instead (75: try later), losing nothing.
        # (The Maildir transport fails so when it cannot write: its message says so.)
        connection.reset()
        why = (f"the SMTP server could not be reached: {err.message}"
               if config.smtp is not None and err.stage != "auth" else err.message)
        _give_back(db, row, err, now=now, tally=tally, why=why, exit_code=75)
        return
    if err.code is None or err.code == 421:
        # A network error or a closing server: reconnect for the next message. A
        # refusal with a reply (550 at RCPT...) leaves a usable, RSET connection.
        connection.reset()
    _record_failure(config, db, row, err, now=now, tally=tally, recipient=ready.sub.email)
    apply_rejection(db, ready.sub.email, err, now=now)  # "no such user": suppress the address


def _stopped_since(db: Store, sub: Subscriber) -> bool:
    """Return True when the subscriber is gone, not active, or their address suppressed."""
    fresh = db.get_subscriber(sub.id)
    return fresh is None or fresh.status != "active" or db.is_suppressed(sub.email)


def _message(
    config: Config,
    row: Delivery,
    sub: Subscriber,
    papers: dict[str, Paper],
    stored: OutgoingMessage | None,
    *,
    env: Any,
) -> tuple[str, tuple[str, ...], bytes, bool, str | None]:
    """Return (sender, recipients, bytes without Date, whether they are dot-stuffed,
    HTML if rendered here) for a row.
    """
    if stored is not None:
        return stored.sender, stored.recipients, stored.unpacked(), stored.stuffed, None
    rendered, sender, recipients, wire = compose_wire(config, _digest_of(row, sub, papers),
                                                      env=env)
    return sender, recipients, wire, False, rendered.html


def _digest_of(row: Delivery, sub: Subscriber, papers: dict[str, Paper]) -> Digest:
    """Return the digest a ledger row holds: its picks, as ranked when it was planned."""
    items = tuple(
        ScoredPaper(paper=papers[key], score=score, reason=reason)
        for key, score, reason in row.picks
        if key in papers
    )
    return Digest(subscriber=sub, day=row.day, papers=items)


def preview_delivery(config: Config, db: Store, sub: Subscriber,
                     row: Delivery) -> tuple[Path, int]:
    """Write the HTML of the digest a ledger row holds (sent or not); return (path,
    papers). What `digest preview` shows for a day already planned or sent.
    """
    papers = db.get_papers(key for key, _score, _reason in row.picks)
    digest = _digest_of(row, sub, papers)
    env = render.make_environment(config.templates_dir)
    rendered, _sender, _recipients, _wire = compose_wire(config, digest, env=env)
    return write_preview(config, sub, row.day, rendered.html), len(digest.papers)


def _give_back(
    db: Store, row: Delivery, err: DeliveryError, *, now: datetime, tally: _Tally, why: str,
    exit_code: int,
) -> None:
    """Put a row whose message never left back as it was (its attempt not spent) and
    stop the run: what failed was the server or the settings, not this message.
    """
    db.set_delivery_status(row.subscriber_id, row.day, row.status, now=now, error=err.message,
                           next_attempt_at=row.next_attempt_at, expect=("sending",),
                           give_back=True)
    with tally.lock:
        if not tally.aborted:
            tally.aborted, tally.abort_exit = why, exit_code


def _record_failure(
    config: Config, db: Store, row: Delivery, err: DeliveryError, *, now: datetime,
    tally: _Tally, recipient: str,
) -> None:
    # A server's refusal names the address ("550 5.1.1 <a@b.org>: ..."). The ledger row
    # is the subscriber's, but the run's report (kept for `digest status`) outlives a
    # deletion: neither spells the address.
    error = hide_address(err.message, recipient)
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
        row.subscriber_id, row.day, status, now=now, error=error,
        next_attempt_at=next_attempt,
    )
    with tally.lock:
        if status == "unknown":
            tally.unknown += 1
        else:
            tally.failed += 1
        tally.note(Delivery(row.subscriber_id, row.day, status, error=error))
        tally.consecutive_failures += 1
        if tally.consecutive_failures >= config.error_budget and not tally.aborted:
            tally.aborted = (
                f"stopped after {tally.consecutive_failures} consecutive delivery failures "
                f"(last: {error})"
            )
            tally.abort_exit = 75
