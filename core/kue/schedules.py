"""Periodic jobs: schedules declared in code (``@kue.periodic``) or configuration.

A schedule names a registered job, its arguments, and when it runs: a cron expression in a time
zone (parsed by `cronsim <https://pypi.org/project/cronsim/>`_, installed with ``kue[cron]``),
or an interval. Ticks of an interval are the multiples of it since the Unix epoch, so every
scheduler of a fleet agrees on them without talking; a tick of a cron schedule is an instant
(UTC seconds), so the two 02:30 of a night the clocks go back are two instants, and a daily job
runs once on it (cronsim keeps Debian cron's rules: see docs/periodic.md).

The scheduler (:mod:`kue.worker.scheduler`) puts each tick with a unique key made of the
schedule's name and the tick's time, so any number of schedulers put it once.

``catch_up`` says what a schedule does with ticks that passed while no scheduler ran (or while
its scheduler was stalled): ``"latest"`` (the default) puts the latest of them, ``"none"``
none, and a number N the N latest.
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kue.backend import MAX_PRIORITY
from kue.errors import ConfigError, UnknownJob
from kue.job import Job, lookup
from kue.job_function import JobFunction
from kue.job_function import job as make_job

__all__ = [
    "MISFIRE_GRACE",
    "STATE_NAMESPACE",
    "Schedule",
    "from_config",
    "periodic",
    "registered",
    "schedules_for",
]

#: Seconds after its time a tick still counts as on time for a running scheduler; one seen
#: later (the scheduler stalled, or the backend was down) was missed and follows ``catch_up``.
MISFIRE_GRACE = 60.0
#: The record-store namespace (a queue name) where each schedule's last tick is kept.
STATE_NAMESPACE = "kue-schedules"
#: How far before the ticks it wants a backwards cron search starts its forward walk, in
#: seconds: cronsim's reverse iteration may step over a tick near a clock change.
_CRON_MARGIN = 3 * 3600.0
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")

F = TypeVar("F")


def _cron_class() -> Any:
    try:
        from cronsim import CronSim
    except ImportError as exc:  # pragma: no cover - the tests install it
        raise ConfigError(
            "cron schedules need the cronsim package: pip install 'kue[cron]'"
        ) from exc
    return CronSim


def _check_catch_up(value: object, where: str) -> str | int:
    if value in ("none", "latest"):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1000:
        return value
    raise ConfigError(f"catch_up of {where} must be 'none', 'latest' or a number of ticks "
                      f"from 1 to 1000, got {value!r}")


@dataclass(frozen=True)
class Schedule:
    """One periodic job: which job, with which arguments, when, and onto which queue.

    :param name: the schedule's name, unique among schedules; it is part of each tick's key.
    :param job: the registered job's name.
    :param cron: a cron expression (5 fields, or 6 with seconds first), in ``tz``.
    :param every: seconds between ticks (whole, at least 1); ticks fall on its multiples
        since the Unix epoch (UTC).
    :param tz: the IANA time zone a cron expression is read in (default UTC).
    :param queue: the queue the ticks go to (default: the job's own).
    :param priority: the ticks' priority (default: the job's own).
    :param catch_up: ``"latest"``, ``"none"`` or a number of ticks: see the module's notes.
    """

    name: str
    job: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"
    queue: str | None = None
    priority: int | None = None
    catch_up: str | int = "latest"

    def __post_init__(self) -> None:
        where = f"schedule {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"a schedule's name must be 1 to 100 letters, digits or . _ : -, "
                              f"got {self.name!r}")
        if (self.cron is None) == (self.every is None):
            raise ConfigError(f"{where} needs exactly one of cron or every")
        if self.every is not None:
            every = self.every
            if isinstance(every, bool) or not isinstance(every, int | float) or not (
                    math.isfinite(every) and every >= 1 and every == int(every)):
                raise ConfigError(f"every of {where} must be a whole number of seconds >= 1, "
                                  f"got {every!r}")
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError(f"tz of {where} must be an IANA time zone such as "
                              f"'Europe/Berlin', got {self.tz!r}") from None
        object.__setattr__(self, "_zone", zone)
        if self.cron is not None:
            cron_sim = _cron_class()
            try:
                cron_sim(self.cron, datetime.now(zone))
            except Exception as exc:  # cronsim raises CronSimError, and ValueError on some
                raise ConfigError(f"cron of {where} is not a valid cron expression "
                                  f"({self.cron!r}): {exc}") from None
        if self.priority is not None and (
                isinstance(self.priority, bool) or not isinstance(self.priority, int)
                or not 0 <= self.priority <= MAX_PRIORITY):
            raise ConfigError(f"priority of {where} must be an int from 0 to {MAX_PRIORITY}, "
                              f"got {self.priority!r}")
        _check_catch_up(self.catch_up, where)
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's time zone."""
        return self._zone  # type: ignore[attr-defined,no-any-return]

    def describe(self) -> str:
        """When it runs, for people: ``cron '0 3 * * *' Europe/Berlin`` or ``every 300 s``."""
        if self.cron is not None:
            return f"cron {self.cron!r} {self.tz}"
        return f"every {self.every:g} s"

    # -- ticks -------------------------------------------------------------------------------

    def _cron_iter(self, after: float, reverse: bool = False) -> Iterable[datetime]:
        start = datetime.fromtimestamp(after, self.zone)
        return _cron_class()(self.cron, start, reverse=reverse)  # type: ignore[no-any-return]

    def next_after(self, t: float) -> float:
        """The first tick strictly after ``t`` (Unix seconds); math.inf if there is none."""
        if self.every is not None:
            return (math.floor(t / self.every) + 1) * self.every
        for tick in self._cron_iter(t):
            return tick.timestamp()
        return math.inf

    def latest_ticks(self, after: float, now: float, n: int) -> list[float]:
        """Up to the ``n`` latest ticks in ``(after, now]``, oldest first."""
        if n < 1 or now <= after:
            return []
        if self.every is not None:
            first = math.floor(after / self.every) + 1
            last = math.floor(now / self.every)
            return [k * self.every for k in range(max(first, last - n + 1), last + 1)]
        start = after
        back = iter(self._cron_iter(now + 1e-6, reverse=True))
        earliest = None
        for _ in range(n + 1):
            tick = next(back, None)
            if tick is None:
                break
            earliest = tick.timestamp()
        if earliest is not None:
            start = max(after, earliest - _CRON_MARGIN)
        found: collections.deque[float] = collections.deque(maxlen=n)
        for tick in self._cron_iter(start):
            t = tick.timestamp()
            if t > now:
                break
            if t > after:
                found.append(t)
        return list(found)

    def period_at(self, t: float) -> float:
        """Seconds between the two ticks after ``t``: how far apart its ticks are, about then."""
        if self.every is not None:
            return self.every
        first = self.next_after(t)
        second = self.next_after(first) if math.isfinite(first) else math.inf
        return second - first if math.isfinite(second) else 86400.0

    def tick_key(self, tick: float) -> str:
        """The unique key of one tick: the schedule's name and the tick's time (UTC)."""
        when = datetime.fromtimestamp(tick, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.name}@{when}"

    def job_class(self) -> type[Job]:
        """The registered job class the schedule runs (ConfigError if none is registered)."""
        try:
            return lookup(self.job)
        except UnknownJob:
            raise ConfigError(f"schedule {self.name!r} names job {self.job!r}, which is not "
                              "registered: import the module that defines it (--import)") from None

    def message(self) -> Job:
        """The job a tick puts: the job class built with the schedule's arguments."""
        return self.job_class()(*self.args, **self.kwargs)

    def queue_name(self) -> str:
        """The queue the ticks go to."""
        return self.queue or self.job_class().queue


