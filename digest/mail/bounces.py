"""Read bounces (RFC 3464 DSNs) and complaints (RFC 5965 ARF) and decide on suppression.

Suppression policy: a suppressed address gets nothing (the pipeline skips it) until its
owner opts in again or an operator subscribes it explicitly.

- **Hard bounce**: a DSN with ``Action: failed`` and a 5.x.x ``Status`` (or, without a
  Status, a 5xx reply in ``Diagnostic-Code``) suppresses the address at once, except
  the statuses that are not about the address (see soft bounces).
- **Complaint**: an ARF report with ``Feedback-Type: abuse`` or ``fraud`` (someone
  pressed "this is spam") suppresses at once. Other feedback types (``auth-failure``
  DMARC reports, ``not-spam``, ``virus``, ``other``) are not a person's complaint and
  are ignored.
- **Soft bounce**: a DSN with ``Action: failed`` and a 4.x.x Status (mailbox full,
  greylisting given up), or a 5.x.x one that is not about the address (5.7.x policy:
  our relay blocklisted, DMARC; 5.2.2 mailbox full; 5.3.4 message too big), is
  recorded; the address is suppressed once soft bounces fall on ``SOFT_LIMIT`` (3)
  distinct days within ``SOFT_WINDOW`` (30 days).
- **Our own SMTP rejection**: when our server refuses the recipient at RCPT with
  550/551/553 and an enhanced status or text that says the mailbox does not exist
  (5.1.1 user unknown, 5.1.10, "no such user"), it is a hard bounce.  A 550 for
  policy reasons (relaying denied, 5.7.x) is not: that is our problem, not the address's.
- ``Action: delayed``, ``delivered``, ``relayed``, ``expanded`` are reports, not
  bounces.
- **Plain-text bounces**: qmail (``This is the qmail-send program``) and Exim without
  DSNs (an ``X-Failed-Recipients`` header) write no multipart/report. From a mailer
  daemon (``Return-Path: <>``, MAILER-DAEMON or postmaster), their failed address and the
  code the remote server gave (enhanced status, else SMTP reply code, else "user
  unknown" wording) are read like a DSN's. A code found nowhere means the message is
  not understood, not that it is soft or hard.
- A message that looks like a failure report but cannot be read (no recipient, no code,
  a format not known here) is not a bounce, but ``unreadable`` says why, so that an
  operator reading the scan's summary can handle it by hand.

Only a **verified** report acts: one that carries (in its attached original message or
headers, the quoted copy of a plain-text bounce, or its In-Reply-To/References) the
Message-ID of a message the ledger says went to the address the report names. Our
Message-IDs hold a hash keyed by the installation's secret, so nobody who did not receive
that message can write one, and anyone can mail the bounce mailbox a report naming any
subscriber. An unverified report is recorded (``digest bounces list`` shows it) and
suppresses nobody; its soft bounces count towards no limit. Our own SMTP server refusing
an address during the send is verified by construction.

Every report is recorded once (keyed by its Message-ID), so scanning a mailbox twice
counts nothing twice.
"""

from __future__ import annotations

import contextlib
import email
import hashlib
import imaplib
import mailbox
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

from digest.addresses import normalize_email
from digest.errors import ConfigError, DeliveryError, DigestError, UsageError
from digest.mail.smtp import SendError
from digest.models import hide_address

BounceKind = Literal["hard", "soft", "complaint"]

SOFT_LIMIT = 3
# At most this many Message-IDs are taken from one report: each is looked up in the
# ledger, and a stranger's report could list thousands.
MAX_MESSAGE_IDS = 20
SOFT_WINDOW = timedelta(days=30)
COMPLAINT_TYPES = frozenset({"abuse", "fraud"})
# RFC 3463 subject 1 (addressing) details that mean "this mailbox does not exist".
UNKNOWN_MAILBOX_STATUS = re.compile(r"\b5\.1\.(1|2|3|6|10)\b")
UNKNOWN_MAILBOX_TEXT = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|"
    r"recipient (address )?(rejected|unknown|not found)|invalid recipient|"
    r"mailbox (not found|unknown)",
    re.IGNORECASE,
)


class MailboxError(DigestError):
    """The bounce mailbox cannot be read right now."""

    exit_code = 75  # EX_TEMPFAIL: the next scan may succeed


