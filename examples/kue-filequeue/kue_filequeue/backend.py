"""A kue backend in a directory: ``filequeue:///path/to/dir``.

One subdirectory per queue, one JSON file per job (:mod:`kue_filequeue.layout`), every state
change a single rename under the queue's ``flock`` (:mod:`kue_filequeue.locks`), so any number
of threads and processes on one machine can share a store.

What it promises and what it does not:

- Order: lowest priority first, then put order across all queues of the store; a released,
  kicked or delayed job keeps its place, because its put number is part of its file name.
- Durable against a crash of any process: a job file is complete before it is renamed into
  place. Nothing is fsynced, so a power cut may lose the latest changes.
- Time: due times are wall-clock microseconds, so every process must share one clock (one
  machine). Local filesystems only: flock over NFS is not reliable.
- A blocked reserve is woken at once by a put from its own process; other processes' puts are
  seen by polling, every 2 ms at first, backing off to every 25 ms.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from kue.spi import (
    Capabilities,
    JobInfo,
    JobState,
    PutItem,
    QueueStats,
    Reservation,
    ReservationLost,
)
from kue_filequeue.layout import (
    Entry,
    QueueDir,
    due_key,
    new_record,
    read_record,
    record_body,
    write_record,
)
from kue_filequeue.locks import allocate, locked

__all__ = ["CAPABILITIES", "FIRST_POLL", "POLL_INTERVAL", "FileQueueBackend"]

READY, DELAYED, RESERVED, BURIED = (
    JobState.READY, JobState.DELAYED, JobState.RESERVED, JobState.BURIED
)

CAPABILITIES = Capabilities(
    name="filequeue",
    durable=True,
    shared=True,
    # A file per job is cheap for small jobs; large payloads belong elsewhere.
    max_body=2**20,
    min_ttr=1.0,
    max_batch=1000,
    extra={"durability": "survives a crash of any process; no fsync, so not a power cut"},
)

#: Seconds before a blocked reserve first looks for jobs put by other processes.
FIRST_POLL = 0.002
#: Longest pause between such looks; the pause doubles from FIRST_POLL up to this.
POLL_INTERVAL = 0.025

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")

# Puts wake the blocked reserves of their own process at once; one condition per store.
_wakeups: dict[str, threading.Condition] = {}
_wakeups_lock = threading.Lock()


def _forget_wakeups() -> None:
    """In a forked child, drop conditions another thread of the parent may have held."""
    global _wakeups_lock
    _wakeups.clear()
    _wakeups_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_wakeups)


def _wakeup_for(root: str) -> threading.Condition:
    with _wakeups_lock:
        return _wakeups.setdefault(root, threading.Condition())


def _now() -> int:
    """Wall-clock microseconds: due times must mean the same in every process."""
    return time.time_ns() // 1000


def _micros(seconds: float) -> int:
    """Whole microseconds, rounded up so a delay or ttr is never shorter than asked."""
    return math.ceil(round(seconds * 1e6, 3))


class FileQueueBackend:
    """Jobs as files under ``root``; safe for threads and processes on one machine."""

    def __init__(
        self, root: str | os.PathLike[str], *, max_body: int = CAPABILITIES.max_body
    ) -> None:
        """Open the store at ``root``, creating the directory if needed."""
        self.capabilities = dataclasses.replace(CAPABILITIES, max_body=max_body)
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._counter = self.root / ".counter"
        self._queues: dict[str, QueueDir] = {}

    @property
    def _wakeup(self) -> threading.Condition:
        """The condition of the store in this process, looked up anew so a fork gets its own."""
        return _wakeup_for(str(self.root))

    def _queue(self, name: str) -> QueueDir:
        queue = self._queues.get(name)
        if queue is None:
            if not _QUEUE_NAME.fullmatch(name):
                raise ValueError(
                    f"queue name {name!r} cannot be a directory name here: use letters, digits, "
                    "'_', '.' and '-', not starting with '.' or '-', at most 200 characters"
                )
            queue = self._queues[name] = QueueDir(self.root, name)
        return queue

    def _notify(self) -> None:
        with self._wakeup:
            self._wakeup.notify_all()

    # -- putting ---------------------------------------------------------------------------

    def put(self, queue: str, body: bytes, priority: int, delay: float, ttr: float) -> str:
        """Store a job; ready at once or after ``delay`` seconds."""
        return self.put_many(queue, [PutItem(body, priority, delay, ttr)])[0]

    def put_many(self, queue: str, items: Sequence[PutItem]) -> list[str]:
        """Store several jobs under one lock, numbered in order; returns their ids."""
        if not items:
            return []
        q = self._queue(queue)
        ids: list[str] = []
        with locked([q.lock]):
            first = allocate(self._counter, len(items))
            now = _now()
            for seq, item in enumerate(items, first):
                record = new_record(str(seq), item.body, item.ttr)
                if item.delay > 0:
                    entry = Entry(now + _micros(item.delay), seq, item.priority, 0)
                    write_record(q, DELAYED, entry, record)
                else:
                    write_record(q, READY, Entry(item.priority, seq, item.priority, 0), record)
                ids.append(str(seq))
        self._notify()
        return ids

    # -- reserving -------------------------------------------------------------------------

    def _promote(self, q: QueueDir, now: int) -> None:
        """Move due delayed jobs and expired reservations to ready. Hold ``q``'s lock."""
        due = due_key(now)
        for state in (DELAYED, RESERVED):
            for name in q.names(state):
                if name[: len(due)] <= due:
                    entry = Entry.parse(name)
                    q.move(entry, state, entry.ready(), READY)

    def _take(self, queues: Sequence[QueueDir]) -> Reservation | None:
        """Reserve the most urgent ready job of ``queues``, or None; one locked pass."""
        with locked(q.lock for q in queues):
            now = _now()
            best: tuple[Entry, QueueDir] | None = None
            for q in queues:
                self._promote(q, now)
                entry = q.first(READY)
                if entry is not None and (best is None or entry.name < best[0].name):
                    best = (entry, q)
            if best is None:
                return None
            entry, q = best
            record = read_record(q, READY, entry)
            ttr = float(record["ttr"])
            held = Entry(now + _micros(ttr), entry.seq, entry.priority, entry.attempts + 1)
            q.move(entry, READY, held, RESERVED)
        return Reservation(
            queue=q.name, id=str(entry.seq), body=record_body(record), priority=entry.priority,
            attempts=held.attempts, ttr=ttr, receipt=str(held.attempts),
        )

    def reserve(self, queues: Sequence[str], timeout: float | None) -> Reservation | None:
        """Reserve the most urgent ready job of ``queues``, waiting up to ``timeout`` seconds."""
        dirs = [self._queue(name) for name in dict.fromkeys(queues)]
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = FIRST_POLL
        while True:
            job = self._take(dirs)
            if job is not None:
                return job
            wait = pause
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = min(wait, left)
            with self._wakeup:
                woken = self._wakeup.wait(wait)
            pause = FIRST_POLL if woken else min(pause * 2, POLL_INTERVAL)

    # -- acting on a reservation -----------------------------------------------------------

    def _held(self, q: QueueDir, r: Reservation) -> Entry:
        """The reserved entry behind ``r`` if ``r`` still holds it. Hold ``q``'s lock."""
        entry = q.find(RESERVED, int(r.id))
        if entry is None or str(entry.attempts) != r.receipt:
            raise ReservationLost(r.queue, r.id)
        if entry.key <= _now():
            q.move(entry, RESERVED, entry.ready(), READY)
            self._notify()
            raise ReservationLost(r.queue, r.id, "its ttr ran out")
        return entry

    def delete(self, job: Reservation) -> None:
        """Remove a reserved job for good."""
        q = self._queue(job.queue)
        with locked([q.lock]):
            os.unlink(q.file(RESERVED, self._held(q, job)))

    def release(self, job: Reservation, priority: int, delay: float) -> None:
        """Give a reserved job back with ``priority``, ready now or after ``delay`` seconds."""
        q = self._queue(job.queue)
        with locked([q.lock]):
            entry = self._held(q, job)
            if delay > 0:
                later = Entry(_now() + _micros(delay), entry.seq, priority, entry.attempts)
                q.move(entry, RESERVED, later, DELAYED)
            else:
                q.move(entry, RESERVED, Entry(priority, entry.seq, priority, entry.attempts),
                       READY)
        self._notify()

    def bury(self, job: Reservation, priority: int | None) -> None:
        """Set a reserved job aside until kicked, after every job buried before it."""
        q = self._queue(job.queue)
        with locked([q.lock]):
            entry = self._held(q, job)
            order = allocate(self._counter, 1)
            new_priority = entry.priority if priority is None else priority
            q.move(entry, RESERVED, Entry(order, entry.seq, new_priority, entry.attempts), BURIED)

    def touch(self, job: Reservation) -> None:
        """Give a reserved job its full ttr again, from now."""
        q = self._queue(job.queue)
        with locked([q.lock]):
            entry = self._held(q, job)
            ttr = float(read_record(q, RESERVED, entry)["ttr"])
            renewed = Entry(_now() + _micros(ttr), entry.seq, entry.priority, entry.attempts)
            q.move(entry, RESERVED, renewed, RESERVED)

    # -- looking and kicking ---------------------------------------------------------------

    def kick(self, queue: str, n: int) -> int:
        """Move the n longest-buried jobs, or with none buried the n soonest-due delayed."""
        q = self._queue(queue)
        with locked([q.lock]):
            self._promote(q, _now())
            state = BURIED if q.names(BURIED) else DELAYED
            chosen = sorted(q.names(state))[:n]
            for name in chosen:
                entry = Entry.parse(name)
                q.move(entry, state, entry.ready(), READY)
        if chosen:
            self._notify()
        return len(chosen)

    def peek(self, queue: str, state: JobState) -> JobInfo | None:
        """A copy of the job that leaves ``state`` next (ready, delayed or buried)."""
        if state is RESERVED:
            raise ValueError("peek takes ready, delayed or buried, not reserved")
        q = self._queue(queue)
        with locked([q.lock]):
            self._promote(q, _now())
            entry = q.first(state)
            if entry is None:
                return None
            body = record_body(read_record(q, state, entry))
        return JobInfo(queue, str(entry.seq), body, entry.priority, state, entry.attempts)

    def stats(self, queue: str) -> QueueStats:
        """Counts of jobs per state, after due jobs and expired reservations moved."""
        q = self._queue(queue)
        with locked([q.lock]):
            self._promote(q, _now())
            counts = {state: len(q.names(state)) for state in JobState}
        return QueueStats(counts[READY], counts[DELAYED], counts[RESERVED], counts[BURIED])

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""
