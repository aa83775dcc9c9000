"""Build RFC-correct MIME messages and deliver them over SMTP or into a local Maildir.

Reply classes (RFC 5321, and what the pipeline does with them):

- 2xx after DATA: delivered; ``send`` returns the reply text ("250 OK").
- 4xx, network errors, timeouts before the payload went out: ``SendError``
  with ``permanent=False``; retrying later can help.
- 5xx: ``permanent=True``, except 552 at RCPT, which RFC 5321 (section 4.5.3.1.10)
  says to treat as temporary ("too many recipients" / mailbox full).
- 421 (service closing) at any stage: temporary; the connection is closed and the
  next ``send`` opens a new one.
- 535 / 534 / 530 and a server that offers no AUTH: ``AuthenticationError``; no message
  can go out with this configuration, so the run should stop.
- No reply after the whole payload was sent (connection dropped, timeout): the server
  may or may not have accepted the message. ``SendError.after_data`` is True and the
  ledger must say "unknown", never resend on its own.
"""

from __future__ import annotations

import hashlib
import mailbox
import re
import smtplib
import ssl
from collections.abc import Mapping
from datetime import UTC, date, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self

from digest.config import SmtpSettings
from digest.errors import AuthenticationError, DeliveryError
from digest.models import RenderedEmail

Stage = Literal["connect", "tls", "auth", "mail", "rcpt", "data", "after-data"]

# Every character str.splitlines() treats as a line boundary, plus the other C0
# controls: none of them may reach a header, where a CR/LF would start a new field.
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII but ":"

# Headers build_message owns; extra_headers may not replace them.
_RESERVED = frozenset(
    name.lower()
    for name in (
        "From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "MIME-Version",
        "Content-Type", "Content-Transfer-Encoding", "List-Id", "List-Unsubscribe",
        "List-Unsubscribe-Post",
    )
)


class SendError(DeliveryError):
    """A message was not (or may not have been) delivered; says at which SMTP stage.

    ``after_data`` is True when the whole message went out but no reply came back: the
    outcome is unknown and the message must not be resent automatically.
    """

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        code: int | None = None,
        permanent: bool = False,
        stage: Stage = "connect",
    ) -> None:
        super().__init__(message, hint, code=code, permanent=permanent)
        self.stage = stage

    @property
    def after_data(self) -> bool:
        """Return True when the payload was sent but no reply arrived (outcome unknown)."""
        return self.stage == "after-data"


class TlsRequiredError(AuthenticationError):
    """The server offers no STARTTLS although the settings require it.

    A subclass of AuthenticationError because, like bad credentials, it stops every
    message: the pipeline ends the run instead of burning through its error budget.
    """


# ---------------------------------------------------------------- building messages


def make_message_id(subscriber_id: int, day: date, domain: str, kind: str = "digest") -> str:
    """Return a Message-ID that is the same for every attempt at one (subscriber, day)."""
    # Deterministic, so a retried or re-sent digest carries the same id and receivers
    # that deduplicate on Message-ID drop the copy; the hash keeps two installations
    # sharing a domain from colliding.
    kind = re.sub(r"[^A-Za-z0-9-]", "", kind) or "digest"
    host = re.sub(r"[^A-Za-z0-9.-]", "", domain.rsplit("@", 1)[-1]).strip(".") or "localhost"
    seed = f"{kind}:{subscriber_id}:{day.isoformat()}:{host}".encode()
    short = hashlib.sha256(seed).hexdigest()[:12]
    return f"<{kind}.{subscriber_id}.{day.isoformat()}.{short}@{host}>"


def header_text(value: str | None) -> str:
    """Make a value safe for a header: no CR, LF or other control characters, one line."""
    return " ".join(_HEADER_UNSAFE.sub(" ", value or "").split())


def header_url(url: str) -> str:
    """Make a URL safe inside ``<...>`` in a header such as List-Unsubscribe."""
    cleaned = "".join(_HEADER_UNSAFE.sub("", url).split())
    return cleaned.replace("<", "%3C").replace(">", "%3E").replace(",", "%2C")