@dataclass(frozen=True)
class Bounce:
    """One recipient's failure or complaint, as read from a report."""

    recipient: str
    status: str  # RFC 3463 enhanced status, e.g. "5.1.1"; "" for a complaint
    action: str  # the DSN Action, or the ARF Feedback-Type for a complaint
    kind: BounceKind
    diagnostic: str = ""
    report_id: str = ""  # the report's own Message-ID (or a hash of it): dedupes rescans
    at: datetime | None = None  # when the report says it happened
    # The Message-IDs of the message the report is about, as it quotes them: what
    # verifies it against the ledger (see the module's docstring).
    message_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Applied:
    """What applying a bounce did."""

    new: bool  # False when the report was recorded before (a rescan): nothing done
    reason: str | None  # why its address is now suppressed, or None
    verified: bool  # the report is about a message the ledger sent to that address


class BounceLedger(Protocol):
    """What applying a bounce needs from the store (``digest.store.Store`` has it)."""

    def record_bounce(
        self,
        email: str,
        *,
        kind: str,
        status: str,
        action: str,
        diagnostic: str,
        report_id: str,
        source: str,
        at: datetime,
        now: datetime,
        verified_by: str | None = None,
    ) -> bool: ...

    def soft_bounce_days(self, email: str, *, since: datetime) -> int: ...

    def sent_message_id(self, email: str, message_ids: Sequence[str]) -> str | None: ...

    def suppress(self, email: str, *, reason: str, now: datetime) -> None: ...


# -- parsing --------------------------------------------------------------------------


def parse_bounce(raw: bytes | Message) -> Bounce | None:
    """Return the bounce or complaint a message reports, or None if it reports neither."""
    message = _as_message(raw)
    if message is None:
        return None
    if message.get_content_type() != "multipart/report":
        found = _parse_plain(message)
    else:
        report_type = str(message.get_param("report-type", "") or "").lower()
        if report_type == "delivery-status":
            found = _parse_dsn(message)
        elif report_type == "feedback-report":
            found = _parse_arf(message)
        else:
            return None
    if found is None:
        return None
    report_id = _report_id(message, raw)
    return Bounce(
        recipient=found.recipient,
        status=found.status,
        action=found.action,
        kind=found.kind,
        diagnostic=found.diagnostic,
        report_id=f"{report_id}/{found.recipient}",
        at=_date(message),
        message_ids=original_message_ids(message),
    )


# A Message-ID header line in a quoted copy of our message (qmail and Exim quote it whole;
# some MTAs indent it or prefix "> "), its value possibly on the next, folded line.
QUOTED_MESSAGE_ID = re.compile(
    r"^[ \t>]*Message-ID:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]{1,250}>)",
    re.IGNORECASE | re.MULTILINE,
)
ANGLE_ID = re.compile(r"<[^<>\s]{1,250}>")


def original_message_ids(message: Message) -> tuple[str, ...]:
    """Return the Message-IDs a report gives for the message it is about, first found first.

    Looked for in the attached original (message/rfc822) or its headers
    (text/rfc822-headers), in any text part (the quoted copy of a plain-text bounce),
    and in the report's In-Reply-To and References, which some MTAs set to the
    original's Message-ID. Which of them we really sent is the ledger's to say.
    """
    found: list[str] = []
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                found.extend(ANGLE_ID.findall(_field(payload[0], "Message-ID")))
        elif ctype in ("text/rfc822-headers", "text/plain"):
            text = _decoded(part)
            found.extend(match.group(1) for match in QUOTED_MESSAGE_ID.finditer(text))
    for name in ("In-Reply-To", "References"):
        found.extend(ANGLE_ID.findall(_field(message, name)))
    unique = list(dict.fromkeys(found))
    return tuple(unique[:MAX_MESSAGE_IDS])


