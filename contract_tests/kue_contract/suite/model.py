"""A hypothesis state machine drives the backend and the memory model alike and compares them.

Time is kept out: ttrs are an hour and delays are kept for ``kick``, so every observation is
determined by the operations alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

import kue
from kue.backends.memory import MemoryBackend

TTR = 3600
DELAYS = [3600, 7200]
PRIORITIES = [0, 1, 10, 2**32 - 1]


def _pair_of_queues(backend_queue: kue.Queue) -> tuple[kue.Queue, kue.Queue]:
    model = MemoryBackend(clock=time.monotonic)  # a private store, fresh for each example
    return backend_queue, kue.Queue(model, "model")


class _Held:
    """A job reserved from both sides at the same step."""

    def __init__(self, real: kue.ReservedJob, model: kue.ReservedJob) -> None:
        self.real, self.model = real, model

    def __repr__(self) -> str:
        return f"Held({self.model.body!r})"


def machine_for(make_queue: Callable[[], kue.Queue]) -> type[RuleBasedStateMachine]:
    """The state machine class, bound to a factory of fresh queues on the backend under test."""

    class BackendMatchesModel(RuleBasedStateMachine):
        held = Bundle("held")

        def __init__(self) -> None:
            super().__init__()
            self.real, self.model = _pair_of_queues(make_queue())
            self.caps = self.real.capabilities
            self.counter = 0

        @rule(priority=st.sampled_from(PRIORITIES), delayed=st.booleans(),
              delay=st.sampled_from(DELAYS))
        def put(self, priority: int, delayed: bool, delay: int) -> None:
            self.counter += 1
            body = f"job-{self.counter}".encode()
            d = delay if delayed and self.caps.delay else 0
            self.real.put(body, priority=priority, delay=d, ttr=TTR)
            self.model.put(body, priority=priority, delay=d, ttr=TTR)

        @rule(target=held)
        def reserve(self) -> object:
            real, model = self.real.reserve(timeout=0), self.model.reserve(timeout=0)
            assert (None if real is None else (real.body, real.priority, real.attempts)) == (
                None if model is None else (model.body, model.priority, model.attempts))
            if real is None or model is None:
                return multiple()
            return _Held(real, model)

        @rule(job=consumes(held))
        def delete(self, job: _Held) -> None:
            job.real.delete()
            job.model.delete()

        @rule(job=consumes(held), priority=st.sampled_from(PRIORITIES), delayed=st.booleans())
        def release(self, job: _Held, priority: int, delayed: bool) -> None:
            d = DELAYS[0] if delayed and self.caps.delay else 0
            job.real.release(priority=priority, delay=d)
            job.model.release(priority=priority, delay=d)

        @rule(job=consumes(held), priority=st.none() | st.sampled_from(PRIORITIES))
        def bury(self, job: _Held, priority: int | None) -> None:
            if not self.caps.bury:
                job.real.release()
                job.model.release()
                return
            job.real.bury(priority=priority)
            job.model.bury(priority=priority)

        @rule(job=held)
        def touch(self, job: _Held) -> None:
            try:
                job.model.touch()
            except kue.ReservationLost:
                with pytest.raises(kue.ReservationLost):
                    job.real.touch()
                return
            job.real.touch()

        @rule(n=st.integers(min_value=1, max_value=3))
        def kick(self, n: int) -> None:
            if self.caps.bury:
                assert self.real.kick(n) == self.model.kick(n)

        @rule(state=st.sampled_from(["ready", "delayed", "buried"]))
        def peek(self, state: str) -> None:
            if not self.caps.peek or (state == "buried" and not self.caps.bury):
                return
            real, model = self.real.peek(state), self.model.peek(state)
            assert (None if real is None else (real.body, real.priority)) == (
                None if model is None else (model.body, model.priority))

        @invariant()
        def same_counts(self) -> None:
            assert self.real.stats() == self.model.stats()

    return BackendMatchesModel


class ModelContract:
    """The backend and the memory model agree on every observation of random operations."""

    # The memory model hands out several jobs of a queue at once: only parallel backends match.
    @pytest.mark.requires("priority", "fifo", "parallel")
    def test_random_operations_match_the_memory_model(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        run_state_machine_as_test(
            machine_for(make_queue),
            settings=settings(
                max_examples=25, stateful_step_count=30, deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
