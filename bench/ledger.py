"""The plan phase's ledger reads on a ledger with history: N subscribers, D days of digests.

bench/run.py plans a first day on an empty ledger. A list that has run for weeks holds a
ledger row per subscriber and day and a sent-papers row per paper mailed (100,000
subscribers x 14 days x 10 papers: 14 million rows), and the plan phase reads them for
every page of subscribers: which digests are due (five days of rows), each one's last
sent digest, and which of the window's papers each was already sent.

This builds such a ledger in a SQLite file (synthetic rows written straight into the
schema: every subscriber got a digest of 10 papers at 07:00 UTC on each of D days, and
half of them already today's, as earlier zones do), opens it as a database made before
the indexes those reads use (timing their one-time build), then times the plan phase's
reads for every page at 07:30 UTC, the other half due, with the functions the plan
phase calls. No ranking, no sending.

Usage: .venv/bin/python bench/ledger.py [--subscribers 100000] [--days 14] [--keep PATH]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.config import config_from_values  # noqa: E402
from digest.pipeline.planning import (  # noqa: E402
    _last_planned_at,
    _taken,
    plan_pages,
)
from digest.store import open_store  # noqa: E402

FIRST = date(2026, 5, 1)
PAPERS = 10  # a digest's papers
BATCH = 2000  # a day's batch


def key(day: date, number: int) -> str:
    """Return the arXiv-like key of the batch of ``day``'s paper ``number``."""
    return f"arxiv:{day:%y%m}.{day.day:02d}{number % BATCH:03d}"


def insert_subscribers(con: sqlite3.Connection, subscribers: int, stamp: str) -> None:
    """Insert N active daily subscribers (ids 1..N, 07:00 UTC) created at ``stamp``."""
    con.executemany(
        "INSERT INTO subscribers (id, email, name, status, profile, send_hour, timezone, "
        "cadence, weekday, max_papers, empty_digest, popularity, created_at, updated_at) "
        "VALUES (?, ?, '', 'active', ?, 7, 'UTC', 'daily', 0, 10, 'skip', 0.0, ?, ?)",
        ((n, f"s{n}@example.org", json.dumps({"interests": f"topic {n % 97}"}), stamp, stamp)
         for n in range(1, subscribers + 1)),
    )


def build(path: Path, subscribers: int, days: int) -> date:
    """Write the ledger into a new database at ``path``; return today (the day after)."""
    open_store(f"sqlite:///{path}").close()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("BEGIN")
    stamp = "2026-05-01 07:00:00.000000"
    insert_subscribers(con, subscribers, stamp)
    today = FIRST + timedelta(days=days)
    for offset in range(days + 1):
        day = FIRST + timedelta(days=offset)
        # Today: the first half only (their hour came in an earlier zone's run).
        last = subscribers if day < today else subscribers // 2
        ledger, papers = [], []
        for sub in range(1, last + 1):
            picks = [key(day, sub * 7 + k * 131) for k in range(PAPERS)]
            ledger.append((sub, day.isoformat(), f"<{sub}.{day}@bench>",
                           json.dumps([[p, 0.5, "matches: x"] for p in picks]), stamp,
                           f"{day} 07:01:00.000000"))
            papers.extend((sub, p, day.isoformat()) for p in picks)
        con.executemany(
            "INSERT INTO deliveries (subscriber_id, day, status, message_id, attempts, papers, "
            "created_at, updated_at) VALUES (?, ?, 'sent', ?, 1, ?, ?, ?)", ledger)
        con.executemany("INSERT INTO sent_papers VALUES (?, ?, ?)", papers)
    con.execute("COMMIT")
    con.close()
    return today


def main() -> int:
    """Build (or reuse) the ledger, time the reads, print them and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the database here and keep it (reused when it exists)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "ledger.json")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="digest-ledger-"))
    path = args.keep or folder / "ledger.sqlite3"
    today = FIRST + timedelta(days=args.days)
    result: dict[str, float | int | str] = {
        "subscribers": args.subscribers, "days": args.days, "database": "sqlite"}
    if not path.exists():
        start = time.perf_counter()
        today = build(path, args.subscribers, args.days)
        result["build_s"] = round(time.perf_counter() - start, 1)
    config = config_from_values({"DIGEST_VAR_DIR": str(folder),
                                 "DIGEST_DATABASE_URL": f"sqlite:///{path}"})
    db = open_store(config.database_url)
    now = datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(hours=7,
                                                                             minutes=30)
    keys = {key(today, n): today for n in range(BATCH)}  # the window: today's batch
    timings = dict.fromkeys(("due", "last_sent", "sent_papers", "unsettled"), 0.0)
    planned = pages = 0
    clock = time.perf_counter()
    for plans, _waiting in plan_pages(config, db, now=now, day=None, only=None, force=False,
                                      page=config.rank_page):
        timings["due"] += time.perf_counter() - clock
        pages += 1
        planned += len(plans)
        ids = [p.subscriber.id for p in plans]
        clock = time.perf_counter()
        _last_planned_at(db, plans, db.last_delivered_days(ids))
        timings["last_sent"] += time.perf_counter() - clock
        clock = time.perf_counter()
        db.sent_keys(ids, keys, since=today - timedelta(days=2))
        timings["sent_papers"] += time.perf_counter() - clock
        clock = time.perf_counter()
        _taken(db, plans, now=now, supersede=False)
        timings["unsettled"] += time.perf_counter() - clock
        clock = time.perf_counter()
    db.close()
    total = sum(timings.values())
    result.update({f"{name}_s": round(value, 2) for name, value in timings.items()})
    result.update({"pages": pages, "planned": planned, "reads_s": round(total, 2)})
    print(f"ledger: {args.subscribers:,} subscribers x {args.days} days of digests "
          f"({args.subscribers * args.days * PAPERS:,} papers mailed), sqlite; "
          f"{planned:,} due at {now:%H:%M} UTC in {pages} pages")
    if "build_s" in result:
        print(f"  built in {result['build_s']} s")
    print(f"  which digests are due (plan_pages)       {timings['due']:7.2f} s")
    print(f"  last sent digest of each (for windows)   {timings['last_sent']:7.2f} s")
    print(f"  papers already sent (today's batch)      {timings['sent_papers']:7.2f} s")
    print(f"  digests still unsettled                  {timings['unsettled']:7.2f} s")
    print(f"  the plan phase's ledger reads in all     {total:7.2f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
