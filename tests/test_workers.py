"""Four `digest send` worker processes on PostgreSQL, one killed with SIGKILL mid-way.

`digest run --no-send` plans the day's digests; four delivery workers lease rows with
FOR UPDATE SKIP LOCKED and send them; one is killed while it holds leases; the
survivors, then one more worker after the lease ran out, finish. What the SMTP server
received, per subscriber: every digest exactly once, except at most the one row the
killed worker had in flight, which is left `unknown` (delivered at most once).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from digest.cli import main
from digest.config import SAMPLE_BATCH, config_from_values
from digest.models import Profile
from digest.store import Store, deliveries, open_store
from tests.fixtures.config import SECRET, fresh_postgres_url
from tests.fixtures.smtp_server import SmtpTestServer

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 5, 25)  # the sample batch's day
SUBSCRIBERS = 200
WORKERS = 4
LEASE_SECONDS = 2
RATE = 15  # messages per second per worker: slow enough to kill one mid-way
JOINED = datetime(2026, 5, 20, 6, 0, tzinfo=UTC)


def worker_env(var_dir: Path, database_url: str, smtp_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update({
        "DIGEST_VAR_DIR": str(var_dir),
        "DIGEST_DATABASE_URL": database_url,
        "DIGEST_SECRET_KEY": SECRET,
        "DIGEST_SOURCES": f"jsonl:{SAMPLE_BATCH}",
        "DIGEST_FROM": "Research Digest <digest@example.org>",
        "DIGEST_BASE_URL": "https://digest.example.org",
        "DIGEST_SMTP_URL": smtp_url,
        "DIGEST_SEND_RATE": str(RATE),
        "DIGEST_LEASE_SECONDS": str(LEASE_SECONDS),
    })
    return env


def digest(*args: str) -> list[str]:
    return [sys.executable, "-m", "digest", "--env-file", os.devnull, *args]


def test_four_workers_one_killed_deliver_every_digest_once(
    tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    database_url = fresh_postgres_url(f"workers:{tmp_path}")  # skips without PostgreSQL
    store = open_store(database_url)
    emails = [f"reader{n:03d}@example.org" for n in range(SUBSCRIBERS)]
    for email in emails:
        # "note": everyone gets a digest, relevant papers or not.
        store.add_subscriber(
            email, Profile(interests="language models and agents"),
            now=JOINED, max_papers=3, empty_digest="note",
        )
    env = worker_env(tmp_path / "var", database_url, smtp_server.url)

    # Planned in this process (the workers' settings, through the CLI): the workers are
    # what runs as processes here; a `python -m digest` start-up for the plan cost ~2 s.
    config = config_from_values({k: v for k, v in env.items() if k.startswith("DIGEST_")})
    planned = CliRunner().invoke(main, ["run", "--no-send", "--date", DAY.isoformat()],
                                 obj={"config": config})
    assert planned.exit_code == 0, planned.output
    assert store.delivery_counts(DAY) == {"planned": SUBSCRIBERS}
    assert smtp_server.messages == []

    workers = [
        subprocess.Popen(digest("send"), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(WORKERS)
    ]
    try:
        victim = wait_for_victim(store, workers, smtp_server)
        os.kill(victim.pid, signal.SIGKILL)
        for worker in workers:
            worker.wait(timeout=180)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.communicate()
    assert victim.returncode == -signal.SIGKILL
    for worker in workers:
        if worker is not victim:
            assert worker.returncode == 0

    # The killed worker's unstarted rows wait out its lease; then one more worker takes them.
    time.sleep(LEASE_SECONDS + 0.5)
    rerun = subprocess.run(digest("send"), env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=180, check=False)
    # It reports the killed worker's in-flight row, now unknown, with exit 1 (cron hears
    # of the decision waiting); with no row in flight at the kill, 0.
    unknown = re.search(r"unknown (\d+)", rerun.stdout)
    assert unknown, rerun.stdout + rerun.stderr
    assert rerun.returncode == (1 if int(unknown.group(1)) else 0), rerun.stdout + rerun.stderr

    counts = store.delivery_counts(DAY)
    ledger = store.deliveries_for_day(DAY)
    subscribers = store.list_subscribers()
    store.close()
    received = Counter(r.lower() for m in smtp_server.messages for r in m.rcpt_tos)
    assert set(counts) <= {"sent", "unknown"}, counts
    assert counts.get("unknown", 0) <= 1  # one connection per worker: one message in flight
    assert counts["sent"] + counts.get("unknown", 0) == SUBSCRIBERS
    for sub in subscribers:
        email, row = sub.email, ledger[sub.id]
        if row.status == "sent":
            assert received[email] == 1, (email, received[email])  # no loss, no duplicate
        else:
            assert received[email] <= 1, (email, received[email])  # maybe, never twice
    assert max(received.values()) == 1
    assert sum(received.values()) >= SUBSCRIBERS - 1


def wait_for_victim(
    store: Store, workers: list[subprocess.Popen[str]], server: SmtpTestServer
) -> subprocess.Popen[str]:
    """Return a live worker holding leases once some mail went out: the one to kill."""
    host = socket.gethostname()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(server.messages) >= SUBSCRIBERS // 5:
            holders = " ".join(lease_holders(store))
            for worker in workers:
                if worker.poll() is None and f"{host}:{worker.pid}:" in holders:
                    return worker
        time.sleep(0.05)
    raise AssertionError("no worker held leases while mail was going out")


def lease_holders(store: Store) -> set[str]:
    """Return the workers that hold leases on planned rows right now."""
    with store.begin() as conn:
        return {
            str(holder)
            for (holder,) in conn.execute(
                select(deliveries.c.claimed_by).where(
                    deliveries.c.claimed_by.is_not(None), deliveries.c.status == "planned"
                )
            )
        }
