"""Benchmark a daily run for N subscribers built from the real corpus; print a table, write JSON.

    python bench/run.py                        # N = 1k, 10k, 100k (what `make bench` runs)
    python bench/run.py --sizes 1000 --papers 500 --workers 4

Each N runs in a fresh subprocess, so its peak RSS is its own. In it:

- **setup** (not a phase): subscribers whose profiles come from real papers (interest
  text from a paper's title, that paper and up to two of the same category as seeds,
  its categories, sometimes its first author) and the earlier papers they refer to,
  written straight into a fresh SQLite file (or ``--database-url``);
- **ingest**: the day's batch (the latest real daily batches concatenated up to
  ``--papers``) through the real JSON-lines source into the store;
- **plan** (``digest run --no-send``): who is due, batched ranking, each digest written
  (in the ranking's processes) and filed in the outbox with its ledger row; **rank** is
  the part of it spent inside ``rank.rank``, **write** the part spent writing digests;
- **render**: ``pipeline.compose`` for a sample of the planned digests in one process
  (msg/s), for the raw push below;
- **send** (``digest send``): every planned row's written message delivered to an SMTP
  sink running in another process (bench/sink.py), with ``--workers`` connections;
- **raw**: the rendered sample pushed with smtplib over one reused connection to the
  same sink, the transport's ceiling; send/raw is the pipeline's share of it. Pushed
  ``RAW_ROUNDS`` times as the scheduler places the client and the sink, and as many
  times with both on one CPU; raw/s is the faster of the two medians (every round's
  rate is in the JSON). A push waits for each reply, and waking the other process on
  the other CPU costs more than a switch on the same one: placed freely the rate moved
  between runs (~440 to ~1,190 a second), on one CPU it held at ~930-1,250.

A separate subprocess times the per-subscriber LinearSVC recipe of arxiv-sanity (tf-idf
1-2 grams, sublinear tf; LinearSVC C=0.01, class_weight=balanced, fitted per subscriber
on their seeds against the rest of the history) on a sample, extrapolated to each N's
subscribers with seed papers (the others have none to train a model on).
The corpus is read from DIGEST_CORPUS (default ../shared/data/corpus/...); never commit it.
BENCH_PROFILE_SEND=DIR runs each `digest send` process under cProfile (DIR/send-N.prof;
wall-clock times, so a loaded box shows as waits).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import itertools
import json
import os
import random
import resource
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from corpus import corpus_path  # noqa: E402
from sqlalchemy import create_engine, select, update  # noqa: E402

from digest import pipeline  # noqa: E402
from digest import rank as rank_module  # noqa: E402
from digest.config import RANK_PAGE, SmtpSettings, config_from_values  # noqa: E402
from digest.ingest.jsonl import paper_from_record  # noqa: E402
from digest.models import Paper, Profile  # noqa: E402
from digest.pipeline import planning  # noqa: E402
from digest.rank import scoring  # noqa: E402
from digest.rank.scoring import resolve_processes  # noqa: E402
from digest.store import (  # noqa: E402
    Store,
    deliveries,
    metadata,
    open_store,
    papers,
    subscribers,
)

SIZES = (1_000, 10_000, 100_000)
HISTORY = 8_000  # earlier papers kept: seeds come from them, and the ranker's history
SECRET = "bench-secret-key-0123456789abcdef"
INSERT_CHUNK = 5_000
RAW_ROUNDS = 3  # pushes of the rendered sample a placement; raw/s is their median rate
# Where the raw client and the sink run: as the scheduler places them, and both on one CPU.
RAW_PLACEMENTS = ("free", "one_cpu")


# -- the world: corpus, batch, history, profiles --------------------------------------------


def load_tail(path: Path, count: int) -> list[dict[str, Any]]:
    """Return the last ``count`` records of a corpus in date order, parsing only those.

    Only the tail is parsed so the corpus does not set the peak RSS being measured.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    tail: collections.deque[str] = collections.deque(maxlen=count)
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                tail.append(line)
    records = [json.loads(line) for line in tail]
    records.sort(key=lambda r: (str(r.get("first_seen") or ""), str(r["id"])))
    return records


def split_world(
    records: Sequence[dict[str, Any]], papers_wanted: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], date]:
    """Return (batch, history, day): the latest whole days up to ``papers_wanted`` papers."""
    by_day: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for record in records:
        by_day[str(record["first_seen"])].append(record)
    days = sorted(by_day)
    batch: list[dict[str, Any]] = []
    while days and len(batch) < papers_wanted:
        batch = by_day[days.pop()] + batch
    batch = batch[-papers_wanted:]
    history = [r for d in days for r in by_day[d]]
    if not history:
        raise SystemExit("the corpus holds too few days for a history; lower --papers")
    last = date.fromisoformat(max(str(r["first_seen"]) for r in batch))
    return batch, history, last + timedelta(days=1)


def day_papers(papers_wanted: int) -> tuple[list[Paper], list[Paper]]:
    """Return (batch, history) as papers: the corpus's day of split_world."""
    records = load_tail(corpus_path(), HISTORY + papers_wanted)
    batch_records, history_records, _ = split_world(records, papers_wanted)
    del records
    return ([paper_from_record(r) for r in batch_records],
            [paper_from_record(r) for r in history_records])


