"""Bounce and complaint reports: parsing real and hand-made samples, the suppression policy,
reading a Maildir or an IMAP folder, and a suppressed address getting nothing."""

from __future__ import annotations

import mailbox
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest import mail, pipeline
from digest.config import Config
from digest.errors import ConfigError, UsageError
from digest.mail import bounces
from digest.mail.bounces import Applied, Bounce, apply_bounce, parse_bounce, rejection_bounce
from digest.mail.smtp import SendError
from digest.models import Profile
from digest.store import Store, open_store

DATA = Path(__file__).parent / "data" / "bounces"
NOW = datetime(2026, 5, 28, 9, 0, tzinfo=UTC)


# The digest each hand-made sample reports on, as the tests' ledger records it: its
# address, day and Message-ID (mail.make_message_id(subscriber id, day, "example.org")).
SENT = {
    "postfix_user_unknown.eml": ("bob@example.net", date(2026, 5, 25), 2),
    "mailbox_full_soft.eml": ("carol@example.com", date(2026, 5, 26), 3),
    "arf_abuse_complaint.eml": ("erin@example.com", date(2026, 5, 28), 5),
    "arf_without_rcpt_to.eml": ("frank@isp.example", date(2026, 5, 28), 6),
    "qmail_user_unknown.eml": ("gina@example.com", date(2026, 5, 25), 7),
    "qmail_remote_host_said.eml": ("hal@example.edu", date(2026, 5, 26), 8),
    "exim_text_user_unknown.eml": ("ivy@example.org.uk", date(2026, 5, 25), 9),
    "exim_text_quota_retry.eml": ("jon@example.org.uk", date(2026, 5, 27), 10),
}


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def record_sent(db: Store, email: str, day: date, message_id: str) -> None:
    """Record in the ledger that a digest with this Message-ID went to ``email``."""
    sub = db.find_subscriber(email) or db.add_subscriber(
        email, Profile(interests="agents"), now=NOW - timedelta(days=30))
    db.plan_delivery(sub.id, day, picks=[], message_id=message_id, now=NOW, status="sent")


def sent(db: Store, name: str) -> str:
    """Record the digest a hand-made sample reports on as sent; return its Message-ID."""
    email, day, number = SENT[name]
    message_id = mail.make_message_id(number, day, "example.org")
    record_sent(db, email, day, message_id)
    return message_id


# -- parsing --------------------------------------------------------------------------


def test_a_postfix_user_unknown_dsn_is_a_hard_bounce() -> None:
    bounce = parse_bounce(sample("postfix_user_unknown.eml"))
    assert bounce is not None
    assert (bounce.recipient, bounce.status, bounce.action, bounce.kind) == (
        "bob@example.net", "5.1.1", "failed", "hard",
    )
    assert "User unknown" in bounce.diagnostic
    assert "bob@example.net" not in bounce.diagnostic.lower()  # kept as a hash only
    assert bounce.at == datetime(2026, 5, 25, 9, 1, 2, tzinfo=UTC)
    assert bounce.report_id.startswith("<20260525090102.4F2A31C0042@mx.example.net>")


def test_a_bounce_at_a_forwarding_target_names_the_subscribed_address(store: Store) -> None:
    # Hand-made from the Postfix sample: bob@example.net forwards to an address that no
    # longer exists. The DSN's Final-Recipient is that target, its Original-Recipient the
    # address we mailed; suppressing the target stopped nothing, and every digest bounced.
    raw = sample("postfix_user_unknown.eml").decode().replace(
        "Final-Recipient: rfc822; Bob@Example.net",
        "Final-Recipient: rfc822; robert.b@forward.example.com")
    bounce = parse_bounce(raw.encode())
    assert bounce is not None and bounce.recipient == "bob@example.net"
    sent(store, "postfix_user_unknown.eml")
    assert apply_bounce(store, bounce, source="t", now=NOW).reason is not None
    assert store.is_suppressed("bob@example.net")


def test_a_real_exchange_bounce_with_a_folded_recipient_is_hard() -> None:
    bounce = parse_bounce(sample("real_exchange_non_existing_mailbox.eml"))
    assert bounce is not None and bounce.kind == "hard" and bounce.status == "5.1.1"
    assert bounce.recipient == "email_that_does_not_exists_this_is_just_a_test@gmail.com"
    assert "does not exist" in bounce.diagnostic  # from X-Supplementary-Info


