"""Every SMTP reply class, injected into a real aiosmtpd server, through the whole pipeline.

Each test counts what the server actually received per subscriber and what the ledger
says, then reruns to check that nothing is lost and nothing is sent twice. The last
test fires hourly runs across daylight-saving changes in three time zones.
"""

from __future__ import annotations

import shutil
import socket
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from digest import mail, pipeline
from digest.cli import main
from digest.config import SAMPLE_BATCH, Config
from digest.ingest.jsonl import load_jsonl
from digest.models import Profile
from digest.store import Store, open_store
from tests.fixtures.config import make_config, smtp_settings
from tests.fixtures.smtp_server import SmtpTestServer

DAY = date(2026, 5, 25)
NOW = datetime(2026, 5, 25, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=3)  # past the first backoff step
EMAILS = ("ada@example.org", "bob@example.org", "cy@example.org", "dee@example.org")
PROFILE = Profile(interests="large language models, agents, reasoning", keywords=("agent",))


@dataclass
class Setup:
    config: Config
    store: Store
    ids: dict[str, int]

    def run(self, config: Config | None = None, *, now: datetime = NOW) -> Any:
        return pipeline.run(config or self.config, now=now, day=DAY, do_ingest=False)

    def status(self, email: str) -> str:
        row = self.store.get_delivery(self.ids[email], DAY)
        return row.status if row else "none"

    def statuses(self) -> dict[str, str]:
        return {email: self.status(email) for email in EMAILS}


def received(server: SmtpTestServer) -> Counter[str]:
    """Return how many messages the server accepted per recipient."""
    return Counter(r.lower() for m in server.messages for r in m.rcpt_tos)


