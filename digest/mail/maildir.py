"""Deliver into a local Maildir, the embedded default when no SMTP URL is set."""

from __future__ import annotations

import contextlib
import mailbox
from collections.abc import Sequence
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from digest.addresses import ascii_domain
from digest.errors import DeliveryError
from digest.mail.message import envelope, message_to_bytes
from digest.mail.smtp import SendError


class MaildirTransport:
    """Deliver into a local Maildir (new/), readable by mutt, Thunderbird or mailbox.Maildir."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._box: mailbox.Maildir | None = None

    def send(self, message: EmailMessage) -> str:
        """Write the message into new/ and return a reply-like line naming its key."""
        sender, recipients = envelope(message)  # as SMTP: a message without recipient fails
        return self.send_wire(sender, recipients, message_to_bytes(message))

    def send_wire(self, sender: str, recipients: Sequence[str], wire: bytes) -> str:
        """Write serialized bytes (CRLF lines) into new/; return a line naming the key."""
        if not recipients:
            raise DeliveryError("the message has no recipient", "set a To header",
                                permanent=True)
        try:
            if self._box is None:
                # mailbox.Maildir(create=True) skips cur/new/tmp when the folder already
                # exists (say, made empty by `digest init`), so make them here.
                for sub in ("cur", "new", "tmp"):
                    (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
                self._box = mailbox.Maildir(self.path, create=False)
            # Files in a Maildir use the local line ending, not the wire's CRLF.
            key = self._box.add(wire.replace(b"\r\n", b"\n"))
        except OSError as err:
            # A full disk, a folder of another user, a file where a folder belongs:
            # Maildir.add writes into tmp/ and links into new/ last, so nothing was
            # delivered. Raised as SMTP's unreachable server is (stage "connect"): the
            # row goes back unspent and the run stops, rather than a traceback that
            # left the row "sending", to become "unknown" and never be resent.
            self._box = None
            raise SendError(
                f"cannot write into the Maildir {self.path}: {err}",
                "nothing was delivered; make the folder (with its cur/, new/ and tmp/) "
                "writable by this user and check the free space, then run again",
                permanent=False,
                stage="connect",
            ) from err
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


# The most of a message's start read for its headers: ours are ~1 KB.
HEADER_LIMIT = 64 * 1024


def remove_messages_to(path: Path, address: str) -> int:
    """Delete the messages in a Maildir sent to ``address``; return how many.

    Reads only each message's headers (To, Cc): a deletion on the web page waits for
    it. A message to several recipients goes too: it holds this one's address.
    """
    local, _, domain = address.strip().lower().rpartition("@")
    wanted = {f"{local}@{domain}"}
    with contextlib.suppress(UnicodeError, ValueError):  # a domain IDNA refuses
        wanted.add(f"{local}@{ascii_domain(domain)}")  # as the To header spells it
    removed = 0
    parser = BytesHeaderParser(policy=compat32)
    for folder in ("new", "cur"):
        directory = Path(path) / folder
        if not directory.is_dir():
            continue
        for file in directory.iterdir():
            try:
                with file.open("rb") as handle:
                    head = _read_headers(handle)
            except OSError:
                continue  # a file gone meanwhile (read by a mail reader) or unreadable
            headers = parser.parsebytes(head)
            fields = [str(v) for name in ("To", "Cc") for v in headers.get_all(name, [])]
            if wanted & {addr.lower() for _name, addr in getaddresses(fields)}:
                file.unlink(missing_ok=True)
                removed += 1
    return removed


def _read_headers(handle: BinaryIO) -> bytes:
    """Return the headers at the start of a message (up to its first empty line)."""
    start = handle.read(4096)
    if b"\n\n" not in start:
        start += handle.read(HEADER_LIMIT - len(start))
    end = start.find(b"\n\n")
    return start if end < 0 else start[: end + 1]
