"""Mutual exclusion between every thread and process that opens a store: ``flock(2)``.

Each acquisition opens the lock file anew. flock locks belong to an open file description, so
two threads of one process exclude each other as two processes do, and a forked child never
inherits a lock its parent holds. Several queue locks are always taken in sorted order and the
counter's lock last, so two consumers can never wait on each other.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

__all__ = ["allocate", "locked"]

_WIDTH = 20


@contextmanager
def locked(paths: Iterable[Path]) -> Iterator[None]:
    """Hold an exclusive lock on every file of ``paths`` (created if missing)."""
    with ExitStack() as stack:
        for path in sorted(set(paths)):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            stack.callback(os.close, fd)  # closing the descriptor releases its lock
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield


def allocate(counter: Path, n: int) -> int:
    """Take ``n`` consecutive numbers from the store's counter file; returns the first.

    The numbers order every put and bury of the store, across its queues and processes, and are
    never handed out twice.
    """
    fd = os.open(counter, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, _WIDTH, 0).strip()
        first = int(raw) + 1 if raw else 1
        # A fixed-width overwrite in place: a reader never sees a shorter, truncated number.
        os.pwrite(fd, f"{first + n - 1:0{_WIDTH}d}".encode(), 0)
        return first
    finally:
        os.close(fd)
