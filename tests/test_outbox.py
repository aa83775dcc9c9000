"""Digests written in the plan phase (the outbox) and delivered as written by the send.

Real parts: the database file (or PostgreSQL), the shipped sample batch, an aiosmtpd
server on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from sqlalchemy import inspect, text

from digest import mail, packing, pipeline, render
from digest.config import Config
from digest.errors import DigestError
from digest.forking import map_forked, map_forked_then
from digest.models import Digest, OutgoingMessage, Profile, ScoredPaper, Subscriber
from digest.pipeline import planning
from digest.pipeline.planning import write_all
from digest.store import Store, open_store
from tests.fixtures.smtp_server import SmtpTestServer

DAY = date(2026, 5, 25)
NOW = datetime(2026, 5, 25, 6, 0, tzinfo=UTC)
SEND = NOW + timedelta(minutes=40)
PROFILES = {
    "ada@example.org": Profile(interests="LLM agents that use tools, plan and reflect",
                               keywords=("agent",)),
    "grace@example.org": Profile(interests="image and video generation with diffusion",
                                 keywords=("diffusion",)),
    "claude@example.org": Profile(interests="coding theory, channel capacity, wireless",
                                  keywords=("channel",)),
}


# A signed link's timestamp and signature: the second it was written in, so a digest
# written twice may differ there.
SIGNED = re.compile(r"(https://digest\.example\.org/[a-z]+/[\w.-]+?)\.[\w-]{6}\.[\w-]{20,}")


def parts(wire: bytes) -> tuple[str, str, str]:
    """Return (To, text part, HTML part) of a message's bytes, links' timestamps masked."""
    parsed = BytesParser(policy=policy.default).parsebytes(wire)
    assert isinstance(parsed, EmailMessage)
    plain = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    masked = [SIGNED.sub(r"\1.<signed>", str(p.get_content())) for p in (plain, html)]
    assert all(text.count("<signed>") >= 2 for text in masked)  # the links were found
    return str(parsed["To"]), masked[0], masked[1]


def html_of(wire: bytes) -> str:
    parsed = BytesParser(policy=policy.default).parsebytes(wire)
    assert isinstance(parsed, EmailMessage)
    html = parsed.get_body(preferencelist=("html",))
    assert html is not None
    return str(html.get_content())


def unix(wire: bytes) -> bytes:
    return wire.replace(b"\r\n", b"\n")


@pytest.fixture
def planned(config: Config, smtp_server: SmtpTestServer) -> Any:
    """Ingest the sample batch, subscribe three people, plan DAY without sending."""
    config = replace(config, smtp=smtp_server.settings())
    store = open_store(config.database_url)
    pipeline.ingest_sources(config, store, day=DAY, now=NOW - timedelta(hours=1))
    ids = {email: store.add_subscriber(email, profile, now=NOW - timedelta(days=2),
                                       max_papers=4).id
           for email, profile in PROFILES.items()}
    report = pipeline.run(config, now=NOW, day=DAY, do_ingest=False, send=False, store=store)
    assert report.sent == 0 and store.delivery_counts(DAY) == {"planned": 3}
    yield config, store, ids
    store.close()


def stored(store: Store, ids: dict[str, int]) -> dict[str, Any]:
    found = store.stored_messages((sub_id, DAY) for sub_id in ids.values())
    return {email: found[(sub_id, DAY)] for email, sub_id in ids.items()
            if (sub_id, DAY) in found}


def test_the_plan_writes_each_digest_and_the_send_delivers_exactly_those_bytes(
    planned: Any, smtp_server: SmtpTestServer
) -> None:
    config, store, ids = planned
    messages = stored(store, ids)
    assert set(messages) == set(PROFILES)
    for email, message in messages.items():
        row = store.get_delivery(ids[email], DAY)
        wire = message.wire()
        assert message.recipients == (email,) and message.sender == "digest@example.org"
        assert (message.to_email, message.to_name) == (email, "")
        assert f"Message-ID: {row.message_id}".encode() in wire
        assert b"\r\nDate:" not in wire and not wire.startswith(b"Date:")  # added at the send
        assert len(message.packed) < len(wire) / 2  # packed (LZ4): ~5.5 KB of ~15 KB here
        # The papers the row records are the ones the message shows.
        html = parts(wire)[2]
        titles = {p.key: p.title for p in store.get_papers(row.paper_keys).values()}
        assert row.paper_keys and all(render.one_line(t)[:40] in html for t in titles.values())

    report = pipeline.send_pending(config, now=SEND, store=store)
    assert (report.sent, report.failed) == (3, 0)
    assert len(smtp_server.messages) == 3
    for got in smtp_server.messages:
        email = got.rcpt_tos[0]
        expected = mail.with_date(messages[email].wire(), SEND)
        assert unix(got.data) == unix(expected)
        assert got.message["Date"].datetime == SEND
    assert store.stored_messages((i, DAY) for i in ids.values()) == {}  # purged once sent


def test_a_long_paced_send_stamps_each_claim_row_and_message_with_its_own_time(
    planned: Any, smtp_server: SmtpTestServer
) -> None:
    """A send paced to a relay's rate runs for hours. Stamped with the phase's start, its
    rows in ``sending`` looked an hour old to another worker's stale-row check (made
    ``unknown`` mid-send) and every message carried the start as its Date."""
    config, store, ids = planned
    messages = [0]

    def clock() -> datetime:  # 40 minutes pass with each message (a slow relay's pace)
        return SEND + timedelta(minutes=40 * messages[0])

    marked: list[int] = []

    class Watched:
        """The real SMTP transport; before each message, another worker starts."""

        def __init__(self) -> None:
            self.real = mail.open_transport(config.smtp, config.maildir)

        def __enter__(self) -> Watched:
            self.real.__enter__()
            return self

        def __exit__(self, *exc: object) -> None:
            self.real.__exit__(None, None, None)

        def send_wire(self, sender: str, recipients: Any, wire: bytes) -> str:
            at = clock()
            marked.append(store.mark_stale_sending(
                now=at, older_than=at - pipeline.STALE_SENDING, alive=lambda _worker: True))
            reply = self.real.send_wire(sender, recipients, wire)
            messages[0] += 1
            return reply

    report = pipeline.send_pending(config, now=SEND, store=store, clock=clock,
                                   transport=Watched)  # type: ignore[arg-type]
    assert (report.sent, report.unknown, report.failed) == (3, 0, 0)
    assert marked == [0, 0, 0]
    assert {store.get_delivery(i, DAY).status for i in ids.values()} == {"sent"}  # type: ignore[union-attr]
    dates = sorted(got.message["Date"].datetime for got in smtp_server.messages)
    assert len(set(dates)) == 3 and dates[-1] - dates[0] >= timedelta(hours=1)


def without_count(texts: tuple[str, ...]) -> tuple[str, ...]:
    """Return the texts without the intro's "from N new today"."""
    return tuple(re.sub(r" from \d+ new today", "", t) for t in texts)


