"""Jobs as users write them: a ``Job`` subclass with ``run()``, or a function with ``@job``.

Both register under a name (``module.qualname`` unless given) in one registry; a worker runs
only names it has registered, so a queue's contents can never name arbitrary code.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, ParamSpec, TypeVar, overload

from kue.errors import UnknownJob

if TYPE_CHECKING:
    from kue.queue import JobHandle, Queue

__all__ = [
    "DEFAULT_PRIORITY", "DEFAULT_TIME_LIMIT", "DEFAULT_TTR", "Job", "JobFunction",
    "check_time_limit", "is_async", "job", "lookup", "registry",
]

#: Priority of a job that names none: the middle of 0 (most urgent) .. 2**32-1.
DEFAULT_PRIORITY = 2**31
#: Seconds a job stays held by a worker that stopped renewing it (died or froze) before it is
#: handed to another. A live worker renews the lease while the job runs (see
#: :mod:`kue.worker.lease`), so this is not a cap on how long a job may run.
DEFAULT_TTR = 60.0

#: Seconds one attempt may run when neither the job nor ``kue-worker --time-limit`` says: ten
#: minutes, Dramatiq's default. Long enough for nearly every job a web app queues, short enough
#: that a job stuck on a dead socket frees its worker well within the hour.
DEFAULT_TIME_LIMIT = 600.0

_registry: dict[str, type[Job]] = {}


def check_time_limit(seconds: object) -> float:
    """Return ``seconds`` if it is a positive number (``math.inf`` for none), else raise."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"time_limit must be a number of seconds, got {seconds!r}")
    if not seconds > 0:  # also refuses NaN
        raise ValueError(
            f"time_limit {seconds!r} must be more than 0 s (math.inf for no limit)"
        )
    return float(seconds)


def is_async(job_class: type[Job]) -> bool:
    """Whether the job's ``run`` is a coroutine function (the worker awaits it)."""
    return inspect.iscoroutinefunction(job_class.run)


def registry() -> dict[str, type[Job]]:
    """A copy of the registered job classes by name."""
    return dict(_registry)


def lookup(name: str) -> type[Job]:
    """The job class registered as ``name``; raises UnknownJob if there is none."""
    try:
        return _registry[name]
    except KeyError:
        raise UnknownJob(name) from None


class Job:
    """Base class of class-form jobs: construct with the job's arguments, implement ``run``.

    Class attributes set the defaults a push uses: ``name`` (registry name), ``queue``,
    ``priority``, ``delay``, ``ttr``, ``max_attempts``, ``backoff`` and ``backoff_cap``
    (seconds; retries wait about ``backoff * 2**(attempt-1)``, capped, with jitter), and
    ``time_limit``: seconds one attempt may run before the worker stops it and counts it as a
    failure (None: the worker's ``--time-limit``; ``math.inf``: no limit).
    ``result_ttl``: seconds the record of a done job (its result) is kept (None: the worker's
    ``--result-ttl``; 0: none).
    ``run`` may be ``async def``: the worker awaits it on an event loop it owns.
    The constructor's arguments are what travels: they must be JSON-able.
    """

    name: ClassVar[str] = ""
    queue: ClassVar[str] = "default"
    priority: ClassVar[int] = DEFAULT_PRIORITY
    delay: ClassVar[float] = 0.0
    ttr: ClassVar[float] = DEFAULT_TTR
    max_attempts: ClassVar[int] = 3
    backoff: ClassVar[float] = 1.0
    backoff_cap: ClassVar[float] = 600.0
    time_limit: ClassVar[float | None] = None
    result_ttl: ClassVar[float | None] = None

    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __init_subclass__(cls, *, register: bool = True, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "name" not in cls.__dict__ or not cls.__dict__["name"]:
            cls.name = f"{cls.__module__}.{cls.__qualname__}"
        original_init = cls.__dict__.get("__init__")
        if original_init is not None:

            @functools.wraps(original_init)
            def recording_init(self: Job, *args: Any, **kwargs: Any) -> None:
                if not hasattr(self, "args"):
                    self.args, self.kwargs = args, kwargs
                original_init(self, *args, **kwargs)

            cls.__init__ = recording_init  # type: ignore[method-assign]
        limit = cls.__dict__.get("time_limit")
        if limit is not None:
            check_time_limit(limit)
        if register:
            _registry[cls.name] = cls

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not hasattr(self, "args"):
            self.args, self.kwargs = args, kwargs

    def run(self) -> Any:
        """Do the work. Raise to fail this attempt; the worker retries until max_attempts.

        May be ``async def``: the worker then awaits it on its event loop.
        """
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")

    @classmethod
    def retry_delay(cls, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``: exponential, capped, jittered."""
        ceiling = min(cls.backoff_cap, cls.backoff * float(2 ** max(attempt - 1, 0)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{type(self).__name__}({', '.join(parts)})"


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
        from kue.shared_queues import shared_queue

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
