"""``@kue.job``: a function made a job, that can be called as before or pushed.

It sits above :mod:`kue.job` and beside :mod:`kue.queue` because pushing opens a queue from
configuration; :mod:`kue.job` itself knows nothing of queues.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from kue.job import DEFAULT_PRIORITY, DEFAULT_TTR, Job, check_time_limit
from kue.queue import JobHandle, Queue
from kue.shared_queues import shared_queue

__all__ = ["JobFunction", "job"]

P = ParamSpec("P")
R = TypeVar("R")


class JobFunction(Generic[P, R]):
    """What ``@kue.job`` returns: the function, callable as before, that can also be pushed."""

    def __init__(self, func: Callable[P, R], job_class: type[Job]) -> None:
        self.func = func
        self.job_class = job_class
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, as if undecorated."""
        return self.func(*args, **kwargs)

    def message(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """A Job carrying these arguments, for ``queue.push`` or a batch."""
        inspect.signature(self.func).bind(*args, **kwargs)  # wrong arguments fail here
        return self.job_class(*args, **kwargs)

    def push(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle | None:
        """Push a call to the job's own queue, opened from configuration; returns the id.

        The queue stays open for the next push: one per configured URL and queue name in
        each process (a forked child opens its own; they close at interpreter exit).
        """
        message = self.message(*args, **kwargs)  # wrong arguments fail before any I/O
        queue: Queue = shared_queue(self.job_class.queue)
        return queue.push(message)

    async def apush(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle | None:
        """:meth:`push` for async code: it runs in a thread, so the event loop never blocks."""
        import asyncio  # not at the top: it takes ~15 ms that ``import kue`` need not pay

        return await asyncio.to_thread(self.push, *args, **kwargs)


@overload
def job(func: Callable[P, R], /) -> JobFunction[P, R]: ...


@overload
def job(
    func: None = None,
    /,
    *,
    name: str | None = None,
    queue: str = "default",
    priority: int = DEFAULT_PRIORITY,
    delay: float = 0.0,
    ttr: float = DEFAULT_TTR,
    max_attempts: int = 3,
    backoff: float = 1.0,
    backoff_cap: float = 600.0,
    time_limit: float | None = None,
) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...


def job(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str = "default",
    priority: int = DEFAULT_PRIORITY,
    delay: float = 0.0,
    ttr: float = DEFAULT_TTR,
    max_attempts: int = 3,
    backoff: float = 1.0,
    backoff_cap: float = 600.0,
    time_limit: float | None = None,
) -> Any:
    """Make a function a job: ``@kue.job`` or ``@kue.job(queue="emails", max_attempts=5)``.

    The arguments set the defaults of each push, as the class attributes of :class:`Job` do.
    ``time_limit`` caps one attempt's run (None: the worker's ``--time-limit``). The function
    may be ``async def``: the worker awaits it on its event loop.
    """
    if time_limit is not None:
        check_time_limit(time_limit)

    def decorate(fn: Callable[P, R]) -> JobFunction[P, R]:
        run: Callable[[Job], Any]
        if inspect.iscoroutinefunction(fn):
            # An async def run, so the worker can tell a coroutine job before it runs it.
            async def run_async(self: Job) -> Any:
                return await fn(*self.args, **self.kwargs)

            run = run_async
        else:

            def run_sync(self: Job) -> Any:
                return fn(*self.args, **self.kwargs)

            run = run_sync

        attrs: dict[str, Any] = {
            "name": name or f"{fn.__module__}.{fn.__qualname__}",
            "queue": queue,
            "priority": priority,
            "delay": delay,
            "ttr": ttr,
            "max_attempts": max_attempts,
            "backoff": backoff,
            "backoff_cap": backoff_cap,
            "time_limit": time_limit,
            "run": run,
            "__module__": fn.__module__,
            "__qualname__": f"{fn.__qualname__}.Job",
            "__doc__": fn.__doc__,
        }
        job_class = type(fn.__name__, (Job,), attrs)
        return JobFunction(fn, job_class)

    if func is not None:
        return decorate(func)
    return decorate
