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
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")

# The function a forked child applies to its share (or to the items it claims, and
# those items): set just before the fork.
_WORK: Callable[[Any], Any] | None = None
_ITEMS: Sequence[Any] = ()
_LIMIT: Callable[[], AbstractContextManager[Any]] = nullcontext
# map_forked_then: the next item from the front and from the back, in memory the forked
# processes share (claimed under its lock); and the limit a child entered for good
# (referenced: a context manager collected unexited would be left).
_CLAIMS: Any = None
_HELD: AbstractContextManager[Any] | None = None
# Waits for the processes of the last map_forked_then to exit (see _exit_later).
_EXITING: threading.Thread | None = None
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
    here: Callable[[Callable[[], list[R]]], list[R]] = lambda work: work(),
) -> list[R]:
    """Return ``[func(item) for item in items]``, computed here and in forked processes.

    Items are dealt round-robin to this process and ``processes - 1`` forked ones, each
    inside ``limit()`` (say, one BLAS thread a process). This process's share is
    computed by ``here(work)`` (after the fork: it may start a thread). The children
    exit with os._exit (multiprocessing's way), so no database connection or lock of
    the parent is used in them. An exception in ``func`` is raised here; a child that
    dies (killed, out of memory) raises ``died()`` rather than returning partial results.
    """
    processes = min(processes, len(items))
    if processes <= 1:
        with limit():
            return here(lambda: [func(item) for item in items])
    shares = [list(items[i::processes]) for i in range(processes)]
    context = multiprocessing.get_context("fork")
    with _forking(func, limit), ProcessPoolExecutor(
            processes - 1, mp_context=context, initializer=_die_with_parent,
            initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_run_share, share) for share in shares[1:]]
        with limit():
            mine = here(lambda: [func(item) for item in shares[0]])
        try:
            theirs = [future.result() for future in futures]
        except BrokenProcessPool as err:
            raise died() from err
    results: list[R] = [None] * len(items)  # type: ignore[list-item]  # all filled below
    for offset, share in enumerate([mine, *theirs]):
        results[offset::processes] = share
    return results


