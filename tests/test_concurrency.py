"""Two `digest run` processes at once: one sends, the other exits 0 saying so; no duplicate.

The processes are forked from the session's pre-imported parent (tests/fixtures/zygote.py);
each takes the run lock itself, exactly like two cron firings that overlap.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from digest.store import open_store
from tests.fixtures.config import make_config
from tests.fixtures.smtp_server import SmtpTestServer
from tests.fixtures.zygote import Zygote
from tests.test_crash import alive, digest_settings, seed_database, write_env_file

DAY = date(2026, 5, 25)
SUBSCRIBERS = 12
LOCKED = "another digest run holds the lock"


def received(server: SmtpTestServer) -> Counter[str]:
    return Counter(r.lower() for m in server.messages for r in m.rcpt_tos)


def hold_first_data(server: SmtpTestServer) -> tuple[threading.Event, threading.Event]:
    """Make the server sit on the first message's 250 until released.

    Return (reached, release): ``reached`` is set once the first message arrived (its
    sender is mid-send and holds the run lock); setting ``release`` lets it go on.
    """
    reached, release = threading.Event(), threading.Event()
    original = server.handler.handle_DATA

    async def handle_DATA(smtp: Any, session: Any, envelope: Any) -> str:
        status = await original(smtp, session, envelope)
        if not reached.is_set():
            reached.set()
            while not release.is_set():  # poll: the event belongs to the test's thread
                await asyncio.sleep(0.01)
        return status

    server.handler.handle_DATA = handle_DATA  # type: ignore[method-assign]
    return reached, release


def setup_runs(tmp_path: Path, server: SmtpTestServer) -> tuple[Path, dict[str, int], str]:
    """Seed an installation; return its env file, {email: id} and database URL."""
    var_dir = tmp_path / "var"
    ids = seed_database(var_dir, [DAY], SUBSCRIBERS)
    # A long client timeout: the first run waits at its first message while we test.
    url = f"smtp://127.0.0.1:{server.port}?starttls=off&timeout=60"
    env_file = write_env_file(tmp_path / "runs", digest_settings(var_dir, url))
    return env_file, ids, make_config(var_dir).database_url


def test_a_second_run_while_the_first_is_sending_exits_0_and_sends_nothing(
    tmp_path: Path, smtp_server: SmtpTestServer, zygote: Zygote
) -> None:
    reached, release = hold_first_data(smtp_server)
    env_file, ids, database_url = setup_runs(tmp_path, smtp_server)
    args = ("run", "--date", DAY.isoformat(), "--no-ingest")
    try:
        first = zygote.spawn(env_file, *args)
        assert reached.wait(60), "the first run never sent"
        # The first run is mid-send and holds the lock: a second one and a waiting one.
        second = zygote.run(env_file, *args)
        waiting = zygote.spawn(env_file, *args, "--wait")
        time.sleep(0.3)
        assert alive(waiting[0])  # blocked on the lock, not failed
        release.set()
        done_first = zygote.wait(*first)
        done_waiting = zygote.wait(*waiting)
    finally:
        release.set()
    assert second.code == 0 and LOCKED in second.output, second.output
    assert done_first.code == 0, done_first.output
    assert f"sent {SUBSCRIBERS}," in done_first.output
    assert done_waiting.code == 0 and "sent 0," in done_waiting.output, done_waiting.output
    assert received(smtp_server) == Counter({email: 1 for email in ids})
    store = open_store(database_url)
    try:
        assert store.delivery_counts(DAY) == {"sent": SUBSCRIBERS}
    finally:
        store.close()


def test_two_runs_started_together_send_each_digest_once(
    tmp_path: Path, smtp_server: SmtpTestServer, zygote: Zygote
) -> None:
    env_file, ids, _ = setup_runs(tmp_path, smtp_server)
    args = ("run", "--date", DAY.isoformat(), "--no-ingest")
    a = zygote.spawn(env_file, *args)
    b = zygote.spawn(env_file, *args)
    outcomes = [zygote.wait(*a), zygote.wait(*b)]
    assert [o.code for o in outcomes] == [0, 0], [o.output for o in outcomes]
    assert sum(LOCKED in o.output for o in outcomes) == 1, [o.output for o in outcomes]
    assert received(smtp_server) == Counter({email: 1 for email in ids})
