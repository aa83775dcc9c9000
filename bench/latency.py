"""Time one SMTP connection to a relay some milliseconds away, pipelined or not.

    python bench/latency.py [--latency-ms 0,5,20] [--messages 200]

For each latency, bench/sink.py serves every read that late (what a relay that far away
costs a round trip), once offering PIPELINING and once not, and the delivery transport
(digest.mail.SmtpTransport) sends ``--messages`` messages of ~31 KB (a digest's size)
over one connection: one by one, pipelined (each message's MAIL, RCPT and DATA in one
write: two round trips), and pipelined with each next envelope written with the message
before it (``finish_data(then=...)``, as the send phase does: one round trip). Prints
messages a second for each, and milliseconds a message.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from run import sink_process  # noqa: E402

from digest.config import SmtpSettings  # noqa: E402
from digest.mail import SmtpTransport  # noqa: E402

LINE = b"A line of a digest's text, about as long as the lines of the real ones are.\r\n"
PAYLOAD = b"Subject: latency\r\n\r\n" + LINE * 400  # ~31 KB


def rate(latency_ms: float, pipelining: bool, messages: int, *,
         ahead: bool = False) -> tuple[float, int]:
    """Return (messages a second, messages sent pipelined) over one connection;
    ``ahead``: each next envelope written with the message before (send phase's way)."""
    options = ["--latency-ms", str(latency_ms), *([] if pipelining else ["--no-pipelining"])]
    with sink_process(None, *options) as (port, _):
        settings = SmtpSettings("127.0.0.1", port, "none", timeout=60)
        with SmtpTransport(settings) as transport:
            transport.open()
            started = time.perf_counter()
            sender = "digest@bench.example"
            for n in range(messages):
                if not ahead:
                    transport.send_wire(sender, [f"r{n}@bench.example"], PAYLOAD)
                    continue
                transport.open_data(sender, [f"r{n}@bench.example"])
                following = (sender, [f"r{n + 1}@bench.example"]) if n + 1 < messages else None
                transport.finish_data(PAYLOAD + b".\r\n", then=following)
            assert transport.ahead == (messages - 1 if ahead else 0)
            seconds = time.perf_counter() - started
            return messages / seconds, transport.pipelined


def main(argv: Sequence[str] | None = None) -> int:
    """Measure each latency with and without PIPELINING; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", default="0,5,20", help="comma-separated latencies")
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"{'latency ms':>10}  {'one by one msg/s':>16}  {'pipelined msg/s':>15}  "
          f"{'envelope ahead msg/s':>20}  {'ms a message':>22}")
    for latency in (float(x) for x in args.latency_ms.split(",") if x.strip()):
        plain, none = rate(latency, False, args.messages)
        piped, count = rate(latency, True, args.messages)
        ahead, _ = rate(latency, True, args.messages, ahead=True)
        assert none == 0 and count == args.messages
        print(f"{latency:>10g}  {plain:>16.1f}  {piped:>15.1f}  {ahead:>20.1f}  "
              f"{1000 / plain:>6.1f} -> {1000 / piped:>5.1f} -> {1000 / ahead:>5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
