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
    from kue.queue import Queue

__all__ = ["DEFAULT_PRIORITY", "DEFAULT_TTR", "Job", "JobFunction", "job", "lookup", "registry"]

#: Priority of a job that names none: the middle of 0 (most urgent) .. 2**32-1.
DEFAULT_PRIORITY = 2**31
#: Seconds a worker has to finish a job before it is handed to another.
DEFAULT_TTR = 60.0

_registry: dict[str, type[Job]] = {}


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
    (seconds; retries wait about ``backoff * 2**(attempt-1)``, capped, with jitter).
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
        if register:
            _registry[cls.name] = cls

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not hasattr(self, "args"):
            self.args, self.kwargs = args, kwargs

    def run(self) -> Any:
        """Do the work. Raise to fail this attempt; the worker retries until max_attempts."""
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

    def push(self, *args: P.args, **kwargs: P.kwargs) -> str | None:
        """Push a call to the job's own queue, opened from configuration; returns the id."""
        from kue.queue import connect

        queue: Queue = connect(queue=self.job_class.queue)
        try:
            return queue.push(self.message(*args, **kwargs))
        finally:
            queue.close()


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
) -> Any:
    """Make a function a job: ``@kue.job`` or ``@kue.job(queue="emails", max_attempts=5)``.

    The arguments set the defaults of each push, as the class attributes of :class:`Job` do.
    """

    def decorate(fn: Callable[P, R]) -> JobFunction[P, R]:
        def run(self: Job) -> Any:
            return fn(*self.args, **self.kwargs)

        attrs: dict[str, Any] = {
            "name": name or f"{fn.__module__}.{fn.__qualname__}",
            "queue": queue,
            "priority": priority,
            "delay": delay,
            "ttr": ttr,
            "max_attempts": max_attempts,
            "backoff": backoff,
            "backoff_cap": backoff_cap,
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
