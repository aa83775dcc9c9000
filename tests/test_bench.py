"""A tiny run of bench/run.py finishes and writes every field (no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINI = ROOT / "tests" / "data" / "rank" / "corpus_mini.jsonl"

SIZE_FIELDS = {
    "subscribers", "batch_papers", "history_papers", "database", "setup_s", "ingest_s",
    "ingested", "plan_s", "rank_s", "planned", "render_n", "render_s", "render_per_s",
    "message_kb", "send_s", "sent", "send_failed", "send_per_s", "raw_s", "raw_sent",
    "raw_per_s", "send_vs_raw", "end_to_end_s", "peak_rss_mb", "rss_after_plan_mb",
    "rank_child_rss_mb", "plan_pss_peak_mb", "peak_memory_mb",
    "svm_extrapolated_s", "svm_ratio", "sink", "send_cpu_ms", "send_sink_cpu_ms",
    "send_busy", "raw_cpu_ms", "raw_sink_cpu_ms", "raw_rounds_per_s", "send_measured_s",
    "send_steady_per_s", "write_s", "written", "held_purged", "held_purge_s",
    "raw_free_rounds_per_s", "raw_one_cpu_rounds_per_s", "raw_free_per_s", "raw_one_cpu_per_s",
    "svm_subscribers", "send_steady_cpu_ms",
}


def test_a_tiny_benchmark_run_writes_the_expected_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["DIGEST_CORPUS"] = str(MINI)
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "run.py"), "--sizes", "50", "--papers", "100",
            "--render-sample", "10", "--svm-sample", "2", "--workers", "1",
            "--send-processes", "1", "--send-limit", "30", "--out", str(out),
        ],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "send/raw" in done.stdout and "rank" in done.stdout  # the table was printed
    document = json.loads(out.read_text())
    assert document["corpus"] == MINI.name
    (size,) = document["sizes"]
    assert set(size) >= SIZE_FIELDS, SIZE_FIELDS - set(size)
    assert size["subscribers"] == 50 and size["batch_papers"] == 100
    assert 0 < size["svm_subscribers"] < 50  # about 60% of the profiles have seeds
    assert size["database"] == "sqlite"
    # What the send limit let through was delivered exactly once, to a sink in another
    # process; the rest of the day is extrapolated: the measured phase, then the rest
    # at the steady rate of its second half.
    assert size["planned"] == 50 and size["sent"] == 30 and size["send_failed"] == 0
    assert size["written"] == 50 and 0 < size["write_s"] < size["plan_s"]  # in the plan
    assert size["sink"]["messages"] == size["sent"] + size["raw_sent"]
    assert size["sink"]["duplicates"] == size["raw_sent"]  # raw re-sends the sample
    assert "arrivals" not in size["sink"]
    assert size["send_extrapolated"] and size["send_steady_per_s"] > 0
    # The 20 held back had their messages dropped before the measured phase, timed and
    # added to the day (not left for the senders, whose CPU a message it would inflate).
    assert size["held_purged"] == 20 and size["held_purge_s"] > 0
    expected = size["send_measured_s"] + size["held_purge_s"] + 20 / size["send_steady_per_s"]
    assert abs(size["send_s"] - expected) < 0.01
    assert size["send_per_s"] == round(50 / size["send_s"], 1)
    assert "at the steady rate of its second half" in done.stdout
    # The sample went out once per round, three rounds as placed and three on one CPU;
    # raw/s is the faster placement's median round.
    free, one_cpu = size["raw_free_rounds_per_s"], size["raw_one_cpu_rounds_per_s"]
    assert size["raw_rounds_per_s"] == free
    assert len(free) == len(one_cpu) == 3 and size["raw_sent"] == 6 * size["render_n"]
    assert size["raw_free_per_s"] == sorted(free)[1] > 0
    assert size["raw_one_cpu_per_s"] == sorted(one_cpu)[1] > 0
    assert size["raw_per_s"] == max(sorted(free)[1], sorted(one_cpu)[1])
    assert f"({size['raw_one_cpu_per_s']:.0f}/s)" in done.stdout
    assert set(document["svm"]) >= {"sample", "shared_s", "per_subscriber_s"}
    assert any("send phase vs raw" in line for line in document["targets"])
    # The CPU each party spent on a message was read (processes that ran use some).
    assert size["send_cpu_ms"] > 0 and size["raw_cpu_ms"] > 0
    assert size["send_sink_cpu_ms"] >= 0 and 0 < size["send_busy"] <= 1.5
    # Sampled over the second half of the 30 messages, once the sender had started.
    steady = size["send_steady_cpu_ms"]
    assert steady is None or 0 <= steady < size["send_cpu_ms"]
    assert any("CPUs allow at most" in line for line in document["targets"])


def test_the_steady_rate_is_read_from_the_second_half_of_the_arrivals() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from run import steady_rate  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "bench"))
    # A slow start (10 messages in 5 s), then 10 a second.
    arrivals = [0.5 * i for i in range(10)] + [5.0 + 0.1 * i for i in range(30)]
    assert steady_rate(arrivals) == 10.0
    assert steady_rate(arrivals[:19]) is None  # too few to tell
    assert steady_rate([1.0] * 40) is None  # no time passed


def test_the_senders_steady_cpu_is_what_they_used_after_the_half_way_message() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from run import cpu_at, steady_cpu_ms
    finally:
        sys.path.remove(str(ROOT / "bench"))
    # Hand-made: 1 s of start-up CPU by t=1, then 1 ms of CPU a message, one message
    # each 10 ms from t=1 to t=1.39 (40 messages); the processes end with 1.4 s used.
    samples = [(0.0, 0.0), (1.0, 1.0), (1.2, 1.2), (1.4, 1.4)]
    arrivals = [1.0 + 0.01 * i for i in range(40)]
    assert cpu_at(samples, 1.1) == 1.1 and cpu_at(samples, 2.0) is None
    # Messages 21-39 arrive after the half-way one (at 1.2 s, 1.2 CPU s): 0.2 s for 19.
    assert steady_cpu_ms(samples, arrivals, total=1.4) == round(1000 * 0.2 / 19, 3)
    # (Counting the start-up too, as send_cpu_ms does, it would read 1.4 s / 40 = 35 ms.)
    assert steady_cpu_ms(samples, arrivals[:19], total=1.4) is None  # too few to tell
    assert steady_cpu_ms(samples[:1], arrivals, total=1.4) is None  # nothing sampled then


def test_the_svm_side_trains_a_model_only_for_subscribers_with_seed_papers() -> None:
    # Hand-made numbers: 100,000 subscribers, 60,000 of them with seed papers, 0.1 s a
    # model. A profile without seeds has nothing to train on: 6,000 s, not 10,000 s.
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from run import summarize
    finally:
        sys.path.remove(str(ROOT / "bench"))
    result = {
        "subscribers": 100_000, "svm_subscribers": 60_000, "batch_papers": 2_000,
        "rank_s": 40.0, "peak_memory_mb": 1000.0, "peak_rss_mb": 900.0,
        "plan_pss_peak_mb": 1000.0, "rank_child_rss_mb": 800.0, "end_to_end_s": 300.0,
        "send_vs_raw": 0.9,
    }
    lines = summarize([result], {"shared_s": 4.0, "per_subscriber_s": 0.1})
    assert result["svm_extrapolated_s"] == 6_004.0
    assert result["svm_ratio"] == 150.1
    assert any("per-subscriber LinearSVC >= 100x: 150x" in line for line in lines)


def test_a_tiny_ledger_benchmark_plans_the_half_not_yet_sent(tmp_path: Path) -> None:
    out = tmp_path / "ledger.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ledger.py"), "--subscribers", "300",
         "--days", "3", "--out", str(out)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the plan phase's ledger reads in all" in done.stdout
    result = json.loads(out.read_text())
    # Half of them had today's digest already (an earlier zone's run): the rest is due.
    assert (result["subscribers"], result["planned"], result["pages"]) == (300, 150, 1)
    for field in ("build_s", "due_s", "last_sent_s", "sent_papers_s",
                  "unsettled_s", "reads_s"):
        assert isinstance(result[field], float | int), field


def test_send_cpu_times_calls_that_exist() -> None:
    """bench/send_cpu.py wraps store, transport and send-loop calls by name: each must be
    there (the send loop's steps were renamed once, and the bench failed at its start)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import send_cpu

        from digest.store import Store
    finally:
        sys.path.remove(str(ROOT / "bench"))
    missing = [name for name in send_cpu.TIMED_STORE if not callable(getattr(Store, name, None))]
    missing += [f"{getattr(owner, '__name__', owner)}.{name}"
                for owner, name in send_cpu.TIMED_PARTS
                if not callable(getattr(owner, name, None))]
    assert missing == []
