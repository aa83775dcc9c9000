"""What a subscriber does while the daily job runs: one real SQLite (or PostgreSQL) file,
the web app's test client acting at a chosen moment of a real run.

Each test holds the run at one step (the plan phase's write, a message at the SMTP
server) and lets the subscriber or the operator act there, in another store on the same
database, as a web request or a command arriving at that instant would.
"""

from __future__ import annotations

import mailbox
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest import pipeline, tokens
from digest.cli import main
from digest.config import Config
from digest.models import Profile
from digest.store import Store, open_store
from tests.fixtures.config import SECRET, make_config
from tests.fixtures.smtp_server import SmtpTestServer
from tests.test_bounces import sample, sent
from tests.test_web_support import Site, make_site

DAY = date(2026, 5, 25)  # the sample batch's day
NOW = datetime(2026, 5, 25, 9, 0, tzinfo=UTC)
READERS = ("ada@example.org", "bob@example.org", "cy@example.org", "dee@example.org")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Config, Store, Site, dict[str, int]]]:
    """A database of four active readers, a store for the run, and the web app on it."""
    config = make_config(tmp_path / "var")
    store = open_store(config.database_url)
    ids = {
        email: store.add_subscriber(
            email, Profile(interests="language model agents that use tools"), now=NOW,
            max_papers=3, empty_digest="note",
        ).id
        for email in READERS
    }
    site = make_site(config)
    yield config, store, site, ids
    store.close()


def before(store: Store, method: str, action: Callable[[], None]) -> None:
    """Run ``action`` once, just before the store's ``method`` is first called."""
    original = getattr(store, method)
    done: list[bool] = []

    def wrapped(*args: Any, **kw: Any) -> Any:
        if not done:
            done.append(True)
            action()
        return original(*args, **kw)

    setattr(store, method, wrapped)


def web_delete(site: Site, sub_id: int) -> None:
    """Press "Delete me" on the preferences page, as the subscriber does."""
    path = tokens.preferences_url("", SECRET, sub_id)
    token = site.csrf(path)
    done = site.client.post(path + "/delete",
                            data={"csrf_token": token, "confirm_delete": "yes"})
    assert done.status_code == 200, done.get_data(as_text=True)


def test_a_subscriber_deleted_while_the_plan_phase_ranks_does_not_stop_the_run(
    setup: tuple[Config, Store, Site, dict[str, int]],
) -> None:
    # The page of subscribers was read and ranked; before its ledger rows are written,
    # one of them deletes themself on the preferences page. Their row broke the foreign
    # key, the page's insert failed (INSERT OR IGNORE ignores no foreign key), and the
    # whole run ended in an IntegrityError: nobody got the day's digest.
    config, store, site, ids = setup
    gone = ids["bob@example.org"]
    before(store, "plan_deliveries", lambda: web_delete(site, gone))
    report = pipeline.run(config, now=NOW, day=DAY, store=store)
    assert report.sent == 3 and report.failed == 0
    assert store.get_subscriber(gone) is None
    assert store.delivery_counts(DAY) == {"sent": 3}
    assert gone not in store.deliveries_for_day(DAY)  # nothing of theirs is stored again
    assert store.is_suppressed("bob@example.org")


def at_first_message(server: SmtpTestServer, action: Callable[[], None]) -> None:
    """Run ``action`` while the server holds the run's first message, before its 250."""
    original = server.handler.handle_DATA
    done: list[bool] = []

    async def handle_DATA(smtp: Any, session: Any, envelope: Any) -> str:
        if not done:
            done.append(True)
            action()
        status: str = await original(smtp, session, envelope)
        return status

    server.handler.handle_DATA = handle_DATA  # type: ignore[method-assign]


def recipients(server: SmtpTestServer) -> list[str]:
    return sorted(r.lower() for m in server.messages for r in m.rcpt_tos)


def test_one_click_unsubscribe_while_the_run_sends_stops_the_digest_not_yet_sent(
    setup: tuple[Config, Store, Site, dict[str, int]], smtp_server: SmtpTestServer,
) -> None:
    # The four digests are one leased chunk; while the first one is at the server, the
    # fourth reader's mail client posts the one-click unsubscribe (RFC 8058). The worker
    # had read the chunk's subscribers when it leased it and mailed them anyway: "You
    # are unsubscribed", then a digest.
    config, store, site, ids = setup
    config = replace(config, smtp=smtp_server.settings())
    leaving = ids["dee@example.org"]

    def unsubscribe() -> None:
        path = tokens.unsubscribe_url("", SECRET, leaving)
        done = site.client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200, done.get_data(as_text=True)

    at_first_message(smtp_server, unsubscribe)
    report = pipeline.run(config, now=NOW, day=DAY, store=store)
    assert store.get_subscriber(leaving).status == "unsubscribed"  # type: ignore[union-attr]
    assert recipients(smtp_server) == ["ada@example.org", "bob@example.org", "cy@example.org"]
    assert (report.sent, report.skipped) == (3, 1)
    row = store.get_delivery(leaving, DAY)
    assert row is not None and row.status == "skipped" and row.attempts == 0
    assert row.error == "the subscriber is no longer active"
    # Nothing is left for a later run or `digest send` either.
    assert pipeline.send_pending(config, now=NOW, store=store).sent == 0
    assert len(smtp_server.messages) == 3


