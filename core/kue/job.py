"""Jobs as users write them: a ``Job`` subclass with ``run()``, or a function with ``@job``.

Both register under a name (``module.qualname`` unless given) in one registry; a worker runs
only names it has registered, so a queue's contents can never name arbitrary code.
"""

from __future__ import annotations

import functools
import inspect
import random
import time
import uuid
from typing import Any, ClassVar

from kue.codec import Envelope
from kue.errors import UnknownJob

__all__ = [
    "DEFAULT_PRIORITY", "DEFAULT_TIME_LIMIT", "DEFAULT_TTR", "Job", "build_job",
    "check_time_limit", "envelope_of", "is_async", "lookup", "registry",
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


def envelope_of(job: Job) -> Envelope:
    """The envelope for a Job instance, stamped with a fresh id and the time."""
    return Envelope(
        job=type(job).name,
        args=list(job.args),
        kwargs=dict(job.kwargs),
        attempt=0,
        enqueued_at=time.time(),
        id=uuid.uuid4().hex,
    )


def build_job(envelope: Envelope) -> Job:
    """The registered Job an envelope names, built with its arguments (UnknownJob if unknown)."""
    return lookup(envelope.job)(*envelope.args, **envelope.kwargs)
