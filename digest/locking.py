"""The run lock: one run at a time per installation (a file lock beside the database)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from digest.errors import ConfigError, LockedError


@contextmanager
def run_lock(path: Path, *, wait: bool = False) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` for the duration; raise LockedError if taken.

    With ``wait``, wait for it instead; yield whether the lock was taken when asked (and
    so waited for). The kernel drops the lock when the process dies, even by ``kill
    -9``, so a crashed run never leaves a stale lock behind.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ConfigError(
            f"cannot open the run lock {path} in DIGEST_VAR_DIR: {err}",
            "make DIGEST_VAR_DIR a folder this user may write (e.g. chown -R digest var)",
        ) from err
    try:
        waited = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            if not wait:
                raise LockedError(
                    "another digest run holds the lock",
                    f"it will finish on its own; the lock file is {path}",
                ) from err
            fcntl.flock(fd, fcntl.LOCK_EX)
            waited = True
        # The pid is for a person looking at the file; the lock is the flock. On a full
        # disk (var/ beside logs that filled it) writing it failed with ENOSPC, and the
        # run died with a traceback and exit 1 before sending anything, though nothing
        # it needed was missing: the database and the SMTP server were fine.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield waited
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