_registry: dict[str, Schedule] = {}


def registered() -> list[Schedule]:
    """The schedules ``@kue.periodic`` declared in the modules imported so far, by name."""
    return [_registry[name] for name in sorted(_registry)]


def periodic(
    *,
    cron: str | None = None,
    every: timedelta | float | None = None,
    tz: str = "UTC",
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
    queue: str | None = None,
    priority: int | None = None,
    catch_up: str | int = "latest",
) -> Callable[[F], F]:
    """Run a job on a schedule: ``@kue.periodic(cron="0 3 * * *", tz="Europe/Berlin")``.

    Put it above ``@kue.job`` (or on a plain function, which then becomes a job with the
    defaults, or on a :class:`kue.Job` subclass). ``every`` is a ``timedelta`` or seconds.
    ``args`` and ``kwargs`` are what each tick's job is called with. The schedule is named
    after the job unless ``name`` says otherwise (two schedules of one job need names). A
    ``kue-worker --scheduler`` that imports the module puts its ticks.
    """
    seconds = every.total_seconds() if isinstance(every, timedelta) else every

    def decorate(target: F) -> F:
        job_class: type[Job]
        result: Any = target
        if isinstance(target, JobFunction):
            job_class = target.job_class
        elif isinstance(target, type) and issubclass(target, Job):
            job_class = target
        elif callable(target):
            result = make_job(target)
            job_class = result.job_class
        else:
            raise TypeError(f"@kue.periodic decorates a job function or class, got {target!r}")
        schedule = Schedule(
            name=name or job_class.name, job=job_class.name, args=tuple(args),
            kwargs=dict(kwargs or {}), cron=cron, every=seconds, tz=tz, queue=queue,
            priority=priority, catch_up=catch_up,
        )
        earlier = _registry.get(schedule.name)
        if earlier is not None and earlier != schedule:
            raise ConfigError(f"two schedules are named {schedule.name!r}: give one a name= of "
                              "its own")
        _registry[schedule.name] = schedule
        return result  # type: ignore[no-any-return]

    return decorate