def test_a_full_mailbox_is_a_soft_bounce() -> None:
    bounce = parse_bounce(sample("mailbox_full_soft.eml"))
    assert bounce is not None
    assert (bounce.recipient, bounce.status, bounce.kind) == ("carol@example.com", "4.2.2", "soft")


def test_a_dsn_without_status_takes_the_class_from_the_reply_code() -> None:
    bounce = parse_bounce(sample("no_status_field.eml"))
    assert bounce is not None
    assert bounce.recipient == "dave@old.example.edu"
    assert (bounce.status, bounce.kind) == ("5.0.0", "hard")


def test_an_arf_abuse_report_is_a_complaint() -> None:
    bounce = parse_bounce(sample("arf_abuse_complaint.eml"))
    assert bounce is not None
    assert bounce.recipient == "erin@example.com"
    assert (bounce.kind, bounce.action) == ("complaint", "abuse")


def test_a_complaint_without_original_rcpt_to_names_the_original_to() -> None:
    bounce = parse_bounce(sample("arf_without_rcpt_to.eml"))
    assert bounce is not None and bounce.recipient == "frank@isp.example"
    assert bounce.kind == "complaint"


@pytest.mark.parametrize(
    "name",
    ["real_exchange_delay.eml", "dmarc_auth_failure_report.eml", "not_a_bounce_reply.eml"],
)
def test_delays_dmarc_reports_and_ordinary_mail_are_not_bounces(name: str) -> None:
    assert parse_bounce(sample(name)) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \x00",
        b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno parts",
        b"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n"
        b"\r\n--x\r\nContent-Type: message/disposition-notification\r\n\r\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\r\n--x--\r\n",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n"
        b"--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n\r\n"
        b"Final-Recipient: x400; not-an-address\r\nAction: failed\r\nStatus: 5.1.1\r\n--x--\r\n",
    ],
)
def test_garbage_and_other_reports_are_not_bounces(raw: bytes) -> None:
    assert parse_bounce(raw) is None


@pytest.mark.parametrize(
    ("name", "recipient", "status", "kind"),
    [
        ("qmail_user_unknown.eml", "gina@example.com", "5.1.1", "hard"),
        ("qmail_remote_host_said.eml", "hal@example.edu", "5.0.0", "hard"),
        ("exim_text_user_unknown.eml", "ivy@example.org.uk", "5.1.1", "hard"),
        ("exim_text_quota_retry.eml", "jon@example.org.uk", "4.2.2", "soft"),
    ],
)
def test_plain_text_bounces_from_qmail_and_exim_are_read(
    name: str, recipient: str, status: str, kind: str
) -> None:
    # They were counted as "not bounces": the address went on getting mail for ever.
    bounce = parse_bounce(sample(name))
    assert bounce is not None
    assert (bounce.recipient, bounce.status, bounce.action, bounce.kind) == (
        recipient, status, "failed", kind,
    )
    assert recipient not in bounce.diagnostic.lower()
    assert bounce.at is not None and bounce.report_id.endswith("/" + recipient)


@pytest.mark.parametrize(
    ("status", "diagnostic"),
    [
        ("5.7.26", "550-5.7.26 Unauthenticated email from example.org is not accepted due "
                   "to domain's DMARC policy"),
        ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.8] blocked using "
                  "zen.spamhaus.org"),
        ("5.2.2", "552-5.2.2 The email account that you tried to reach is over quota"),
        ("5.3.4", "552 5.3.4 Message size exceeds fixed limit"),
    ],
)
def test_a_permanent_refusal_that_is_not_about_the_address_is_soft(
    store: Store, status: str, diagnostic: str
) -> None:
    # A blocklisted relay or a DMARC failure refuses every subscriber of a provider at
    # once: as hard bounces they were all suppressed for good on the first day.
    raw = sample("postfix_user_unknown.eml").decode()
    raw = raw.replace("Status: 5.1.1", f"Status: {status}").replace(
        "Diagnostic-Code: smtp; 550 5.1.1", f"Diagnostic-Code: smtp; {diagnostic}")
    bounce = parse_bounce(raw.encode())
    assert bounce is not None and (bounce.status, bounce.kind) == (status, "soft")
    sent(store, "postfix_user_unknown.eml")
    assert apply_bounce(store, bounce, source="t", now=NOW) == Applied(True, None, True)
    assert not store.is_suppressed("bob@example.net")


def test_a_qmail_date_in_minus_0000_is_utc() -> None:
    bounce = parse_bounce(sample("qmail_user_unknown.eml"))
    assert bounce is not None and bounce.at == datetime(2026, 5, 25, 9, 2, 11, tzinfo=UTC)


