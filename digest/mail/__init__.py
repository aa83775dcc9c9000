"""Build RFC-correct MIME messages and deliver them over SMTP or into a local Maildir.

``message`` builds messages, ``smtp`` and ``maildir`` deliver them; this module names
the ``Transport`` they share and picks one from the configuration. See ``smtp`` for how
each SMTP reply class maps to an error.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from digest.config import SmtpSettings
from digest.mail.maildir import MaildirTransport, remove_messages_to
from digest.mail.message import (
    build_message,
    envelope,
    header_text,
    header_url,
    make_address,
    make_message_id,
    message_to_bytes,
    with_date,
)
from digest.mail.smtp import SendError, SmtpTransport, Stage, TlsRequiredError, dot_stuffed

__all__ = [
    "MaildirTransport",
    "SendError",
    "SmtpTransport",
    "Stage",
    "TlsRequiredError",
    "Transport",
    "build_message",
    "dot_stuffed",
    "envelope",
    "header_text",
    "header_url",
    "make_address",
    "make_message_id",
    "message_to_bytes",
    "open_transport",
    "remove_messages_to",
    "with_date",
]


class Transport(Protocol):
    """Something that delivers messages; a context manager that closes what it opened."""

    def send(self, message: EmailMessage) -> str:
        """Deliver one message and return the server's reply text, e.g. "250 OK"."""
        ...

    def send_wire(self, sender: str, recipients: Sequence[str], wire: bytes) -> str:
        """Deliver a message already serialized (CRLF lines) to these envelope addresses."""
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