def _decoded(part: Message) -> str:
    """Return a text part's payload as text (undecodable bytes replaced)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


# Permanent failures that say nothing against the address: the receiving system refused
# our message or our server (5.7.x: a blocklisted relay, DMARC/SPF failures such as
# Gmail's 5.7.26, a content filter), found it too big (5.3.4), or the mailbox full
# (5.2.2, which Gmail and others send as permanent). Suppressing at once would lose every
# subscriber of a provider the day it refuses our mail; as soft bounces they suppress
# only when they keep coming (SOFT_LIMIT days).
NOT_THE_ADDRESS = re.compile(r"5\.7\.\d{1,3}|5\.2\.2|5\.3\.4")


def classify_status(status: str) -> BounceKind | None:
    """Return "hard" for a 5.x.x status, "soft" for 4.x.x and NOT_THE_ADDRESS, else None."""
    if NOT_THE_ADDRESS.fullmatch(status):
        return "soft"
    if status.startswith("5."):
        return "hard"
    if status.startswith("4."):
        return "soft"
    return None


def _as_message(raw: bytes | Message) -> Message | None:
    if isinstance(raw, Message):
        return raw
    try:
        return email.message_from_bytes(raw, policy=policy.compat32)
    except Exception:  # any unparseable input is simply not a bounce
        return None


def _parse_dsn(message: Message) -> Bounce | None:
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        # The first block describes the message, the rest one recipient each; we send
        # one recipient per message, so the first failed recipient is the one.
        for block in blocks[1:]:
            if not isinstance(block, Message):
                continue
            bounce = _recipient_block(block)
            if bounce is not None:
                return bounce
    return None


def _recipient_block(block: Message) -> Bounce | None:
    action = _field(block, "Action").lower()
    if action != "failed":
        return None  # delayed, delivered, relayed, expanded: not a bounce
    # Original-Recipient is the address we mailed (RFC 3464 2.3.1); Final-Recipient is
    # where the last MTA tried, a forwarding target when our subscriber's address
    # forwards. Suppressing that target would leave our address bouncing every day.
    recipient = _address_field(_field(block, "Original-Recipient")) or _address_field(
        _field(block, "Final-Recipient")
    )
    if not recipient:
        return None
    diagnostic = _field(block, "Diagnostic-Code") or _field(block, "X-Supplementary-Info")
    status = _status(_field(block, "Status"), diagnostic)
    kind = classify_status(status)
    if kind is None:
        return None
    return Bounce(recipient, status, action, kind, hide_address(diagnostic, recipient))


def _parse_arf(message: Message) -> Bounce | None:
    report: Message | None = None
    original: Message | None = None
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                report = payload[0]
        elif ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                original = payload[0]
        elif ctype == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            original = email.message_from_bytes(bytes(text), policy=policy.compat32)
    if report is None:
        return None
    feedback_type = _field(report, "Feedback-Type").lower()
    if feedback_type not in COMPLAINT_TYPES:
        return None
    recipient = _address_field(_field(report, "Original-Rcpt-To"))
    if not recipient and original is not None:
        recipient = _address_field(_field(original, "To"))
    if not recipient:
        return None
    agent = _field(report, "User-Agent")
    return Bounce(recipient, "", feedback_type, "complaint", f"complaint via {agent or 'ARF'}")


# -- plain-text bounces (qmail, Exim without DSNs) -------------------------------------

QMAIL_INTRO = re.compile(r"This is the qmail-send program at", re.IGNORECASE)
# qmail lists each failed address alone on a line: "<user@host>:".
QMAIL_RECIPIENT = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:\s*$", re.MULTILINE)
# Where a bounce's quoted copy of our own message begins (qmail, Exim): what follows is
# our digest, whose text must not be read as the bounce's.
ORIGINAL_COPY = re.compile(
    r"^(?:--- Below this line is a copy of the message|-+ This is a copy of the message"
    r"|-+ The header of the original message is following)",
    re.IGNORECASE | re.MULTILINE,
)
# An enhanced status, not part of an IP address or a version number (10.4.3.2).
PLAIN_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
# A reply code where a server's answer is quoted: after "said:", after "error ...:", or
# at the start of a line; never a port or a count inside a sentence.
PLAIN_REPLY = re.compile(r"(?:said:|error[^:\n]*:|^)\s*([45])\d\d(?=[\s-])",
                         re.IGNORECASE | re.MULTILINE)
MAILER_SENDERS = ("mailer-daemon", "postmaster", "mail-daemon")
FAILURE_SUBJECT = re.compile(
    r"undeliver|not (been )?delivered|delivery (status notification|has failed|failure|"
    r"failed)|mail delivery failed|returned mail|failure notice|non.?delivery|"
    r"could not be delivered|delivery problem",
    re.IGNORECASE,
)


def _from_mailer(message: Message) -> bool:
    """Return True when a message comes from a mail system, not a person."""
    if _field(message, "Return-Path").replace(" ", "") == "<>":
        return True
    senders = [addr.lower() for _, addr in getaddresses([_field(message, "From")])]
    return any(addr.partition("@")[0] in MAILER_SENDERS for addr in senders)


def _plain_text(message: Message) -> str:
    """Return the bounce's own text: its first text/plain part, before our message's copy."""
    for part in message.walk():
        if part.get_content_type() != "text/plain":
            continue
        if not isinstance(part.get_payload(decode=True), bytes):
            continue
        text = _decoded(part)
        copy = ORIGINAL_COPY.search(text)
        return text[: copy.start()] if copy else text
    return ""


def _plain_status(section: str) -> str:
    """Return the status of a plain-text bounce's section about one recipient, or ""."""
    found = PLAIN_STATUS.search(section)
    if found:
        return found.group(1)
    reply = PLAIN_REPLY.search(section)
    if reply:
        return f"{reply.group(1)}.0.0"
    if UNKNOWN_MAILBOX_TEXT.search(section):
        return "5.1.1"
    if re.search(r"unrouteable address", section, re.IGNORECASE):
        return "5.1.2"  # Exim: the domain has no mail server
    return ""