def test_a_person_quoting_a_qmail_bounce_is_not_a_bounce() -> None:
    text = sample("qmail_user_unknown.eml").decode()
    forwarded = text.replace("Return-Path: <>", "Return-Path: <ada@example.org>").replace(
        "From: MAILER-DAEMON@mx1.example.com", "From: Ada <ada@example.org>")
    assert parse_bounce(forwarded.encode()) is None
    assert bounces.unreadable(forwarded.encode()) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (sample("unknown_format_from_mailer.eml"), "format not read here"),
        (b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n"
         b"--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n\r\n"
         b"Final-Recipient: x400; not-an-address\r\nAction: failed\r\nStatus: 5.1.1\r\n"
         b"--x--\r\n", "without a readable address"),
        (b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n"
         b"--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n\r\n"
         b"Final-Recipient: rfc822; lee@example.com\r\nAction: failed\r\n"
         b"Status: failed\r\n--x--\r\n", "without a readable status"),
        (b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno parts",
         "without its message/delivery-status part"),
        (b"Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example.com\r\n"
         b"X-Failed-Recipients: mo@example.com\r\nSubject: Mail delivery failed\r\n\r\n"
         b"  mo@example.com\r\n    something went wrong\r\n", "no status code"),
    ],
)
def test_failure_reports_that_cannot_be_read_say_why(raw: bytes, reason: str) -> None:
    assert parse_bounce(raw) is None
    why = bounces.unreadable(raw)
    assert why is not None and reason in why


@pytest.mark.parametrize(
    "name", ["real_exchange_delay.eml", "dmarc_auth_failure_report.eml", "not_a_bounce_reply.eml"]
)
def test_delays_dmarc_reports_and_ordinary_mail_are_not_unreadable(name: str) -> None:
    assert bounces.unreadable(sample(name)) is None


# -- our own SMTP rejections ----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "stage", "text", "expected"),
    [
        (550, "rcpt", "550 5.1.1 <x@example.org>: User unknown", "5.1.1"),
        (551, "rcpt", "551 User not local", None),
        (553, "rcpt", "553 5.1.3 Bad recipient address syntax", "5.1.3"),
        (550, "rcpt", "550 No such user here", "5.1.1"),
        (550, "rcpt", "550 5.7.1 Relaying denied", None),  # our problem, not the address's
        (550, "data", "550 5.1.1 User unknown", None),  # not at RCPT
        (552, "rcpt", "552 5.2.2 Mailbox full", None),
        (451, "rcpt", "451 4.1.1 try later", None),
    ],
)
def test_only_an_unknown_mailbox_at_rcpt_is_a_hard_bounce(
    code: int, stage: str, text: str, expected: str | None
) -> None:
    err = SendError(f"SMTP server refused at {stage.upper()}: {text}", code=code,
                    permanent=code >= 500, stage=stage)  # type: ignore[arg-type]
    bounce = rejection_bounce("X@Example.org", err)
    if expected is None:
        assert bounce is None
    else:
        assert bounce is not None and bounce.kind == "hard" and bounce.status == expected
        assert bounce.recipient == "x@example.org"


def test_apply_rejection_suppresses_the_address(store: Store) -> None:
    err = SendError("SMTP server refused at RCPT: 550 5.1.1 User unknown", code=550,
                    permanent=True, stage="rcpt")
    reason = bounces.apply_rejection(store, "gone@example.org", err, now=NOW)
    assert reason == "hard bounce 5.1.1"
    assert store.is_suppressed("gone@example.org")
    [row] = store.list_bounces()
    assert row["source"] == "smtp" and row["kind"] == "hard"
    assert row["verified"] is True  # our own server, during our own send


# -- policy ---------------------------------------------------------------------------


def soft(recipient: str, at: datetime, n: int, message_id: str = "") -> Bounce:
    return Bounce(recipient, "4.2.2", "failed", "soft", "mailbox full", f"<soft-{n}>", at,
                  message_ids=(message_id,) if message_id else ())


def test_hard_bounces_and_complaints_suppress_at_once(store: Store) -> None:
    hard = parse_bounce(sample("postfix_user_unknown.eml"))
    complaint = parse_bounce(sample("arf_abuse_complaint.eml"))
    assert hard is not None and complaint is not None
    sent(store, "postfix_user_unknown.eml")
    sent(store, "arf_abuse_complaint.eml")
    assert apply_bounce(store, hard, source="test", now=NOW).reason == "hard bounce 5.1.1"
    assert apply_bounce(store, complaint, source="test", now=NOW).reason == "complaint (abuse)"
    assert store.is_suppressed("bob@example.net") and store.is_suppressed("Erin@example.com")