def make_address(name: str, addr: str) -> Address:
    """Build an Address (RFC 2047-encoded name on output); raise DeliveryError if malformed."""
    spec = addr.strip()
    if not spec or _HEADER_UNSAFE.search(spec) or " " in spec or spec.count("@") != 1:
        raise DeliveryError(
            f"not a deliverable email address: {header_text(addr)!r}",
            "fix or remove this subscriber's address",
            permanent=True,
        )
    local, _, domain = spec.partition("@")
    try:
        # International domains go out as IDNA (xn--); a non-ASCII local part would
        # need SMTPUTF8, which this mailer does not speak.
        domain = domain.encode("idna").decode("ascii")
        local.encode("ascii")
        return Address(display_name=header_text(name), username=local, domain=domain)
    except (ValueError, IndexError, UnicodeError) as err:
        raise DeliveryError(
            f"not a deliverable email address: {header_text(addr)!r}",
            "fix or remove this subscriber's address",
            permanent=True,
        ) from err


def build_message(
    rendered: RenderedEmail,
    *,
    from_name: str,
    from_addr: str,
    to_name: str,
    to_addr: str,
    message_id: str,
    date: datetime,
    list_id: str,
    list_unsubscribe: str | None,
    extra_headers: Mapping[str, str] | None = None,
    list_name: str = "",
    auto_submitted: bool = True,
) -> EmailMessage:
    """Build a multipart/alternative message (text, then HTML) with list headers."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = make_address(from_name, from_addr)
    msg["To"] = make_address(to_name, to_addr)
    msg["Subject"] = header_text(rendered.subject)
    when = date if date.tzinfo is not None else date.replace(tzinfo=UTC)
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = _clean_message_id(message_id)
    list_host = re.sub(r"[^A-Za-z0-9.-]", "", list_id).strip(".") or "localhost"
    label = header_text(list_name)
    msg["List-Id"] = f"{label} <{list_host}>" if label else f"<{list_host}>"
    if list_unsubscribe:
        url = header_url(list_unsubscribe)
        msg["List-Unsubscribe"] = f"<{url}>"
        if url.lower().startswith(("https://", "http://")):
            # RFC 8058 one-click: the mailbox provider POSTs to the URL; only valid
            # for a web URL, never for mailto:.
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if auto_submitted:
        # A digest is generated by a program, not in reply to anything (RFC 3834):
        # this keeps vacation responders quiet. Precedence and the Exchange header do
        # the same for responders that predate RFC 3834.
        msg["Auto-Submitted"] = "auto-generated"
        msg["Precedence"] = "bulk"
        msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    for name, value in (extra_headers or {}).items():
        if not _FIELD_NAME.match(name) or name.lower() in _RESERVED:
            raise ValueError(f"refusing to set header {name!r}")
        del msg[name]
        msg[name] = header_text(value)
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def message_to_bytes(message: EmailMessage, *, linesep: str = "\r\n") -> bytes:
    """Serialize a message for the wire (CRLF) or for a file (``linesep="\\n"``)."""
    return message.as_bytes(policy=policy.SMTP.clone(linesep=linesep))


def envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """Return (sender, recipients) for the SMTP envelope from the message headers."""
    sender_header = message["Sender"] or message["From"]
    senders = getaddresses([str(sender_header or "")])
    sender = senders[0][1] if senders else ""
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    recipients = [addr for _, addr in getaddresses(fields) if addr]
    if not recipients:
        raise DeliveryError("the message has no recipient", "set a To header", permanent=True)
    return sender, recipients


def _clean_message_id(message_id: str) -> str:
    value = header_text(message_id).replace(" ", "")
    if not re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", value):
        raise ValueError(f"not a Message-ID: {message_id!r}")
    return value


# ---------------------------------------------------------------- transports


class Transport(Protocol):
    """Something that delivers messages; a context manager that closes what it opened."""

    def send(self, message: EmailMessage) -> str:
        """Deliver one message and return the server's reply text, e.g. "250 OK"."""
        ...

    def close(self) -> None:
        """Release the connection, if any."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def open_transport(
    smtp: SmtpSettings | None,
    maildir: Path,
    *,
    ssl_context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
) -> SmtpTransport | MaildirTransport:
    """Return an SMTP transport when settings are given, else one that fills ``maildir``."""
    if smtp is None:
        return MaildirTransport(maildir)
    return SmtpTransport(smtp, ssl_context=ssl_context, local_hostname=local_hostname)


class MaildirTransport:
    """Deliver into a local Maildir (new/), readable by mutt, Thunderbird or mailbox.Maildir."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._box: mailbox.Maildir | None = None

    def send(self, message: EmailMessage) -> str:
        """Write the message into new/ and return a reply-like line naming its key."""
        envelope(message)  # same validation as SMTP: a message without recipient fails
        if self._box is None:
            # mailbox.Maildir(create=True) skips cur/new/tmp when the folder already
            # exists (say, made empty by `digest init`), so make them here.
            for sub in ("cur", "new", "tmp"):
                (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            self._box = mailbox.Maildir(self.path, create=False)
        # Files in a Maildir use the local line ending, not the wire's CRLF.
        key = self._box.add(message_to_bytes(message, linesep="\n"))
        return f"250 delivered to maildir {self.path} as {key}"

    def close(self) -> None:
        """Forget the mailbox handle (Maildir keeps no open files between adds)."""
        self._box = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SmtpTransport:
    """Deliver over one reused SMTP connection, mapping every failure to a SendError.

    The connection opens on the first ``send`` (a run with nothing to send never
    connects) and stays open until ``close``, a 421, or a network error.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.local_hostname = local_hostname
        self.connections = 0  # how many connections this transport opened
        self._conn: smtplib.SMTP | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Connect, secure and log in now rather than on the first send."""
        if self._conn is None:
            self._conn = self._connect()

    def close(self) -> None:
        """Say QUIT if the server is still there, then drop the connection."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def send(self, message: EmailMessage) -> str:
        """Deliver one message on the open connection and return the final reply."""
        sender, recipients = envelope(message)
        payload = message_to_bytes(message)
        reused = self._conn is not None
        try:
            return self._transaction(sender, recipients, payload)
        except SendError as err:
            # A reused connection may have been closed by the server while idle; that
            # shows up at MAIL, before anything of this message was committed, so one
            # fresh attempt is safe. Anything later is the caller's decision.
            if not (reused and err.stage == "mail" and err.code is None):
                raise
        return self._transaction(sender, recipients, payload)

    # -- internals

    def _transaction(self, sender: str, recipients: list[str], payload: bytes) -> str:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        stage: Stage = "mail"
        try:
            code, reply = conn.mail(sender)
            self._check(code, reply, "mail")
            stage = "rcpt"
            for rcpt in recipients:
                code, reply = conn.rcpt(rcpt)
                self._check(code, reply, "rcpt")
            stage = "data"
            code, reply = conn.docmd("data")
            if code != 354:
                self._check(code if code >= 400 else 554, reply, "data")
            conn.send(_dot_stuff(payload))
            stage = "after-data"
            code, reply = conn.getreply()
            self._check(code, reply, "after-data")
        except (smtplib.SMTPServerDisconnected, OSError) as err:
            self._drop()
            raise _network_error(err, stage, self.settings) from err
        return f"{code} {_text(reply)}".strip()

    def _check(self, code: int, reply: bytes, stage: Stage) -> None:
        if 200 <= code < 400:
            return
        text = _text(reply)
        if code == 421:
            self._drop()
        elif code in (530, 534, 535) and stage == "mail":
            self._drop()
            raise AuthenticationError(
                f"SMTP server {self.settings.host} requires authentication: {code} {text}",
                "put user:password in DIGEST_SMTP_URL (smtp://user:password@host:587)",
                code=code,
                permanent=True,
            )
        else:
            self._reset()
        # A rejection after DATA is a definite answer, not an unknown outcome.
        where: Stage = "data" if stage == "after-data" else stage
        permanent = code >= 500 and not (code == 552 and stage == "rcpt")
        raise SendError(
            f"SMTP server refused at {where.upper()}: {code} {text}",
            "the address is rejected; check it" if permanent else "will be retried later",
            code=code,
            permanent=permanent,
            stage=where,
        )

    def _reset(self) -> None:
        # RSET clears the half-done transaction so the connection serves the next
        # subscriber; if even that fails, the connection is not worth keeping.
        if self._conn is None:
            return
        try:
            code, _ = self._conn.rset()
            if code != 250:
                self._drop()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP
        try:
            if s.security == "ssl":
                conn = smtplib.SMTP_SSL(
                    s.host, s.port, local_hostname=self.local_hostname,
                    timeout=s.timeout, context=self.ssl_context,
                )
            else:
                conn = smtplib.SMTP(
                    s.host, s.port, local_hostname=self.local_hostname, timeout=s.timeout
                )
        except smtplib.SMTPConnectError as err:
            raise SendError(
                f"SMTP server {s.host}:{s.port} refused the connection: "
                f"{err.smtp_code} {_text(err.smtp_error)}",
                "will be retried later",
                code=err.smtp_code,
                permanent=False,
                stage="connect",
            ) from err
        except (smtplib.SMTPException, OSError) as err:
            raise _network_error(err, "connect", s) from err
        self.connections += 1
        try:
            self._greet(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _greet(self, conn: smtplib.SMTP) -> None:
        s = self.settings
        stage: Stage = "connect"
        try:
            conn.ehlo_or_helo_if_needed()
            if s.security == "starttls":
                stage = "tls"
                if not conn.has_extn("starttls"):
                    raise TlsRequiredError(
                        f"SMTP server {s.host}:{s.port} does not offer STARTTLS",
                        "use smtps:// if it speaks TLS on connect; add ?starttls=off to "
                        "DIGEST_SMTP_URL only for a trusted relay on this machine or network",
                        permanent=True,
                    )
                conn.starttls(context=self.ssl_context)
                conn.ehlo()
            if s.username:
                stage = "auth"
                conn.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as err:
            raise AuthenticationError(
                f"SMTP server {s.host} refused the credentials: "
                f"{err.smtp_code} {_text(err.smtp_error)}",
                "check the user name and password in DIGEST_SMTP_URL",
                code=err.smtp_code,
                permanent=True,
            ) from err
        except smtplib.SMTPNotSupportedError as err:
            raise AuthenticationError(
                f"SMTP server {s.host} does not offer AUTH",
                "remove user:password from DIGEST_SMTP_URL or use the submission port "
                "with TLS (587 or 465)",
                permanent=True,
            ) from err
        except smtplib.SMTPResponseException as err:
            raise SendError(
                f"SMTP server {s.host} failed during {stage}: "
                f"{err.smtp_code} {_text(err.smtp_error)}",
                "will be retried later",
                code=err.smtp_code,
                permanent=False,
                stage=stage,
            ) from err
        except ssl.SSLError as err:
            raise SendError(
                f"TLS with {s.host}:{s.port} failed: {err}",
                "check that the server's certificate is valid for this host name",
                permanent=False,
                stage="tls",
            ) from err
        except (smtplib.SMTPException, OSError) as err:
            raise _network_error(err, stage, s) from err


def _network_error(err: BaseException, stage: Stage, s: SmtpSettings) -> SendError:
    timed_out = isinstance(err, TimeoutError)
    reason = str(err) or type(err).__name__
    what = f"timed out after {s.timeout:g}s" if timed_out else f"failed: {reason}"
    if stage == "after-data":
        return SendError(
            f"SMTP server {s.host} {what} after the message was sent, before it replied",
            "the message may have been delivered; it is marked unknown and not resent "
            "automatically",
            permanent=False,
            stage=stage,
        )
    return SendError(
        f"SMTP connection to {s.host}:{s.port} {what} (at {stage.upper()})",
        "will be retried later; check DIGEST_SMTP_URL if it keeps happening",
        permanent=False,
        stage=stage,
    )


def _dot_stuff(payload: bytes) -> bytes:
    # RFC 5321 4.5.2: a line starting with "." gets another "."; the payload ends
    # with CRLF "." CRLF. Line endings are normalized to CRLF first.
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", payload)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return " ".join(reply.split())
