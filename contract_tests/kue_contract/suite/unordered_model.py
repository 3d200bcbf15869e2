"""A hypothesis state machine for backends that promise no order: any ready job may come out.

:mod:`kue_contract.suite.model` compares a backend step by step with the memory backend, which
hands out the most urgent job, first put first; a backend that declares no ``priority`` or no
``fifo`` (SQS) cannot be held to that. This machine holds it to what it does declare. Its model
is a plain table of jobs, one per id, each ready, delayed, reserved (with the attempt that holds
it and when its lease runs out) or buried, in one of two queues. A reserve may return any job
the model holds as ready in the queues asked (its body, priority, attempts and ttr as the
model's copy), and then the model moves that job; it may return nothing only where the model
holds no such job. Every ack (delete, release with or without a delay, bury, touch,
``delete_and_reserve``) must succeed or raise ``ReservationLost`` as the model says, including
acks by a holder whose ttr ran out, before or after the job went to another consumer; ``kick``,
``peek`` and ``delete_by_id`` are compared where declared; and the counts of both queues after
every step. A reserve may act on its job at once (ack it, or let its lease run out), so that
redeliveries and stale acks come up within the few steps a quick run has.

``kick(n)`` on a backend without order may move any n of a queue's buried jobs: the model keeps
how many of its buried jobs are in truth ready, and takes a reserved (or peeked) one from among
them. With nothing buried, where ``kick_delayed`` is declared, it kicks every delayed job (which
ones n of them would be is an order this machine does not ask for). What a backend lacks is
never sent: no delay at put without ``delay``, no ``peek``, no kick of delayed jobs without
``kick_delayed``; a backend with ``release_delay`` but no ``delay`` (SQS FIFO) holds a job
released with a delay as reserved, as :class:`kue.Capabilities` says, and is released with the
job's own priority when delayed. Under ``parallel=False`` a reserved job holds back the other
ready jobs of its queue (those of its priority where ``priority`` is declared).

Time follows :mod:`kue_contract.suite.model`: the model runs on a clock set to the moment each
operation is sent, and no operation is sent while one of its timers could fire on the backend
(:func:`~kue_contract.suite.model.wait_out`). Sizes come from ``--kue-hypothesis`` (see
:data:`PROFILES`): the quick one keeps a run on moto, which answers some 45 requests a second,
to about half a minute.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from kue.backend import (
    Backend,
    DeletableBackend,
    FusedBackend,
    JobInfo,
    JobState,
    PutItem,
    QueueStats,
    Reservation,
)
from kue_contract.helpers import SCHEDULING, whole
from kue_contract.suite.model import EARLY, GUARD, LONG, PRIORITIES, outcome, wait_out

#: Two queues: enough for ``reserve_from`` to ask one and not the other, and each queue costs
#: SQS two requests a step for its counts.
QUEUES = 2
#: What ``reserve_from`` does with the job it got: keep it for later steps, or act at once.
THEN = ["hold", "hold", "look before it ends", "touch", "delete", "release", "release later",
        "bury", "let it run out", "let it run out and hand it on"]
#: The acks a holder whose ttr ran out tries.
ACKS = ["delete", "release", "bury", "touch", "delete_and_reserve"]
#: Examples and steps of each ``--kue-hypothesis`` profile.
PROFILES = {"quick": (8, 25), "thorough": (60, 50)}


@dataclass
class _Job:
    """The model's copy of one job.

    ``holder`` is the attempt whose reservation holds a reserved job (None: a job released with
    a delay on a backend that holds it as reserved); ``due`` ends a delay or a lease.
    """

    queue: int
    body: bytes
    priority: int
    ttr: float
    state: JobState = JobState.READY
    attempts: int = 0
    due: float = 0.0
    holder: int | None = None


@dataclass
class _Held:
    """A reservation: the backend's, and the model's job with the attempt it was."""

    real: Reservation
    key: str
    attempt: int

    def __repr__(self) -> str:
        return f"Held({self.real.body!r}, attempt {self.attempt})"


class _Model:
    """Jobs by id (the backend's ids), on a clock the machine sets."""

    def __init__(self, caps: kue.Capabilities) -> None:
        self.caps = caps
        self.jobs: dict[str, _Job] = {}
        #: Every id the backend ever gave, deleted jobs' too.
        self.ever: set[str] = set()
        self.now = 0.0
        #: Per queue: how many of the jobs the model holds as buried a kick made ready.
        self.kicked = [0] * QUEUES

    def at(self, now: float) -> None:
        """Move the clock to ``now``: delays that came due and leases that ran out end."""
        self.now = now
        for job in self.jobs.values():
            if job.state in (JobState.DELAYED, JobState.RESERVED) and job.due <= now:
                job.state, job.holder = JobState.READY, None

    def timers(self) -> list[float]:
        """Due times of every delay and lease."""
        return [job.due for job in self.jobs.values()
                if job.state in (JobState.DELAYED, JobState.RESERVED)]

    def in_queue(self, queue: int, state: JobState) -> list[_Job]:
        return [job for job in self.jobs.values() if job.queue == queue and job.state is state]

    def held_back(self, job: _Job) -> bool:
        """A ready job a reserved one of its queue holds back, under ``parallel=False``."""
        return not self.caps.parallel and any(
            other.priority == job.priority or not self.caps.priority
            for other in self.in_queue(job.queue, JobState.RESERVED))

    def ready_ones(self, queues: list[int]) -> dict[str, _Job]:
        """Jobs that may come out of ``queues`` now: ready ones, and buried ones if kicked."""
        return {key: job for key, job in self.jobs.items() if job.queue in queues and (
            job.state is JobState.READY
            or (job.state is JobState.BURIED and self.kicked[job.queue] > 0)
        ) and not self.held_back(job)}

    def stats(self, queue: int) -> QueueStats:
        kicked = self.kicked[queue]
        return QueueStats(
            ready=len(self.in_queue(queue, JobState.READY)) + kicked,
            delayed=len(self.in_queue(queue, JobState.DELAYED)),
            reserved=len(self.in_queue(queue, JobState.RESERVED)),
            buried=len(self.in_queue(queue, JobState.BURIED)) - kicked,
        )

    def reserve(self, key: str) -> int:
        """Hand out job ``key`` (ready, or buried and kicked); returns its attempt."""
        job = self.jobs[key]
        if job.state is JobState.BURIED:
            self.kicked[job.queue] -= 1
        job.state, job.attempts = JobState.RESERVED, job.attempts + 1
        job.holder, job.due = job.attempts, self.now + job.ttr
        return job.attempts

    def holds(self, held: _Held) -> bool:
        """Whether ``held`` is still the reservation of its job (no ttr ran out, no ack)."""
        job = self.jobs.get(held.key)
        return job is not None and job.state is JobState.RESERVED and job.holder == held.attempt

    def kick(self, queue: int, n: int) -> int:
        """Kick as the backend must: that many buried (which ones unknown), else delayed."""
        buried = len(self.in_queue(queue, JobState.BURIED)) - self.kicked[queue]
        if buried:
            moved = min(n, buried)
            self.kicked[queue] += moved
            if moved == buried:  # every one of them: now it is known which
                for job in self.in_queue(queue, JobState.BURIED):
                    job.state = JobState.READY
                self.kicked[queue] = 0
            return moved
        delayed = self.in_queue(queue, JobState.DELAYED)[:n]
        for job in delayed:
            job.state = JobState.READY
        return len(delayed)


def _ack(what: str, call: Callable[[], Any]) -> str:
    """``"ok"`` or ``"lost"`` (ReservationLost): what the backend did with an ack."""
    return outcome(what, call)[0]


def unordered_machine_for(make_queue: Callable[[], kue.Queue]) -> type[RuleBasedStateMachine]:
    """The state machine class, bound to a factory of fresh queues on the backend under test."""

    class BackendMatchesUnorderedModel(RuleBasedStateMachine):
        held = Bundle("held")

        def __init__(self) -> None:
            super().__init__()
            queues = [make_queue() for _ in range(QUEUES)]
            self.real: Backend = queues[0].backend
            self.names = [q.name for q in queues]
            self.caps = self.real.capabilities
            self.model = _Model(self.caps)
            self.short = max(1.0, float(self.caps.min_ttr))
            self.short_ttrs = "ttr_expiry_late_under_load" not in self.caps.extra
            self.window = self.caps.timing_tolerance + SCHEDULING
            self.bodies = itertools.count(1)
            self.long_delays = itertools.count(LONG)

        # -- time ---------------------------------------------------------------------------

        def _settle(self) -> None:
            """Wait out every timer that could fire during the next operation; set the clock."""
            self.model.at(wait_out(self.model.timers(), self.window))

        def _delay(self, kind: str) -> float:
            if kind == "none":
                return 0.0
            return self.short if kind == "short" else float(next(self.long_delays))

        def _ttr(self, short: bool) -> float:
            return self.short if short and self.short_ttrs else float(LONG)

        def _just_before(self, due: float) -> None:
            """Compare the counts just before ``due``: a timer must not fire early."""
            wait = due - EARLY - GUARD - 0.05 - time.monotonic()
            if wait > 0:
                event("looked just before a timer")
                time.sleep(wait)
                self.same_counts()

        # -- checks -------------------------------------------------------------------------

        def _took(self, real: Reservation | None, queues: list[int]) -> object:
            """The backend handed out ``real``: a job the model holds as ready in ``queues``."""
            model = self.model
            ready = model.ready_ones(queues)
            if real is None:
                assert not ready, f"reserve from {queues} gave nothing; model has {ready}"
                return multiple()
            assert real.id in ready, (
                f"reserve from {queues} gave {real}, not one of the ready jobs {ready}")
            job = ready[real.id]
            assert real.queue == self.names[job.queue], (real, job)
            assert (real.body, real.priority, real.attempts, real.ttr) == (
                job.body, job.priority, job.attempts + 1, whole(job.ttr, self.caps)), (real, job)
            return _Held(real, real.id, model.reserve(real.id))

        def _same_ack(self, what: str, job: _Held, real: Callable[[], Any]) -> bool:
            """The backend's ack did what the model says; returns whether it held the job."""
            holds = self.model.holds(job)
            copy = self.model.jobs.get(job.key)
            if copy is not None and copy.holder is not None and not holds:
                event(f"{what} by a holder whose job went to another")
            assert _ack(what, real) == ("ok" if holds else "lost"), (what, job, holds)
            return holds

        def _same_info(self, real: JobInfo | None, candidates: list[_Job]) -> None:
            """A peek found one of ``candidates`` (or nothing, if there are none)."""
            if real is None:
                assert not candidates, candidates
                return
            job = self.model.jobs.get(real.id)
            assert job is not None and any(job is c for c in candidates), (real, candidates)
            assert (real.body, real.priority, real.attempts) == (
                job.body, job.priority, job.attempts), (real, job)

        # -- putting ------------------------------------------------------------------------

        @initialize(short_ttrs=st.lists(st.booleans(), min_size=QUEUES, max_size=QUEUES))
        def a_job_in_each_queue(self, short_ttrs: list[bool]) -> None:
            for queue, short_ttr in enumerate(short_ttrs):
                self.put(queue, PRIORITIES[1], "none", short_ttr)

        @rule(queue=st.integers(0, QUEUES - 1), priority=st.sampled_from(PRIORITIES),
              delay=st.sampled_from(["none", "none", "short", "long"]), short_ttr=st.booleans())
        def put(self, queue: int, priority: int, delay: str, short_ttr: bool) -> None:
            self._put(queue, [priority], delay, short_ttr)

        @rule(queue=st.integers(0, QUEUES - 1),
              priorities=st.lists(st.sampled_from(PRIORITIES), min_size=2, max_size=3),
              delay=st.sampled_from(["none", "none", "short", "long"]), short_ttr=st.booleans())
        def put_many(self, queue: int, priorities: list[int], delay: str, short_ttr: bool) -> None:
            self._put(queue, priorities, delay, short_ttr)

        def _put(self, queue: int, priorities: list[int], delay: str, short_ttr: bool) -> None:
            """One job with ``put``, several with ``put_many``, all with one delay and ttr."""
            d = self._delay(delay if self.caps.delay else "none")
            ttr = self._ttr(short_ttr)
            items = [PutItem(f"job-{next(self.bodies)}".encode(), p, d, ttr) for p in priorities]
            name = self.names[queue]
            self._settle()
            if len(items) == 1:
                ids = [self.real.put(name, items[0].body, items[0].priority, d, ttr)]
            else:
                ids = self.real.put_many(name, items)
            assert len(set(ids)) == len(items) and not set(ids) & self.model.ever, ids
            state = JobState.DELAYED if d else JobState.READY
            self.model.ever.update(ids)
            for job_id, item in zip(ids, items, strict=True):
                self.model.jobs[job_id] = _Job(queue, item.body, item.priority, ttr, state,
                                               due=self.model.now + d)

        # -- reserving and acking -----------------------------------------------------------

        @rule(target=held, queues=st.sets(st.integers(0, QUEUES - 1), min_size=1),
              then=st.sampled_from(THEN), priority=st.sampled_from(PRIORITIES),
              ack=st.sampled_from(ACKS))
        def reserve_from(self, queues: set[int], then: str, priority: int, ack: str) -> object:
            """Reserve from some queues; then maybe ack at once (a job's life in fewer steps).

            A short lease may be left to run out, and the job handed to another consumer,
            before the old holder acks (``ack``, as :meth:`ack_after_the_ttr_ran_out`).
            """
            order = sorted(queues)
            self._settle()
            taken = self._took(self.real.reserve([self.names[i] for i in order], 0), order)
            if not isinstance(taken, _Held) or then == "hold":
                return taken
            if then.startswith("let it run out"):
                return self.ack_after_the_ttr_ran_out(taken, ack, then.endswith("hand it on"))
            if then == "look before it ends":
                job = self.model.jobs[taken.key]
                if job.ttr < LONG:
                    self._just_before(job.due)
            elif then == "touch":
                self.touch(taken, False)
            else:
                if then == "delete":
                    self.delete(taken)
                elif then == "bury" and self.caps.bury:
                    self.bury(taken, priority)
                else:
                    self.release(taken, priority, "none" if then == "release" else "short")
                return multiple()
            return taken

        @rule(target=held, queue=st.integers(0, QUEUES - 1), then=st.sampled_from(THEN),
              priority=st.sampled_from(PRIORITIES), ack=st.sampled_from(ACKS))
        def reserve(self, queue: int, then: str, priority: int, ack: str) -> object:
            """``reserve_from`` one queue (a rule of its own: reserving is most of a job's life)."""
            return self.reserve_from({queue}, then, priority, ack)

        @rule(job=consumes(held))
        def delete(self, job: _Held) -> None:
            self._settle()
            if self._same_ack("delete", job, lambda: self.real.delete(job.real)):
                del self.model.jobs[job.key]

        @precondition(lambda self: self.caps.delete_and_reserve)
        @rule(target=held, job=consumes(held),
              queues=st.sets(st.integers(0, QUEUES - 1), min_size=1))
        def delete_and_reserve(self, job: _Held, queues: set[int]) -> object:
            order = sorted(queues)
            real = self.real
            assert isinstance(real, FusedBackend)
            self._settle()
            holds = self.model.holds(job)
            result = outcome("delete_and_reserve", lambda: real.delete_and_reserve(
                job.real, [self.names[i] for i in order], 0))
            assert result[0] == ("ok" if holds else "lost"), (result, job, holds)
            if not holds:
                return multiple()
            del self.model.jobs[job.key]
            return self._took(result[1], order)

        @rule(job=consumes(held), priority=st.sampled_from(PRIORITIES),
              delay=st.sampled_from(["none", "short", "long"]))
        def release(self, job: _Held, priority: int, delay: str) -> None:
            d = self._delay(delay if self.caps.release_delay else "none")
            if d and not self.caps.delay:
                # Held back in place (SQS FIFO): that keeps the job's own priority.
                priority = job.real.priority
            self._settle()
            if not self._same_ack("release", job,
                                  lambda: self.real.release(job.real, priority, d)):
                return
            copy = self.model.jobs[job.key]
            copy.priority, copy.holder, copy.due = priority, None, self.model.now + d
            if not d:
                copy.state = JobState.READY
            elif self.caps.delay:
                copy.state = JobState.DELAYED
            # else: still counted as reserved, held by nobody, until the delay ends

        @precondition(lambda self: self.caps.bury)
        @rule(job=consumes(held), priority=st.none() | st.sampled_from(PRIORITIES))
        def bury(self, job: _Held, priority: int | None) -> None:
            self._settle()
            if self._same_ack("bury", job, lambda: self.real.bury(job.real, priority)):
                copy = self.model.jobs[job.key]
                copy.state, copy.holder = JobState.BURIED, None
                if priority is not None:
                    copy.priority = priority

        @rule(job=held, look_before_it_ends=st.booleans())
        def touch(self, job: _Held, look_before_it_ends: bool) -> None:
            self._settle()
            if self._same_ack("touch", job, lambda: self.real.touch(job.real)):
                copy = self.model.jobs[job.key]
                copy.due = self.model.now + copy.ttr
                if look_before_it_ends and copy.ttr < LONG:
                    self._just_before(copy.due)

        @rule(target=held, job=consumes(held), ack=st.sampled_from(ACKS),
              someone_else_first=st.booleans())
        def ack_after_the_ttr_ran_out(self, job: _Held, ack: str,
                                      someone_else_first: bool) -> object:
            """Let a short lease run out on both sides, then ack as its old holder would.

            Before the ack, another consumer may reserve from the job's queue (the job itself,
            where nothing else is ready there): the old holder's ack must not touch it.
            """
            copy = self.model.jobs.get(job.key)
            if not self.model.holds(job) or copy is None or copy.ttr >= LONG:
                return job if self.model.holds(job) else multiple()  # held for an hour, or gone
            time.sleep(max(0.0, copy.due + self.window - time.monotonic()))
            taken: list[object] = []
            if someone_else_first:
                taken.append(self.reserve_from({copy.queue}, "hold", PRIORITIES[0], ack))
            if ack == "delete_and_reserve" and self.caps.delete_and_reserve:
                taken.append(self.delete_and_reserve(job, set(range(QUEUES))))
            elif ack == "delete":
                self.delete(job)
            elif ack == "release":
                self.release(job, PRIORITIES[0], "none")
            elif ack == "bury" and self.caps.bury:
                self.bury(job, None)
            else:
                self.touch(job, False)
            return multiple(*[t for t in taken if isinstance(t, _Held)])

        # -- buried, delayed and by id ------------------------------------------------------

        @precondition(lambda self: self.caps.bury)
        @rule(queue=st.integers(0, QUEUES - 1), n=st.integers(min_value=1, max_value=3))
        def kick(self, queue: int, n: int) -> None:
            self._settle()
            model = self.model
            if len(model.in_queue(queue, JobState.BURIED)) == model.kicked[queue]:
                if not self.caps.kick_delayed:
                    return  # nothing buried: this backend cannot reach its delayed jobs
                n = max(n, len(model.in_queue(queue, JobState.DELAYED)))
            moved = self.real.kick(self.names[queue], n)
            assert moved == model.kick(queue, n), (queue, n, moved)

        @precondition(lambda self: self.caps.peek)
        @rule(queue=st.integers(0, QUEUES - 1),
              state=st.sampled_from([JobState.READY, JobState.DELAYED, JobState.BURIED]))
        def peek(self, queue: int, state: JobState) -> None:
            if state is JobState.BURIED and not self.caps.bury:
                return
            self._settle()
            model = self.model
            buried = model.in_queue(queue, JobState.BURIED)
            if state is JobState.READY:
                candidates = model.in_queue(queue, JobState.READY) + (
                    buried if model.kicked[queue] else [])
            elif state is JobState.BURIED:
                candidates = buried if len(buried) > model.kicked[queue] else []
            else:
                candidates = model.in_queue(queue, JobState.DELAYED)
            self._same_info(self.real.peek(self.names[queue], state), candidates)

        @precondition(lambda self: self.caps.delete_by_id)
        @rule(queue=st.integers(0, QUEUES - 1), which=st.integers(0, 2**16))
        def delete_by_id(self, queue: int, which: int) -> None:
            real = self.real
            assert isinstance(real, DeletableBackend)
            self._settle()
            model = self.model
            known = sorted(model.ever)  # deleted ones too: those are not found
            if not known:
                return
            key = known[which % len(known)]
            job = model.jobs.get(key)
            if job is not None and job.state is JobState.BURIED and model.kicked[job.queue]:
                return  # buried or kicked, the model cannot tell: either count could drop
            if job is None or job.queue != queue:
                assert real.delete_by_id(self.names[queue], key) is False, key
            elif job.state is JobState.RESERVED:
                with pytest.raises(ValueError, match=re.escape(key)):
                    real.delete_by_id(self.names[queue], key)
            else:
                assert real.delete_by_id(self.names[queue], key) is True, key
                del model.jobs[key]

        # -- time passing -------------------------------------------------------------------

        @rule(just_before=st.booleans())
        def time_passes(self, just_before: bool) -> None:
            """Wait until just before the next short timer, or until it fired on both sides.

            Just before, nothing may have fired early: a lease shorter than its ttr, a touch
            that gave less, a delay that ends early.
            """
            now = time.monotonic()
            if just_before:
                soon = [due for due in self.model.timers() if now + GUARD + EARLY < due < now + 3]
                if soon:
                    self._just_before(min(soon))
                return
            soon = [due for due in self.model.timers() if due < now + 3 * self.short]
            if soon:
                event("a short timer fired")
                time.sleep(max(0.0, min(soon) + self.window - now))

        @invariant()
        def same_counts(self) -> None:
            self._settle()
            for queue, name in enumerate(self.names):
                assert self.real.stats(name) == self.model.stats(queue), name

    return BackendMatchesUnorderedModel


class UnorderedModelContract:
    """Random operations agree with a model that asks for no order, on every backend."""

    def test_random_operations_match_the_unordered_model(
        self, make_queue: Callable[[], kue.Queue], request: pytest.FixtureRequest
    ) -> None:
        examples, steps = PROFILES[str(request.config.getoption("--kue-hypothesis"))]
        run_state_machine_as_test(
            unordered_machine_for(make_queue),
            settings=settings(
                max_examples=examples, stateful_step_count=steps, deadline=None,
                suppress_health_check=list(HealthCheck), derandomize=False,
            ),
        )