def make_profiles(
    history: Sequence[Paper], count: int, *, seed: int
) -> Iterator[tuple[Profile, int]]:
    """Yield (profile, max papers) for ``count`` synthetic subscribers built from real papers."""
    rng = random.Random(seed)
    by_category: dict[str, list[Paper]] = collections.defaultdict(list)
    for paper in history:
        by_category[paper.primary_category or ""].append(paper)
    for _ in range(count):
        anchor = rng.choice(history)
        same = by_category[anchor.primary_category or ""]
        seeds: tuple[str, ...] = ()
        if rng.random() < 0.6:
            others = {rng.choice(same).key for _ in range(rng.randint(0, 2))}
            seeds = tuple(dict.fromkeys((anchor.key, *sorted(others))))
        categories = anchor.categories[: 2 if rng.random() < 0.3 else 1]
        authors = anchor.authors[:1] if anchor.authors and rng.random() < 0.3 else ()
        profile = Profile(
            interests=anchor.title, categories=categories, authors=authors, seeds=seeds
        )
        yield profile, 10


def paper_row(paper: Paper, batch_day: date, now: datetime) -> dict[str, Any]:
    """Return a papers-table row (setup writes history directly, not through ingest)."""
    return {
        "key": paper.key, "title": paper.title, "abstract": paper.abstract,
        "authors": list(paper.authors), "categories": list(paper.categories),
        "url": paper.url, "pdf_url": paper.pdf_url, "source": "bench-history",
        "published": paper.published, "announce_type": paper.announce_type,
        "version": paper.version, "doi": paper.doi, "comment": paper.comment,
        "upvotes": paper.upvotes, "ai_summary": paper.ai_summary,
        "ai_keywords": list(paper.ai_keywords), "batch_day": batch_day,
        "stored_at": now, "updated_at": now,
    }


def setup_store(
    db: Store, history: Sequence[Paper], count: int, *, now: datetime, seed: int
) -> int:
    """Write history papers and ``count`` subscribers in bulk, and prime the ranker state.

    Return how many of the subscribers have seed papers (the ones the per-subscriber
    LinearSVC recipe trains a model for).
    """
    with db.begin() as conn:
        rows = [paper_row(p, p.published or now.date(), now) for p in history]
        for start in range(0, len(rows), INSERT_CHUNK):
            conn.execute(papers.insert(), rows[start : start + INSERT_CHUNK])
    chunk: list[dict[str, Any]] = []
    created = now - timedelta(days=30)
    seeded = 0
    for number, (profile, max_papers) in enumerate(make_profiles(history, count, seed=seed)):
        seeded += bool(profile.seeds)
        chunk.append({
            "email": f"sub{number:06d}@bench.example", "name": f"Reader {number}",
            "status": "active", "profile": profile.to_dict(), "send_hour": 7,
            "timezone": "UTC", "cadence": "daily", "weekday": 0, "max_papers": max_papers,
            "empty_digest": "skip", "popularity": 0.0, "created_at": created,
            "updated_at": created, "confirmed_at": created,
        })
        if len(chunk) >= INSERT_CHUNK:
            with db.begin() as conn:
                conn.execute(subscribers.insert(), chunk)
            chunk = []
    if chunk:
        with db.begin() as conn:
            conn.execute(subscribers.insert(), chunk)
    # A daily run finds yesterday's vocabulary state; build it from the history once.
    primed = rank_module.Ranker(history[-1000:], history=history, state=None)
    db.save_ranker_state(primed.state, now=now)
    return seeded


# -- measuring ------------------------------------------------------------------------------


