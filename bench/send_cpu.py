"""Time one in-process sender's CPU a message over N digests planned as bench/run.py plans.

    python bench/send_cpu.py 3000                        # CPU ms a message, and by part
    python bench/send_cpu.py 3000 --profile tottime      # cProfile by CPU time instead
    python bench/send_cpu.py 3000 --planned /tmp/p.db    # plan once, then reuse the copy
    python bench/send_cpu.py 3000 --write                # and time writing each digest

The digests are planned (ranked, written into the outbox) as bench/run.py does, then sent
by ``pipeline.send_pending`` with one worker in this process to bench/sink.py in another,
and this process's CPU time (``time.process_time``) is divided by the messages sent. By
default the store's and the transport's per-chunk and per-message calls are timed each
(a few calls a message: their own cost is small); ``--profile`` runs cProfile instead,
which inflates Python-heavy parts about twice. ``--planned PATH`` copies a planned
database from PATH when it exists (and saves one there when not): planning 3,000 takes
~15 s, sending ~2 s. ``--write`` first writes every planned row's digest again in this
process, as the plan phase's writers do (``composing.write_ahead``: render, build, stuff,
pack), twice, and prints the second pass's CPU a digest and the stored bytes a message
(a copy of a database planned by an earlier release is sent as that release packed it).
The box's load moves the numbers: compare alternating runs.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import json
import pstats
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench

from digest import models, pipeline, render
from digest.config import SmtpSettings, config_from_values
from digest.ingest.jsonl import paper_from_record
from digest.mail import smtp
from digest.pipeline import composing, sending
from digest.store import Store, open_store

TIMED_STORE = ("claim_deliveries", "get_subscribers", "stored_messages", "start_sending",
               "mark_sent", "purge_outbox")
# The send loop's steps (a row's envelope and start, then its data: _begin, _finish,
# each holding some of the calls above) and the transport's two halves of a message.
TIMED_PARTS: tuple[tuple[Any, str], ...] = (
    (models.OutgoingMessage, "unpacked"), (smtp.SmtpTransport, "open_data"),
    (smtp.SmtpTransport, "finish_data"), (sending, "_prepare"), (sending, "_begin"),
    (sending, "_finish"),
)


def timed(owner: Any, name: str, totals: dict[str, float]) -> None:
    """Replace ``owner.name`` with a wrapper adding its CPU time to ``totals[name]``."""
    function: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            totals[name] += time.process_time() - started

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=3000)
    parser.add_argument("--profile", metavar="SORT", help="cProfile, sorted so (tottime...)")
    parser.add_argument("--planned", type=Path, help="a planned database to reuse or save")
    parser.add_argument("--write", action="store_true", help="time writing each digest too")
    parser.add_argument("--chunk", type=int, default=pipeline.SEND_CHUNK,
                        help="rows a claim leases (default: the send phase's)")
    args = parser.parse_args()

    records = bench.load_tail(bench.corpus_path(), bench.HISTORY + 2000)
    batch_records, history_records, day = bench.split_world(records, 2000)
    now = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=6)
    work = Path(tempfile.mkdtemp(prefix="send-cpu-"))
    try:
        batch_file = work / "batch.jsonl"
        batch_file.write_text("".join(json.dumps(r) + "\n" for r in batch_records))
        database = work / "digest.sqlite3"
        config = config_from_values({
            "DIGEST_VAR_DIR": str(work / "var"),
            "DIGEST_DATABASE_URL": f"sqlite:///{database}",
            "DIGEST_SECRET_KEY": bench.SECRET,
            "DIGEST_SOURCES": f"jsonl:{batch_file}",
            "DIGEST_FROM": "Research Digest <digest@bench.example>",
            "DIGEST_BASE_URL": "https://digest.bench.example",
        })
        config.var_dir.mkdir(parents=True)
        if args.planned and args.planned.exists():
            shutil.copy(args.planned, database)
            db = open_store(config.database_url)
        else:
            db = open_store(config.database_url)
            history = [paper_from_record(r) for r in history_records]
            bench.setup_store(db, history, args.n, now=now, seed=7)
            pipeline.ingest_sources(config, db, day=day, now=now)
            pipeline.run(config, now=now, day=day, do_ingest=False, send=False, store=db)
            if args.planned:
                source, target = sqlite3.connect(database), sqlite3.connect(args.planned)
                source.backup(target)
                target.close()
                source.close()
        print("planned", db.delivery_counts(day), flush=True)
        if args.write:
            write(config, db, day)
        send(config, db, now=now, profile=args.profile, chunk=args.chunk)
        db.close()
    finally:
        shutil.rmtree(work)


def write(config: Any, db: Store, day: Any) -> None:
    """Write every planned row's digest twice; print the second pass's CPU a digest."""
    rows = list(db.deliveries_for_day(day).values())
    subs = db.get_subscribers(row.subscriber_id for row in rows)
    papers = db.get_papers(key for row in rows for key in row.paper_keys)
    digests = [sending._digest_of(row, subs[row.subscriber_id], papers) for row in rows]
    env = render.make_environment(config.templates_dir)
    for digest in digests:  # fills the renderer's caches, as the plan's first writes do
        composing.write_ahead(config, digest, env=env)
    cpu = time.process_time()
    written = [composing.write_ahead(config, digest, env=env) for digest in digests]
    cpu = time.process_time() - cpu
    stored = sum(len(message.packed) for message in written)
    print(f"wrote {len(digests)}: {1000 * cpu / len(digests):.3f} ms CPU a digest, "
          f"{stored / len(digests) / 1024:.2f} KiB stored a message", flush=True)


def send(config: Any, db: Store, *, now: datetime, profile: str | None, chunk: int) -> None:
    """Send every planned row with one worker; print CPU a message (and by part)."""
    totals: dict[str, float] = collections.defaultdict(float)
    if not profile:
        for name in TIMED_STORE:
            timed(type(db), name, totals)
        for owner, name in TIMED_PARTS:
            timed(owner, name, totals)
    profiler = cProfile.Profile(time.process_time)
    with bench.sink_process() as (port, _stats):
        settings = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=60)
        sending_config = replace(config, smtp=settings, connections=1)
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            profiler.enable()
        report = pipeline.send_pending(sending_config, now=now, store=db, workers=1,
                                        send_chunk=chunk)
        if profile:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    sent = max(report.sent, 1)
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {name:20s} {1000 * seconds / sent:.3f} ms a message")
    print(f"sent {report.sent} in {wall:.2f} s wall, {1000 * cpu / sent:.3f} ms CPU a "
          f"message, {report.sent / wall:.0f} a second")
    if profile:
        pstats.Stats(profiler).sort_stats(profile).print_stats(30)


if __name__ == "__main__":
    main()
