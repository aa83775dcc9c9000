"""What a year of daily operation leaves in the database, and what it costs the daily reads.

Fills a scratch SQLite database with D days of synthetic history for N subscribers,
written straight into the schema: a ledger row a subscriber a day (10 picks with
reasons as the ranker writes them, ~0.9 KB of JSON), a sent-papers row a paper mailed,
a stored run report a day (as record_run keeps it), and P papers a day (a title, an
abstract of ~1,200 characters, authors). Then it prints each table's size (SQLite's
dbstat: the table and its indexes), times the reads that do not take a day (`digest
status`, an operator's `deliveries list --status unknown`, a subscriber's export) and
the plan phase's reads of one page of subscribers, prunes with the default retention
(`digest prune`, when this checkout has it) and prints the sizes and timings again.

Usage: .venv/bin/python bench/growth.py [--subscribers 2000] [--days 365] [--papers 200]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger import insert_subscribers  # noqa: E402  (bench/, this script's folder)

from digest.config import config_from_values  # noqa: E402
from digest.store import open_store  # noqa: E402

PICKS = 10
REASONS = ("matches: agents, reasoning, memory", "close to your seed paper: Sparse In-Network "
           "Learning via Shortest-Path Backpropagation", "in cs.RO, as are 9 of your seed papers")
ABSTRACT = ("We study a problem of some interest to the field and propose a method. " * 17)[:1200]


def key(day: date, number: int, per_day: int) -> str:
    """Return an arXiv-like key of ``day``'s paper ``number``."""
    return f"arxiv:{day:%y%m}.{day.day:02d}{number % per_day:03d}"


def build(path: Path, subscribers: int, days: int, per_day: int, first: date) -> None:
    """Write D days of history for N subscribers into a new database at ``path``."""
    open_store(f"sqlite:///{path}").close()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    # A transaction a day: one for the whole history went through a WAL as large as it.
    con.execute("BEGIN")
    stamp = f"{first} 07:00:00.000000"
    insert_subscribers(con, subscribers, stamp)
    for offset in range(days):
        day = first + timedelta(days=offset)
        at = f"{day} 07:01:00.000000"
        con.executemany(
            "INSERT INTO papers (key, title, abstract, authors, categories, url, pdf_url, "
            "source, published, announce_type, ai_keywords, batch_day, stored_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'arxiv-rss:cs.LG', ?, 'new', '[]', ?, ?, ?)",
            ((key(day, n, per_day), f"A paper on topic {n} filed {day}", ABSTRACT,
              json.dumps(["Ada Lovelace", "Grace Hopper", "Alan Turing"]),
              json.dumps(["cs.LG", "cs.AI"]), f"https://arxiv.org/abs/{n}",
              f"https://arxiv.org/pdf/{n}", day.isoformat(), day.isoformat(), at, at)
             for n in range(per_day)),
        )
        ledger, sent, report = [], [], []
        for sub in range(1, subscribers + 1):
            picks = [key(day, sub * 7 + k * 131, per_day) for k in range(PICKS)]
            ledger.append((sub, day.isoformat(), f"<{sub}.{day}.0123456789abcdef@digest.example>",
                           json.dumps([{"key": p, "score": 0.4567891, "reason": REASONS[k % 3]}
                                       for k, p in enumerate(picks)]), at, at))
            sent.extend((sub, p, day.isoformat()) for p in picks)
            report.append({"subscriber_id": sub, "status": "sent", "papers": PICKS,
                           "message_id": f"<{sub}.{day}.0123456789abcdef@digest.example>",
                           "error": None})
        con.executemany(
            "INSERT INTO deliveries (subscriber_id, day, status, message_id, attempts, papers, "
            "created_at, updated_at) VALUES (?, ?, 'sent', ?, 1, ?, ?, ?)", ledger)
        con.executemany("INSERT INTO sent_papers VALUES (?, ?, ?)", sent)
        con.execute(
            "INSERT INTO runs (day, started_at, finished_at, sent, failed, report) "
            "VALUES (?, ?, ?, ?, 0, ?)",
            (day.isoformat(), at, at, subscribers,
             json.dumps({"day": day.isoformat(), "sent": subscribers, "failed": 0,
                         "skipped": 0, "unknown": 0, "started_at": at, "sources": [],
                         "deliveries": report})))
        con.execute("COMMIT")
        con.execute("BEGIN")
    con.execute("COMMIT")
    con.close()


