"""Deliver over one reused SMTP connection, mapping each reply class to an error.

Reply classes (RFC 5321, and what the pipeline does with them):

- 2xx after DATA: delivered; ``send`` returns the reply text ("250 OK").
- 4xx, network errors, timeouts before the payload went out: ``SendError``
  with ``permanent=False``; retrying later can help.
- 5xx: ``permanent=True``, except 552 at RCPT, which RFC 5321 (section 4.5.3.1.10)
  says to treat as temporary ("too many recipients" / mailbox full).
- 421 (service closing) at any stage: temporary; the connection is closed and the
  next ``send`` opens a new one.
- 535 / 534 / 530 and a server that offers no AUTH: ``AuthenticationError``; no message
  can go out with this configuration, so the run should stop. A 4xx to AUTH (454
  "temporary authentication failure") is a ``SendError`` of stage "auth": try later.
- No reply after the whole payload was sent (connection dropped, timeout): the server
  may or may not have accepted the message. ``SendError.after_data`` is True and the
  ledger must say "unknown", never resend on its own.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from types import TracebackType
from typing import Literal, Self

from digest.config import SmtpSettings
from digest.errors import AuthenticationError, DeliveryError
from digest.mail.message import envelope, message_to_bytes

Stage = Literal["connect", "tls", "auth", "mail", "rcpt", "data", "after-data"]


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
        self.pipelined = 0  # messages sent with their commands pipelined (RFC 2920)
        self.ahead = 0  # envelopes sent in the write of the message before (finish_data)
        self._conn: smtplib.SMTP | None = None
        # The envelope (sender, recipients) written after the last message's data, its
        # replies not read yet; and whether the server waits for a message's data (354).
        self._ahead: tuple[str, tuple[str, ...]] | None = None
        self._in_data = False

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
        """Say QUIT if the server is still there, then drop the connection.

        A connection in DATA (``open_data`` without its ``finish_data``) or with an
        envelope written ahead is dropped without a word: QUIT would be taken for the
        message's text, and without the final "." nothing is delivered.
        """
        if self._in_data or self._ahead is not None:
            self._drop()
            return
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
        return self.send_wire(sender, recipients, message_to_bytes(message))

    def send_wire(self, sender: str, recipients: Sequence[str], payload: bytes) -> str:
        """Deliver serialized bytes (CRLF lines) to these envelope addresses."""
        self.open_data(sender, recipients)
        return self.finish_data(_dot_stuff(payload))

    def open_data(self, sender: str, recipients: Sequence[str]) -> None:
        """Bring the server to take this message's data: MAIL, RCPT and DATA said and
        354 in hand. ``finish_data`` sends the data next.

        The envelope ``finish_data`` wrote ahead for these addresses is not said again:
        its replies are read. Refusals raise SendError as ``send`` does. A reused
        connection the server closed meanwhile shows up at MAIL, before anything of
        this message was committed, so one fresh attempt is made.
        """
        ahead, self._ahead = self._ahead, None
        wanted = (sender, tuple(recipients))
        if self._in_data or (ahead is not None and ahead != wanted):
            self._drop()  # mid-transaction for another message: nothing of it delivered
            ahead = None
        reused = self._conn is not None
        try:
            self._envelope_to_data(sender, recipients, written=ahead is not None)
        except SendError as err:
            if not (reused and err.stage == "mail" and err.code is None):
                raise
            self._envelope_to_data(sender, recipients, written=False)

    def finish_data(self, data: bytes, *,
                    then: tuple[str, Sequence[str]] | None = None) -> str:
        """Send the message's data (its final "." line included) after ``open_data``;
        return the server's final reply (refusals raise SendError of stage "data",
        no reply at all one with ``after_data``). The send phase's data is a digest the
        plan phase stored as ``dot_stuffed`` returned it: the CR/LF check and the
        stuffing (~60 us of a sender's CPU a 30 KB digest) were done then.

        ``then``: the next message's sender and recipients, written in the same write
        where the server offers PIPELINING (RFC 2920 lets a message's data open a group
        with the next MAIL, RCPT and DATA): a message costs one round trip, not two.
        Its replies are read by the ``open_data`` for those addresses.
        """
        conn = self._conn
        if conn is None or not self._in_data:
            raise RuntimeError("finish_data without open_data: no message is in DATA")
        ahead = None
        if then is not None and conn.has_extn("pipelining") and _plain(then[0]) and all(
                map(_plain, then[1])):
            ahead = (then[0], tuple(then[1]))
        try:
            conn.send(data + _envelope_bytes(*ahead) if ahead is not None else data)
            self._in_data = False
            self._ahead = ahead
            code, reply = conn.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as err:
            self._drop()
            raise _network_error(err, "after-data", self.settings) from err
        self.ahead += ahead is not None
        self._check(code, reply, "after-data")
        return f"{code} {_text(reply)}".strip()

    # -- internals

    def _envelope_to_data(self, sender: str, recipients: Sequence[str], *,
                          written: bool) -> None:
        """Say (or, ``written``, read the replies of) MAIL, RCPT and DATA; 354 or raise."""
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        pipelined = written or (conn.has_extn("pipelining") and _plain(sender)
                                and all(map(_plain, recipients)))
        reached: list[Stage] = ["mail"]  # the stage a network error interrupts
        try:
            if pipelined:
                code, reply = self._pipelined_envelope(conn, sender, recipients, reached,
                                                       written=written)
            else:
                code, reply = self._envelope(conn, sender, recipients, reached)
            if code != 354:
                self._check(code if code >= 400 else 554, reply, "data")
        except (smtplib.SMTPServerDisconnected, OSError) as err:
            self._drop()
            raise _network_error(err, reached[0], self.settings) from err
        self._in_data = True
        self.pipelined += pipelined

    def _envelope(
        self, conn: smtplib.SMTP, sender: str, recipients: Sequence[str], reached: list[Stage]
    ) -> tuple[int, bytes]:
        """Say MAIL, RCPT and DATA one at a time; return DATA's reply (refusals raise)."""
        code, reply = conn.mail(sender)
        self._check(code, reply, "mail")
        reached[0] = "rcpt"
        for rcpt in recipients:
            code, reply = conn.rcpt(rcpt)
            self._check(code, reply, "rcpt")
        reached[0] = "data"
        return conn.docmd("data")

    def _pipelined_envelope(
        self, conn: smtplib.SMTP, sender: str, recipients: Sequence[str], reached: list[Stage],
        *, written: bool = False,
    ) -> tuple[int, bytes]:
        """Send MAIL, RCPT and DATA in one write (RFC 2920); return DATA's reply.

        Two round trips a message instead of 2 + recipients: with a relay 20 ms away
        that halves the time a connection spends on each one. The replies are read in
        order and mean what they mean one by one: the first refusal is the answer (the
        commands after it are refused as out of sequence), a 421 ends the reading (the
        server closes). Were DATA accepted after a refusal, the connection is dropped
        without the message, so nothing is delivered. ``written``: the commands went out
        with the previous message's data (``finish_data``); only their replies are read.
        """
        rcpt: list[Stage] = ["rcpt"] * len(recipients)
        if not written:
            conn.send(_envelope_bytes(sender, recipients))
        replies: list[tuple[Stage, int, bytes]] = []
        for stage in ("mail", *rcpt, "data"):
            reached[0] = stage
            code, reply = conn.getreply()
            replies.append((stage, code, reply))
            if code == 421:
                break
        for stage, code, reply in replies:
            if stage != "data" and not 200 <= code < 400:
                if replies[-1][0] == "data" and replies[-1][1] == 354:
                    self._drop()  # in DATA now: closing without "." delivers nothing
                self._check(code, reply, stage)
        return replies[-1][1], replies[-1][2]

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
        elif self._ahead is None:
            self._reset()
        # (A refusal of a message's data with the next envelope written ahead leaves no
        # RSET: the refusal ended the transaction, and the replies next in line are that
        # envelope's.)
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
        self._ahead, self._in_data = None, False
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
            if 400 <= err.smtp_code < 500:
                # 454 "temporary authentication failure": the server could not check
                # the credentials now, not that they are wrong. Nothing was sent; the
                # run stops and the next one tries again (exit 75, not 78).
                raise SendError(
                    f"SMTP server {s.host} could not check the credentials now: "
                    f"{err.smtp_code} {_text(err.smtp_error)}",
                    "a temporary failure at the server; the next run tries again",
                    code=err.smtp_code,
                    permanent=False,
                    stage="auth",
                ) from err
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


# Characters that would need quoting in an envelope address (see _plain).
_SPECIALS = frozenset(" <>\"(),;:[]\\")


def _envelope_bytes(sender: str, recipients: Sequence[str]) -> bytes:
    """Return MAIL, RCPT and DATA for one pipelined write (plain ASCII addresses)."""
    return b"".join([
        b"MAIL FROM:<%s>\r\n" % sender.encode("ascii"),
        *(b"RCPT TO:<%s>\r\n" % address.encode("ascii") for address in recipients),
        b"DATA\r\n",
    ])


def _plain(address: str) -> bool:
    """Return True for an ASCII address smtplib would send as ``<address>`` unchanged."""
    # One set operation rather than a search of the address for each special: this
    # runs for the sender and every recipient of every message.
    return (address.isascii() and address.isprintable() and "@" in address
            and _SPECIALS.isdisjoint(address))


def _crlf_only(payload: bytes) -> bool:
    """Return True when every CR of ``payload`` starts a CRLF and every LF ends one.

    Two vectorised comparisons, then the CR mask against the LF mask shifted by one
    byte: ~18 us for a 31 KB digest, against ~70 us for counting CRLF, LF and CR with
    bytes.count (three byte-at-a-time passes), once per message sent. numpy is
    imported here, not with the module: every command imports the mail package, and
    most never send.
    """
    if not payload:
        return True
    import numpy as np

    octets = np.frombuffer(payload, dtype=np.uint8)
    cr = octets == 13
    lf = octets == 10
    return not cr[-1] and not lf[0] and bool(np.array_equal(cr[:-1], lf[1:]))


def _dot_stuff(payload: bytes) -> bytes:
    # RFC 5321 4.5.2: a line starting with "." gets another "."; the payload ends
    # with CRLF "." CRLF. Line endings are normalized to CRLF first. Bytes methods
    # rather than regular expressions: a digest is ~30 KB and this runs once per message.
    if not _crlf_only(payload):
        # Some bare CR or LF: make every line ending LF, then every LF a CRLF.
        payload = payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        payload = payload.replace(b"\n", b"\r\n")
    data = _stuff(payload)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _stuff(payload: bytes) -> bytes:
    """Give each line of ``payload`` (CRLF lines) that starts with "." another "."."""
    data = payload.replace(b"\r\n.", b"\r\n..")
    return b"." + data if data.startswith(b".") else data


def dot_stuffed(wire: bytes) -> bytes | None:
    """Return a message's bytes as DATA carries them, less the final "." line.

    For ``finish_data``: each line that starts with "." gets another (RFC 5321 4.5.2);
    models.dot_unstuffed gives ``wire`` back. None unless every line of ``wire``
    ends in CRLF and it holds no other CR or LF (what message_to_bytes writes): the
    line endings ``send_wire`` would mend are not the message's, and the bytes given
    back must be exactly the message's.
    """
    if not wire.endswith(b"\r\n") or not _crlf_only(wire):
        return None
    return _stuff(wire)


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return " ".join(reply.split())
