"""The job running here: ``kue.current_job()`` inside a job, with ``progress()``.

Set for the thread of a sync job and inside the task of a coroutine job.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kue.backend import Reservation

__all__ = ["PROGRESS_INTERVAL", "RunningJob", "current_job", "reset", "running", "with_current"]

#: Least seconds between two progress writes of one job; reports in between are dropped (the
#: record of a finished job supersedes them anyway).
PROGRESS_INTERVAL = 1.0

T = TypeVar("T")
_current: contextvars.ContextVar[RunningJob | None] = contextvars.ContextVar(
    "kue_current_job", default=None
)


class RunningJob:
    """The job this code runs in: its reservation's id, queue and attempts, and progress.

    :param reservation: what the worker holds.
    :param report: writes progress fields to the job's record (None: records are off).
    """

    def __init__(self, reservation: Reservation,
                 report: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.reservation = reservation
        self._report = report
        self._last_write = -math.inf

    @property
    def id(self) -> str:
        """The job's id."""
        return self.reservation.id

    @property
    def queue(self) -> str:
        """The queue it came from."""
        return self.reservation.queue

    @property
    def attempts(self) -> int:
        """How many times it has been reserved, this time included."""
        return self.reservation.attempts

    @property
    def priority(self) -> int:
        """Its priority (0 most urgent)."""
        return self.reservation.priority

    @property
    def ttr(self) -> float:
        """Seconds a dead worker keeps it from others."""
        return self.reservation.ttr

    def progress(self, fraction: float, note: str | None = None) -> bool:
        """Report how far the job is (0.0 to 1.0) and what it is doing, for ``status()``.

        Written at most once per :data:`PROGRESS_INTERVAL`; returns whether this one was.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not (
                0.0 <= fraction <= 1.0):
            raise ValueError(f"progress must be a number from 0.0 to 1.0, got {fraction!r}")
        if note is not None and not isinstance(note, str):
            raise TypeError(f"a progress note must be a str, got {type(note).__name__}")
        now = time.monotonic()
        if self._report is None or now - self._last_write < PROGRESS_INTERVAL:
            return False
        self._last_write = now
        self._report({"progress": float(fraction), "progress_note": note,
                      "progress_at": time.time()})
        return True

    def __repr__(self) -> str:
        r = self.reservation
        return f"<RunningJob {r.id} queue={r.queue!r} attempts={r.attempts}>"


def current_job() -> RunningJob | None:
    """The job running here (id, queue, attempts, ``progress()``), if any."""
    return _current.get()


def running(job: RunningJob) -> contextvars.Token[RunningJob | None]:
    """Make ``job`` the current job of this thread; reset with the returned token."""
    return _current.set(job)


def reset(token: contextvars.Token[RunningJob | None]) -> None:
    """Undo :func:`running`."""
    _current.reset(token)


async def with_current(job: RunningJob, awaitable: Awaitable[T]) -> T:
    """Await a coroutine job with :func:`current_job` set to ``job`` in its task."""
    token = _current.set(job)
    try:
        return await awaitable
    finally:
        _current.reset(token)
