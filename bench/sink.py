"""An SMTP sink in its own process: accept every message, count it, discard it.

Run ``python bench/sink.py [--port 0] [--record FILE] [--latency-ms MS]
[--no-pipelining]``. It prints ``ready PORT`` on one line once it listens; on SIGTERM
(or SIGINT) it prints one JSON line with the counts and exits. With ``--record``, every
accepted message appends its recipients to FILE (one line each, flushed before the 250
reply), so a test can count what each address received even after a sender was killed.
``--latency-ms`` serves every read that late, a relay that far away (bench/latency.py);
``--no-pipelining`` leaves PIPELINING out of the EHLO reply.

A separate process so that the sink's own CPU time is not the sender's, and a lean one
so that it is not the bottleneck the benchmark measures: the server speaks the SMTP a
client needs (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, VRFY, QUIT; it offers
PIPELINING, as relays do, and answers the commands that arrived together in order) on
an asyncio protocol and finds the end of DATA with one ``bytes.find`` over what
arrived, instead of handling the message line by line. On 31 KB digests bench/run.py
measures ~0.6 ms of CPU a message (user + system time, read from /proc), where
aiosmtpd's handler path cost ~2.5 ms, four times the smtplib client's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections import Counter
from typing import IO, Any

END_OF_DATA = b"\r\n.\r\n"
MAX_LINE = 4096  # a command line longer than this is refused (RFC 5321 allows 512)


class Counts:
    """Count messages, recipients and bytes, and when each arrived; keep nothing else."""

    def __init__(self, record: IO[str] | None) -> None:
        self.messages = 0
        self.bytes = 0
        self.recipients: Counter[str] = Counter()
        self.record = record
        self.arrivals: list[float] = []  # time.monotonic() as each message was accepted

    def accept(self, recipients: list[str], size: int) -> None:
        """Count one accepted message (and record its recipients, flushed)."""
        self.messages += 1
        self.bytes += size
        self.arrivals.append(time.monotonic())
        for rcpt in recipients:
            self.recipients[rcpt] += 1
        if self.record is not None:
            self.record.write("".join(f"{r}\n" for r in recipients))
            self.record.flush()

    def stats(self) -> dict[str, Any]:
        """Return the counts as a JSON-ready dict."""
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "recipients": len(self.recipients),
            "duplicates": sum(n - 1 for n in self.recipients.values() if n > 1),
            "arrivals": [round(t, 6) for t in self.arrivals],
        }


def _address(argument: bytes) -> str | None:
    """Return the address in ``FROM:<a>``/``TO:<a>`` (lowercased), or None if malformed."""
    start, end = argument.find(b"<"), argument.find(b">")
    if start < 0 or end < start:
        return None
    return argument[start + 1 : end].decode("utf-8", "replace").strip().lower()


class SinkProtocol(asyncio.Protocol):
    """One SMTP session: commands line by line, DATA in bulk."""

    def __init__(self, counts: Counts, *, latency: float = 0.0, pipelining: bool = True) -> None:
        self.counts = counts
        self.latency = latency  # seconds each read waits before it is served
        self.pipelining = pipelining
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.in_data = False
        self.scanned = 0  # DATA bytes already searched for the terminator
        self.sender: str | None = None
        self.recipients: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 sink.local ESMTP ready\r\n")

    def data_received(self, data: bytes) -> None:
        if self.latency > 0:
            # A relay this far away: what the client sent is seen that much later (in
            # order: every read waits the same), so each round trip costs the latency.
            asyncio.get_running_loop().call_later(self.latency, self._serve, data)
        else:
            self._serve(data)

    def _serve(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            if self.in_data:
                if not self._data_step():
                    return
            elif not self._command_step():
                return

    def _data_step(self) -> bool:
        # The body may be empty: then the terminator is ".\r\n" right after DATA's 354.
        if self.buffer.startswith(b".\r\n"):
            end, skip = 0, 3
        else:
            end = self.buffer.find(END_OF_DATA, max(0, self.scanned - len(END_OF_DATA)))
            if end < 0:
                self.scanned = len(self.buffer)
                return False
            end, skip = end + 2, end + len(END_OF_DATA)
        self.counts.accept(self.recipients, end)
        del self.buffer[:skip]
        self.in_data, self.scanned = False, 0
        self.sender, self.recipients = None, []
        self._reply(b"250 OK: discarded")
        return True

    def _command_step(self) -> bool:
        newline = self.buffer.find(b"\n")
        if newline < 0:
            if len(self.buffer) > MAX_LINE:
                self._reply(b"500 Line too long")
                self._close()
            return False
        line = bytes(self.buffer[:newline]).rstrip(b"\r")
        del self.buffer[: newline + 1]
        verb, _, argument = line.partition(b" ")
        verb = verb.upper()
        if verb == b"EHLO":
            offered = b"250-PIPELINING\r\n" if self.pipelining else b""
            self._reply(b"250-sink.local\r\n" + offered + b"250-8BITMIME\r\n250-SMTPUTF8"
                        b"\r\n250 HELP")
        elif verb == b"HELO":
            self._reply(b"250 sink.local")
        elif verb == b"MAIL":
            self.sender = _address(argument)
            self.recipients = []
            ok = self.sender is not None
            self._reply(b"250 OK" if ok else b"501 Syntax: MAIL FROM:<address>")
        elif verb == b"RCPT":
            address = _address(argument)
            if self.sender is None:
                self._reply(b"503 Error: need MAIL command")
            elif not address:
                self._reply(b"501 Syntax: RCPT TO:<address>")
            else:
                self.recipients.append(address)
                self._reply(b"250 OK")
        elif verb == b"DATA":
            if not self.recipients:
                self._reply(b"503 Error: need RCPT command")
            else:
                self.in_data, self.scanned = True, 0
                self._reply(b"354 End data with <CR><LF>.<CR><LF>")
        elif verb == b"RSET":
            self.sender, self.recipients = None, []
            self._reply(b"250 OK")
        elif verb == b"NOOP":
            self._reply(b"250 OK")
        elif verb == b"VRFY":
            self._reply(b"252 Cannot VRFY user")
        elif verb == b"QUIT":
            self._reply(b"221 Bye")
            self._close()
            return False
        else:
            self._reply(b"500 Error: command not recognized")
        return True

    def _reply(self, text: bytes) -> None:
        if self.transport is not None:
            self.transport.write(text + b"\r\n")

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(
    host: str, port: int, record: IO[str] | None, *, latency: float = 0.0,
    pipelining: bool = True,
) -> dict[str, Any]:
    """Serve until SIGTERM/SIGINT; return the counts."""
    counts = Counts(record)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SinkProtocol(counts, latency=latency, pipelining=pipelining), host, port)
    bound = server.sockets[0].getsockname()[1]
    print(f"ready {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    return counts.stats()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve, print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", default=None, help="append each recipient to this file")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="serve each read this late, as a relay that far away would")
    parser.add_argument("--no-pipelining", action="store_true",
                        help="do not offer PIPELINING")
    args = parser.parse_args(argv)
    record = open(args.record, "a", encoding="utf-8") if args.record else None  # noqa: SIM115
    try:
        stats = asyncio.run(serve(args.host, args.port, record, latency=args.latency_ms / 1000,
                                  pipelining=not args.no_pipelining))
    finally:
        if record is not None:
            record.close()
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
