"""An SMTP sink in its own process: accept every message, count it, discard it.

Run ``python bench/sink.py [--port 0] [--record FILE]``. It prints ``ready PORT`` on one
line once it listens; on SIGTERM (or SIGINT) it prints one JSON line with the counts
and exits. With ``--record``, every accepted message appends its recipients to FILE
(one line each, flushed), so a test can count what each address received even after
a sender was killed.

A separate process so that the sink's own CPU time is not the sender's: the benchmark
measures the client side, not an SMTP server sharing its interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections import Counter
from typing import IO, Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class CountingHandler:
    """Count messages, recipients and bytes; keep nothing else."""

    def __init__(self, record: IO[str] | None) -> None:
        self.messages = 0
        self.bytes = 0
        self.recipients: Counter[str] = Counter()
        self.record = record

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages += 1
        self.bytes += len(envelope.original_content or b"")
        for rcpt in envelope.rcpt_tos:
            self.recipients[rcpt.lower()] += 1
        if self.record is not None:
            self.record.write("".join(f"{r.lower()}\n" for r in envelope.rcpt_tos))
            self.record.flush()
        return "250 OK: discarded"

    def stats(self) -> dict[str, Any]:
        """Return the counts as a JSON-ready dict."""
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "recipients": len(self.recipients),
            "duplicates": sum(n - 1 for n in self.recipients.values() if n > 1),
        }


async def serve(host: str, port: int, record: IO[str] | None) -> dict[str, Any]:
    """Serve until SIGTERM/SIGINT; return the counts."""
    handler = CountingHandler(record)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.local", data_size_limit=0), host, port
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"ready {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    return handler.stats()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve, print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", default=None, help="append each recipient to this file")
    args = parser.parse_args(argv)
    record = open(args.record, "a", encoding="utf-8") if args.record else None  # noqa: SIM115
    try:
        stats = asyncio.run(serve(args.host, args.port, record))
    finally:
        if record is not None:
            record.close()
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