def sizes(path: Path) -> dict[str, int]:
    """Return {table: bytes of it and its indexes} and the file's size."""
    con = sqlite3.connect(path)
    try:
        rows = con.execute(
            "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "
            "LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY 1").fetchall()
    finally:
        con.close()
    found = {str(name): int(size) for name, size in rows}
    found["(file)"] = path.stat().st_size
    return found


def timed(label: str, call: Callable[[], Any], timings: dict[str, float]) -> None:
    """Run ``call`` once and keep its wall time under ``label``."""
    start = time.perf_counter()
    call()
    timings[label] = time.perf_counter() - start


def reads(db: Any, today: date, subscribers: int) -> dict[str, float]:
    """Time the reads a day's work does whatever the history's length."""
    timings: dict[str, float] = {}
    page = list(range(1, min(subscribers, 5000) + 1))
    timed("status: delivery counts", db.delivery_counts, timings)
    timed("status: last 5 run reports", lambda: db.recent_runs(5), timings)
    timed("deliveries list --status unknown", lambda: db.list_deliveries(status="unknown"),
          timings)
    timed("one subscriber's export", lambda: db.export_subscriber(1), timings)
    timed("plan page: last sent digests", lambda: db.last_delivered_days(page), timings)
    timed("plan page: papers sent (window)", lambda: db.sent_keys(
        page, {key(today - timedelta(days=1), n, 200) for n in range(200)},
        since=today - timedelta(days=3)), timings)
    timed("plan page: unsettled digests", lambda: db.unsettled_deliveries(page), timings)
    timed("plan page: ranker history", lambda: db.history(today, limit=5000), timings)
    return timings


def show(title: str, found: dict[str, int], timings: dict[str, float]) -> None:
    """Print sizes and timings."""
    print(title)
    for name, size in sorted(found.items(), key=lambda item: -item[1]):
        if size >= 64 * 1024:
            print(f"  {name:34} {size / 1e6:10.1f} MB")
    for label, seconds in timings.items():
        print(f"  {label:34} {seconds:10.3f} s")


def main() -> int:
    """Build the history, measure, prune, measure again."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--papers", type=int, default=200, help="papers a day")
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    path = args.keep or Path(tempfile.mkdtemp(prefix="digest-growth-")) / "growth.sqlite3"
    first = date(2025, 6, 1)
    today = first + timedelta(days=args.days)
    if not path.exists():
        start = time.perf_counter()
        build(path, args.subscribers, args.days, args.papers, first)
        print(f"built {args.days} days x {args.subscribers:,} subscribers, {args.papers} "
              f"papers a day in {time.perf_counter() - start:.1f} s: {path}")
    config = config_from_values({"DIGEST_VAR_DIR": str(path.parent),
                                 "DIGEST_DATABASE_URL": f"sqlite:///{path}"})
    db = open_store(config.database_url)
    try:
        show("before pruning", sizes(path), reads(db, today, args.subscribers))
        prune = getattr(db, "prune", None)
        if prune is None:
            print("(this checkout has no Store.prune)")
            return 0
        before = today - timedelta(days=config.retention_days)
        start = time.perf_counter()
        removed = prune(before=before)
        print(f"pruned (before {before}) in {time.perf_counter() - start:.1f} s: {removed}")
        start = time.perf_counter()
        removed = prune(before=before)
        print(f"pruned again (a day's later run) in {time.perf_counter() - start:.2f} s: "
              f"{removed}")
    finally:
        db.close()
    con = sqlite3.connect(path)
    start = time.perf_counter()
    con.execute("VACUUM")
    con.close()
    print(f"VACUUM in {time.perf_counter() - start:.1f} s")
    db = open_store(config.database_url)
    try:
        show("after pruning and VACUUM", sizes(path), reads(db, today, args.subscribers))
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