def test_a_changed_address_or_name_gets_a_message_written_at_the_send(
    planned: Any, smtp_server: SmtpTestServer
) -> None:
    config, store, ids = planned
    before = stored(store, ids)
    store.update_subscriber(ids["ada@example.org"], now=NOW, email="ada@lab.example.org")
    store.update_subscriber(ids["grace@example.org"], now=NOW, name="Grace Hopper")
    report = pipeline.send_pending(config, now=SEND, store=store)
    assert report.sent == 3
    got = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    assert set(got) == {"ada@lab.example.org", "grace@example.org", "claude@example.org"}
    to, plain, html = parts(got["ada@lab.example.org"].data)
    assert to == "ada@lab.example.org"
    # The same digest (same picks), written again for the new address; the ledger does
    # not keep how many new papers the plan looked at, so that phrase is left out.
    planned_plain, planned_html = parts(before["ada@example.org"].wire())[1:]
    assert "from 213 new today" in " ".join(planned_plain.split())
    assert (plain, html) == without_count((planned_plain, planned_html))
    assert parts(got["grace@example.org"].data)[0] == "Grace Hopper <grace@example.org>"
    # The unchanged one went out as written in the plan phase.
    assert unix(got["claude@example.org"].data) == unix(
        mail.with_date(before["claude@example.org"].wire(), SEND))