def _parse_plain(message: Message) -> Bounce | None:
    """Read a qmail or Exim bounce that carries no DSN (see the module's docstring)."""
    if not _from_mailer(message):
        return None
    text = _plain_text(message)
    failed = _address_field(_field(message, "X-Failed-Recipients").split(",")[0])
    if failed:  # Exim: the address heads its own indented paragraph of the text
        start = text.lower().find(failed)
        section = text[start:] if start >= 0 else text
    elif QMAIL_INTRO.search(text):
        found = QMAIL_RECIPIENT.search(text)
        if found is None:
            return None
        failed = _address_field(found.group(1))
        following = QMAIL_RECIPIENT.search(text, found.end())
        section = text[found.end(): following.start() if following else len(text)]
    else:
        return None
    if not failed:
        return None
    status = _plain_status(section)
    kind = classify_status(status)
    if kind is None:
        return None
    diagnostic = " ".join(section.split())[:500]
    return Bounce(failed, status, "failed", kind, hide_address(diagnostic, failed))


def unreadable(raw: bytes | Message) -> str | None:
    """Say why a message that parse_bounce did not read still looks like a failure report.

    None means it is not one (ordinary mail, a delay warning, a DMARC report...). A
    string means an operator should read it: a bounce this module cannot read would
    otherwise be counted as "not a bounce" and its address go on getting mail.
    """
    message = _as_message(raw)
    if message is None:
        return None
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type", "") or "").lower()
        if report_type == "delivery-status":
            return _unreadable_dsn(message)
        if report_type == "feedback-report":
            return _unreadable_arf(message)
        return None
    if not _from_mailer(message):
        return None
    text = _plain_text(message)
    failed = _field(message, "X-Failed-Recipients")
    if failed and not _address_field(failed.split(",")[0]):
        return f"X-Failed-Recipients names no address: {failed[:80]!r}"
    if failed or QMAIL_INTRO.search(text):
        if failed or QMAIL_RECIPIENT.search(text):
            return "a bounce that gives no status code or reason read here"
        return "a qmail bounce that names no recipient"
    if FAILURE_SUBJECT.search(_field(message, "Subject")):
        return "a failure notice in a format not read here (no DSN)"
    return None


def headline(raw: bytes | Message) -> dict[str, str]:
    """Return what names a message in a mailbox: its subject, from, date and message_id."""
    message = _as_message(raw)
    found: dict[str, str] = {}
    for name in ("Subject", "From", "Date", "Message-ID"):
        value = message.get(name) if message is not None else None
        try:
            text = str(make_header(decode_header(str(value)))) if value is not None else ""
        except (HeaderParseError, LookupError, UnicodeError):
            text = str(value)
        found[name.lower().replace("-", "_")] = " ".join(text.split())[:120]
    return found


def _unreadable_dsn(message: Message) -> str | None:
    parts = [p for p in message.walk() if p.get_content_type() == "message/delivery-status"]
    if not parts:
        return "a delivery-status report without its message/delivery-status part"
    for part in parts:
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            return "a delivery-status part that cannot be read"
        for block in blocks[1:]:
            if not isinstance(block, Message) or _field(block, "Action").lower() != "failed":
                continue
            if not (_address_field(_field(block, "Final-Recipient"))
                    or _address_field(_field(block, "Original-Recipient"))):
                return "a failed recipient without a readable address"
            return "a failed recipient without a readable status code"
    return None  # delayed, delivered, relayed, expanded: reports, not failures


