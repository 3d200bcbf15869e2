"""One daemon thread that runs callbacks at given monotonic times (leases, time limits).

A heap and a condition variable: nothing wakes the thread between due times, so an idle worker
costs no CPU. The thread starts on the first call and belongs to the process that made it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Timer", "TimerThread"]

log = logging.getLogger("kue.worker")


class Timer:
    """A scheduled call; :meth:`TimerThread.cancel` it before it runs to stop it."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False


class TimerThread:
    """Runs each scheduled callback once, at or soon after its time, on one thread.

    :param name: the thread's name (shown by py-spy and in thread dumps).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the timer thread at ``time.monotonic() >= when``."""
        timer = Timer(when, callback)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"timer thread {self.name} is closed")
            heapq.heappush(self._heap, (when, next(self._seq), timer))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            elif self._heap[0][2] is timer:
                self._cond.notify()
        return timer

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the timer thread ``seconds`` from now."""
        return self.call_at(time.monotonic() + seconds, callback)

    def cancel(self, timer: Timer) -> None:
        """Keep ``timer`` from running, if it has not started yet."""
        timer.cancelled = True

    def close(self) -> None:
        """Stop the thread; pending timers never run."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _next_due(self) -> Timer | None:
        """Wait for the earliest timer to be due and pop it; None once closed.

        Cancelled timers are dropped only once one falls due, all at once: dropping them as
        soon as they are cancelled would empty the heap after every short job, so the next
        job's timer would wake this thread (a context switch per job on the hot path).
        """
        with self._cond:
            compact = False
            while not self._closed:
                if compact:
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    compact = False
                if not self._heap:
                    self._cond.wait()
                    continue
                when, _, timer = self._heap[0]
                wait = when - time.monotonic()
                if wait <= 0:
                    heapq.heappop(self._heap)
                    if not timer.cancelled:
                        return timer
                    compact = True
                elif not self._cond.wait(wait):
                    compact = True
            return None

    def _loop(self) -> None:
        while (timer := self._next_due()) is not None:
            if timer.cancelled:
                continue
            try:
                timer.callback()
            except Exception:  # one bad callback must not end every lease and limit
                log.exception("timer callback on %s failed", self.name)