def test_a_retried_row_sends_the_message_written_at_the_plan_with_a_new_date(
    planned: Any, smtp_server: SmtpTestServer
) -> None:
    config, store, ids = planned
    before = stored(store, ids)
    smtp_server.fail("rcpt", "451 4.7.1 Greylisted, try again later",
                     recipient="grace@example.org")
    first = pipeline.send_pending(config, now=SEND, store=store)
    assert (first.sent, first.failed) == (2, 1)
    assert store.get_delivery(ids["grace@example.org"], DAY).status == "temp_failed"
    assert set(stored(store, ids)) == {"grace@example.org"}  # kept for the retry
    later = SEND + timedelta(hours=3)
    again = pipeline.send_pending(config, now=later, store=store)
    assert again.sent == 1
    retried = smtp_server.by_recipient("grace@example.org")
    assert len(retried) == 1
    # Byte for byte the message of the plan (its MIME boundary too), dated at the retry.
    assert unix(retried[0].data) == unix(mail.with_date(before["grace@example.org"].wire(), later))
    assert stored(store, ids) == {}


def test_a_row_without_a_written_message_is_written_at_its_send(
    planned: Any, smtp_server: SmtpTestServer
) -> None:
    # Rows planned by a release before the outbox, or whose message was purged after an
    # operator's retry: the send writes them from the row's picks, as it always did.
    config, store, ids = planned
    before = stored(store, ids)
    with store.begin() as conn:
        conn.execute(text("DELETE FROM outbox"))
    report = pipeline.send_pending(config, now=SEND, store=store)
    assert report.sent == 3
    for got in smtp_server.messages:
        email = got.rcpt_tos[0]
        # The same message but for how many new papers the plan looked at (not kept).
        assert parts(got.data) == without_count(parts(before[email].wire()))
        assert got.message["Date"].datetime == SEND


def test_a_digest_written_at_its_send_is_written_for_the_whole_subscriber(
    config: Config, smtp_server: SmtpTestServer
) -> None:
    # The send reads only the address, name and status of subscribers whose digest was
    # written in the plan phase; one written at the send needs the rest (its cadence
    # words a weekly subscriber's note "this week's").
    config = replace(config, smtp=smtp_server.settings())
    store = open_store(config.database_url)
    try:
        sub = store.add_subscriber("ada@example.org", Profile(interests="agents"),
                                   now=NOW - timedelta(days=2), name="Ada",
                                   cadence="weekly", weekday=DAY.weekday(),
                                   empty_digest="note")
        store.plan_deliveries([(sub.id, DAY, [], "<note@x>", "planned")], now=NOW)
        assert store.stored_messages([(sub.id, DAY)]) == {}
        report = pipeline.send_pending(config, now=SEND, store=store)
        assert report.sent == 1
        (got,) = smtp_server.messages
        assert got.rcpt_tos == ["ada@example.org"]
        plain = got.message.get_body(preferencelist=("plain",))
        assert plain is not None
        assert "Hello Ada, nothing in this week's papers" in " ".join(
            str(plain.get_content()).split())
    finally:
        store.close()


