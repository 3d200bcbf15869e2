"""The scheduler: puts each tick of each schedule on its queue, once, from any number of hosts.

``kue-worker --scheduler`` runs one in every worker (a thread beside the jobs; in the prefork
supervisor's own loop with ``-c N``, never in the children). It is safe, and intended, to turn
it on in every worker of a fleet: each tick is put with a unique key made of the schedule's
name and the tick's time (:meth:`kue.schedules.Schedule.tick_key`), held for well past the tick
whatever becomes of its job, so however many schedulers put it, one job results
(:mod:`kue.unique`). Each schedule's last tick is kept in the backend's record store (the
``results`` store for beanstalkd and SQS), in namespace :data:`kue.schedules.STATE_NAMESPACE`:

- a scheduler that starts puts the ticks missed since then as the schedule's ``catch_up``
  says (``latest``: the latest of them, ``none``: none, N: the N latest); a schedule that has
  never run starts with its next tick;
- a running scheduler puts each tick as it falls due; if it finds several due at once (it was
  stalled, or the backend was down) the older ones were missed and follow ``catch_up`` too;
- ``kue schedules`` shows the last tick put.

Time is wall-clock time (Unix seconds), which an injected ``clock`` replaces in tests.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pluggy

from kue.backend import Backend
from kue.backoff import Backoff
from kue.errors import ConfigError
from kue.queue import Queue
from kue.records import RecordStore
from kue.schedules import MISFIRE_GRACE, STATE_NAMESPACE, Schedule
from kue.status import Records
from kue.unique import supports_unique

__all__ = ["MAX_SLEEP", "Scheduler", "Tick", "read_state"]

log = logging.getLogger("kue.scheduler")

#: Longest the scheduler sleeps without looking at the wall clock again, in seconds: a clock
#: that was set meanwhile is noticed within this.
MAX_SLEEP = 30.0
#: Shortest time a tick's key is held, in seconds (longer for schedules with long periods).
MIN_KEY_TTL = 3600.0


@dataclass(frozen=True)
class Tick:
    """One tick the scheduler put (or found already put by another scheduler)."""

    schedule: str
    time: float
    job_id: str
    #: True if this scheduler's put stored the job; False if another had put it already.
    created: bool


def read_state(store: RecordStore, schedule: str) -> dict[str, Any]:
    """What the record store keeps of a schedule; {} if it never ran.

    ``last_tick``: the latest tick handled (put or skipped); ``last_put`` and ``last_job``: the
    latest tick put and its job's id.
    """
    return store.read_record(STATE_NAMESPACE, schedule) or {}


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Scheduler:
    """Puts the ticks of ``schedules`` on ``backend``'s queues.

    :param backend: where the ticks go.
    :param schedules: what to put when (:func:`kue.schedules.schedules_for`).
    :param records: the backend's records (:meth:`kue.status.Records.of`): where the
        schedules' state lives, and the claims of a backend that cannot put uniquely itself.
    :param plugin_manager: hooks for the ``kue_job_pushed`` of each tick put.
    :param clock: Unix seconds now (tests inject one).
    """

    def __init__(
        self,
        backend: Backend,
        schedules: Sequence[Schedule],
        *,
        records: Records,
        plugin_manager: pluggy.PluginManager | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        name = backend.capabilities.name
        if records.store is None:
            raise ConfigError(
                f"the scheduler keeps each schedule's last tick in a record store, and the "
                f"{name} backend keeps none: give it a results URL (--results or results = "
                "\"sqlite:///...\" in kue.toml)")
        if not supports_unique(backend, records.store):
            raise ConfigError(
                f"the scheduler puts each tick once with a unique put, which neither the {name} "
                "backend nor its results store supports")
        for schedule in schedules:
            schedule.job_class()  # a job not registered fails now, not at its first tick
        self.backend = backend
        self.schedules = list(schedules)
        self.records = records
        self.store: RecordStore = records.store
        self.clock = clock
        self._pm = plugin_manager
        self._queues: dict[str, Queue] = {}
        self._cursor: dict[str, float] = {}
        self._next: dict[str, float] = {}
        self._backoff = Backoff()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            results = None if self.records.native else self.store
            queue = self._queues[name] = Queue(self.backend, name, plugin_manager=self._pm,
                                               results=results)
        return queue

    # -- one pass ----------------------------------------------------------------------------

    def run_due(self, now: float | None = None) -> list[Tick]:
        """Put every tick due by ``now`` (default: the clock); returns what was put.

        A schedule whose put fails (the backend is down) is left where it was, and tried
        again by the next pass; the first such error is raised after the others ran.
        """
        now = self.clock() if now is None else now
        put: list[Tick] = []
        failure: Exception | None = None
        for schedule in self.schedules:
            name = schedule.name
            if name in self._cursor and self._next[name] > now:
                continue
            try:
                put += self._run_schedule(schedule, now)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return put

    def _run_schedule(self, schedule: Schedule, now: float) -> list[Tick]:
        name = schedule.name
        starting = name not in self._cursor
        if starting:
            last = read_state(self.store, name).get("last_tick")
            if not isinstance(last, int | float):  # never ran: start with the next tick
                self._advance(schedule, now)
                return []
            after = float(last)
        else:
            after = self._cursor[name]
        policy = schedule.catch_up
        keep = 1 if policy in ("none", "latest") else int(policy)
        due = schedule.latest_ticks(after, now, keep + 1)
        if not due:
            self._advance(schedule, now)
            return []
        on_time = None if starting or now - due[-1] > MISFIRE_GRACE else due[-1]
        missed = due[:-1] if on_time is not None else due
        if policy == "none":
            chosen = []
        elif policy == "latest":
            chosen = [] if on_time is not None else missed[-1:]
        else:
            chosen = missed[-keep:]
        if on_time is not None:
            chosen.append(on_time)
        if len(chosen) < len(due) or len(due) > keep:
            log.info("schedule %s: ticks missed since %s: putting %d, as catch_up=%s says",
                     name, _utc(after), len(chosen), policy)
        ticks = [self._put(schedule, t, now) for t in chosen]
        self._save(schedule, due[-1], ticks)
        self._advance(schedule, now)
        return ticks

    def _put(self, schedule: Schedule, tick: float, now: float) -> Tick:
        keep = 1 if schedule.catch_up in ("none", "latest") else int(schedule.catch_up)
        ttl = max(MIN_KEY_TTL, (keep + 2) * schedule.period_at(now), now - tick + MIN_KEY_TTL)
        key = schedule.tick_key(tick)
        handle = self._queue(schedule.queue_name()).push_unique(
            schedule.message(), key, ttl, until_done=False, priority=schedule.priority,
            envelope_id=key,
        )
        if handle.created:
            log.info("schedule %s: put tick %s as job %s", schedule.name, key, handle)
        return Tick(schedule.name, tick, str(handle), handle.created)

    def _save(self, schedule: Schedule, handled: float, ticks: list[Tick]) -> None:
        """Move the schedule's state forward (never back: another scheduler may be ahead)."""
        state = read_state(self.store, schedule.name)
        fields: dict[str, Any] = {}
        if not isinstance(state.get("last_tick"), int | float) or state["last_tick"] < handled:
            fields["last_tick"] = handled
        if ticks and (not isinstance(state.get("last_put"), int | float)
                      or state["last_put"] < ticks[-1].time):
            fields["last_put"] = ticks[-1].time
            fields["last_job"] = ticks[-1].job_id
        if fields:
            self.store.update_record(STATE_NAMESPACE, schedule.name, fields, None)

    def _advance(self, schedule: Schedule, now: float) -> None:
        self._cursor[schedule.name] = now
        self._next[schedule.name] = schedule.next_after(now)

    def next_run(self) -> float:
        """When the next tick of any schedule falls due (Unix seconds; now if none ran yet)."""
        if len(self._next) < len(self.schedules):
            return self.clock()
        return min(self._next.values(), default=math.inf)

    # -- running -----------------------------------------------------------------------------

    def run_pending(self) -> float:
        """Put what is due now, logging a failure; returns seconds until this should run again."""
        try:
            self.run_due()
        except Exception as exc:
            wait = self._backoff.next()
            if self._backoff.failures == 1:
                log.warning("scheduler: putting ticks failed (%s); retrying", exc)
            return wait
        if self._backoff.failures:
            log.info("scheduler: putting ticks works again")
        self._backoff.reset()
        return max(0.0, min(self.next_run() - self.clock(), MAX_SLEEP))

    def start(self) -> None:
        """Run on a daemon thread of this process until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("this scheduler is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="kue-scheduler", daemon=True)
        self._thread.start()
        log.info("scheduler: %d schedule(s): %s", len(self.schedules),
                 "; ".join(f"{s.name} ({s.describe()})" for s in self.schedules))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.run_pending())

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread :meth:`start` began, after the put it is making, if any."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