def _unreadable_arf(message: Message) -> str | None:
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        if not (isinstance(payload, list) and payload and isinstance(payload[0], Message)):
            return "a complaint report that cannot be read"
        if _field(payload[0], "Feedback-Type").lower() in COMPLAINT_TYPES:
            return "a complaint that names no recipient"
        return None  # auth-failure, not-spam...: not a person's complaint
    return "a complaint report without its message/feedback-report part"


def _field(block: Message, name: str) -> str:
    value = block.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _address_field(value: str) -> str:
    """Return the address of ``rfc822; addr`` (DSN) or ``<addr>`` / ``Name <addr>``."""
    if ";" in value:
        kind, _, value = value.partition(";")
        if kind.strip().lower() not in ("rfc822", ""):
            return ""
    addresses = [addr for _, addr in getaddresses([value.strip()]) if "@" in addr]
    address = addresses[0].strip().lower() if addresses else ""
    if "xn--" in address.rpartition("@")[2]:
        # Reports name an international domain as it went on the wire (A-labels); the
        # subscriber is stored as typed ("jana@faß.de"), and the report must find them.
        with contextlib.suppress(UsageError):
            address = normalize_email(address)
    return address


def _status(status: str, diagnostic: str) -> str:
    found = re.match(r"\s*([245]\.\d{1,3}\.\d{1,3})", status)
    if found:
        return found.group(1)
    # No (valid) Status: fall back on the enhanced code or reply code in the diagnostic.
    enhanced = re.search(r"\b([245]\.\d{1,3}\.\d{1,3})\b", diagnostic)
    if enhanced:
        return enhanced.group(1)
    reply = re.search(r"\b([245])\d\d\b", diagnostic)
    return f"{reply.group(1)}.0.0" if reply else ""


def _report_id(message: Message, raw: bytes | Message) -> str:
    found = _field(message, "Message-ID")
    if found:
        return found
    data = raw if isinstance(raw, bytes) else message.as_bytes()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _date(message: Message) -> datetime | None:
    value = _field(message, "Date")
    if not value:
        return None
    try:
        stamp = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    # "-0000" (qmail writes it on every bounce) is UTC with the local zone unknown.
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


# -- our own SMTP rejections ----------------------------------------------------------


def rejection_bounce(recipient: str, err: DeliveryError) -> Bounce | None:
    """Return a hard Bounce when our SMTP server refused the recipient as non-existent."""
    if not isinstance(err, SendError) or err.stage != "rcpt" or err.code not in (550, 551, 553):
        return None
    text = err.message
    if not (UNKNOWN_MAILBOX_STATUS.search(text) or UNKNOWN_MAILBOX_TEXT.search(text)):
        return None
    status = UNKNOWN_MAILBOX_STATUS.search(text)
    address = recipient.strip().lower()
    return Bounce(
        recipient=address,
        status=status.group(0) if status else "5.1.1",
        action="failed",
        kind="hard",
        diagnostic=hide_address(text, address),
    )


# -- policy ---------------------------------------------------------------------------


def suppression_reason(bounce: Bounce, soft_days: int) -> str | None:
    """Return why this bounce suppresses its address (given its soft-bounce days), or None."""
    if bounce.kind == "complaint":
        return f"complaint ({bounce.action})"
    if bounce.kind == "hard":
        return f"hard bounce {bounce.status}".strip()
    if soft_days >= SOFT_LIMIT:
        return f"soft bounces on {soft_days} days within {SOFT_WINDOW.days} days"
    return None