def test_soft_bounces_suppress_after_three_distinct_days_within_thirty(store: Store) -> None:
    addr = "carol@example.com"
    mid = sent(store, "mailbox_full_soft.eml")
    nothing = Applied(True, None, True)
    day1 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    assert apply_bounce(store, soft(addr, day1, 1, mid), source="t", now=NOW) == nothing
    # A second bounce the same day is one more report, not one more day.
    same_day = day1 + timedelta(hours=5)
    assert apply_bounce(store, soft(addr, same_day, 2, mid), source="t", now=NOW) == nothing
    day4 = soft(addr, day1 + timedelta(days=3), 3, mid)
    assert apply_bounce(store, day4, source="t", now=NOW) == nothing
    assert not store.is_suppressed(addr)
    day21 = soft(addr, day1 + timedelta(days=20), 4, mid)
    applied = apply_bounce(store, day21, source="t", now=NOW)
    assert applied.new and applied.reason == "soft bounces on 3 days within 30 days"
    assert store.is_suppressed(addr)


def test_soft_bounces_spread_over_more_than_thirty_days_do_not_suppress(store: Store) -> None:
    addr = "dan@example.com"
    mid = "<digest.4.2026-01-01.0a1b2c3d4e5f@example.org>"
    record_sent(store, addr, date(2026, 1, 1), mid)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n, offset in enumerate((0, 20, 40, 60, 80)):
        bounce = soft(addr, start + timedelta(days=offset), n, mid)
        assert apply_bounce(store, bounce, source="t", now=NOW).verified
    assert not store.is_suppressed(addr)


def test_the_same_report_twice_counts_once(store: Store) -> None:
    bounce = parse_bounce(sample("mailbox_full_soft.eml"))
    assert bounce is not None
    sent(store, "mailbox_full_soft.eml")
    assert apply_bounce(store, bounce, source="t", now=NOW) == Applied(True, None, True)
    assert apply_bounce(store, bounce, source="t", now=NOW) == Applied(False, None, True)
    assert len(store.list_bounces()) == 1


# -- reading mailboxes ----------------------------------------------------------------


def fill_maildir(path: Path, names: list[str]) -> None:
    box = mailbox.Maildir(str(path), create=True)
    for name in names:
        box.add(sample(name))


def test_read_maildir_yields_every_message_and_leaves_them_in_place(tmp_path: Path) -> None:
    fill_maildir(tmp_path / "bounces", ["postfix_user_unknown.eml", "not_a_bounce_reply.eml"])
    first = list(bounces.read_maildir(tmp_path / "bounces"))
    assert len(first) == 2
    assert len(list(bounces.read_maildir(tmp_path / "bounces"))) == 2


