"""Kill `digest run` with SIGKILL at random points, rerun, and count what the server got.

Every run is its own OS process running the real CLI (`digest run --date D`), killed
with SIGKILL at a seeded random moment: during start-up, ranking, planning, rendering,
or while a message is on the wire. After the kills, clean runs finish the work. Then
every subscriber must have received exactly one digest per day, except rows the ledger
calls ``unknown`` (killed between the payload and the 250), which got at most one.

The runs are forked from a pre-imported parent (the session's ``zygote``, see
tests/fixtures/zygote.py); each child still opens its own database connections, takes
the run lock itself and dies alone. One final run goes through `python -m digest` to
prove the real entry point does the same.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.config import SAMPLE_BATCH
from digest.ingest.jsonl import load_jsonl
from digest.models import Profile
from digest.store import open_store
from tests.fixtures.config import SECRET, make_config
from tests.fixtures.smtp_server import SmtpTestServer
from tests.fixtures.zygote import Zygote, clean_env

# A batch every third day, so that each digest day ranks its own papers (~11 each).
# Enough days that the kills land on days with work to do: a day takes kills until a
# run finishes it (2-3 kills a day here), then the runs move to the next day.
DAYS = [date(2026, 5, 25) + timedelta(days=3 * n) for n in range(20)]
SUBSCRIBERS = 30
KILLS = 24
SEED = 20260525
DATA_DELAY = 0.01  # seconds the server sits on each accepted message before its 250


def alive(pid: int) -> bool:
    """Return True while a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def slow_down_data(server: SmtpTestServer, delay: float) -> None:
    """Make the server record each message, then wait ``delay`` before replying 250."""
    original = server.handler.handle_DATA

    async def handle_DATA(smtp: Any, session: Any, envelope: Any) -> str:
        status = await original(smtp, session, envelope)
        await asyncio.sleep(delay)
        return status

    # aiosmtpd looks handle_* up on the handler when each connection starts.
    server.handler.handle_DATA = handle_DATA  # type: ignore[method-assign]


def digest_settings(var_dir: Path, smtp_url: str) -> dict[str, str]:
    """Return the DIGEST_* settings of the test's installation."""
    return {
        "DIGEST_VAR_DIR": str(var_dir),
        "DIGEST_SECRET_KEY": SECRET,
        "DIGEST_SOURCES": f"jsonl:{SAMPLE_BATCH}",
        "DIGEST_FROM": "Research Digest <digest@example.org>",
        "DIGEST_BASE_URL": "https://digest.example.org",
        "DIGEST_SMTP_URL": smtp_url,
    }


