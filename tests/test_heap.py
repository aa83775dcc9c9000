"""The plan phase's heap settings: large blocks freed go back to the kernel.

Each case runs in a fresh interpreter, so glibc's malloc starts from its defaults.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from digest.forking import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="malloc_trim/mallopt are glibc's")

# What each program measures with: its resident memory and its page faults so far.
MEASURE = textwrap.dedent("""
    import json, sys
    import numpy as np

    def rss_mb():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024

    def faults():
        with open("/proc/self/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[7])  # minflt
""")

# A 24 MB block freed raises glibc's dynamic mapping threshold above 16 MB; the next
# 16 MB blocks then come from the heap, and a small block that outlives them (as the
# run's own objects do) keeps the heap from shrinking when they are freed. Resident
# memory after they are freed is measured, then after release_free_heap().
PROGRAM = MEASURE + textwrap.dedent("""
    from digest.forking import map_large_blocks, release_free_heap

    if sys.argv[1] == "mapped":
        map_large_blocks()
    big = np.ones(3 << 20)  # 24 MB, mapped either way
    del big
    before = rss_mb()
    blocks = [np.ones(2 << 20) for _ in range(8)]  # 8 x 16 MB, touched
    pin = bytearray(1 << 16)  # a small block that lives on, above them in the heap
    del blocks
    after_free = rss_mb()
    release_free_heap()
    print(json.dumps({"kept": after_free - before, "trimmed": rss_mb() - before}))
""")


def run(mode: str, program: str = PROGRAM) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", program, mode], capture_output=True,
                          text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def default() -> dict[str, float]:
    """glibc's defaults, measured once for both tests."""
    return run("default")


def test_large_blocks_freed_leave_the_process(default: dict[str, float]) -> None:
    mapped = run("mapped")
    # glibc's default keeps the freed 128 MB resident until trimmed ...
    assert default["kept"] > 100, default
    # ... with a fixed mapping threshold none of it stays.
    assert mapped["kept"] < 10, mapped


def test_release_free_heap_returns_what_the_heap_kept(default: dict[str, float]) -> None:
    assert default["kept"] > 100, default
    assert default["trimmed"] < 10, default


# Inside reused_heap() freed large blocks stay in the heap for the next ones (no page
# faults on reuse); leaving it gives their pages back and maps large blocks again.
REUSE = MEASURE + textwrap.dedent("""
    from digest.forking import map_large_blocks, reused_heap

    map_large_blocks()
    out = {}
    before = rss_mb()
    with reused_heap():
        np.ones(2 << 20)  # 16 MB, touched and freed
        first = faults()
        again = np.ones(2 << 20)  # the same memory, already resident
        out["reuse_faults"] = faults() - first
        del again
        out["kept_inside"] = rss_mb() - before
    out["kept_after"] = rss_mb() - before
    pin = bytearray(1 << 16)  # were it from the heap, this would keep it from shrinking
    np.ones(2 << 20)
    out["kept_outside"] = rss_mb() - before  # mapped again: freed with the array
    print(json.dumps(out))
""")


def test_reused_heap_keeps_large_blocks_inside_and_returns_them_after() -> None:
    got = run("reuse", REUSE)
    assert got["kept_inside"] > 12, got  # the freed 16 MB stayed for reuse
    assert got["reuse_faults"] < 100, got  # ... and was reused without faulting
    assert got["kept_after"] < 4, got  # gone once the block is left
    assert got["kept_outside"] < 4, got  # outside, large blocks are mapped again
