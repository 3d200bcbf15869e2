"""Running one admitted job in this thread: under its time limit, awaited if it is async."""

from __future__ import annotations

from typing import Any

from kue.worker.aio import is_coroutine_job, loop_thread
from kue.worker.current import RunningJob, reset, running, with_current
from kue.worker.limits import Limiter
from kue.worker.settle import Admitted

__all__ = ["run_here"]


def run_here(admitted: Admitted, job: RunningJob, limiter: Limiter) -> Any:
    """Run the job in this thread and return what it returned.

    A sync ``run`` is stopped by ``limiter`` at the limit; an ``async def`` one is awaited on
    the process's loop thread and cancelled there at the limit.
    """
    token = running(job)
    try:
        with limiter.limit(admitted.time_limit):
            result = admitted.build().run()
        if is_coroutine_job(result):
            result = loop_thread().run(with_current(job, result), admitted.time_limit)
        return result
    finally:
        reset(token)
