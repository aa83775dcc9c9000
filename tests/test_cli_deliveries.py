"""`digest deliveries list|retry` and `digest bounces scan|list` through click's CliRunner."""

from __future__ import annotations

import json
import mailbox
import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest import mail, pipeline
from digest.cli import main
from digest.config import SAMPLE_BATCH, Config
from digest.ingest.jsonl import load_jsonl
from digest.models import Profile, RunReport
from digest.store import open_store
from tests.fixtures.smtp_server import SmtpTestServer

DAY = date(2026, 5, 25)
NOW = datetime(2026, 5, 25, 9, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data" / "bounces"
ROWS = {
    "ada@example.org": ("unknown", "the run stopped while this message was being sent"),
    "bob@example.net": ("perm_failed", "SMTP server refused at RCPT: 550 5.1.1 User unknown"),
    "cy@example.org": ("sent", None),
    "dee@example.org": ("temp_failed", "SMTP server refused at RCPT: 451 4.7.1 Greylisted"),
}


def invoke(config: Config, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), obj={"config": config}, input=input)


@pytest.fixture
def ledger(config: Config) -> dict[str, int]:
    """Four subscribers with a ledger row each for DAY, in different states."""
    store = open_store(config.database_url)
    papers = load_jsonl(SAMPLE_BATCH, source="sample")[:3]
    store.save_papers(papers, batch_day=DAY, now=NOW)
    ids = {}
    for email, (status, error) in ROWS.items():
        sub = store.add_subscriber(email, Profile(interests="agents"), now=NOW - timedelta(days=3))
        ids[email] = sub.id
        store.plan_delivery(
            sub.id, DAY, picks=[(p.key, 1.0, "pick") for p in papers],
            message_id=mail.make_message_id(sub.id, DAY, "example.org"), now=NOW,
        )
        store.set_delivery_status(
            sub.id, DAY, status, now=NOW, error=error, attempt=True,  # type: ignore[arg-type]
            next_attempt_at=NOW + timedelta(hours=5) if status == "temp_failed" else None,
        )
    store.close()
    return ids


def record_sent(config: Config, email: str, day: date, number: int) -> None:
    """Record that subscriber ``email`` was sent the digest whose Message-ID a sample quotes.

    ``number`` is the subscriber id in that Message-ID (the samples' story, not this
    database's): what matters is that the ledger holds the same Message-ID.
    """
    store = open_store(config.database_url)
    sub = store.find_subscriber(email) or store.add_subscriber(
        email, Profile(interests="agents"), now=NOW - timedelta(days=3))
    store.plan_delivery(sub.id, day, picks=[], now=NOW, status="sent",
                        message_id=mail.make_message_id(number, day, "example.org"))
    store.close()


def status_of(config: Config, sub_id: int) -> str:
    store = open_store(config.database_url)
    try:
        row = store.get_delivery(sub_id, DAY)
    finally:
        store.close()
    assert row is not None
    return row.status


def test_list_shows_rows_filtered_by_status_and_date(
    config: Config, ledger: dict[str, int]
) -> None:
    everything = invoke(config, "deliveries", "list")
    assert everything.exit_code == 0, everything.output
    assert "4 rows" in everything.output and "greylisted" in everything.output.lower()
    unknown = invoke(config, "deliveries", "list", "--status", "unknown", "--json")
    assert unknown.exit_code == 0, unknown.output
    [row] = json.loads(unknown.output)
    assert (row["email"], row["status"], row["day"]) == ("ada@example.org", "unknown", "2026-05-25")
    other_day = invoke(config, "deliveries", "list", "--date", "2026-05-26", "--json")
    assert json.loads(other_day.output) == []
    bad = invoke(config, "deliveries", "list", "--status", "lost")
    assert bad.exit_code == 2


