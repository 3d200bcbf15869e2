"""Stopping a job that runs past its time limit, by how the job runs.

- In the main thread of a one-process worker, SIGALRM (``setitimer``) raises
  :class:`~kue.interrupts.TimeLimitExceeded` into the job, as RQ does; a signal also ends a blocking
  ``time.sleep`` or socket wait early.
- In any other thread, the exception is set asynchronously on that thread
  (``PyThreadState_SetAsyncExc``), as Dramatiq's time limit does. It lands at the next Python
  bytecode: a job blocked inside one C call (a long ``time.sleep``, a socket read without a
  timeout) is stopped only when that call returns.
- A coroutine job is cancelled (:mod:`kue.worker.aio`); a prefork child is killed by its
  supervisor (:mod:`kue.worker.supervisor`).
"""

from __future__ import annotations

import ctypes
import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from signal import ITIMER_REAL, setitimer
from types import FrameType

from kue.interrupts import TimeLimitExceeded
from kue.worker.timers import TimerThread

__all__ = ["AlarmLimiter", "Limiter", "NoLimiter", "ThreadLimiter", "limiter_for_this_thread"]


class Limiter:
    """Runs a block under a time limit (subclasses say how the block is stopped)."""

    @contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        """Raise :class:`TimeLimitExceeded` into the block once it runs ``seconds``."""
        yield


class NoLimiter(Limiter):
    """Enforces nothing: something else does (a prefork child's supervisor kills it)."""


class AlarmLimiter(Limiter):
    """SIGALRM into the main thread; only usable there.

    The handler is installed on first use and stays: per job only the timer is armed and
    disarmed (two system calls), as this runs on the worker's hot path.
    """

    def __init__(self) -> None:
        self._armed: float | None = None
        self._installed = False

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        limit = self._armed
        if limit is not None:
            self._armed = None
            raise TimeLimitExceeded(limit)

    @contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        """Arm a one-shot ITIMER_REAL for ``seconds``; disarmed when the block ends."""
        if math.isinf(seconds):
            yield
            return
        if not self._installed:
            signal.signal(signal.SIGALRM, self._on_alarm)
            self._installed = True
        self._armed = seconds
        setitimer(ITIMER_REAL, seconds)
        try:
            yield
        finally:
            # Disarm first: an alarm between here and the timer reset finds _armed None.
            self._armed = None
            setitimer(ITIMER_REAL, 0)


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


class ThreadLimiter(Limiter):
    """Sets TimeLimitExceeded on the job's thread from a timer thread (Dramatiq's way).

    :param timers: the timer thread that fires the interruptions (shared by a process's
        worker threads).
    """

    def __init__(self, timers: TimerThread) -> None:
        self.timers = timers

    @contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        """Interrupt the calling thread once the block has run ``seconds``."""
        if math.isinf(seconds):
            yield
            return
        thread_id = threading.get_ident()
        guard = threading.Lock()
        running = [True]

        def interrupt() -> None:
            with guard:
                if running[0]:
                    # Named as the public class, so tracebacks read the same in every mode.
                    exc = type("TimeLimitExceeded", (_Limited,),
                               {"limit": seconds, "__module__": "kue.errors"})
                    _set_async_exc(thread_id, exc)

        timer = self.timers.call_later(seconds, interrupt)
        try:
            yield
        finally:
            self.timers.cancel(timer)
            with guard:
                running[0] = False
                # An interruption set but not yet raised must not land after the block.
                _set_async_exc(thread_id, ctypes.py_object())


class _Limited(TimeLimitExceeded):
    """What an asynchronous interruption raises.

    The class carries the limit, as the C API takes a class and not an instance.
    """

    limit: float

    def __init__(self, *args: object) -> None:
        super().__init__(type(self).limit)


def limiter_for_this_thread(timers: TimerThread) -> Limiter:
    """SIGALRM in the main thread, asynchronous interruption in any other."""
    if threading.current_thread() is threading.main_thread():
        return AlarmLimiter()
    return ThreadLimiter(timers)
