"""Coroutine jobs: an event loop the worker owns, and a time limit that cancels.

A worker that runs one job at a time (one process, each ``--threads`` thread, each prefork
child) hands a coroutine job to the process's loop thread and waits for it; the
``--coroutines N`` worker (:mod:`kue.worker.concurrent`) runs many on its own loop.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

from kue.interrupts import TimeLimitExceeded

__all__ = ["LoopThread", "is_coroutine_job", "limited", "loop_thread"]

T = TypeVar("T")


async def limited(awaitable: Awaitable[T], seconds: float) -> T:
    """Await ``awaitable``, cancelling it and raising TimeLimitExceeded after ``seconds``.

    A TimeoutError the job raises itself (an HTTP client's, say) stays a TimeoutError.
    """
    if math.isinf(seconds):
        return await awaitable
    try:
        async with asyncio.timeout(seconds) as scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise TimeLimitExceeded(seconds) from None
        raise


class LoopThread:
    """An event loop running in a daemon thread, for the coroutine jobs of sync workers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self._thread = threading.Thread(target=self.loop.run_forever, name="kue-loop",
                                        daemon=True)
        self._thread.start()

    def run(self, awaitable: Awaitable[T], time_limit: float) -> T:
        """Run ``awaitable`` on the loop under ``time_limit`` and wait for its result here.

        If the waiting thread is interrupted (a signal, a stop), the coroutine is cancelled.
        """

        async def main() -> T:
            return await limited(awaitable, time_limit)

        future = asyncio.run_coroutine_threadsafe(main(), self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise


_lock = threading.Lock()
_current: LoopThread | None = None


def loop_thread() -> LoopThread:
    """The loop thread of this process, started on first use (anew in a forked child)."""
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = LoopThread()
        return _current


def is_coroutine_job(result: Any) -> bool:
    """Whether what ``run()`` returned must be awaited (``async def run`` or an async function)."""
    return asyncio.iscoroutine(result) or isinstance(result, asyncio.Future)