def test_a_complaint_scanned_during_the_run_stops_that_address_at_once(
    setup: tuple[Config, Store, Site, dict[str, int]], smtp_server: SmtpTestServer,
    tmp_path: Path,
) -> None:
    # erin complained (ARF) about an earlier digest; `digest bounces scan` reads the
    # report while today's run is sending, a chunk of one row at a time. The send phase
    # had read the suppression list once, when it began, and mailed her anyway (on a
    # relay paced to some messages a second, that list is hours old by the end).
    config, store, _site, _ids = setup
    config = replace(config, smtp=smtp_server.settings())
    erin = store.add_subscriber("erin@example.com", Profile(interests="language models"),
                                now=NOW, max_papers=3, empty_digest="note").id
    sent(store, "arf_abuse_complaint.eml")  # the digest she complained about
    reports = tmp_path / "bounces"
    box = mailbox.Maildir(str(reports))
    box.add(sample("arf_abuse_complaint.eml"))
    box.close()

    def scan() -> None:
        done = CliRunner().invoke(main, ["bounces", "scan", "--maildir", str(reports)],
                                  obj={"config": config})
        assert done.exit_code == 0, done.output

    at_first_message(smtp_server, scan)
    report = pipeline.run(config, now=NOW, day=DAY, store=store, send_chunk=1)
    assert store.is_suppressed("erin@example.com")
    assert recipients(smtp_server) == sorted(READERS)
    assert (report.sent, report.skipped) == (4, 1)
    row = store.get_delivery(erin, DAY)
    assert row is not None and row.status == "skipped" and row.attempts == 0


def test_an_unsubscribe_while_an_import_update_runs_is_kept(
    setup: tuple[Config, Store, Site, dict[str, int]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The operator re-imports a CSV export with --update (new names); the import reads
    # every row first, then writes them, a transaction each (a minute for a large
    # list). bob unsubscribes by the one-click link between the two. The import wrote
    # the row's status over the one it had read: "never brings back someone who
    # unsubscribed" held only for who had left before the import started, and bob, told
    # "You are unsubscribed", was active again and mailed by the next run.
    config, store, site, ids = setup
    bob = ids["bob@example.org"]
    export = tmp_path / "people.csv"
    done = CliRunner().invoke(main, ["subscribers", "export", "--csv", "-o", str(export)],
                              obj={"config": config})
    assert done.exit_code == 0, done.output
    lines = export.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    assert "status" in header and "name" in header
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    for row in rows:
        row["name"] = row["email"].split("@")[0].title()
    export.write_text("\n".join([",".join(header)] + [",".join(r[h] for h in header)
                                                       for r in rows]) + "\n",
                      encoding="utf-8")
    reads: list[str] = []
    original = Store.find_subscriber

    def find_subscriber(self: Store, email: str) -> Any:
        found = original(self, email)
        reads.append(email)
        if len(reads) == len(READERS):  # the import has read every row of its file
            path = tokens.unsubscribe_url("", SECRET, bob)
            answer = site.client.post(path, data={"List-Unsubscribe": "One-Click"})
            assert answer.status_code == 200
        return found

    monkeypatch.setattr(Store, "find_subscriber", find_subscriber)
    result = CliRunner().invoke(main, ["subscribers", "import", "--update", str(export)],
                                obj={"config": config})
    monkeypatch.setattr(Store, "find_subscriber", original)
    assert result.exit_code == 0, result.output
    assert len(reads) == len(READERS)
    fresh = {sub.email: sub for sub in store.list_subscribers()}
    assert fresh["bob@example.org"].status == "unsubscribed"
    assert fresh["bob@example.org"].name == "Bob"  # the rest of the row still applies
    assert {e: s.status for e, s in fresh.items() if e != "bob@example.org"} == {
        e: "active" for e in READERS if e != "bob@example.org"}
    assert pipeline.run(config, now=NOW, day=DAY, store=store).sent == 3