def map_forked_then(
    func: Callable[[T], R],
    then: Callable[[R], S],
    items: Sequence[T],
    processes: int,
    *,
    died: Callable[[], Exception],
    limit: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> list[S]:
    """Return ``[then(func(item)) for item in items]``: ``func`` runs here and in forked
    processes, ``then`` here, on each result as soon as it is here.

    For items that take a while each (a chunk of profiles, ~0.1-0.2 s) whose results
    are work to take in (a page's ScoredPaper lists): the ``processes - 1`` forked
    processes claim items from the front one at a time and this one from the back, and
    between two of its own it applies ``then`` to the results the others sent. Taking
    in the results so runs beside the others' work instead of after it, the processes
    finish together however fast each one goes (another job on a CPU, the copies a
    forked process makes of the pages it writes), and no item is pickled (claimed by
    index). Dealt in fixed shares (map_forked), one process waited for the other's share
    and then took in every result. ``limit`` as in map_forked; a forked process enters
    it once for all its items.
    """
    count = len(items)
    processes = min(processes, count)
    if processes <= 1:
        with limit():
            return [then(func(item)) for item in items]
    results: list[Any] = [None] * count
    context = multiprocessing.get_context("fork")
    with _forking(func, limit, items, claims=context.Array("q", [0, count])) as claims:
        pool = ProcessPoolExecutor(processes - 1, mp_context=context,
                                   initializer=_start_claiming, initargs=(os.getpid(),))
        try:
            # One claim each, at most: a claim finding nothing left returns None.
            futures = [pool.submit(_run_claimed) for _ in range(count)]
            try:
                _take_turns(func, then, items, futures, results, limit)
            except BrokenProcessPool as err:
                raise died() from err
            finally:  # after an error, no process claims another item
                if claims.get_lock().acquire(timeout=1.0):  # else a dead one holds it
                    claims[0] = claims[1]
                    claims.get_lock().release()
                for future in futures:
                    future.cancel()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        _exit_later(pool)
    return results


@contextmanager
def _forking(
    func: Callable[[Any], Any],
    limit: Callable[[], AbstractContextManager[Any]],
    items: Sequence[Any] = (),
    *,
    claims: Any = None,
) -> Iterator[Any]:
    """Hold the fork lock with what forked processes read set (yields ``claims``).

    The processes of the last map_forked_then have exited first. Objects that exist at
    the fork are left out of every garbage collection until the children are done: a
    child's collection would otherwise write into each of them and so copy every page
    of the parent's heap it inherited.
    """
    global _WORK, _ITEMS, _LIMIT, _CLAIMS
    with FORK_LOCK:
        _join_exiting()
        _WORK, _ITEMS, _LIMIT, _CLAIMS = func, items, limit, claims
        gc.freeze()
        release_free_heap()
        try:
            yield claims
        finally:
            _WORK, _ITEMS, _LIMIT, _CLAIMS = None, (), nullcontext, None
            gc.unfreeze()


def _exit_later(pool: ProcessPoolExecutor) -> None:
    """Let the pool's processes exit while this one goes on; joined before the next fork.

    A forked process's exit undoes its mappings of the parent's memory: the parent
    waited for it with the results already in, ~85 ms a page of 5,000 bench profiles
    (0.68 s over 8 pages, other jobs on the box). A thread waits instead (the next fork
    joins it first: no thread of ours but the forking one runs when a process is forked).
    """
    global _EXITING
    _EXITING = threading.Thread(target=pool.shutdown, name="digest-forked-exit")
    _EXITING.start()


def _join_exiting() -> None:
    """Wait until the processes of the last map_forked_then have exited."""
    global _EXITING
    if _EXITING is not None:
        _EXITING.join()
        _EXITING = None


def _start_claiming(parent: int) -> None:
    """Start a forked process of map_forked_then: die with the parent, limit for good."""
    global _HELD
    _die_with_parent(parent)
    _HELD = _LIMIT()
    _HELD.__enter__()  # never left: the process ends with os._exit


def _claim(front: bool, alive: Callable[[], bool] = lambda: True) -> int:
    """Return the next item's index from the front or from the back; -1: none is left.

    ``alive`` is asked while the lock is held elsewhere for a second: a process killed
    holding it would otherwise leave this one waiting forever.
    """
    lock = _CLAIMS.get_lock()
    while not lock.acquire(timeout=1.0):
        if not alive():
            raise BrokenProcessPool("a forked process died holding the claims' lock")
    try:
        start, stop = _CLAIMS[0], _CLAIMS[1]
        if start >= stop:
            return -1
        if front:
            _CLAIMS[0] = start + 1
            return int(start)
        _CLAIMS[1] = stop - 1
        return int(stop - 1)
    finally:
        lock.release()


def _run_claimed() -> tuple[int, Any] | None:
    assert _WORK is not None, "children are forked after _WORK is set"
    index = _claim(front=True)
    return None if index < 0 else (index, _WORK(_ITEMS[index]))


def _take_turns(
    func: Callable[[T], R],
    then: Callable[[R], S],
    items: Sequence[T],
    futures: list[Future[tuple[int, R] | None]],
    results: list[Any],
    limit: Callable[[], AbstractContextManager[Any]],
) -> None:
    """Do items from the back, take in the others' results between them; then the rest."""
    taken = 0  # futures looked at, from the first

    def take(block: bool) -> None:
        nonlocal taken
        while taken < len(futures) and (block or futures[taken].done()):
            future = futures[taken]
            taken += 1
            claimed = None if future.cancelled() else future.result()
            if claimed is not None:  # None: nothing was left when it ran
                results[claimed[0]] = then(claimed[1])

    def alive() -> bool:
        return not any(f.done() and not f.cancelled() and f.exception() is not None
                       for f in futures)

    with limit():
        while (index := _claim(front=False, alive=alive)) >= 0:
            results[index] = then(func(items[index]))
            take(block=False)
    for future in futures:  # every item is claimed: what has not started never will
        future.cancel()
    take(block=True)