def test_the_maildir_gets_the_written_message_and_its_preview(config: Config) -> None:
    store = open_store(config.database_url)
    pipeline.ingest_sources(config, store, day=DAY, now=NOW - timedelta(hours=1))
    sub = store.add_subscriber("ada@example.org", PROFILES["ada@example.org"],
                               now=NOW - timedelta(days=2), max_papers=4)
    pipeline.run(config, now=NOW, day=DAY, do_ingest=False, send=False, store=store)
    wire = store.stored_messages([(sub.id, DAY)])[(sub.id, DAY)].wire()
    report = pipeline.send_pending(config, now=SEND, store=store)
    assert report.sent == 1
    files = list((config.maildir / "new").iterdir())
    assert len(files) == 1
    assert files[0].read_bytes() == unix(mail.with_date(wire, SEND))
    preview = pipeline.preview_path(config, sub, DAY).read_text(encoding="utf-8")
    assert preview == pipeline.composing.html_part(wire)
    assert preview.replace("\n", "\r\n") == html_of(wire)
    store.close()


def test_a_page_is_filed_a_write_batch_at_a_time_each_message_with_its_row(
    config: Config, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = replace(config, smtp=smtp_server.settings())
    store = open_store(config.database_url)
    pipeline.ingest_sources(config, store, day=DAY, now=NOW - timedelta(hours=1))
    ids = [store.add_subscriber(f"reader{n}@example.org", profile,
                                now=NOW - timedelta(days=2), max_papers=3).id
           for n, profile in enumerate([*PROFILES.values(), *PROFILES.values()])]
    monkeypatch.setattr(planning, "WRITE_BATCH", 2)
    filed: list[tuple[int, int]] = []  # (rows, messages) of each call
    plan_deliveries = store.plan_deliveries

    def counting(rows: Any, *, now: datetime, messages: Any = None) -> int:
        filed.append((len(rows), len(messages or {})))
        return plan_deliveries(rows, now=now, messages=messages)

    monkeypatch.setattr(store, "plan_deliveries", counting)
    report = pipeline.run(config, now=NOW, day=DAY, do_ingest=False, send=False, store=store)
    assert report.sent == 0 and store.delivery_counts(DAY) == {"planned": 6}
    # Six digests of one page, filed two at a time: never the page's messages at once.
    assert filed == [(2, 2), (2, 2), (2, 2)]
    found = store.stored_messages((sub_id, DAY) for sub_id in ids)
    assert set(found) == {(sub_id, DAY) for sub_id in ids}
    for sub_id in ids:
        row = store.get_delivery(sub_id, DAY)
        assert f"Message-ID: {row.message_id}".encode() in found[(sub_id, DAY)].wire()
    store.close()


def test_stored_messages_returns_exactly_the_pairs_asked_for(store: Store) -> None:
    ids = [store.add_subscriber(f"s{n}@example.org", Profile(interests="x"), now=NOW).id
           for n in range(2)]
    days = (DAY, DAY + timedelta(days=1))
    rows: list[Any] = []
    messages = {}
    for sub_id in ids:
        for day in days:
            rows.append((sub_id, day, [], f"<{sub_id}.{day}@x>", "planned"))
            messages[(sub_id, day)] = OutgoingMessage(
                sender="d@x.org", recipients=(f"{sub_id}@x.org",), to_email="e", to_name="",
                packed=zlib.compress(f"{sub_id} {day}".encode()))
    assert store.plan_deliveries(rows, now=NOW, messages=messages) == 4
    # The two lists of the query also match (ids[0], days[1]) and (ids[1], days[0]).
    asked = [(ids[0], days[0]), (ids[1], days[1])]
    found = store.stored_messages(asked)
    assert set(found) == set(asked)
    assert found[asked[1]].wire() == f"{ids[1]} {days[1]}".encode()
    # A row that already exists keeps its message: another planner's row, another digest.
    other = OutgoingMessage(sender="d@x.org", recipients=("x@x.org",), to_email="e",
                            to_name="", packed=zlib.compress(b"other"))
    assert store.plan_deliveries([rows[0]], now=NOW, messages={asked[0]: other}) == 0
    assert store.stored_messages([asked[0]])[asked[0]].wire() == f"{ids[0]} {days[0]}".encode()


def test_the_purge_drops_final_rows_messages_in_batches_and_keeps_the_others(
    store: Store,
) -> None:
    ids = [store.add_subscriber(f"p{n}@example.org", Profile(interests="x"), now=NOW).id
           for n in range(7)]
    rows: list[Any] = [(sub_id, DAY, [], f"<{sub_id}@x>", "planned") for sub_id in ids]
    packed = zlib.compress(b"message")
    messages = {(sub_id, DAY): OutgoingMessage("d@x.org", ("r@x.org",), "e", "", packed)
                for sub_id in ids}
    store.plan_deliveries(rows, now=NOW, messages=messages)
    final = {ids[0]: "sent", ids[2]: "skipped", ids[3]: "perm_failed", ids[5]: "unknown"}
    for sub_id, status in final.items():
        store.set_delivery_status(sub_id, DAY, status, now=NOW)  # type: ignore[arg-type]
    store.set_delivery_status(ids[4], DAY, "temp_failed", now=NOW)
    store.set_delivery_status(ids[6], DAY, "sending", now=NOW)
    assert store.purge_outbox(batch=2) == 4  # two transactions of two, then none left
    left = store.stored_messages((sub_id, DAY) for sub_id in ids)
    assert {sub_id for sub_id, _ in left} == {ids[1], ids[4], ids[6]}
    assert store.purge_outbox() == 0


def test_a_database_made_before_the_outbox_gains_it_when_opened(config: Config) -> None:
    store = open_store(config.database_url)
    with store.begin() as conn:
        conn.execute(text("DROP TABLE outbox"))
        assert not inspect(conn).has_table("outbox")
    store.close()
    store = open_store(config.database_url)
    with store.begin() as conn:
        assert inspect(conn).has_table("outbox")
    store.close()


# -- writing in processes -----------------------------------------------------------------


def sample_digests(store: Store, config: Config, count: int) -> list[Digest]:
    pipeline.ingest_sources(config, store, day=DAY, now=NOW)
    papers = [paper for paper, _ in store.batch(DAY, DAY)]
    return [
        Digest(
            subscriber=Subscriber(id=n + 1, email=f"user{n}@example.org", name=f"User {n}"),
            day=DAY,
            papers=tuple(ScoredPaper(papers[(n * 7 + j * 5) % len(papers)], 0.5, "matches: x")
                         for j in range(n % 6)),
        )
        for n in range(count)
    ]


def test_digests_written_in_two_processes_are_those_written_in_one(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "WRITE_BATCH", 7)  # several batches, the last short
    digests = sample_digests(store, config, 40)
    env = render.make_environment(config.templates_dir)
    one = write_all(replace(config, rank_processes=1), digests, env=env, warm=set())
    warm: set[str] = set()
    two = write_all(replace(config, rank_processes=2), digests, env=env, warm=warm)
    assert all(m is not None for m in one) and all(m is not None for m in two)
    # In order; equal but for each message's random MIME boundary.
    for digest, a, b in zip(digests, one, two, strict=True):
        assert a is not None and b is not None
        assert a.recipients == b.recipients == (digest.subscriber.email,)
        assert parts(a.wire()) == parts(b.wire())
    assert warm == {item.paper.key for d in digests for item in d.papers}


def test_a_digest_that_cannot_be_written_is_left_to_its_send(
    config: Config, store: Store
) -> None:
    digests = sample_digests(store, config, 6)
    odd = replace(digests[3], subscriber=replace(digests[3].subscriber, email="jörg@example.org"))
    digests[3] = odd
    env = render.make_environment(config.templates_dir)
    written = write_all(replace(config, rank_processes=2), digests, env=env, warm=set())
    assert [m is None for m in written] == [False, False, False, True, False, False]


def _square(n: int) -> int:
    return n * n


def _fail_at_five(n: int) -> int:
    if n == 5:
        raise ValueError("five")
    return n


def test_map_forked_keeps_the_order_and_raises_what_the_work_raised() -> None:
    items = list(range(23))
    for processes in (1, 2, 3):
        assert map_forked(_square, items, processes, died=RuntimeError) == [n * n for n in items]
    assert map_forked(_square, [], 2, died=RuntimeError) == []
    with pytest.raises(ValueError, match="five"):
        map_forked(_fail_at_five, items, 2, died=RuntimeError)


def test_map_forked_computes_this_process_share_through_here() -> None:
    shares: list[list[int]] = []

    def here(work: Callable[[], list[int]]) -> list[int]:
        shares.append(work())
        return shares[-1]

    items = list(range(7))
    for processes in (1, 2):
        assert map_forked(_square, items, processes, died=RuntimeError,
                          here=here) == [n * n for n in items]
    # One process: every item; two: the even positions (dealt round-robin).
    assert shares == [[n * n for n in items], [n * n for n in items[::2]]]


def test_digests_written_here_are_written_in_another_thread() -> None:
    assert planning._in_own_heap(threading.get_ident) != threading.get_ident()
    with pytest.raises(ValueError, match="five"):
        planning._in_own_heap(lambda: _fail_at_five(5))


def test_a_killed_child_fails_the_whole_map() -> None:
    parent = os.getpid()

    def die_in_child(n: int) -> int:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return n

    def died() -> DigestError:
        return DigestError("a process died", "run again")

    with pytest.raises(DigestError, match="a process died"):
        map_forked(die_in_child, list(range(10)), 2, died=died)


def _square_with_pid(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def test_map_forked_then_keeps_the_order_and_takes_in_every_result_here() -> None:
    parent = os.getpid()
    items = list(range(23))
    taken_in: list[tuple[int, int]] = []

    def then(result: tuple[int, int]) -> int:
        assert os.getpid() == parent
        taken_in.append(result)
        return result[0] + 1

    for processes in (1, 2, 3):
        taken_in.clear()
        done = map_forked_then(_square_with_pid, then, items, processes, died=RuntimeError)
        assert done == [n * n + 1 for n in items]
        assert sorted(n for n, _ in taken_in) == [n * n for n in items]  # once each
    assert map_forked_then(_square, str, [], 2, died=RuntimeError) == []


def test_map_forked_then_shares_the_items_between_the_processes() -> None:
    def slow(n: int) -> int:
        time.sleep(0.05)  # 1 s in all: room for the forked process to start on a busy box
        return os.getpid()

    pids = map_forked_then(slow, int, list(range(20)), 2, died=RuntimeError)
    assert len(set(pids)) == 2 and pids[-1] == os.getpid()  # this one from the back


def test_map_forked_then_raises_what_the_work_raised_and_a_child_death() -> None:
    items = list(range(23))
    with pytest.raises(ValueError, match="five"):
        map_forked_then(_fail_at_five, int, items, 2, died=RuntimeError)
    parent = os.getpid()

    def die_in_child(n: int) -> int:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.01)
        return n

    def died() -> DigestError:
        return DigestError("a process died", "run again")

    with pytest.raises(DigestError, match="a process died"):
        map_forked_then(die_in_child, int, list(range(10)), 2, died=died)


def test_forked_processes_exit_while_the_parent_goes_on_and_before_the_next_fork() -> None:
    from digest import forking

    assert map_forked_then(_square, int, list(range(6)), 2, died=RuntimeError) == [
        n * n for n in range(6)]
    exiting = forking._EXITING
    assert exiting is not None  # the processes exit beside the caller
    assert map_forked(_square, [1, 2, 3], 2, died=RuntimeError) == [1, 4, 9]
    assert not exiting.is_alive()  # joined before that fork
    forking._join_exiting()


KILLED_PARENT = r"""
import os, sys, time
from digest.forking import map_forked

def work(n):
    if os.getpid() != PARENT:
        with open(sys.argv[1], "w") as out:
            out.write(str(os.getpid()))
        time.sleep(600)
    return n

PARENT = os.getpid()
map_forked(work, list(range(4)), 2, died=RuntimeError)
"""


def test_a_forked_child_dies_with_its_killed_parent(tmp_path: Any) -> None:
    # Were it to live on, it would hold the files its parent had open (the run lock).
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, str(pid_file)])
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()):
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.05)
        child = int(pid_file.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(30)
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{child}") and "Z" not in _state(child):
            assert time.monotonic() < deadline, "the child outlived its killed parent"
            time.sleep(0.05)
    finally:
        parent.kill()


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except OSError:
        return "Z"


# A message whose lines start with dots: one ".", one "..", one ".x", and "." last.
DOTTED = (b"From: digest@example.org\r\nTo: dot@example.org\r\nSubject: dots\r\n"
          b"Message-ID: <dots@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n"
          b"\r\n.first\r\n.\r\n..\r\nmiddle .\r\n...three\r\n\r\n.\r\n")


def plan_dotted(store: Store, *, stuffed: bool, pack: Any = packing.pack) -> int:
    """Plan one row whose outbox message is DOTTED, stored dot-stuffed or (as an earlier
    release stored it) plain, packed by ``pack`` (zlib.compress: as earlier releases)."""
    sub = store.add_subscriber("dot@example.org", Profile(interests="x"),
                               now=NOW - timedelta(days=2))
    data = mail.dot_stuffed(DOTTED) if stuffed else DOTTED
    assert data is not None
    message = OutgoingMessage(sender="digest@example.org", recipients=("dot@example.org",),
                              to_email="dot@example.org", to_name="",
                              packed=pack(data), stuffed=stuffed)
    store.plan_deliveries([(sub.id, DAY, [], "<dots@example.org>", "planned")], now=NOW,
                          messages={(sub.id, DAY): message})
    assert store.stored_messages([(sub.id, DAY)])[(sub.id, DAY)].wire() == DOTTED
    return sub.id


def test_the_plan_stores_each_message_dot_stuffed_as_smtp_data_carries_it(
    planned: Any,
) -> None:
    _config, store, ids = planned
    # (The sample's three have no line led by "."; DOTTED below has.)
    for message in stored(store, ids).values():
        assert message.stuffed and message.unpacked() == mail.dot_stuffed(message.wire())
        assert message.packed.startswith(packing.LZ4)  # not zlib, as before


@pytest.mark.parametrize(
    ("stuffed", "pack"),
    [(True, packing.pack), (True, zlib.compress), (False, zlib.compress)],
    ids=["stuffed", "stuffed-zlib-as-before", "plain-zlib-as-before"],
)
def test_lines_led_by_dots_arrive_as_written_whichever_way_the_outbox_holds_them(
    config: Config, smtp_server: SmtpTestServer, stuffed: bool, pack: Any
) -> None:
    config = replace(config, smtp=smtp_server.settings())
    store = open_store(config.database_url)
    try:
        plan_dotted(store, stuffed=stuffed, pack=pack)
        report = pipeline.send_pending(config, now=SEND, store=store)
        assert report.sent == 1
        (got,) = smtp_server.messages
        assert got.data == mail.with_date(DOTTED, SEND)
    finally:
        store.close()


def test_the_maildir_gets_a_stuffed_message_as_written(config: Config) -> None:
    store = open_store(config.database_url)
    try:
        sub_id = plan_dotted(store, stuffed=True)
        report = pipeline.send_pending(config, now=SEND, store=store)
        assert report.sent == 1
        (written,) = (config.maildir / "new").iterdir()
        assert written.read_bytes() == unix(mail.with_date(DOTTED, SEND))
        sub = store.get_subscriber(sub_id)
        assert sub is not None
        assert pipeline.preview_path(config, sub, DAY).is_file()
    finally:
        store.close()
