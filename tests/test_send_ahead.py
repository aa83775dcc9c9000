"""The send phase writes a row's envelope with the message before it (RFC 2920).

A digest written in the plan phase goes out in two steps: its envelope (MAIL, RCPT,
DATA) up to the server's 354, then, once its ledger row is ``sending``, its data, in
the same write as the next row's envelope where the server offers PIPELINING. These
tests hold the ledger to what it promised before that: a row whose envelope went out but
that never started stays planned (nothing of it was delivered), and every fault after a
message's data falls on that message alone.

Real parts: the database file (or PostgreSQL), the shipped sample batch, an aiosmtpd
server on 127.0.0.1 with faults injected in its handler.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from digest import pipeline
from digest.config import Config
from digest.models import Profile
from digest.pipeline import Pacer
from digest.store import Store, open_store
from tests.fixtures.smtp_server import SmtpTestServer

DAY = date(2026, 5, 25)
NOW = datetime(2026, 5, 25, 6, 0, tzinfo=UTC)
SEND = NOW + timedelta(minutes=40)
LATER = SEND + timedelta(hours=3)  # past the first backoff step
EMAILS = ("ada@example.org", "bob@example.org", "cy@example.org", "dee@example.org")
PROFILE = Profile(interests="large language models, agents, reasoning", keywords=("agent",))

# Each test runs against a server without and with PIPELINING.
SMTP_WITH_AND_WITHOUT_PIPELINING = True


@pytest.fixture
def planned(config: Config, smtp_server: SmtpTestServer) -> Iterator[tuple[Config, Store,
                                                                          dict[str, int]]]:
    """Ingest the sample batch, subscribe four people, plan DAY (digests written)."""
    config = replace(config, smtp=smtp_server.settings())
    store = open_store(config.database_url)
    pipeline.ingest_sources(config, store, day=DAY, now=NOW - timedelta(hours=1))
    ids = {email: store.add_subscriber(email, PROFILE, now=NOW - timedelta(days=2),
                                       max_papers=3, empty_digest="note").id
           for email in EMAILS}
    pipeline.run(config, now=NOW, day=DAY, do_ingest=False, send=False, store=store)
    assert store.delivery_counts(DAY) == {"planned": 4}
    assert len(store.stored_messages((i, DAY) for i in ids.values())) == 4
    yield config, store, ids
    store.close()


def received(server: SmtpTestServer) -> Counter[str]:
    return Counter(r.lower() for m in server.messages for r in m.rcpt_tos)


def statuses(store: Store, ids: dict[str, int]) -> dict[str, str]:
    rows = {email: store.get_delivery(i, DAY) for email, i in ids.items()}
    return {email: row.status if row else "none" for email, row in rows.items()}


def test_each_envelope_after_the_first_rides_with_the_message_before(
    planned: Any, smtp_server: SmtpTestServer
) -> None:
    config, store, ids = planned
    report = pipeline.send_pending(config, now=SEND, store=store)
    assert (report.sent, report.failed, report.unknown) == (4, 0, 0)
    assert received(smtp_server) == Counter({e: 1 for e in EMAILS})
    assert smtp_server.connections == 1
    # One round trip a message where the server pipelines: the 2nd-4th envelopes came
    # in the same read as the end of the message before; none to a server that does not.
    assert smtp_server.written_ahead == (3 if smtp_server.handler.pipelining else 0)
    assert set(statuses(store, ids).values()) == {"sent"}


@pytest.mark.parametrize(("reply", "first"), [("451 4.3.0 Local error", "temp_failed"),
                                              ("554 5.7.1 Rejected as spam", "perm_failed")])
def test_a_refused_message_leaves_the_envelope_written_after_it_usable(
    planned: Any, smtp_server: SmtpTestServer, reply: str, first: str
) -> None:
    config, store, ids = planned
    smtp_server.fail("data", reply, recipient="bob@example.org")
    report = pipeline.send_pending(config, now=SEND, store=store)
    assert (report.sent, report.failed, report.unknown) == (3, 1, 0)
    assert statuses(store, ids) == {"ada@example.org": "sent", "bob@example.org": first,
                                    "cy@example.org": "sent", "dee@example.org": "sent"}
    assert received(smtp_server) == Counter({"ada@example.org": 1, "cy@example.org": 1,
                                             "dee@example.org": 1})
    assert smtp_server.connections == 1  # a refusal with a reply keeps the connection


def test_a_421_after_a_message_fails_it_alone_and_the_next_goes_on_a_new_connection(
    planned: Any, smtp_server: SmtpTestServer
) -> None:
    config, store, ids = planned
    smtp_server.fail("data", "421 4.3.2 Shutting down", recipient="bob@example.org")
    report = pipeline.send_pending(config, now=SEND, store=store)
    assert (report.sent, report.failed, report.unknown) == (3, 1, 0)
    assert statuses(store, ids)["bob@example.org"] == "temp_failed"
    assert smtp_server.connections == 2
    pipeline.send_pending(config, now=LATER, store=store)
    assert received(smtp_server) == Counter({e: 1 for e in EMAILS})
    assert set(statuses(store, ids).values()) == {"sent"}


def test_a_connection_dropped_after_a_message_makes_it_unknown_and_the_rest_go_once(
    planned: Any, smtp_server: SmtpTestServer
) -> None:
    config, store, ids = planned
    # The server keeps bob's message and drops the connection before its 250: the
    # envelope written after it (cy's) is lost with the connection.
    smtp_server.fail("data", action="drop", recipient="bob@example.org")
    report = pipeline.send_pending(config, now=SEND, store=store)
    assert (report.sent, report.unknown) == (3, 1)
    assert statuses(store, ids)["bob@example.org"] == "unknown"
    pipeline.send_pending(config, now=LATER, store=store)  # unknown is never resent
    assert received(smtp_server) == Counter({e: 1 for e in EMAILS})


def test_an_envelope_written_ahead_and_refused_at_rcpt_fails_its_row_alone(
    planned: Any, smtp_server: SmtpTestServer
) -> None:
    config, store, ids = planned
    smtp_server.fail("rcpt", "550 5.1.1 <cy@example.org>: User unknown",
                     recipient="cy@example.org")
    report = pipeline.send_pending(config, now=SEND, store=store)
    assert (report.sent, report.failed, report.unknown) == (3, 1, 0)
    assert statuses(store, ids)["cy@example.org"] == "perm_failed"
    assert store.is_suppressed("cy@example.org")
    assert received(smtp_server) == Counter({"ada@example.org": 1, "bob@example.org": 1,
                                             "dee@example.org": 1})
    assert smtp_server.connections == 1


def test_a_row_whose_start_is_refused_after_its_354_sends_nothing(
    planned: Any, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, store, ids = planned
    real = store.start_sending
    asked: list[int] = []

    def start_after_unsubscribing(subscriber_id: int, day: date, **kw: Any) -> bool:
        # bob unsubscribes between the claim and the start: his envelope has had its
        # 354 by now, and the server waits for data that must not come.
        asked.append(subscriber_id)
        if subscriber_id == ids["bob@example.org"]:
            store.update_subscriber(subscriber_id, now=SEND, status="unsubscribed")
            assert len(smtp_server.messages) == 1  # ada's, and nothing of bob's
        return real(subscriber_id, day, **kw)

    monkeypatch.setattr(store, "start_sending", start_after_unsubscribing)
    report = pipeline.send_pending(config, now=SEND, store=store)
    assert ids["bob@example.org"] in asked
    assert (report.sent, report.skipped, report.failed, report.unknown) == (3, 1, 0, 0)
    assert statuses(store, ids)["bob@example.org"] == "skipped"
    assert received(smtp_server) == Counter({"ada@example.org": 1, "cy@example.org": 1,
                                             "dee@example.org": 1})
    assert smtp_server.connections == 2  # the connection in DATA was dropped, not used


def test_a_start_that_fails_after_the_envelope_leaves_the_row_planned_and_loses_nothing(
    planned: Any, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, store, ids = planned
    real = store.start_sending

    def failing_start(subscriber_id: int, day: date, **kw: Any) -> bool:
        if subscriber_id == ids["cy@example.org"]:
            raise OSError("disk I/O error")  # as a crash of the ledger would end the run
        return real(subscriber_id, day, **kw)

    monkeypatch.setattr(store, "start_sending", failing_start)
    with pytest.raises(OSError, match="disk I/O error"):
        pipeline.send_pending(config, now=SEND, store=store)
    # bob's 250 (due to be recorded with cy's start) is recorded all the same; cy's
    # envelope went out, but the row never started and the server got none of its data.
    assert statuses(store, ids) == {"ada@example.org": "sent", "bob@example.org": "sent",
                                    "cy@example.org": "planned", "dee@example.org": "planned"}
    assert received(smtp_server) == Counter({"ada@example.org": 1, "bob@example.org": 1})
    monkeypatch.setattr(store, "start_sending", real)
    report = pipeline.send_pending(config, now=LATER, store=store)
    assert (report.sent, report.unknown) == (2, 0)
    assert received(smtp_server) == Counter({e: 1 for e in EMAILS})


def test_a_paced_send_waits_its_turn_before_the_envelope_not_inside_a_data(
    planned: Any, smtp_server: SmtpTestServer
) -> None:
    config, store, _ = planned
    # At each of the pacer's waits: DATA commands the server has read beyond the
    # messages it took, i.e. whether it sits after a 354 for data that waits on the
    # pacer (a relay that times out meanwhile would leave the digest "unknown").
    waiting_in_data: list[int] = []

    def sleep(seconds: float) -> None:
        waiting_in_data.append(smtp_server.handler.data_commands - len(smtp_server.messages))

    clock = iter(range(100, 10_000))
    pacer = Pacer(2.0, monotonic=lambda: float(next(clock)) / 10, sleep=sleep)
    report = pipeline.send_pending(replace(config, send_rate=2.0), now=SEND, store=store,
                                   pacer=pacer)
    assert report.sent == 4
    assert received(smtp_server) == Counter({e: 1 for e in EMAILS})
    assert waiting_in_data == [0, 0, 0]
    assert smtp_server.written_ahead == 0  # a paced envelope goes when its turn comes