def test_retrying_unknown_warns_about_a_duplicate_and_needs_a_yes(
    config: Config, ledger: dict[str, int]
) -> None:
    declined = invoke(config, "deliveries", "retry", "--status", "unknown", input="n\n")
    assert declined.exit_code == 1
    assert "may get a duplicate" in declined.output and "ada@example.org" in declined.output
    assert status_of(config, ledger["ada@example.org"]) == "unknown"
    accepted = invoke(config, "deliveries", "retry", "--status", "unknown", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "1 row(s) planned again" in accepted.output
    assert status_of(config, ledger["ada@example.org"]) == "planned"
    # The next run sends it (into the Maildir here) and nothing else.
    report = pipeline.run(config, now=NOW + timedelta(hours=1), day=DAY, do_ingest=False)
    assert report.sent == 1
    assert status_of(config, ledger["ada@example.org"]) == "sent"
    box = mailbox.Maildir(str(config.maildir), create=False)
    assert [str(box.get_message(k)["To"]) for k in box.iterkeys()] == ["ada@example.org"]


def test_retry_only_one_subscriber_with_yes(config: Config, ledger: dict[str, int]) -> None:
    result = invoke(
        config, "deliveries", "retry", "--status", "temp_failed", "--subscriber",
        "DEE@example.org", "--date", "2026-05-25", "--yes", "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"retried": 1, "status": "temp_failed",
                                         "days": ["2026-05-25"], "papers_left_out": 0,
                                         "skipped": 0}
    assert status_of(config, ledger["dee@example.org"]) == "planned"
    assert status_of(config, ledger["ada@example.org"]) == "unknown"
    store = open_store(config.database_url)
    row = store.get_delivery(ledger["dee@example.org"], DAY)
    store.close()
    assert row is not None and row.attempts == 0 and row.next_attempt_at is None


def test_retry_says_so_when_nothing_matches_or_the_subscriber_is_unknown(
    config: Config, ledger: dict[str, int]
) -> None:
    none = invoke(config, "deliveries", "retry", "--status", "unknown", "--date", "2026-01-01")
    assert none.exit_code == 0 and "nothing to retry" in none.output
    nobody = invoke(config, "deliveries", "retry", "--subscriber", "zed@example.org", "--yes")
    assert nobody.exit_code == 2 and "no subscriber" in nobody.output
    sent = invoke(config, "deliveries", "retry", "--status", "sent")
    assert sent.exit_code == 2  # a sent row is never handed back


def test_retrying_a_suppressed_address_says_it_will_get_nothing(
    config: Config, ledger: dict[str, int]
) -> None:
    store = open_store(config.database_url)
    store.suppress("bob@example.net", reason="hard bounce 5.1.1", now=NOW)
    store.close()
    result = invoke(config, "deliveries", "retry", "--status", "perm_failed", "--yes")
    assert result.exit_code == 0, result.output
    assert "suppressed and will get nothing" in result.output


def fill(path: Path, names: list[str]) -> None:
    box = mailbox.Maildir(str(path), create=True)
    for name in names:
        box.add((DATA / name).read_bytes())


def test_status_says_what_waits_on_the_operator_and_what_to_run(
    config: Config, ledger: dict[str, int]
) -> None:
    # `digest status` listed "unknown 1, perm_failed 1" without a word on what to do,
    # left the unknown count out of each run's line (a run whose only trouble was an
    # unknown digest read "sent 0, failed 0, skipped 0") and never counted suppressions.
    store = open_store(config.database_url)
    store.record_run(RunReport(day=DAY, started_at=NOW, finished_at=NOW, sent=1, unknown=1))
    store.suppress("bob@example.net", reason="hard bounce 5.1.1", now=NOW)
    store.close()
    result = invoke(config, "status")
    assert result.exit_code == 0, result.output
    assert "4 active subscribers, 1 addresses suppressed" in result.output
    assert "1 unknown: the server may have taken them" in result.output
    assert "digest deliveries retry --status unknown" in result.output
    assert "1 perm_failed: refused for good; see `digest deliveries list --status perm_failed`" \
        in result.output
    assert "1 temp_failed: the next runs try again" in result.output
    assert "sent 1, failed 0, unknown 1, skipped 0" in result.output
    data = json.loads(invoke(config, "status", "--json").output)
    assert data["suppressed"] == 1


def test_bounces_scan_suppresses_and_list_shows_them(
    config: Config, ledger: dict[str, int], tmp_path: Path
) -> None:
    fill(tmp_path / "bounces", [
        "postfix_user_unknown.eml", "mailbox_full_soft.eml", "arf_abuse_complaint.eml",
        "dmarc_auth_failure_report.eml", "not_a_bounce_reply.eml",
    ])
    # bob's digest of DAY is in the ledger (the fixture); erin's complaint is about the
    # digest she got on 2026-05-28. carol got nothing from us: her bounce is unverified.
    record_sent(config, "erin@example.com", date(2026, 5, 28), 5)
    scanned = invoke(config, "bounces", "scan", "--maildir", str(tmp_path / "bounces"))
    assert scanned.exit_code == 0, scanned.output
    assert ("scanned 5 messages: 1 hard, 0 soft, 1 complaints, 1 unverified, 2 not bounces"
            in scanned.output)
    assert "suppressed bob@example.net: hard bounce 5.1.1" in scanned.output
    assert "suppressed erin@example.com: complaint (abuse)" in scanned.output
    assert "unverified: a report carrying no Message-ID we sent" in scanned.output
    again = invoke(config, "bounces", "scan", "--maildir", str(tmp_path / "bounces"), "--json")
    data = json.loads(again.output)
    assert (data["seen"], data["hard"], data["suppressed"]) == (3, 0, [])
    listed = invoke(config, "bounces", "list", "--json")
    rows = json.loads(listed.output)
    assert {r["kind"] for r in rows} == {"hard", "soft", "complaint"}
    bob = next(r for r in rows if r["kind"] == "hard")
    assert bob["email"] == "bob@example.net" and bob["suppressed"] is True
    carol = next(r for r in rows if r["kind"] == "soft")
    assert carol["email"] is None and carol["suppressed"] is False  # not a subscriber here
    assert carol["verified"] is False and bob["verified"] is True
    text = invoke(config, "bounces", "list")
    assert "3 bounces" in text.output and "bob@example.net suppressed  " in text.output
    assert "(hash " in text.output and " unverified  " in text.output
    # The suppressed subscriber is skipped by the next run.
    store = open_store(config.database_url)
    plans, _ = pipeline.plan_due(config, store, now=NOW, day=DAY + timedelta(days=1),
                                 only=None, force=True)
    store.close()
    assert "bob@example.net" not in {p.subscriber.email for p in plans}


def test_bounces_scan_reads_plain_text_bounces_and_names_the_unreadable(
    config: Config, ledger: dict[str, int], tmp_path: Path
) -> None:
    fill(tmp_path / "bounces", [
        "qmail_user_unknown.eml", "exim_text_user_unknown.eml",
        "unknown_format_from_mailer.eml", "not_a_bounce_reply.eml",
    ])
    record_sent(config, "gina@example.com", DAY, 7)
    record_sent(config, "ivy@example.org.uk", DAY, 9)
    scanned = invoke(config, "bounces", "scan", "--maildir", str(tmp_path / "bounces"))
    assert scanned.exit_code == 0, scanned.output
    assert ("scanned 4 messages: 2 hard, 0 soft, 0 complaints, 0 unverified, 1 not bounces, "
            "0 seen before, 1 unreadable; suppressed 2 addresses") in scanned.output
    assert "unverified:" not in scanned.output
    assert "suppressed gina@example.com: hard bounce 5.1.1" in scanned.output
    assert "suppressed ivy@example.org.uk: hard bounce 5.1.1" in scanned.output
    assert ("unreadable: Undeliverable: Your research digest for 2026-05-25 from Postmaster "
            "<postmaster@groupware.example.com>") in scanned.output
    assert "Message-ID <nd.4471@groupware.example.com>" in scanned.output
    assert "digest subscribers remove EMAIL" in scanned.output
    data = json.loads(invoke(config, "bounces", "scan", "--maildir",
                             str(tmp_path / "bounces"), "--json").output)
    [item] = data["unreadable"]  # still named on a rescan: nothing recorded it
    assert item["message_id"] == "<nd.4471@groupware.example.com>"
    assert "format not read here" in item["reason"]
    assert (data["seen"], data["ignored"]) == (2, 1)


def test_bounces_scan_needs_exactly_one_mailbox(config: Config, tmp_path: Path) -> None:
    neither = invoke(config, "bounces", "scan")
    assert neither.exit_code == 2 and "exactly one" in neither.output
    both = invoke(config, "bounces", "scan", "--maildir", str(tmp_path), "--imap",
                  "imaps://u:p@localhost/INBOX")
    assert both.exit_code == 2
    not_maildir = invoke(config, "bounces", "scan", "--maildir", str(tmp_path))
    assert not_maildir.exit_code == 2 and "not a Maildir" in not_maildir.output
    bad_url = invoke(config, "bounces", "scan", "--imap", "ftp://u:secret@host/INBOX")
    assert bad_url.exit_code == 78 and "secret" not in bad_url.output


def test_retry_names_the_way_to_send_older_days_only_when_there_are_some(
    config: Config, ledger: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = invoke(config, "deliveries", "retry", "--status", "temp_failed", "--yes")
    assert "for older days send one at a time: digest run --date 2026-05-25" in old.output
    # The same rows retried on their own day: the next run sends them, no hint.
    store = open_store(config.database_url)
    store.set_delivery_status(ledger["dee@example.org"], DAY, "temp_failed", now=NOW)
    store.close()
    monkeypatch.setattr("digest.cli.deliveries.now_utc", lambda: NOW)
    today = invoke(config, "deliveries", "retry", "--status", "temp_failed", "--yes")
    assert today.exit_code == 0 and "planned again" in today.output
    assert "older days" not in today.output


def mailed_papers(server: SmtpTestServer, email: str) -> Counter[str]:
    """Count how often each paper (by its arXiv link) reached ``email``."""
    counts: Counter[str] = Counter()
    for received in server.by_recipient(email):
        body = received.message.get_body(("plain",))
        assert body is not None
        counts.update(re.findall(r"arxiv\.org/abs/(\S+)", str(body.get_content())))
    return counts


def test_retrying_a_perm_failed_day_never_mails_the_papers_a_later_digest_had(
    config: Config, smtp_server: SmtpTestServer
) -> None:
    # Day 1's digest is refused for good; its papers stay candidates, and day 2's digest
    # mails them. `deliveries retry --status perm_failed` of day 1 handed the row back
    # as it was, and `digest send` mailed every one of those papers a second time.
    config = replace(config, smtp=smtp_server.settings())
    store = open_store(config.database_url)
    ada = store.add_subscriber("ada@example.org", Profile(interests="LLM agents, tool use"),
                               now=NOW - timedelta(days=3))
    store.close()
    smtp_server.fail("rcpt", "550 5.7.1 Rejected by policy", recipient="ada@example.org")
    first = pipeline.run(config, now=NOW, day=DAY)
    assert (first.sent, first.failed) == (0, 1)
    second = pipeline.run(config, now=NOW + timedelta(days=1), day=DAY + timedelta(days=1))
    assert second.sent == 1
    had = mailed_papers(smtp_server, "ada@example.org")
    assert had and all(n == 1 for n in had.values())
    retried = invoke(config, "deliveries", "retry", "--status", "perm_failed", "--date",
                     DAY.isoformat(), "--yes", "--json")
    assert retried.exit_code == 0, retried.output
    pipeline.send_pending(config, now=NOW + timedelta(days=1, hours=1))
    assert mailed_papers(smtp_server, "ada@example.org") == had
    data = json.loads(retried.output)
    assert (data["retried"], data["skipped"]) == (0, 1)
    store = open_store(config.database_url)
    row = store.get_delivery(ada.id, DAY)
    store.close()
    assert row is not None and row.status == "skipped"
    assert "in the digest of 2026-05-26" in (row.error or "")


def test_a_retried_row_keeps_only_the_papers_not_mailed_since(
    config: Config, ledger: dict[str, int]
) -> None:
    # bob's digest of DAY (three papers) was refused; the next day's, sent, held the
    # first of them. The retry sends the other two, with the message written anew.
    store = open_store(config.database_url)
    bob = ledger["bob@example.net"]
    row = store.get_delivery(bob, DAY)
    assert row is not None and len(row.picks) == 3
    later = DAY + timedelta(days=1)
    store.plan_delivery(bob, later, picks=[row.picks[0]], now=NOW, status="sent",
                        message_id=mail.make_message_id(bob, later, "example.org"))
    store.close()
    text = invoke(config, "deliveries", "retry", "--status", "perm_failed", "--yes")
    assert text.exit_code == 0, text.output
    assert "1 row(s) planned again" in text.output
    assert "1 of their papers were left out" in text.output
    store = open_store(config.database_url)
    again = store.get_delivery(bob, DAY)
    store.close()
    assert again is not None and again.status == "planned"
    assert again.paper_keys == row.paper_keys[1:]
    report = pipeline.run(config, now=NOW + timedelta(hours=1), day=DAY, do_ingest=False)
    assert report.sent == 1
    box = mailbox.Maildir(str(config.maildir), create=False)
    [message] = [box.get_message(k) for k in box.iterkeys()]
    assert str(message["To"]) == "bob@example.net"
    body = message.as_string()
    assert row.paper_keys[0].split(":")[-1] not in body
    assert all(key.split(":")[-1] in body for key in row.paper_keys[1:])


def test_retrying_two_rows_that_share_papers_sends_each_paper_once(
    config: Config, ledger: dict[str, int]
) -> None:
    # Both of bob's digests failed, the later one holding the earlier one's papers (they
    # were free again): retried together, only the later digest carries them.
    store = open_store(config.database_url)
    bob = ledger["bob@example.net"]
    row = store.get_delivery(bob, DAY)
    assert row is not None
    later = DAY + timedelta(days=1)
    store.plan_delivery(bob, later, picks=row.picks, now=NOW, status="perm_failed",
                        message_id=mail.make_message_id(bob, later, "example.org"))
    store.close()
    result = invoke(config, "deliveries", "retry", "--status", "perm_failed", "--yes",
                    "--json")
    assert json.loads(result.output)["retried"] == 1
    assert status_of(config, bob) == "skipped"
    store = open_store(config.database_url)
    kept = store.get_delivery(bob, later)
    store.close()
    assert kept is not None and kept.status == "planned"
    assert kept.paper_keys == row.paper_keys


def test_status_names_the_command_that_sends_rows_left_planned(
    config: Config, ledger: dict[str, int]
) -> None:
    # A send phase stopped (SMTP outage, SIGTERM: exit 75) leaves rows planned; `digest
    # status` counted them with no word on what sends them, and a plain `digest run`
    # sends only the digests due at its hour.
    store = open_store(config.database_url)
    store.set_delivery_status(ledger["dee@example.org"], DAY, "planned", now=NOW)
    store.record_run(RunReport(day=DAY, started_at=NOW, finished_at=NOW, aborted="stopped",
                               abort_exit=75))
    store.close()
    result = invoke(config, "status")
    assert result.exit_code == 0, result.output
    assert "1 planned: not sent yet; `digest send` sends them now" in result.output
    sent = invoke(config, "send")
    assert sent.exit_code == 0, sent.output
    assert status_of(config, ledger["dee@example.org"]) == "sent"
