"""Map work over forked processes that inherit the parent's data instead of receiving it.

The plan phase's two CPU-bound steps, scoring profiles and writing digests, run this
way: the children are forked once the page's data exists, so they read its arrays,
papers and templates without copying or pickling them, and send back only results.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# The function a forked child applies to its share: set just before the fork.
_WORK: Callable[[Any], Any] | None = None
_LIMIT: Callable[[], AbstractContextManager[Any]] = nullcontext
# One fork at a time: a fork copies only the forking thread, and _WORK is global.
FORK_LOCK = threading.RLock()


def _die_with_parent(parent: int) -> None:
    """Make this forked child die when its parent does (Linux's PR_SET_PDEATHSIG).

    A pool's child waits on its parent's queue; were the parent killed (SIGKILL), the
    child would wait forever, holding every file the parent had open, the run lock
    among them, and so block every later run.
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):  # not Linux: it outlives a killed parent
        return
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def release_free_heap() -> None:
    """Hand the heap's free pages back to the kernel (glibc's malloc_trim; else nothing).

    Memory Python and numpy free stays in the C heap, resident, and a fork shares those
    dead pages with every child; the plan phase frees a page of subscribers' rankings
    and messages before it forks for the next (~100-150 MB returned at 10,000 a page;
    the benchmark's peak at 100,000 subscribers 1,259 -> 1,208 MB).
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def map_large_blocks() -> None:
    """Serve blocks of MMAP_THRESHOLD bytes and more from their own mappings, always.

    glibc raises its mapping threshold to the size of each mapped block freed (up to
    32 MB), so after the first chunk's score arrays every later one comes from the heap
    and stays resident when freed, as the page's rankings and messages do. Set where
    the ranker builds its day (the first large arrays of a rank call or a run). With the
    threshold fixed, the plan's peak (PSS of the run and its forked processes, 50,000
    bench subscribers) went 1,225 -> 1,076 MB; the benchmark's at 100,000, with
    release_free_heap already in, 1,208 -> 1,095 MB, its ranking time unchanged.
    Idempotent; a no-op without glibc.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


@functools.cache
def _libc() -> Any:
    """Return the process's C library (loaded once; forked children inherit it), or None."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


@functools.cache
def _glibc() -> Any:
    """Return the C library if it has glibc's heap controls, else None."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt"):
        return libc
    return None


@contextmanager
def reused_heap() -> Iterator[None]:
    """Serve large blocks from the heap, and keep what is freed there, for a while.

    For loops that make and free the same large arrays again and again (a chunk of
    profiles' P x T score arrays, ten chunks a page): a block mapped anew is faulted in
    page by page every time, 4 KB a fault (70,000-130,000 faults a page of 5,000 bench
    profiles in one process, a seventh of its CPU in the kernel, and the fresh pages
    miss the caches): scoring that page took 2.1-2.4 s, inside this 1.9 s. Inside,
    blocks up to REUSED_HEAP_LIMIT come from the heap and freed ones stay there for the
    next; on leaving, the mapping threshold is fixed again (map_large_blocks) and the
    heap's free pages go back (release_free_heap), so what the loop used does not stay
    resident. A no-op without glibc.
    """
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, REUSED_HEAP_LIMIT)
    libc.mallopt(_M_TRIM_THRESHOLD, REUSED_HEAP_LIMIT)
    try:
        yield
    finally:
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        map_large_blocks()
        release_free_heap()


_M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 128 << 10  # glibc's default (DEFAULT_TRIM_THRESHOLD)
REUSED_HEAP_LIMIT = 256 << 20


def _run_share(items: list[Any]) -> list[Any]:
    assert _WORK is not None, "children are forked after _WORK is set"
    with _LIMIT():
        return [_WORK(item) for item in items]


def map_forked(
    func: Callable[[T], R],
    items: Sequence[T],
    processes: int,
    *,
    died: Callable[[], Exception],
    limit: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> list[R]:
    """Return ``[func(item) for item in items]``, computed here and in forked processes.

    Items are dealt round-robin to this process and ``processes - 1`` forked ones, each
    inside ``limit()`` (say, one BLAS thread a process). The children exit with
    os._exit (multiprocessing's way), so no database connection or lock of the parent is
    used in them. An exception in ``func`` is raised here; a child that dies (killed,
    out of memory) raises ``died()`` rather than returning partial results.
    """
    global _WORK, _LIMIT
    processes = min(processes, len(items))
    if processes <= 1:
        with limit():
            return [func(item) for item in items]
    shares = [list(items[i::processes]) for i in range(processes)]
    context = multiprocessing.get_context("fork")
    with FORK_LOCK:
        _WORK, _LIMIT = func, limit
        # Objects that exist at the fork are left out of every garbage collection until
        # the children are done: a child's collection would otherwise write into each of
        # them and so copy every page of the parent's heap it inherited.
        gc.freeze()
        release_free_heap()
        try:
            with ProcessPoolExecutor(processes - 1, mp_context=context,
                                     initializer=_die_with_parent,
                                     initargs=(os.getpid(),)) as pool:
                futures = [pool.submit(_run_share, share) for share in shares[1:]]
                with limit():
                    mine = [func(item) for item in shares[0]]
                try:
                    theirs = [future.result() for future in futures]
                except BrokenProcessPool as err:
                    raise died() from err
        finally:
            _WORK, _LIMIT = None, nullcontext
            gc.unfreeze()
    results: list[R] = [None] * len(items)  # type: ignore[list-item]  # all filled below
    for offset, share in enumerate([mine, *theirs]):
        results[offset::processes] = share
    return results
