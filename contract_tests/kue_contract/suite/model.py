"""A hypothesis state machine drives the backend and the memory model alike and compares them.

What it covers: three queues, ``put`` and ``put_many``, ``reserve_from`` over any of them,
delete, release (with or without a delay), bury, kick, touch, ``delete_and_reserve`` where
declared, and time: short ttrs that run out (so acks by the old holder go stale and the job
comes back with one more attempt) and short delays that come due, next to long ones that
``kick`` brings forward. Every observation is compared: ids (each real id is mapped to the
model's at put), bodies, priorities and attempts on reserve and peek, counts after every step,
and which acks raise ``ReservationLost``.

Time is driven, not raced. The model runs on a clock the machine sets, to the moment each
operation is sent to the backend; and no operation is sent while any timer the model holds
(a delay coming due, a lease running out) could fire on the backend during it: the machine
first waits out every such window, from the model's due time to that plus the backend's
declared ``timing_tolerance`` and the suite's scheduling allowance. Outside those windows the
backend and the model must agree exactly, whatever the load. Due times are kept apart, so
that no two delayed jobs can tie on a backend's clock resolution (a tie made ``peek`` and
``kick`` pick between them by sequence on redis, by due time on the model: the flaky failure
this machine once had under load).

A backend that declares ``ttr_expiry_late_under_load`` in ``capabilities.extra`` (beanstalkd
1.12, which this machine caught keeping expired reservations for seconds) gets long ttrs only.

The number of examples and steps comes from the hypothesis profile ``--kue-hypothesis``:
``quick`` (the default, for CI) or ``thorough``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

import kue
from kue.backend import Backend, FusedBackend, JobState, PutItem, Reservation
from kue.backends.memory import MemoryBackend
from kue_contract.helpers import SCHEDULING

#: A ttr or delay that never runs out during a test (``kick`` brings such delays forward).
LONG = 3600
PRIORITIES = [0, 1, 10, 2**32 - 1]
QUEUES = 3
#: Seconds an operation pair (backend, then model) may take; no timer may fire within it.
GUARD = 0.3
#: Seconds before its due time a timer is already treated as firing (clock granularity).
EARLY = 0.05
#: Due times of delayed jobs closer than this may tie on a backend's clock.
TIE = 0.01

#: Examples and steps of each ``--kue-hypothesis`` profile.
PROFILES = {"quick": (8, 30), "thorough": (100, 60)}


class _Held:
    """A job reserved from both sides at the same step."""

    def __init__(self, real: Reservation, model: Reservation) -> None:
        self.real, self.model = real, model

    def __repr__(self) -> str:
        return f"Held({self.model.body!r})"


def outcome(what: str, call: Callable[[], Any]) -> tuple[str, Any]:
    """What a call did: ``("ok", result)`` or ``("lost", None)`` for ReservationLost.

    A stale ack is noted as a hypothesis event (``--hypothesis-show-statistics`` counts them).
    """
    try:
        return "ok", call()
    except kue.ReservationLost:
        event(f"stale {what}")
        return "lost", None


def wait_out(timers: list[float], window: float) -> float:
    """Sleep until none of ``timers`` (due times) can fire within the next operation pair.

    A timer may fire on the backend from just before its due time to ``window`` after it;
    returns the moment the wait ended (``time.monotonic()``), the model's clock for the pair.
    """
    while True:
        now = time.monotonic()
        firing = [due + window for due in timers
                  if due - EARLY < now + GUARD and now < due + window]
        if not firing:
            return time.monotonic()
        time.sleep(max(firing) - now)


def machine_for(make_queue: Callable[[], kue.Queue]) -> type[RuleBasedStateMachine]:
    """The state machine class, bound to a factory of fresh queues on the backend under test."""

    class BackendMatchesModel(RuleBasedStateMachine):
        held = Bundle("held")

        def __init__(self) -> None:
            super().__init__()
            queues = [make_queue() for _ in range(QUEUES)]
            self.real: Backend = queues[0].backend
            self.names = [q.name for q in queues]
            self.now = time.monotonic()
            self.model = MemoryBackend(clock=lambda: self.now)  # private, on the machine's clock
            self.model_names = [f"m{i}" for i in range(QUEUES)]
            self.caps = self.real.capabilities
            self.short = max(1.0, float(self.caps.min_ttr))
            # A backend that declares its ttrs may run out late (beanstalkd 1.12 under load)
            # gets long ttrs only; its short delays still come due.
            self.short_ttrs = "ttr_expiry_late_under_load" not in self.caps.extra
            self.window = self.caps.timing_tolerance + SCHEDULING
            self.ids: dict[str, str] = {}  # real id -> model id
            self.bodies = itertools.count(1)
            self.long_delays = itertools.count(LONG)

        # -- time ---------------------------------------------------------------------------

        def _timers(self) -> list[float]:
            """Due times of every delay and lease the model holds, on the model's clock."""
            return [job.due for job in self.model._store.jobs.values()
                    if job.state in (JobState.DELAYED, JobState.RESERVED)]

        def _settle(self) -> None:
            """Wait until no timer can fire on the backend within the next operation pair."""
            self.now = wait_out(self._timers(), self.window)

        def _delay(self, short: bool) -> float:
            # Long delays grow by a second each, so no two come due together.
            return self.short if short else float(next(self.long_delays))

        def _ttr(self, short: bool) -> float:
            return self.short if short and self.short_ttrs else float(LONG)

        # -- operations ---------------------------------------------------------------------

        def _same_job(self, real: Reservation | None, model: Reservation | None) -> None:
            """The two sides handed out (or found) the same job, alike in every field."""
            assert (real is None) == (model is None), (real, model)
            if real is None or model is None:
                return
            assert self.ids.get(real.id) == model.id, (real, model)
            assert (real.body, real.priority, real.attempts) == (
                model.body, model.priority, model.attempts)
            assert self.names.index(real.queue) == self.model_names.index(model.queue)

        def _same_ack(self, what: str, real: Callable[[], Any], model: Callable[[], Any]) -> None:
            """An ack does the same on both sides: done, or ReservationLost (a stale holder)."""
            assert outcome(what, real) == outcome(what, model), what

        @initialize(short_ttrs=st.lists(st.booleans(), min_size=QUEUES, max_size=QUEUES))
        def a_job_in_each_queue(self, short_ttrs: list[bool]) -> None:
            for queue, short_ttr in enumerate(short_ttrs):
                self.put(queue, PRIORITIES[1], "none", short_ttr)

        @rule(queue=st.integers(0, QUEUES - 1), priority=st.sampled_from(PRIORITIES),
              delay=st.sampled_from(["none", "none", "short", "long"]),
              short_ttr=st.booleans())
        def put(self, queue: int, priority: int, delay: str, short_ttr: bool) -> None:
            body = f"job-{next(self.bodies)}".encode()
            d = 0.0 if delay == "none" or not self.caps.delay else self._delay(delay == "short")
            ttr = self._ttr(short_ttr)
            self._settle()
            real_id = self.real.put(self.names[queue], body, priority, d, ttr)
            self.ids[real_id] = self.model.put(self.model_names[queue], body, priority, d, ttr)

        @rule(queue=st.integers(0, QUEUES - 1),
              priorities=st.lists(st.sampled_from(PRIORITIES), min_size=1, max_size=4))
        def put_many(self, queue: int, priorities: list[int]) -> None:
            items = [PutItem(f"job-{next(self.bodies)}".encode(), p, 0.0, float(LONG))
                     for p in priorities]
            self._settle()
            real_ids = self.real.put_many(self.names[queue], items)
            model_ids = self.model.put_many(self.model_names[queue], items)
            assert len(real_ids) == len(model_ids) == len(items)
            self.ids.update(zip(real_ids, model_ids, strict=True))

        @rule(target=held, queues=st.sets(st.integers(0, QUEUES - 1), min_size=1),
              look_before_it_ends=st.booleans())
        def reserve_from(self, queues: set[int], look_before_it_ends: bool) -> object:
            order = sorted(queues)
            self._settle()
            real = self.real.reserve([self.names[i] for i in order], 0)
            model = self.model.reserve([self.model_names[i] for i in order], 0)
            self._same_job(real, model)
            if real is None or model is None:
                return multiple()
            if look_before_it_ends and model.ttr < LONG:
                self._just_before(self.now + model.ttr)
            return _Held(real, model)

        @rule(job=consumes(held))
        def delete(self, job: _Held) -> None:
            self._settle()
            self._same_ack("delete", lambda: self.real.delete(job.real),
                           lambda: self.model.delete(job.model))

        @precondition(lambda self: self.caps.delete_and_reserve)
        @rule(target=held, job=consumes(held),
              queues=st.sets(st.integers(0, QUEUES - 1), min_size=1))
        def delete_and_reserve(self, job: _Held, queues: set[int]) -> object:
            order = sorted(queues)
            real_backend, model_backend = self.real, self.model
            assert isinstance(real_backend, FusedBackend)
            self._settle()
            real = outcome("delete_and_reserve", lambda: real_backend.delete_and_reserve(
                job.real, [self.names[i] for i in order], 0))
            model = outcome("delete_and_reserve", lambda: model_backend.delete_and_reserve(
                job.model, [self.model_names[i] for i in order], 0))
            assert real[0] == model[0], (real, model)
            self._same_job(real[1], model[1])
            if real[1] is None or model[1] is None:
                return multiple()
            return _Held(real[1], model[1])

        @rule(job=consumes(held), priority=st.sampled_from(PRIORITIES),
              delay=st.sampled_from(["none", "short", "long"]))
        def release(self, job: _Held, priority: int, delay: str) -> None:
            d = 0.0 if delay == "none" or not self.caps.release_delay else \
                self._delay(delay == "short")
            self._settle()
            self._same_ack("release", lambda: self.real.release(job.real, priority, d),
                           lambda: self.model.release(job.model, priority, d))

        @precondition(lambda self: self.caps.bury)
        @rule(job=consumes(held), priority=st.none() | st.sampled_from(PRIORITIES))
        def bury(self, job: _Held, priority: int | None) -> None:
            self._settle()
            self._same_ack("bury", lambda: self.real.bury(job.real, priority),
                           lambda: self.model.bury(job.model, priority))

        @rule(job=held, look_before_it_ends=st.booleans())
        def touch(self, job: _Held, look_before_it_ends: bool) -> None:
            self._settle()
            self._same_ack("touch", lambda: self.real.touch(job.real),
                           lambda: self.model.touch(job.model))
            lease = self.model._store.jobs.get(job.model.id)
            if look_before_it_ends and lease is not None and lease.due < self.now + LONG / 2 \
                    and lease.state is JobState.RESERVED:
                self._just_before(lease.due)

        def _just_before(self, due: float) -> None:
            """Compare the counts just before ``due``: a timer must not fire early."""
            wait = due - EARLY - GUARD - 0.05 - time.monotonic()
            if wait > 0:
                event("looked just before a timer")
                time.sleep(wait)
                self.same_counts()

        @precondition(lambda self: self.caps.bury)
        @rule(queue=st.integers(0, QUEUES - 1), n=st.integers(min_value=1, max_value=3))
        def kick(self, queue: int, n: int) -> None:
            self._settle()
            stats = self.model.stats(self.model_names[queue])
            if not stats.buried:
                if not self.caps.kick_delayed:
                    return
                # Kicking delayed jobs takes the earliest due: kick them all where two of them
                # could tie, at the cut, on the backend's clock.
                dues = sorted(job.due for job in self.model._store.jobs.values()
                              if job.queue == self.model_names[queue]
                              and job.state is JobState.DELAYED)
                if n < len(dues) and dues[n] - dues[n - 1] < TIE:
                    n = len(dues)
            assert self.real.kick(self.names[queue], n) == self.model.kick(
                self.model_names[queue], n)

        @precondition(lambda self: self.caps.peek)
        @rule(queue=st.integers(0, QUEUES - 1),
              state=st.sampled_from([JobState.READY, JobState.DELAYED, JobState.BURIED]))
        def peek(self, queue: int, state: JobState) -> None:
            if state is JobState.BURIED and not self.caps.bury:
                return
            self._settle()
            real = self.real.peek(self.names[queue], state)
            model = self.model.peek(self.model_names[queue], state)
            assert (real is None) == (model is None), (real, model)
            if real is None or model is None:
                return
            if state is JobState.DELAYED:
                dues = sorted(job.due for job in self.model._store.jobs.values()
                              if job.queue == self.model_names[queue]
                              and job.state is JobState.DELAYED)
                if len(dues) > 1 and dues[1] - dues[0] < TIE:
                    return  # two could tie on the backend's clock: either may come first
            assert self.ids.get(real.id) == model.id, (real, model)
            assert (real.body, real.priority, real.attempts, real.state) == (
                model.body, model.priority, model.attempts, model.state)
            assert (real.queue, model.queue) == (self.names[queue], self.model_names[queue])

        @rule(job=consumes(held), ack=st.sampled_from(["delete", "release", "bury", "touch",
                                                        "delete_and_reserve"]))
        def ack_after_the_ttr_ran_out(self, job: _Held, ack: str) -> None:
            """Let a short lease run out on both sides, then ack as its old holder would."""
            lease = self.model._store.jobs.get(job.model.id)
            if lease is None or lease.state is not JobState.RESERVED or \
                    str(lease.attempts) != job.model.receipt or lease.due > self.now + LONG / 2:
                return  # not held any more, or held for an hour: nothing runs out here
            time.sleep(max(0.0, lease.due + self.window - time.monotonic()))
            if ack == "delete":
                self.delete(job)
            elif ack == "release":
                self.release(job, PRIORITIES[0], "none")
            elif ack == "bury" and self.caps.bury:
                self.bury(job, None)
            elif ack == "delete_and_reserve" and self.caps.delete_and_reserve:
                self.delete_and_reserve(job, set(range(QUEUES)))
            else:
                self.touch(job, False)

        @rule()
        def a_moment_before_a_timer(self) -> None:
            """Wait until just before the next short timer: nothing may have fired early.

            The counts compared then catch a lease shorter than its ttr (or a touch that did
            not give a full new one) and a delay that ends early.
            """
            now = time.monotonic()
            soon = [due for due in self._timers() if now + GUARD + EARLY < due < now + 3]
            if soon:
                self._just_before(min(soon))

        @rule()
        def let_time_pass(self) -> None:
            """Wait for the next short timer to fire on both sides (a lease or a delay)."""
            now = time.monotonic()
            soon = [due for due in self._timers() if due < now + 3 * self.short]
            if soon:
                event("a short timer fired")
                time.sleep(max(0.0, min(soon) + self.window - now))

        @invariant()
        def same_counts(self) -> None:
            self._settle()
            for real, model in zip(self.names, self.model_names, strict=True):
                assert self.real.stats(real) == self.model.stats(model), real

    return BackendMatchesModel


class ModelContract:
    """The backend and the memory model agree on every observation of random operations."""

    # The memory model hands out the most urgent job, first put first, several at a time: only
    # backends that declare as much can be compared with it step by step.
    @pytest.mark.requires("priority", "fifo", "parallel")
    def test_random_operations_match_the_memory_model(
        self, make_queue: Callable[[], kue.Queue], request: pytest.FixtureRequest
    ) -> None:
        examples, steps = PROFILES[str(request.config.getoption("--kue-hypothesis"))]
        run_state_machine_as_test(
            machine_for(make_queue),
            settings=settings(
                max_examples=examples, stateful_step_count=steps, deadline=None,
                suppress_health_check=list(HealthCheck), derandomize=False,
            ),
        )