class PssSampler:
    """Sample the memory of this process and its descendants (forked rankers) together.

    RSS counts a page shared by a parent and its forked child in both; PSS splits it
    between them, so the sum of PSS over the processes is the memory they hold. Sampled
    every ``interval`` seconds from /proc/PID/smaps_rollup (Linux); the peak of the sums
    is kept. A sample can miss a short peak: the kernel's ru_maxrss of the parent is
    reported beside it.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)

    def __enter__(self) -> PssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        total = sum(_pss_kb(pid) for pid in _family(os.getpid()))
        self.peak_mb = max(self.peak_mb, round(total / 1024, 1))


def _family(pid: int) -> list[int]:
    """Return ``pid`` and its descendants (from /proc/PID/task/*/children)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                queue.extend(int(c) for c in task.read_text().split())
    return found


def _pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:  # gone already, or no procfs
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def process_cpu_s(pid: int) -> float:
    """Return the CPU seconds (user + system) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """Return the CPU seconds of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuSampler:
    """Sample the CPU seconds of some processes every ``interval`` s, with the time.

    For the senders' CPU in the send phase's steady part: /proc/PID/stat is read with
    time.monotonic() (the clock the sink stamps arrivals with; one clock for every
    process on Linux). A process that has exited keeps its last sampled value.
    """

    def __init__(self, pids: Sequence[int], interval: float = 0.02) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._last = dict.fromkeys(self.pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(OSError, IndexError, ValueError):  # gone: keep the last
                self._last[pid] = process_cpu_s(pid)
        self.samples.append((time.monotonic(), sum(self._last.values())))


def cpu_at(samples: Sequence[tuple[float, float]], when: float) -> float | None:
    """Return the sampled CPU seconds at time ``when``, linear between two samples;
    None when ``when`` is outside the samples."""
    for (t0, c0), (t1, c1) in itertools.pairwise(samples):
        if t0 <= when <= t1:
            return c0 if t1 == t0 else c0 + (c1 - c0) * (when - t0) / (t1 - t0)
    return None


def steady_cpu_ms(samples: Sequence[tuple[float, float]], arrivals: Sequence[float],
                  total: float) -> float | None:
    """Return the senders' CPU ms a message over the second half of the arrivals (the
    window of steady_rate): ``total`` CPU seconds at the end less the CPU sampled as
    the half-way message arrived, over the messages after it. None when too few
    messages, or no sample spans the half-way arrival.
    """
    window = steady_window(arrivals)
    if window is None:
        return None
    half, after = window
    at_half = cpu_at(samples, arrivals[half])
    if at_half is None:
        return None
    return round(1000 * (total - at_half) / after, 3)


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MB (Linux: ru_maxrss in KB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@contextlib.contextmanager
def sink_process(
    record: Path | None = None, *options: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Run bench/sink.py in its own process; yield (port, stats filled in on exit).

    ``options`` are more of its arguments (``--latency-ms 20``, ``--no-pipelining``).
    """
    command = [sys.executable, str(Path(__file__).with_name("sink.py")), *options]
    if record is not None:
        command += ["--record", str(record)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError(f"the SMTP sink did not start: {line!r}")
    stats: dict[str, Any] = {"pid": proc.pid}
    try:
        yield int(line.split()[1]), stats
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        with contextlib.suppress(json.JSONDecodeError, IndexError):
            stats.update(json.loads(out.strip().splitlines()[-1]))


class RankTimer:
    """Time the pipeline's ranking: preparing each ``rank.Ranker`` and its ``rank`` calls.

    Split three ways: preparing the day (the Ranker and its world), scoring the chunks
    (``map_forked_then``: the processes at work, this one taking in their results), and
    the rest, this process's work around the chunks (named titles, example papers, the
    fork), which runs with the other CPUs idle.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.preparing = 0.0
        self.chunks = 0.0
        self._original = rank_module.Ranker
        # Patched where they are called: by name in digest.rank and in its scoring module.
        self._build_world = getattr(rank_module, "build_world")  # noqa: B009
        self._map = getattr(scoring, "map_forked_then")  # noqa: B009

    def __enter__(self) -> RankTimer:
        timer = self
        original = self._original
        def timed(func: Any, field: str) -> Any:
            """Return ``func`` adding its wall time to the timer's ``field``."""
            def call(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return func(*args, **kwargs)
                finally:
                    setattr(timer, field,
                            getattr(timer, field) + time.perf_counter() - started)
            return call

        setattr(rank_module, "build_world", timed(self._build_world, "preparing"))  # noqa: B010
        setattr(scoring, "map_forked_then", timed(self._map, "chunks"))  # noqa: B010

        class TimedRanker(original):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                started = time.perf_counter()
                try:
                    super().__init__(*args, **kwargs)
                finally:
                    elapsed = time.perf_counter() - started
                    timer.seconds += elapsed
                    timer.preparing += elapsed

            def rank(self, *args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return super().rank(*args, **kwargs)
                finally:
                    timer.seconds += time.perf_counter() - started
                    timer.calls += 1

        rank_module.Ranker = TimedRanker  # type: ignore[misc]
        return self

    def __exit__(self, *exc: object) -> None:
        rank_module.Ranker = self._original  # type: ignore[misc]
        setattr(rank_module, "build_world", self._build_world)  # noqa: B010
        setattr(scoring, "map_forked_then", self._map)  # noqa: B010


class WriteTimer:
    """Time the plan phase's writing of digests for the outbox (``planning.write_all``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.digests = 0
        self._original = planning.write_all

    def __enter__(self) -> WriteTimer:
        timer = self
        original = self._original

        def timed(config: Any, digests: Sequence[Any], **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(config, digests, **kwargs)
            finally:
                timer.seconds += time.perf_counter() - started
                timer.digests += len(digests)

        planning.write_all = timed  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        planning.write_all = self._original  # type: ignore[assignment]


def measure_size(args: argparse.Namespace) -> dict[str, Any]:
    """Run every phase for one N in this process; return its numbers."""
    count = args.child
    result: dict[str, Any] = {
        "subscribers": count, "workers": args.workers, "send_processes": args.send_processes,
    }
    records = load_tail(corpus_path(), HISTORY + args.papers)
    batch_records, history_records, day = split_world(records, args.papers)
    del records
    now = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=6)
    history = [paper_from_record(r) for r in history_records]
    del history_records
    work = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    try:
        batch_file = work / "batch.jsonl"
        with batch_file.open("w", encoding="utf-8") as out:
            for record in batch_records:
                out.write(json.dumps(record) + "\n")
        result.update(batch_papers=len(batch_records), history_papers=len(history),
                      day=day.isoformat())
        del batch_records
        url = args.database_url or f"sqlite:///{work / 'digest.sqlite3'}"
        config = config_from_values({
            "DIGEST_VAR_DIR": str(work / "var"),
            "DIGEST_DATABASE_URL": url,
            "DIGEST_SECRET_KEY": SECRET,
            "DIGEST_SOURCES": f"jsonl:{batch_file}",
            "DIGEST_FROM": "Research Digest <digest@bench.example>",
            "DIGEST_BASE_URL": "https://digest.bench.example",
            "DIGEST_RANK_PAGE": str(args.rank_page),
        })
        config.var_dir.mkdir(parents=True)
        if args.database_url:
            engine = create_engine(url)
            metadata.drop_all(engine)  # start from an empty schema, like the SQLite file
            engine.dispose()
        db = open_store(url)
        result["database"] = db.engine.dialect.name
        started = time.perf_counter()
        result["svm_subscribers"] = setup_store(db, history, count, now=now, seed=args.seed)
        result["setup_s"] = round(time.perf_counter() - started, 3)
        del history
        result["rss_after_setup_mb"] = peak_rss_mb()

        started = time.perf_counter()
        sources = pipeline.ingest_sources(config, db, day=day, now=now)
        result["ingest_s"] = round(time.perf_counter() - started, 3)
        result["ingested"] = sum(s.new for s in sources)
        result["rss_after_ingest_mb"] = peak_rss_mb()

        started = time.perf_counter()
        with RankTimer() as timer, WriteTimer() as writer, PssSampler() as sampler:
            plan = pipeline.run(config, now=now, day=day, do_ingest=False, send=False, store=db)
        result["plan_pss_peak_mb"] = sampler.peak_mb
        result["plan_s"] = round(time.perf_counter() - started, 3)
        result["rank_s"] = round(timer.seconds, 3)
        result["write_s"] = round(writer.seconds, 3)
        result["written"] = writer.digests
        result["rank_calls"] = timer.calls
        result["rank_prepare_s"] = round(timer.preparing, 3)
        result["rank_chunks_s"] = round(timer.chunks, 3)
        counts = db.delivery_counts(day)
        result["planned"] = counts.get("planned", 0)
        result["skipped"] = plan.skipped
        result["rss_after_plan_mb"] = peak_rss_mb()
        # The plan phase forks ranking processes (DIGEST_RANK_PROCESSES); a child's RSS
        # counts the pages it shares with this process again, so memory is judged on
        # the sampled PSS sum (plan_pss_peak_mb) and this process's own peak RSS.
        result["rank_child_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        )

        messages = render_sample(config, db, day, now=now, limit=min(args.render_sample, count))
        result.update(messages.pop("numbers"))
        result["rss_after_render_mb"] = peak_rss_mb()

        to_send = result["planned"]
        result["held_purged"], result["held_purge_s"] = 0, 0.0
        if 0 < args.send_limit < to_send:
            to_send = hold_back(db, day, args.send_limit)
            # The held-back rows' messages are dropped here, timed, as the send phase's
            # end would (every final row's message, once a day): dropped inside the
            # measured phase, 95,000 rows' messages would count against the 5,000 sent
            # (the senders' CPU a message read 2.67 ms at 100,000 with them, 1.7-2.3
            # without). Added back to the extrapolated day below.
            started = time.perf_counter()
            result["held_purged"] = db.purge_outbox()
            result["held_purge_s"] = round(time.perf_counter() - started, 3)
        result["send_measured_on"] = to_send
        with sink_process() as (port, stats):
            # CPU seconds per message of each party (senders, sink, raw client): what
            # the box's CPUs allow, next to the rates measured.
            sink_cpu = process_cpu_s(stats["pid"])
            sender_clock = children_cpu_s if args.send_processes else time.process_time
            sender_cpu = sender_clock()
            started = time.perf_counter()
            samples: list[tuple[float, float]] = []
            if args.send_processes:
                sent, failed, samples = send_with_workers(config, port, args)
                result["send_worker_rss_mb"] = round(
                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
                )
            else:
                smtp = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=60)
                sending = replace(config, smtp=smtp, connections=args.workers)
                report = pipeline.send_pending(sending, now=now, store=db, workers=args.workers)
                sent, failed = report.sent, report.failed + report.unknown
            result["send_s"] = round(time.perf_counter() - started, 3)
            result["sent"] = sent
            result["send_failed"] = failed
            sender_cpu = sender_clock() - sender_cpu
            sink_cpu, sink_before = process_cpu_s(stats["pid"]), sink_cpu
            result["send_cpu_ms"] = round(1000 * sender_cpu / max(sent, 1), 3)
            result["send_sink_cpu_ms"] = round(1000 * (sink_cpu - sink_before) / max(sent, 1), 3)
            # Share of the send processes' wall time they were on a CPU (1.0: never
            # waiting on the database, the sink or each other).
            result["send_busy"] = round(
                sender_cpu / max(result["send_s"] * max(args.send_processes, 1), 1e-9), 3)
            client_cpu = time.process_time()
            raw, raw_s = 0, 0.0
            # Pushed as the scheduler places the client and the sink, then with both on
            # one CPU: a push is a ping-pong of replies, and a wake-up on the other CPU
            # costs more than a switch on the same one (~640-830 vs ~930-1,250 a second on
            # this box), so the free rate moves with where they land. The transport's ceiling
            # is the faster of the two.
            for placement in RAW_PLACEMENTS:
                rates = []
                with placed(stats["pid"], placement) as done:
                    if not done:
                        continue
                    for _ in range(RAW_ROUNDS):
                        started = time.perf_counter()
                        pushed = push_raw(port, messages["payloads"])
                        seconds = time.perf_counter() - started
                        raw, raw_s = raw + pushed, raw_s + seconds
                        rates.append(round(pushed / seconds, 1) if seconds else 0.0)
                result[f"raw_{placement}_rounds_per_s"] = rates
            result["raw_rounds_per_s"] = result["raw_free_rounds_per_s"]
            result["raw_s"] = round(raw_s, 3)
            result["raw_sent"] = raw
            result["raw_cpu_ms"] = round(1000 * (time.process_time() - client_cpu) / max(raw, 1), 3)
            result["raw_sink_cpu_ms"] = round(
                1000 * (process_cpu_s(stats["pid"]) - sink_cpu) / max(raw, 1), 3)
        # The send phase's messages reached the sink first, in order; the raw pushes after.
        arrivals = stats.pop("arrivals", [])[: result["sent"]]
        result["send_steady_per_s"] = steady_rate(arrivals)
        # The senders' CPU a message once started (send_cpu_ms counts each process's
        # start-up too: ~0.6 s of imports, ~0.2 ms a message over 5,000 in two).
        result["send_steady_cpu_ms"] = steady_cpu_ms(samples, arrivals, sender_cpu)
        result["sink"] = stats
        result["rss_after_send_mb"] = peak_rss_mb()
        db.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["send_per_s"] = round(result["sent"] / result["send_s"], 1) if result["send_s"] else 0
    result["send_measured_s"] = result["send_s"]
    # With --send-limit below N, the send phase of the whole day is extrapolated (marked
    # with * in the table): the measured phase (start-up, the first digests' rows
    # inlined, then steady sending) plus the rest of the day at the steady rate, the
    # rate of the measured phase's second half, plus dropping the rest's messages
    # (held_purge_s). Scaling the whole measured time by N would count each process's
    # start-up and warm-up N / limit times over; send_s_linear is that figure, for
    # comparison.
    result["send_extrapolated"] = result["send_measured_on"] < result["planned"]
    if result["send_extrapolated"] and result["send_per_s"]:
        rest = result["planned"] - result["sent"]
        steady = result["send_steady_per_s"] or result["send_per_s"]
        result["send_s_linear"] = round(result["planned"] / result["send_per_s"], 3)
        result["send_s"] = round(
            result["send_measured_s"] + result["held_purge_s"] + rest / steady, 3)
        result["send_per_s"] = round(result["planned"] / result["send_s"], 1)
    medians = {placement: statistics.median(result.get(f"raw_{placement}_rounds_per_s") or [0.0])
               for placement in RAW_PLACEMENTS}
    result["raw_free_per_s"] = medians["free"]
    result["raw_one_cpu_per_s"] = medians["one_cpu"]
    result["raw_per_s"] = max(medians.values())  # the ceiling
    result["send_vs_raw"] = (
        round(result["send_per_s"] / result["raw_per_s"], 3) if result["raw_per_s"] else None
    )
    result["end_to_end_s"] = round(result["ingest_s"] + result["plan_s"] + result["send_s"], 3)
    result["peak_rss_mb"] = peak_rss_mb()
    result["peak_memory_mb"] = max(result["peak_rss_mb"], result["plan_pss_peak_mb"])
    return result


def render_sample(
    config: Any, db: Store, day: date, *, now: datetime, limit: int
) -> dict[str, Any]:
    """Render up to ``limit`` planned digests; return their bytes and the render rate."""
    env = pipeline.render.make_environment(config.templates_dir)
    rows = [d for d, _ in db.list_deliveries(status="planned", day=day, limit=limit)]
    subs = db.get_subscribers(r.subscriber_id for r in rows)
    found = db.get_papers(k for r in rows for k in r.paper_keys)
    payloads: list[tuple[str, bytes]] = []
    started = time.perf_counter()
    for row in rows:
        sub = subs[row.subscriber_id]
        items = tuple(
            pipeline.ScoredPaper(paper=found[k], score=s, reason=why)
            for k, s, why in row.picks if k in found
        )
        digest = pipeline.Digest(subscriber=sub, day=row.day, papers=items)
        _, message = pipeline.compose(config, digest, env=env, now=now)
        payloads.append((sub.email, message.as_bytes()))
    seconds = time.perf_counter() - started
    size = sum(len(p) for _, p in payloads)
    return {
        "payloads": payloads,
        "numbers": {
            "render_n": len(payloads),
            "render_s": round(seconds, 3),
            "render_per_s": round(len(payloads) / seconds, 1) if seconds else 0,
            "message_kb": round(size / max(1, len(payloads)) / 1024, 1),
        },
    }


def hold_back(db: Store, day: date, limit: int) -> int:
    """Leave only the first ``limit`` planned rows sendable (the rest become skipped)."""
    with db.begin() as conn:
        keep = conn.execute(
            select(deliveries.c.id).where(deliveries.c.day == day,
                                          deliveries.c.status == "planned")
            .order_by(deliveries.c.id).limit(limit)
        ).scalars().all()
        conn.execute(
            update(deliveries)
            .where(deliveries.c.day == day, deliveries.c.status == "planned",
                   deliveries.c.id > max(keep))
            .values(status="skipped", error="held back by the benchmark's --send-limit")
        )
    return len(keep)


def send_with_workers(
    config: Any, port: int, args: argparse.Namespace,
) -> tuple[int, int, list[tuple[float, float]]]:
    """Deliver with ``--send-processes`` `digest send` processes; return (sent, failed,
    their summed CPU seconds sampled over time: CpuSampler.samples)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update({
        "DIGEST_VAR_DIR": str(config.var_dir),
        "DIGEST_DATABASE_URL": config.database_url,
        "DIGEST_SECRET_KEY": SECRET,
        "DIGEST_FROM": "Research Digest <digest@bench.example>",
        "DIGEST_BASE_URL": "https://digest.bench.example",
        "DIGEST_SMTP_URL": f"smtp://127.0.0.1:{port}?starttls=off&timeout=60",
    })
    command = [sys.executable, "-m", "digest", "--env-file", os.devnull, "send", "--json",
               "--workers", str(args.workers)]
    profiles = os.environ.get("BENCH_PROFILE_SEND")  # a folder: each sender under cProfile
    workers = [
        subprocess.Popen(
            command if not profiles else [
                command[0], "-m", "cProfile", "-o", f"{profiles}/send-{number}.prof",
                *command[1:]],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for number in range(args.send_processes)
    ]
    sent = failed = 0
    with CpuSampler([worker.pid for worker in workers]) as sampler:
        for worker in workers:
            out, _ = worker.communicate()
            for line in out.splitlines():
                if line.startswith("{"):
                    report = json.loads(line)
                    sent += int(report.get("sent", 0))
                    failed += int(report.get("failed", 0)) + int(report.get("unknown", 0))
    return sent, failed, sampler.samples


def steady_rate(arrivals: Sequence[float]) -> float | None:
    """Return messages a second over the second half of a phase's arrival times.

    The first half carries the senders' start-up and warm-up (imports, the day's paper
    rows inlined as digests first name them); None when too few messages to tell.
    """
    window = steady_window(arrivals)
    if window is None:
        return None
    half, after = window
    span = arrivals[-1] - arrivals[half]
    return round(after / span, 1) if span > 0 else None


def steady_window(arrivals: Sequence[float]) -> tuple[int, int] | None:
    """Return the steady part of a phase's arrivals (steady_rate, steady_cpu_ms): the
    index of the half-way message and how many arrived after it; None when too few
    messages to tell."""
    if len(arrivals) < 20:
        return None
    half = len(arrivals) // 2
    return half, len(arrivals) - 1 - half


@contextlib.contextmanager
def placed(sink_pid: int, placement: str) -> Iterator[bool]:
    """Run the block with this process and the sink placed; yield False if that cannot be.

    ``free``: wherever the scheduler puts them. ``one_cpu``: both on the first CPU this
    process may use (Linux's sched_setaffinity), their CPU sets restored after.
    """
    if placement == "free":
        yield True
        return
    if not hasattr(os, "sched_setaffinity"):
        yield False
        return
    mine, theirs = os.sched_getaffinity(0), os.sched_getaffinity(sink_pid)
    cpu = {min(mine)}
    try:
        os.sched_setaffinity(sink_pid, cpu)
        os.sched_setaffinity(0, cpu)
        yield True
    finally:
        os.sched_setaffinity(0, mine)
        with contextlib.suppress(OSError):
            os.sched_setaffinity(sink_pid, theirs)


def push_raw(port: int, payloads: Sequence[tuple[str, bytes]]) -> int:
    """Send pre-rendered messages with plain smtplib over one connection; return how many."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as conn:
        for address, payload in payloads:
            conn.sendmail("digest@bench.example", [address], payload)
    return len(payloads)


def measure_svm(args: argparse.Namespace) -> dict[str, Any]:
    """Time the arxiv-sanity per-subscriber LinearSVC recipe on a sample of subscribers."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    batch, history = day_papers(args.papers)
    texts = [f"{p.title}. {p.abstract}" for p in (*history, *batch)]
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, stop_words="english", strip_accents="unicode",
        max_features=20000, min_df=2, max_df=0.1,
    )
    features = vectorizer.fit_transform(texts)
    shared = time.perf_counter() - started
    train, test = features[: len(history)], features[len(history) :]
    index = {p.key: i for i, p in enumerate(history)}
    sample = [
        profile for profile, _ in make_profiles(history, args.svm_sample * 4, seed=args.seed + 1)
        if profile.seeds
    ][: args.svm_sample]
    started = time.perf_counter()
    for profile in sample:
        labels = np.zeros(len(history))
        labels[[index[k] for k in profile.seeds if k in index]] = 1
        model = LinearSVC(C=0.01, class_weight="balanced", max_iter=10000, tol=1e-6)
        model.fit(train, labels)
        scores = model.decision_function(test)
        np.argsort(-scores)[:10]
    per_subscriber = (time.perf_counter() - started) / max(1, len(sample))
    return {
        "sample": len(sample),
        "training_papers": len(history),
        "batch_papers": len(batch),
        "shared_s": round(shared, 3),
        "per_subscriber_s": round(per_subscriber, 5),
    }


# -- the parent: one subprocess per N, a table, JSON ----------------------------------------


def child(args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    """Run this script in a fresh interpreter for one measurement; return its JSON."""
    command = [
        sys.executable, str(Path(__file__).resolve()), *extra,
        "--papers", str(args.papers), "--workers", str(args.workers),
        "--send-processes", str(args.send_processes), "--send-limit", str(args.send_limit),
        "--render-sample", str(args.render_sample), "--svm-sample", str(args.svm_sample),
        "--seed", str(args.seed), "--rank-page", str(args.rank_page),
    ]
    if args.database_url:
        command += ["--database-url", args.database_url]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark step {extra} failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def fmt_s(seconds: float) -> str:
    """Format seconds for the table."""
    return f"{seconds:.1f}" if seconds >= 10 else f"{seconds:.2f}"


def svm_seconds(r: dict[str, Any], svm: dict[str, Any]) -> float:
    """Return the per-subscriber LinearSVC recipe's time for one N, extrapolated.

    One model for each subscriber with seed papers: a profile without any has nothing to
    train on (the recipe falls back to a text search, as digest eval's arxiv-sanity
    baseline does), so it costs the SVM side no model.
    """
    return float(svm["shared_s"] + r["svm_subscribers"] * svm["per_subscriber_s"])


def table(results: Sequence[dict[str, Any]], svm: dict[str, Any]) -> str:
    """Return the printed table: one row per N."""
    head = ("N", "ingest s", "plan s", "rank s", "write s", "render/s", "send s", "send/s",
            "raw/s",
            "send/raw", "run s", "peak MB", "SVM/ours")
    rows = [head]
    for r in results:
        svm_total = svm_seconds(r, svm)
        rows.append((
            f"{r['subscribers']:,}", fmt_s(r["ingest_s"]), fmt_s(r["plan_s"]),
            fmt_s(r["rank_s"]), fmt_s(r["write_s"]), f"{r['render_per_s']:.0f}",
            fmt_s(r["send_s"]) + ("*" if r.get("send_extrapolated") else ""),
            f"{r['send_per_s']:.0f}", f"{r['raw_per_s']:.0f}", f"{r['send_vs_raw']:.2f}",
            fmt_s(r["end_to_end_s"]) + ("*" if r.get("send_extrapolated") else ""),
            f"{r['peak_memory_mb']:.0f}",
            f"{svm_total / max(r['rank_s'], 1e-9):.0f}x",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summarize(results: Sequence[dict[str, Any]], svm: dict[str, Any]) -> list[str]:
    """Return one line per target: the measured value and whether it is met."""
    lines = []
    for r in results:
        svm_total = svm_seconds(r, svm)
        r["svm_extrapolated_s"] = round(svm_total, 1)
        r["svm_ratio"] = round(svm_total / max(r["rank_s"], 1e-9), 1)
    largest = max(results, key=lambda r: r["subscribers"])
    n = f"{largest['subscribers']:,}"
    checks = [
        (f"rank {n} x {largest['batch_papers']:,} papers <= 20 s", largest["rank_s"] <= 20,
         f"{largest['rank_s']:.1f} s"),
        (f"peak memory at {n} <= 2048 MB (own peak RSS; PSS with the forked rankers)",
         largest["peak_memory_mb"] <= 2048,
         f"{largest['peak_memory_mb']:.0f} MB (RSS {largest['peak_rss_mb']:.0f}, "
         f"PSS sum {largest['plan_pss_peak_mb']:.0f}, a ranker's RSS "
         f"{largest['rank_child_rss_mb']:.0f})"),
        (f"daily run for {n} (ingest+plan+send) <= 600 s", largest["end_to_end_s"] <= 600,
         f"{largest['end_to_end_s']:.0f} s"),
        ("batched ranker vs per-subscriber LinearSVC >= 100x",
         largest["svm_ratio"] >= 100, f"{largest['svm_ratio']:.0f}x"),
        ("send phase vs raw smtplib >= 0.8", (largest["send_vs_raw"] or 0) >= 0.8,
         f"{largest['send_vs_raw']:.2f}"),
    ]
    if len(results) > 1:
        smallest = min(results, key=lambda r: r["subscribers"])
        growth = largest["peak_memory_mb"] / max(smallest["peak_memory_mb"], 1.0)
        checks.append((f"memory flat in N (peak memory {n} / {smallest['subscribers']:,})",
                       growth <= 1.5, f"{growth:.2f}x"))
    for label, ok, value in checks:
        lines.append(f"{'met   ' if ok else 'MISSED'} {label}: {value}")
    lines.extend(rank_lines(largest))
    lines.extend(cpu_lines(largest))
    return lines


def rank_lines(r: dict[str, Any]) -> list[str]:
    """Return where the ranking's time goes: the day, the chunks, the parent's share."""
    if "rank_chunks_s" not in r:
        return []
    around = r["rank_s"] - r["rank_prepare_s"] - r["rank_chunks_s"]
    return [
        f"rank at {r['subscribers']:,}: preparing the day {r['rank_prepare_s']:.1f} s, "
        f"scoring the chunks {r['rank_chunks_s']:.1f} s, this process's work around them "
        f"{around:.1f} s ({r['rank_calls']} rank calls)",
    ]


def cpu_lines(r: dict[str, Any]) -> list[str]:
    """Return where the send phase's CPU goes, and the rate the box's CPUs allow."""
    if "send_cpu_ms" not in r:
        return []
    cpus = os.cpu_count() or 1
    steady = r.get("send_steady_cpu_ms")
    # The ceiling of the steady rate: the senders' CPU once started (start-up aside).
    senders = steady if steady is not None else r["send_cpu_ms"]
    per_digest = senders + r["send_sink_cpu_ms"]
    ceiling = 1000 * cpus / max(per_digest, 1e-9)
    once_started = (f" ({steady:.2f} ms once started, the second half)"
                    if steady is not None else "")
    return [
        f"send CPU a message at {r['subscribers']:,}: senders {r['send_cpu_ms']:.2f} ms"
        f"{once_started} + sink {r['send_sink_cpu_ms']:.2f} ms (raw: client "
        f"{r['raw_cpu_ms']:.2f} ms + sink {r['raw_sink_cpu_ms']:.2f} ms); senders on a CPU "
        f"{100 * r['send_busy']:.0f}% of their wall time",
        f"  {cpus} CPUs allow at most {ceiling:.0f} digests a second at that CPU cost "
        f"= {ceiling / max(r['raw_per_s'], 1e-9):.2f} of raw",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments; run the children (or be one); print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES),
                        help="comma-separated subscriber counts")
    parser.add_argument("--papers", type=int, default=2000, help="papers in the day's batch")
    # One connection per process: on this 2-core box, to a local sink, 2 processes x 1
    # connection sent 231/s, 2 x 2 193/s, 1 x 2 141/s, 1 x 1 159/s (3,000 digests each):
    # a second thread in a process only adds GIL hand-offs when the relay answers fast.
    parser.add_argument("--workers", type=int, default=1,
                        help="SMTP connections per send process")
    parser.add_argument("--send-processes", type=int, default=os.cpu_count() or 1,
                        help="`digest send` processes (0: send in the benchmark's process)")
    parser.add_argument("--render-sample", type=int, default=1000,
                        help="digests rendered for the render and raw-transport measures")
    parser.add_argument("--svm-sample", type=int, default=20,
                        help="subscribers timed with the per-subscriber LinearSVC recipe")
    parser.add_argument("--send-limit", type=int, default=10000,
                        help="deliver at most this many digests and extrapolate the send "
                             "phase from their rate (0: deliver all)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rank-page", type=int, default=RANK_PAGE,
                        help="subscribers planned and ranked together (DIGEST_RANK_PAGE)")
    parser.add_argument("--database-url", default=None,
                        help="an empty database to use instead of a temporary SQLite file "
                             "(its digest tables are dropped first)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "bench.json")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--svm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.svm:
        print(json.dumps(measure_svm(args)))
        return 0
    if args.child is not None:
        print(json.dumps(measure_size(args)))
        return 0
    if not corpus_path().exists():
        raise SystemExit(f"no corpus at {corpus_path()}; set DIGEST_CORPUS")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = []
    for size in sizes:
        print(f"measuring N={size:,} ...", file=sys.stderr, flush=True)
        results.append(child(args, "--child", str(size)))
        # Keep what is measured so far: the 100k step alone takes many minutes.
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".partial.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print("measuring the per-subscriber LinearSVC recipe ...", file=sys.stderr, flush=True)
    svm = child(args, "--svm")
    lines = summarize(results, svm)
    print(table(results, svm))
    print(f"(batch {results[0]['batch_papers']:,} papers, day {results[0]['day']}, "
          f"{results[0]['database']}, ranking in {resolve_processes(0)} processes, "
          f"{args.send_processes or 1} send process(es) x "
          f"{args.workers} connections, render and raw on "
          f"{results[0]['render_n']:,} digests of ~{results[0]['message_kb']} KB, raw/s the "
          f"faster of the median of {RAW_ROUNDS} pushes as the scheduler placed client and "
          f"sink ({results[0]['raw_free_per_s']:.0f}/s) and of {RAW_ROUNDS} with both on one "
          f"CPU ({results[0]['raw_one_cpu_per_s']:.0f}/s); SVM "
          f"{svm['per_subscriber_s'] * 1000:.0f} ms/subscriber on {svm['sample']} subscribers)")
    for r in results:
        if r.get("send_extrapolated"):
            print(f"* {r['subscribers']:,}: send phase measured on {r['sent']:,} digests in "
                  f"{r['send_measured_s']:.1f} s, the other {r['planned'] - r['sent']:,} at "
                  f"the steady rate of its second half ({r['send_steady_per_s'] or 0:.0f}/s), "
                  f"their messages dropped in {r['held_purge_s']:.1f} s; "
                  f"scaling the whole measured time: {r['send_s_linear']:.1f} s "
                  "(--send-limit 0 sends all)")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": corpus_path().name,
        "settings": {"papers": args.papers, "workers": args.workers,
                     "send_processes": args.send_processes, "send_limit": args.send_limit,
                     "render_sample": args.render_sample, "svm_sample": args.svm_sample,
                     "seed": args.seed, "rank_page": args.rank_page,
                     "cpus": os.cpu_count()},
        "sizes": results,
        "svm": svm,
        "targets": lines,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