def write_env_file(folder: Path, settings: dict[str, str]) -> Path:
    """Write the settings as a .env file for `digest --env-file`; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "digest.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), encoding="utf-8")
    return path


def seed_database(var_dir: Path, days: list[date], subscribers: int) -> dict[str, int]:
    """Store a batch for each day and the subscribers; return {email: id}."""
    config = make_config(var_dir)
    store = open_store(config.database_url)
    papers = load_jsonl(SAMPLE_BATCH, source="sample")
    created = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC) - timedelta(days=2)
    for n, day in enumerate(days):
        store.save_papers(papers[n :: len(days)], batch_day=day, now=created)
    ids = {}
    interests = ("language model agents", "diffusion models for video", "coding theory")
    for n in range(subscribers):
        email = f"reader{n:02d}@example.org"
        profile = Profile(interests=interests[n % len(interests)])
        # "note": a digest goes out even when nothing matched, so everyone gets one.
        sub = store.add_subscriber(email, profile, now=created, max_papers=3, empty_digest="note")
        ids[email] = sub.id
    store.close()
    return ids


def received_by_day(server: SmtpTestServer) -> Counter[tuple[str, date]]:
    """Count accepted messages per (recipient, digest day), the day read from Message-ID."""
    counts: Counter[tuple[str, date]] = Counter()
    for message in server.messages:
        found = re.search(r"\.(\d{4}-\d{2}-\d{2})\.", str(message.message["Message-ID"]))
        assert found, message.message["Message-ID"]
        for rcpt in message.rcpt_tos:
            counts[(rcpt.lower(), date.fromisoformat(found.group(1)))] += 1
    return counts


def day_done(database_url: str, day: date, subscribers: int) -> bool:
    """Return True when every subscriber has a row for the day and none is left to send."""
    store = open_store(database_url)
    try:
        counts = store.delivery_counts(day)
    finally:
        store.close()
    pending = sum(counts.get(s, 0) for s in ("planned", "temp_failed", "sending"))
    return sum(counts.values()) == subscribers and pending == 0


def kill_at_random(
    pid: int, rng: random.Random, server: SmtpTestServer, connections: int
) -> str:
    """Sleep to a seeded random point of a run, SIGKILL it there; describe the point."""
    if rng.random() < 0.25:
        # Anywhere from start-up through ranking and planning.
        delay = rng.uniform(0.0, 1.2)
        point = f"{delay:.2f}s after start"
    else:
        # Somewhere in the send phase: after this run opened its SMTP connection.
        give_up = time.monotonic() + 60
        while server.connections == connections and alive(pid):
            assert time.monotonic() < give_up, "the run never connected"
            time.sleep(0.002)
        delay = rng.uniform(0.0, 0.25)
        point = f"{delay:.2f}s into sending"
    time.sleep(delay)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    return point


def expected_code(output: str) -> int:
    """Return the exit code a finished run must give: 1 when it reports digests of
    unknown outcome (rows a killed run left sending, found by this one), else 0."""
    found = re.search(r"unknown (\d+)", output)
    assert found, output
    return 1 if int(found.group(1)) else 0


# ~30 s; the limit leaves room for the case where the days run out (see the loop).
@pytest.mark.timeout(900)
def test_sigkill_at_random_points_then_rerun_delivers_exactly_once_outside_unknown(
    tmp_path: Path, smtp_server: SmtpTestServer, zygote: Zygote
) -> None:
    var_dir = tmp_path / "var"
    ids = seed_database(var_dir, DAYS, SUBSCRIBERS)
    database_url = make_config(var_dir).database_url
    slow_down_data(smtp_server, DATA_DELAY)
    url = f"smtp://127.0.0.1:{smtp_server.port}?starttls=off&timeout=10"
    settings = digest_settings(var_dir, url)
    env_file = write_env_file(tmp_path / "runs", settings)
    rng = random.Random(SEED)
    kills: list[str] = []
    finished = 0
    days = list(DAYS)
    used: list[date] = []  # the days runs were started for, in order
    while len(kills) < KILLS - 1:
        day = days[0]
        if day not in used:
            used.append(day)
        args = ("run", "--date", day.isoformat(), "--no-ingest")
        connections = smtp_server.connections
        pid, log = zygote.spawn(env_file, *args)
        point = kill_at_random(pid, rng, smtp_server, connections)
        outcome = zygote.wait(pid, log)
        if outcome.killed:
            kills.append(f"{day.isoformat()} {point}")
        else:
            finished += 1
            assert outcome.code == expected_code(outcome.output), outcome.output
        # A finished day gives way to the next one, keeping one for `python -m digest`
        # below. Runs of a finished day have nothing to send and end before almost any
        # kill point (only ~2% of them are killed): should the days ever run out, the
        # loop still ends, just slowly (it did so with 5 days: 250 s, 200+ runs).
        if len(days) > 2 and day_done(database_url, day, SUBSCRIBERS):
            days.pop(0)
    # Clean runs finish whatever the kills left planned, before the next day is run: a
    # digest still planned when the next day's is made would be superseded by it.
    for day in used:
        clean = zygote.run(env_file, "run", "--date", day.isoformat(), "--no-ingest")
        assert clean.code == expected_code(clean.output) and not clean.killed, clean.output
    # The next day through the real entry point, `python -m digest`, killed once too;
    # then a clean run finishes it. (The days after it are never run.)
    last = DAYS[DAYS.index(used[-1]) + 1]
    used.append(last)
    connections = smtp_server.connections
    real = subprocess.Popen(
        [sys.executable, "-m", "digest", "run", "--date", last.isoformat(), "--no-ingest"],
        env={**clean_env(), **settings},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    point = kill_at_random(real.pid, rng, smtp_server, connections)
    output, _ = real.communicate(timeout=120)
    if real.returncode == -signal.SIGKILL:
        kills.append(f"{last.isoformat()} {point} (python -m digest)")
    else:
        assert real.returncode == expected_code(output), output
        finished += 1
    clean = zygote.run(env_file, "run", "--date", last.isoformat(), "--no-ingest")
    assert clean.code == expected_code(clean.output) and not clean.killed, clean.output

    store = open_store(database_url)
    try:
        ledger = {day: store.deliveries_for_day(day) for day in used}
    finally:
        store.close()
    counts = received_by_day(smtp_server)
    assert {day for _, day in counts} <= set(used)
    unknown: list[tuple[str, date, int]] = []
    for day in used:
        for email, sub_id in ids.items():
            row = ledger[day].get(sub_id)
            assert row is not None, (email, day)
            got = counts[(email, day)]
            if row.status == "unknown":
                unknown.append((email, day, got))
                assert got <= 1, (email, day, got)  # maybe delivered, never twice
            else:
                assert row.status == "sent", (email, day, row.status, row.error)
                assert got == 1, (email, day, got)  # no loss, no duplicate
    assert len(kills) >= 20, (kills, finished)
    print(
        f"\ncrash test: {len(kills)} runs killed, {finished} finished before their kill point; "
        f"{sum(counts.values())} messages received for {len(used) * SUBSCRIBERS} digests "
        f"of {len(used)} days; "
        f"{len(unknown)} unknown rows ({sum(1 for *_, got in unknown if got)} of them received)"
        f"\nkill points: {'; '.join(kills)}"
    )


@pytest.mark.timeout(300)
def test_sigterm_while_sending_finishes_the_messages_in_flight_and_loses_nothing(
    tmp_path: Path, smtp_server: SmtpTestServer, zygote: Zygote
) -> None:
    # systemd stopping or restarting the service sends SIGTERM. Its default action killed
    # the run mid-message: the message in flight (and the one before it, recorded with
    # the next start) became "unknown", never resent: a digest lost at each restart.
    var_dir = tmp_path / "var"
    day, count = DAYS[0], 8
    ids = seed_database(var_dir, [day], count)
    slow_down_data(smtp_server, 0.5)  # each 250 comes half a second after the message
    url = f"smtp://127.0.0.1:{smtp_server.port}?starttls=off&timeout=10"
    env_file = write_env_file(tmp_path / "runs", digest_settings(var_dir, url))
    args = ("run", "--date", day.isoformat(), "--no-ingest")
    pid, log = zygote.spawn(env_file, *args)
    deadline = time.monotonic() + 120
    while len(smtp_server.messages) < 2:  # the second is on the server, its 250 not yet
        assert time.monotonic() < deadline, log.read_text(encoding="utf-8")
        time.sleep(0.01)
    os.kill(pid, signal.SIGTERM)
    outcome = zygote.wait(pid, log)
    assert not outcome.killed and outcome.code == 75, outcome.output
    assert "SIGTERM" in outcome.output
    store = open_store(make_config(var_dir).database_url)
    try:
        statuses = Counter(r.status for r in store.deliveries_for_day(day).values())
    finally:
        store.close()
    received = len(smtp_server.messages)
    assert statuses["sent"] == received >= 2, statuses  # the one in flight is recorded
    assert statuses["planned"] == count - received > 0, statuses
    assert statuses["unknown"] == statuses["sending"] == 0, statuses
    again = zygote.run(env_file, *args)
    assert not again.killed and again.code == 0, again.output
    assert received_by_day(smtp_server) == Counter({(email, day): 1 for email in ids})


def test_leases_of_a_dead_worker_on_this_host_are_released(tmp_path: Path) -> None:
    import socket

    var_dir = tmp_path / "var"
    ids = seed_database(var_dir, DAYS[:1], 3)
    store = open_store(make_config(var_dir).database_url)
    now = datetime(2026, 5, 25, 9, 0, tzinfo=UTC)
    for sub_id in ids.values():
        store.plan_delivery(sub_id, DAYS[0], picks=[], message_id=f"<{sub_id}@t>", now=now)
    dead_pid = subprocess.Popen(["true"])  # a pid that has exited and been reaped
    dead_pid.wait()
    host = socket.gethostname()
    owners = {
        f"{host}:{dead_pid.pid}:1:0": 1,  # killed: its lease must go
        f"{host}:{os.getpid()}:1:0": 1,  # alive: keeps its lease
        f"elsewhere.example:{dead_pid.pid}:1:0": 1,  # another machine: left to the lease
    }
    for worker, limit in owners.items():
        store.claim_deliveries(worker, now=now, lease=timedelta(minutes=15), limit=limit,
                               max_attempts=5)
    assert store.release_dead_claims() == 1
    again = store.claim_deliveries("next:1:1:0", now=now, lease=timedelta(minutes=15),
                                   limit=10, max_attempts=5)
    store.close()
    assert len(again) == 1  # exactly the dead worker's row is free again