# The smtp_server tests run against a server without and with PIPELINING (RFC 2920).
SMTP_WITH_AND_WITHOUT_PIPELINING = True


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build one database with papers, subscribers and DAY's planned rows; tests copy it.

    The rows are planned here (with real papers as picks) instead of by a first run, so
    each test spends its time in the send phase it is about, not in ranking.
    """
    config = make_config(tmp_path_factory.mktemp("template") / "var")
    store = open_store(config.database_url)
    pipeline.ingest_sources(config, store, day=DAY, now=NOW - timedelta(hours=1))
    keys = [paper.key for paper, _ in store.batch(DAY, DAY)][:3]
    for email in EMAILS:
        # "note": a next day's digest goes out even if nothing matched.
        sub = store.add_subscriber(
            email, PROFILE, now=NOW - timedelta(days=2), max_papers=3, empty_digest="note"
        )
        store.plan_delivery(
            sub.id, DAY, picks=[(k, 1.0, "test pick") for k in keys],
            message_id=mail.make_message_id(sub.id, DAY, "example.org"), now=NOW,
        )
    store.close()  # checkpoints the WAL into the main file
    return config.var_dir / "digest.sqlite3"


@pytest.fixture
def setup(config: Config, smtp_server: SmtpTestServer, template_db: Path) -> Iterator[Setup]:
    config.var_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(template_db, config.var_dir / "digest.sqlite3")
    store = open_store(config.database_url)
    ids = {email: sub.id for sub in store.list_subscribers() for email in [sub.email]}
    yield Setup(replace(config, smtp=smtp_server.settings()), store, ids)
    store.close()


# -- at RCPT ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "first", "final"),
    [
        ("451 4.7.1 Greylisted, try again later", "temp_failed", "sent"),
        ("452 4.2.2 Mailbox full", "temp_failed", "sent"),
        # RFC 5321 4.5.3.1.10: 552 at RCPT means "too many recipients": temporary.
        ("552 5.2.2 Too many recipients", "temp_failed", "sent"),
        ("550 5.7.1 Relaying denied by policy", "perm_failed", "perm_failed"),
    ],
)
def test_a_rcpt_rejection_is_temporary_or_permanent_by_reply_class(
    setup: Setup, smtp_server: SmtpTestServer, reply: str, first: str, final: str
) -> None:
    smtp_server.fail("rcpt", reply, recipient="bob@example.org")
    report = setup.run()
    assert (report.sent, report.failed) == (3, 1)
    assert setup.status("bob@example.org") == first
    assert received(smtp_server) == Counter({"ada@example.org": 1, "cy@example.org": 1,
                                             "dee@example.org": 1})
    assert setup.run(now=NOW + timedelta(minutes=1)).sent == 0  # backoff not over yet
    setup.run(now=LATER)
    assert setup.status("bob@example.org") == final
    expected = 1 if final == "sent" else 0
    assert received(smtp_server)["bob@example.org"] == expected
    assert all(received(smtp_server)[e] == 1 for e in EMAILS if e != "bob@example.org")


def test_a_user_unknown_at_rcpt_fails_for_good_and_suppresses_the_address(
    setup: Setup, smtp_server: SmtpTestServer
) -> None:
    smtp_server.fail("rcpt", "550 5.1.1 <bob@example.org>: User unknown",
                     recipient="bob@example.org")
    report = setup.run()
    assert (report.sent, report.failed) == (3, 1)
    assert setup.status("bob@example.org") == "perm_failed"
    assert setup.store.is_suppressed("bob@example.org")
    # From now on the address is not even planned.
    plans, _ = pipeline.plan_due(setup.config, setup.store, now=NOW + timedelta(days=1),
                                 day=DAY + timedelta(days=1), only=None, force=True)
    assert sorted(p.subscriber.email for p in plans) == ["ada@example.org", "cy@example.org",
                                                         "dee@example.org"]
    assert received(smtp_server)["bob@example.org"] == 0


# -- after DATA ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "first", "final"),
    [
        ("451 4.3.0 Local error in processing", "temp_failed", "sent"),
        ("452 4.3.1 Insufficient system storage", "temp_failed", "sent"),
        # After DATA, 552 is a definite "message too big / over quota": permanent.
        ("552 5.3.4 Message size exceeds fixed limit", "perm_failed", "perm_failed"),
        ("554 5.7.1 Message rejected as spam", "perm_failed", "perm_failed"),
    ],
)
def test_a_reply_after_data_is_a_definite_answer(
    setup: Setup, smtp_server: SmtpTestServer, reply: str, first: str, final: str
) -> None:
    smtp_server.fail("data", reply, recipient="cy@example.org")
    report = setup.run()
    assert (report.sent, report.failed, report.unknown) == (3, 1, 0)
    assert setup.status("cy@example.org") == first
    assert received(smtp_server)["cy@example.org"] == 0  # refused, so not recorded
    setup.run(now=LATER)
    assert setup.status("cy@example.org") == final
    assert received(smtp_server)["cy@example.org"] == (1 if final == "sent" else 0)
    assert not setup.store.is_suppressed("cy@example.org")  # content refusals say nothing
    assert all(received(smtp_server)[e] == 1 for e in EMAILS if e != "cy@example.org")


# -- connection faults --------------------------------------------------------------------


def test_a_421_mid_run_reconnects_and_delivers_the_rest_in_the_same_run(
    setup: Setup, smtp_server: SmtpTestServer
) -> None:
    smtp_server.fail("mail", "421 4.3.2 Service shutting down", skip=1)  # the 2nd MAIL
    report = setup.run()
    assert (report.sent, report.failed) == (3, 1)
    assert smtp_server.connections == 2
    assert setup.status("bob@example.org") == "temp_failed"
    assert sorted(received(smtp_server)) == ["ada@example.org", "cy@example.org",
                                             "dee@example.org"]
    setup.run(now=LATER)
    assert received(smtp_server) == Counter({e: 1 for e in EMAILS})
    # Where the server offers PIPELINING the run used it (each delivery, 5 in all).
    assert smtp_server.pipelined == (5 if smtp_server.handler.pipelining else 0)


def test_a_connection_dropped_before_the_250_is_unknown_and_never_resent(
    setup: Setup, smtp_server: SmtpTestServer
) -> None:
    smtp_server.fail("data", action="drop", recipient="ada@example.org")  # server kept it
    report = setup.run()
    assert (report.sent, report.unknown) == (3, 1)
    assert setup.status("ada@example.org") == "unknown"
    for later in (LATER, LATER + timedelta(days=1)):
        setup.run(now=later)
    assert setup.status("ada@example.org") == "unknown"
    assert received(smtp_server) == Counter({e: 1 for e in EMAILS})


def test_a_connection_dropped_after_the_250_counts_as_sent(
    setup: Setup, smtp_server: SmtpTestServer
) -> None:
    smtp_server.fail("data", "250 2.0.0 Ok: queued", action="drop-after",
                     recipient="ada@example.org")
    report = setup.run()
    assert (report.sent, report.failed, report.unknown) == (4, 0, 0)
    assert setup.status("ada@example.org") == "sent"
    # The next message found the connection gone at MAIL and reconnected once.
    assert smtp_server.connections == 2
    assert received(smtp_server) == Counter({e: 1 for e in EMAILS})


def test_a_server_without_banner_stops_the_run_and_spends_no_attempt(
    setup: Setup, silent_smtp_port: int, smtp_server: SmtpTestServer
) -> None:
    silent = replace(
        setup.config, smtp=smtp_settings("127.0.0.1", silent_smtp_port, timeout=0.5),
        error_budget=2,
    )
    report = setup.run(silent)
    # Not greeted: the server's failure, not a message's. The run stops at once (75,
    # try later) and every row stays as it was, its attempt not spent.
    assert report.sent == 0 and report.failed == 0
    assert report.aborted and "could not be reached" in report.aborted
    assert report.abort_exit == 75
    assert set(setup.statuses().values()) == {"planned"}
    assert all(setup.store.get_delivery(i, DAY).attempts == 0  # type: ignore[union-attr]
               for i in setup.ids.values())
    # The server comes back: everything goes out on the next run, once.
    assert setup.run(now=NOW + timedelta(minutes=1)).sent == 4
    assert received(smtp_server) == Counter({e: 1 for e in EMAILS})


def test_an_outage_of_many_hours_loses_no_digest(
    setup: Setup, smtp_server: SmtpTestServer
) -> None:
    # Hourly runs while nothing listens: each had spent an attempt of the rows it
    # tried, and after five the digests failed for good (perm_failed), while the runs
    # in between exited 0. Now every run stops at the first refused connection with 75
    # and spends nothing, however long the outage.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    down = replace(setup.config, smtp=smtp_settings("127.0.0.1", closed_port, timeout=1))
    for hour in range(12):
        report = setup.run(down, now=NOW + timedelta(hours=hour))
        assert report.abort_exit == 75 and report.failed == 0, hour
        assert set(setup.statuses().values()) == {"planned"}, hour
    assert setup.run(now=NOW + timedelta(hours=12)).sent == 4
    assert received(smtp_server) == Counter({e: 1 for e in EMAILS})


def test_a_535_stops_the_run_with_exit_78_and_loses_nothing(
    setup: Setup, make_smtp_server: Callable[..., SmtpTestServer]
) -> None:
    server = make_smtp_server(auth=("digest", "right"))
    wrong = replace(setup.config, smtp=server.settings(username="digest", password="wrong"))
    runner = CliRunner()
    args = ["run", "--date", DAY.isoformat(), "--no-ingest"]
    result = runner.invoke(main, args, obj={"config": wrong})
    assert result.exit_code == 78, result.output
    assert "auth" in result.output.lower()
    assert server.messages == [] and server.connections == 1  # stopped at the first refusal
    assert set(setup.statuses().values()) == {"planned"}
    right = replace(setup.config, smtp=server.settings(username="digest", password="right"))
    result = runner.invoke(main, args, obj={"config": right})
    assert result.exit_code == 0, result.output
    assert received(server) == Counter({e: 1 for e in EMAILS})


def test_a_temporary_auth_failure_454_gives_the_rows_back_with_exit_75(
    setup: Setup, make_smtp_server: Callable[..., SmtpTestServer]
) -> None:
    # "454 4.7.0 Temporary authentication failure" (the provider's auth backend down):
    # reported as wrong credentials with exit 78, which systemd's RestartPreventExitStatus
    # takes as a setting to fix, and the operator was sent to check a right password.
    server = make_smtp_server(auth=("digest", "right"),
                              auth_refusal="454 4.7.0 Temporary authentication failure")
    flaky = replace(setup.config, smtp=server.settings(username="digest", password="wrong"))
    runner = CliRunner()
    args = ["run", "--date", DAY.isoformat(), "--no-ingest"]
    result = runner.invoke(main, args, obj={"config": flaky})
    assert result.exit_code == 75, result.output
    assert "454" in result.output and "password" not in result.output
    assert server.messages == [] and server.connections == 1  # stopped at the first refusal
    assert set(setup.statuses().values()) == {"planned"}  # no attempt spent
    right = replace(setup.config, smtp=server.settings(username="digest", password="right"))
    assert runner.invoke(main, args, obj={"config": right}).exit_code == 0
    assert received(server) == Counter({e: 1 for e in EMAILS})


# -- hourly firings across daylight-saving changes ----------------------------------------


class Recorder:
    """A transport that keeps every message (the pipeline's ``transport=`` seam)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> str:
        self.messages.append(message)
        return "250 OK"

    def send_wire(self, sender: str, recipients: Sequence[str], wire: bytes) -> str:
        parsed = BytesParser(policy=policy.SMTP).parsebytes(wire)
        assert isinstance(parsed, EmailMessage)
        return self.send(parsed)

    def close(self) -> None:
        pass

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_hourly_runs_across_dst_send_one_digest_per_local_day_at_the_local_hour(
    tmp_path: Any,
) -> None:
    # Europe/Berlin springs forward on 2026-03-29 (02:00 does not exist); Sydney falls
    # back on 2026-04-05 (02:00-03:00 happens twice).
    config = make_config(tmp_path / "var")
    store = open_store(config.database_url)
    start = datetime(2026, 3, 27, 0, 5, tzinfo=UTC)
    end = datetime(2026, 4, 7, 0, 5, tzinfo=UTC)
    papers = load_jsonl(SAMPLE_BATCH, source="sample")[:60]  # a small batch ranks fast
    days = (end - start).days + 2
    for n in range(days):  # a fresh batch every day, so every digest has papers
        store.save_papers(papers[n::days], batch_day=start.date() + timedelta(days=n - 1),
                          now=start)
    zones = {"berlin@example.org": ("Europe/Berlin", 2), "sydney@example.org":
             ("Australia/Sydney", 2)}
    for email, (tz, hour) in zones.items():
        store.add_subscriber(email, PROFILE, now=start, send_hour=hour, timezone=tz,
                             empty_digest="note", max_papers=2)
    recorder = Recorder()
    now = start
    while now < end:
        pipeline.run(config, now=now, do_ingest=False, store=store, transport=lambda: recorder)
        now += timedelta(hours=1)
    by_email = {s.id: s.email for s in store.list_subscribers()}
    rows: dict[str, list[Any]] = {email: [] for email in zones}
    for row, email in store.list_deliveries(limit=10000):
        rows[email].append(row)
    store.close()
    first_local = start.date() + timedelta(days=1)
    last_local = end.date() - timedelta(days=1)
    for email, (tz, hour) in zones.items():
        sent = sorted(rows[email], key=lambda r: r.day)
        assert all(r.status == "sent" for r in sent)
        days_sent = [r.day for r in sent]
        assert len(days_sent) == len(set(days_sent))  # never twice a day
        expected = [first_local + timedelta(days=k)
                    for k in range((last_local - first_local).days + 1)]
        assert [d for d in days_sent if first_local <= d <= last_local] == expected, email
        for row in sent:
            local = row.updated_at.astimezone(ZoneInfo(tz))
            assert local.date() == row.day, (email, row.day, local)
            # The hour has come: at the send hour, or the first hour after a DST gap.
            assert hour <= local.hour <= hour + 1, (email, row.day, local)
    assert len(recorder.messages) == sum(len(r) for r in rows.values())
    assert set(by_email.values()) == set(zones)