def test_read_maildir_refuses_a_folder_that_is_not_a_maildir(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a Maildir"):
        list(bounces.read_maildir(tmp_path))


class FakeImap:
    """Just enough of imaplib.IMAP4 to check what read_imap asks for (no IMAP server here)."""

    def __init__(self, messages: list[bytes], password: str = "secret") -> None:
        self.messages = messages
        self.password = password
        self.calls: list[tuple[Any, ...]] = []

    def login(self, user: str, password: str) -> tuple[str, list[bytes]]:
        self.calls.append(("login", user, password))
        if password != self.password:
            import imaplib

            raise imaplib.IMAP4.error("[AUTHENTICATIONFAILED] Invalid credentials")
        return "OK", [b"Logged in"]

    def select(self, folder: str, readonly: bool = False) -> tuple[str, list[bytes]]:
        self.calls.append(("select", folder, readonly))
        return "OK", [str(len(self.messages)).encode()]

    def search(self, charset: Any, *criteria: str) -> tuple[str, list[bytes]]:
        numbers = " ".join(str(n + 1) for n in range(len(self.messages)))
        return "OK", [numbers.encode()]

    def fetch(self, number: bytes, parts: str) -> tuple[str, list[Any]]:
        self.calls.append(("fetch", number, parts))
        raw = self.messages[int(number) - 1]
        return "OK", [(number + b" (BODY[] {%d}" % len(raw), raw), b")"]

    def logout(self) -> tuple[str, list[bytes]]:
        self.calls.append(("logout",))
        return "BYE", [b""]


def test_read_imap_logs_in_selects_read_only_and_peeks(tmp_path: Path) -> None:
    fake = FakeImap([sample("postfix_user_unknown.eml"), sample("arf_abuse_complaint.eml")])
    opened: list[tuple[str, int, bool]] = []

    def connect(host: str, port: int, use_ssl: bool) -> FakeImap:
        opened.append((host, port, use_ssl))
        return fake

    url = "imaps://bounce%40example.org:secret@imap.example.org/Bounces%20Box"
    got = list(bounces.read_imap(url, connect=connect))
    assert [parse_bounce(raw) is not None for raw in got] == [True, True]
    assert opened == [("imap.example.org", 993, True)]
    assert ("login", "bounce@example.org", "secret") in fake.calls
    assert ("select", '"Bounces Box"', True) in fake.calls
    assert all(c[2] == "(BODY.PEEK[])" for c in fake.calls if c[0] == "fetch")
    assert fake.calls[-1] == ("logout",)


def test_read_imap_reports_a_refused_login_as_configuration() -> None:
    fake = FakeImap([], password="other")
    with pytest.raises(ConfigError, match="refused the login") as info:
        list(bounces.read_imap("imap://u:wrong@localhost/INBOX", connect=lambda *a: fake))
    assert "wrong" not in info.value.message
    assert info.value.exit_code == 78


def test_read_imap_rejects_other_urls_without_showing_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        list(bounces.read_imap("https://u:hunter2@example.org/INBOX"))
    assert "hunter2" not in info.value.message


# -- end to end: a bounce suppresses, the next run skips ------------------------------


def test_a_scanned_hard_bounce_means_the_next_run_skips_the_address(
    config: Config, tmp_path: Path
) -> None:
    from digest.cli.deliveries import scan_messages

    db = open_store(config.database_url)
    profile = Profile(interests="LLM agents and tool use", keywords=("agent",))
    for email in ("bob@example.net", "ada@example.org"):
        db.add_subscriber(email, profile, now=NOW - timedelta(days=5))
    sent(db, "postfix_user_unknown.eml")
    fill_maildir(tmp_path / "bounces", ["postfix_user_unknown.eml", "real_exchange_delay.eml"])
    result = scan_messages(
        db, bounces.read_maildir(tmp_path / "bounces"), source="maildir", now=NOW
    )
    assert result["hard"] == 1 and result["ignored"] == 1
    assert result["suppressed"] == [{"email": "bob@example.net", "reason": "hard bounce 5.1.1"}]
    report = pipeline.run(config, now=NOW, day=date(2026, 5, 28), store=db)
    db.close()
    assert report.sent == 1
    box = mailbox.Maildir(str(config.maildir), create=False)
    recipients = [str(box.get_message(k)["To"]) for k in box.iterkeys()]
    assert len(recipients) == 1 and "ada@example.org" in recipients[0]


# -- only a report about a message we sent acts ---------------------------------------


def test_a_forged_bounce_suppresses_nobody(store: Store) -> None:
    # Anyone can mail the bounce mailbox a report naming any subscriber. This one, from
    # attacker@evil.example, names a subscriber but carries no message we sent: it
    # suppressed the address, and the digest stopped for good.
    from digest.cli.deliveries import scan_messages

    record_sent(store, "victim@example.org", date(2026, 5, 25),
                mail.make_message_id(1, date(2026, 5, 25), "example.org"))
    result = scan_messages(store, [sample("forged_user_unknown.eml")], source="t", now=NOW)
    assert result["suppressed"] == [] and result["hard"] == 0
    assert result["unverified"] == 1
    assert not store.is_suppressed("victim@example.org")
    [row] = store.list_bounces()  # recorded, so that an operator sees it
    assert row["email"] == "victim@example.org" and row["verified"] is False


@pytest.mark.parametrize("name", sorted(SENT))
def test_a_sample_carries_the_message_id_of_the_digest_it_reports_on(name: str) -> None:
    # DSN headers (text/rfc822-headers), ARF originals (message/rfc822 or headers), and
    # the quoted copy of a qmail or Exim bounce.
    bounce = parse_bounce(sample(name))
    email, day, number = SENT[name]
    assert bounce is not None and bounce.recipient == email
    assert mail.make_message_id(number, day, "example.org") in bounce.message_ids


def test_a_real_bounce_verifies_by_its_attached_original(store: Store) -> None:
    # Exchange attaches the original (message/rfc822) and names it in In-Reply-To too.
    bounce = parse_bounce(sample("real_exchange_non_existing_mailbox.eml"))
    assert bounce is not None
    assert bounce.message_ids == ("<560418D8.2010303@example.com>",)
    record_sent(store, bounce.recipient, date(2015, 9, 24), "<560418D8.2010303@example.com>")
    assert apply_bounce(store, bounce, source="t", now=NOW) == Applied(
        True, "hard bounce 5.1.1", True)
    assert store.is_suppressed(bounce.recipient)


def forged(message_id: str) -> bytes:
    """Return the forged sample with ``message_id`` in attached original headers."""
    return sample("forged_user_unknown.eml").replace(
        b"\n--f--", b"\n--f\nContent-Type: text/rfc822-headers\n\n"
        b"To: victim@example.org\nMessage-ID: " + message_id.encode() + b"\n\n--f--")


def test_a_message_id_of_ours_sent_to_someone_else_verifies_nothing(store: Store) -> None:
    # A subscriber holds the Message-ID of their own digest; it must not let them stop
    # another subscriber's mail. Nor does one in our form with a guessed hash.
    from digest.cli.deliveries import scan_messages

    victim_id = mail.make_message_id(1, date(2026, 5, 25), "example.org")
    record_sent(store, "victim@example.org", date(2026, 5, 25), victim_id)
    own_id = mail.make_message_id(2, date(2026, 5, 25), "example.org")
    record_sent(store, "mallory@example.org", date(2026, 5, 25), own_id)
    guessed = "<digest.1.2026-05-25.000000000000@example.org>"
    reports = [forged(own_id).replace(b"forged-1", b"forged-2"),
               forged(guessed).replace(b"forged-1", b"forged-3")]
    result = scan_messages(store, reports, source="t", now=NOW)
    assert (result["unverified"], result["hard"], result["suppressed"]) == (2, 0, [])
    assert not store.is_suppressed("victim@example.org")
    # The same report with the victim's real Message-ID is a bounce about our message.
    result = scan_messages(store, [forged(victim_id)], source="t", now=NOW)
    assert result["suppressed"] == [{"email": "victim@example.org", "reason": "hard bounce 5.1.1"}]


def test_a_bounce_for_an_international_domain_finds_its_subscriber(store: Store) -> None:
    # The digest to "jana@faß.de" went out to jana@xn--fa-hia.de (IDNA), and the
    # receiving MTA's report names that form: it matched no stored address, so it was
    # never verified and the dead address was mailed every day.
    from digest.cli.deliveries import scan_messages

    sent_id = mail.make_message_id(1, date(2026, 5, 25), "example.org")
    record_sent(store, "jana@faß.de", date(2026, 5, 25), sent_id)
    report = forged(sent_id).replace(b"victim@example.org", b"jana@xn--fa-hia.de")
    result = scan_messages(store, [report], source="t", now=NOW)
    assert result["suppressed"] == [{"email": "jana@faß.de", "reason": "hard bounce 5.1.1"}]
    assert store.is_suppressed("jana@faß.de")


def test_unverified_soft_bounces_count_towards_no_limit(store: Store) -> None:
    # Two forged soft bounces on other days, then one real one: one day, not three.
    addr = "carol@example.com"
    mid = sent(store, "mailbox_full_soft.eml")
    day1 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    for n in (1, 2):
        bounce = soft(addr, day1 + timedelta(days=n), n, "<digest.3.2026-05-26.0@example.org>")
        assert apply_bounce(store, bounce, source="t", now=NOW) == Applied(True, None, False)
    real = soft(addr, day1 + timedelta(days=3), 3, mid)
    assert apply_bounce(store, real, source="t", now=NOW) == Applied(True, None, True)
    assert not store.is_suppressed(addr)
    assert [row["verified"] for row in store.list_bounces()] == [True, False, False]


def test_a_bounce_without_the_original_is_recorded_unverified(store: Store) -> None:
    # Some MTAs attach nothing of the message: the report cannot be checked.
    record_sent(store, "dave@old.example.edu", date(2026, 5, 27),
                mail.make_message_id(4, date(2026, 5, 27), "example.org"))
    bounce = parse_bounce(sample("no_status_field.eml"))
    assert bounce is not None and bounce.message_ids == ()
    assert apply_bounce(store, bounce, source="t", now=NOW) == Applied(True, None, False)
    assert not store.is_suppressed("dave@old.example.edu")
