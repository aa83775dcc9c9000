"""The benchmark's SMTP sink (bench/sink.py) speaks enough SMTP for smtplib, in its own process."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from digest.config import SmtpSettings
from digest.mail import SmtpTransport

ROOT = Path(__file__).resolve().parent.parent


def test_the_sink_accepts_counts_and_records_what_smtplib_sends(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink.py"), "--record", str(record)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert sink.stdout is not None
        ready = sink.stdout.readline().split()
        assert ready[0] == "ready"
        port = int(ready[1])
        # Lines starting with a dot are stuffed by smtplib; the terminator must not be
        # found inside them. A body split across many reads (~300 KB) must arrive whole.
        dotted = b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nend\r\n"
        big = b"Subject: big\r\n\r\n" + b"a" * 76 * 4000 + b"\r\n"
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as conn:
            code, _ = conn.ehlo()
            assert code == 250 and conn.has_extn("8bitmime")
            assert conn.sendmail("d@x.example", ["A@Y.example"], dotted) == {}
            assert conn.sendmail("d@x.example", ["b@y.example", "c@y.example"], big) == {}
            conn.rset()
            assert conn.noop()[0] == 250
            # DATA without a recipient is refused, and the session goes on.
            conn.mail("d@x.example")
            assert conn.docmd("DATA")[0] == 503
            again = b"Subject: again\r\n\r\nx\r\n"
            assert conn.sendmail("d@x.example", ["a@y.example"], again) == {}
            assert conn.has_extn("pipelining")
        # The send phase's transport pipelines MAIL, RCPT and DATA where it is offered.
        with SmtpTransport(SmtpSettings("127.0.0.1", port, "none", timeout=30)) as transport:
            for _ in range(2):
                assert transport.send_wire("d@x.example", ["p@y.example"],
                                           b"Subject: p\r\n\r\n.x\r\n").startswith("250")
            assert transport.pipelined == 2
        assert record.read_text().splitlines() == [
            "a@y.example", "b@y.example", "c@y.example", "a@y.example", "p@y.example",
            "p@y.example"]
    finally:
        sink.terminate()
        out, _ = sink.communicate(timeout=30)
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["messages"] == 5
    assert stats["recipients"] == 4 and stats["duplicates"] == 2
    assert stats["bytes"] > 76 * 4000


def test_a_command_line_without_an_end_is_refused(tmp_path: Path) -> None:
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline().split()[1])
        conn = smtplib.SMTP("127.0.0.1", port, timeout=30)
        conn.send(b"X" * 10000)
        code, _ = conn.getreply()
        assert code == 500
        with pytest.raises(smtplib.SMTPServerDisconnected):
            conn.getreply()  # and the sink hung up
        conn.close()
    finally:
        sink.terminate()
        sink.communicate(timeout=30)


@pytest.mark.parametrize("pipelining", [True, False])
def test_the_sink_plays_a_relay_far_away_with_or_without_pipelining(pipelining: bool) -> None:
    # bench/latency.py: every read is served 50 ms late, so each round trip costs at
    # least that; pipelined, a message is two round trips (envelope, then the message),
    # one by one four (MAIL, RCPT, DATA, the message). Lower bounds only: a busy box
    # makes them longer, never shorter.
    command = [sys.executable, str(ROOT / "bench" / "sink.py"), "--latency-ms", "50"]
    sink = subprocess.Popen(command + ([] if pipelining else ["--no-pipelining"]),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline().split()[1])
        with SmtpTransport(SmtpSettings("127.0.0.1", port, "none", timeout=30)) as transport:
            transport.open()
            started = time.perf_counter()
            for _ in range(2):
                transport.send_wire("d@x.example", ["r@y.example"], b"Subject: far\r\n\r\nx\r\n")
            seconds = time.perf_counter() - started
            assert transport.pipelined == (2 if pipelining else 0)
        assert seconds >= 2 * (2 if pipelining else 4) * 0.050
    finally:
        sink.terminate()
        out, _ = sink.communicate(timeout=30)
    assert json.loads(out.strip().splitlines()[-1])["messages"] == 2