_CONFIG_KEYS = {"name", "job", "args", "kwargs", "cron", "every", "tz", "queue", "priority",
                "catch_up"}


def from_config(entries: Sequence[Mapping[str, Any]], source: str) -> list[Schedule]:
    """The schedules of a ``[[schedules]]`` list (kue.toml) or ``[[tool.kue.schedules]]``."""
    found = []
    for i, entry in enumerate(entries):
        where = f"schedules[{i}] in {source}"
        unknown = sorted(set(entry) - _CONFIG_KEYS)
        if unknown:
            raise ConfigError(f"{where} has unknown keys {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(_CONFIG_KEYS))}")
        job = entry.get("job")
        if not isinstance(job, str) or not job:
            raise ConfigError(f"{where} needs job = \"registered.job.name\"")
        args, kwargs = entry.get("args", []), entry.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ConfigError(f"{where}: args must be a list and kwargs a table")
        try:
            found.append(Schedule(
                name=entry.get("name", job), job=job, args=tuple(args), kwargs=kwargs,
                cron=entry.get("cron"), every=entry.get("every"), tz=entry.get("tz", "UTC"),
                queue=entry.get("queue"), priority=entry.get("priority"),
                catch_up=entry.get("catch_up", "latest"),
            ))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return found


def schedules_for(config: Sequence[Mapping[str, Any]], source: str) -> list[Schedule]:
    """Every schedule: those declared in code, then those of configuration, checked.

    Raises ConfigError for two schedules of one name, or one whose job is not registered.
    """
    every = [*registered(), *from_config(config, source)]
    seen: dict[str, Schedule] = {}
    for schedule in every:
        if schedule.name in seen:
            raise ConfigError(f"two schedules are named {schedule.name!r} (in code and in "
                              f"{source}, or twice): give one a name of its own")
        seen[schedule.name] = schedule
        schedule.job_class()
    return every