def apply_bounce(
    ledger: BounceLedger,
    bounce: Bounce,
    *,
    source: str,
    now: datetime,
    verified_by: str | None = None,
) -> Applied:
    """Record a bounce and, if it is verified, suppress its address as the policy says.

    The report is verified when one of its ``message_ids`` is a Message-ID the ledger
    sent to its recipient; ``verified_by`` says it is without looking (our own SMTP
    server's refusal). An unverified report is recorded and acts on nothing.
    """
    at = bounce.at or now
    if verified_by is None:
        verified_by = ledger.sent_message_id(bounce.recipient, bounce.message_ids)
    new = ledger.record_bounce(
        bounce.recipient,
        kind=bounce.kind,
        status=bounce.status,
        action=bounce.action,
        diagnostic=bounce.diagnostic,
        report_id=bounce.report_id or f"{source}/{bounce.recipient}/{at.isoformat()}",
        source=source,
        at=at,
        now=now,
        verified_by=verified_by,
    )
    verified = verified_by is not None
    if not new:
        return Applied(False, None, verified)
    if not verified:
        return Applied(True, None, False)
    soft_days = 0
    if bounce.kind == "soft":
        soft_days = ledger.soft_bounce_days(bounce.recipient, since=at - SOFT_WINDOW)
    reason = suppression_reason(bounce, soft_days)
    if reason is not None:
        ledger.suppress(bounce.recipient, reason=reason[:50], now=now)
    return Applied(True, reason, True)


def apply_rejection(
    ledger: BounceLedger, recipient: str, err: DeliveryError, *, now: datetime
) -> str | None:
    """Suppress an address our SMTP server refused as non-existent; return the reason."""
    bounce = rejection_bounce(recipient, err)
    if bounce is None:
        return None
    report_id = f"smtp/{bounce.recipient}/{now.isoformat()}"
    bounce = replace(bounce, report_id=report_id, at=now)
    # Our own server said so during our send: no stranger wrote this report.
    return apply_bounce(ledger, bounce, source="smtp", now=now, verified_by="smtp").reason


# -- reading mailboxes ----------------------------------------------------------------


def read_maildir(path: Path) -> Iterator[bytes]:
    """Yield every message in a Maildir (new and cur), leaving the mailbox untouched."""
    if not (path / "cur").is_dir() and not (path / "new").is_dir():
        raise UsageError(
            f"{path} is not a Maildir (no cur/ or new/ folder)",
            "give the folder that holds cur/, new/ and tmp/",
        )
    box = mailbox.Maildir(str(path), factory=None, create=False)
    for key in sorted(box.iterkeys()):
        try:
            yield box.get_bytes(key)
        except KeyError:
            continue  # another client moved or deleted it meanwhile


IMAPConnect = Callable[[str, int, bool], Any]


def _imap_connect(host: str, port: int, use_ssl: bool) -> Any:
    if use_ssl:
        return imaplib.IMAP4_SSL(host, port, timeout=30)
    return imaplib.IMAP4(host, port, timeout=30)


def read_imap(url: str, *, connect: IMAPConnect = _imap_connect) -> Iterator[bytes]:
    """Yield every message in an IMAP folder (imaps://user:pass@host[:port]/FOLDER), read-only."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        raise ConfigError(
            f"not an IMAP URL: {redact_url(url)}",
            "use imaps://user:password@host/INBOX (imap:// only on a trusted network)",
        )
    use_ssl = parts.scheme == "imaps"
    port = parts.port or (993 if use_ssl else 143)
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    try:
        conn = connect(parts.hostname, port, use_ssl)
    except OSError as err:
        raise MailboxError(
            f"cannot connect to IMAP server {parts.hostname}:{port}: {err}",
            "check the host and port; the next scan will try again",
        ) from err
    try:
        try:
            conn.login(unquote(parts.username or ""), unquote(parts.password or ""))
        except imaplib.IMAP4.error as err:
            raise ConfigError(
                f"IMAP server {parts.hostname} refused the login: {err}",
                "check the user name and password in the --imap URL",
            ) from err
        status, _ = conn.select(_quote(folder), readonly=True)
        if status != "OK":
            raise UsageError(f"no IMAP folder {folder!r}", "give an existing folder, e.g. INBOX")
        status, data = conn.search(None, "ALL")
        numbers = data[0].split() if status == "OK" and data and data[0] else []
        for number in numbers:
            # BODY.PEEK leaves the \\Seen flag alone: scanning changes nothing on the server.
            status, fetched = conn.fetch(number, "(BODY.PEEK[])")
            if status != "OK":
                continue
            for item in fetched:
                if isinstance(item, tuple) and len(item) == 2:
                    yield bytes(item[1])
    except (imaplib.IMAP4.error, OSError) as err:
        raise MailboxError(
            f"IMAP error on {parts.hostname}: {err}", "the next scan will try again"
        ) from err
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            conn.logout()


def redact_url(url: str) -> str:
    """Hide the password of a mailbox URL in messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _quote(folder: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9._/-]+", folder):
        return folder
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
