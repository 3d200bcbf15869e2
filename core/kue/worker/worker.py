"""The one-job-at-a-time worker loop: reserve, admit, run under a lease and a limit, settle.

While a job runs its reservation is renewed (:mod:`kue.worker.lease`), so it runs exactly once
however long it takes; its ``time_limit`` stops it (:mod:`kue.worker.limits`). A job that
raises or runs out of time is released with exponential backoff and jitter until its
``max_attempts``, then buried; a body that cannot be decoded, or that names no registered job,
is buried at once with the reason logged (:mod:`kue.worker.settle`). An ``async def`` job is
awaited on the process's event loop (:mod:`kue.worker.aio`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import cast

import pluggy

from kue.backend import Ack, Backend, BatchBackend, FusedBackend, Reservation
from kue.backoff import Backoff
from kue.deferred_acks import DeferredAckBackend
from kue.errors import BackendUnavailable, ReservationLost
from kue.hookcalls import notify
from kue.interrupts import TimeLimitExceeded
from kue.job import DEFAULT_TIME_LIMIT, registry
from kue.plugins import get_plugin_manager
from kue.records import DEFAULT_RESULT_TTL
from kue.status import Records
from kue.validation import check_queue_name
from kue.worker.batch import BatchSizer, confirm_acks, settle_batch
from kue.worker.current import current_job
from kue.worker.execute import run_here
from kue.worker.lease import LeaseKeeper
from kue.worker.limits import Limiter, limiter_for_this_thread
from kue.worker.settle import Admitted, JobSettler, WorkerStats
from kue.worker.timers import TimerThread

__all__ = [
    "DEFAULT_PREFETCH", "IDLE_RESERVE_TIMEOUT", "PREFETCH_WINDOW", "StopWaiting", "Worker",
    "WorkerStats", "check_prefetch", "current_job", "reserve_next",
]

log = logging.getLogger("kue.worker")

#: Longest one reserve blocks when idle. A stop signal interrupts the wait (see
#: :meth:`Worker.interrupt`), so this only bounds how often an idle worker wakes.
IDLE_RESERVE_TIMEOUT = 20.0

#: Most jobs one worker thread holds at once by default (``--prefetch``). 16 jobs per round
#: trip leave the round trip a sixteenth of its one-job cost, past which the worker's own
#: per-job work dominates (see bench/README.md); more would only hold more jobs away from
#: other workers.
DEFAULT_PREFETCH = 16
#: Longest a prefetched job may wait in the worker to be started, counted from the round trip
#: that reserved it; past this the jobs not started are given back and the worker asks the
#: server again, so a more urgent job put meanwhile waits at most this plus one job's run.
PREFETCH_WINDOW = 0.01


def reserve_next(backend: Backend, queues: Sequence[str], timeout: float) -> Reservation | None:
    """The next job, taking the queues in the order given (the first is the most urgent).

    With several queues each is asked in turn without waiting; only when all are empty does
    the call block, on all of them at once.
    """
    if len(queues) > 1:
        for queue in queues:
            job = backend.reserve([queue], 0)
            if job is not None:
                return job
        if timeout == 0:
            return None
    return backend.reserve(queues, timeout)


def check_prefetch(prefetch: int, window: float) -> None:
    """Refuse a prefetch that is not a whole number of jobs >= 1, or a negative window."""
    if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
        raise ValueError(f"prefetch must be a whole number of jobs >= 1, got {prefetch!r}")
    if not window >= 0:
        raise ValueError(f"prefetch_window must be >= 0 seconds, got {window!r}")


class StopWaiting(BaseException):
    """Raised by a stop signal into a worker blocked in reserve; ends the loop at once.

    A BaseException, so a client library's ``except Exception`` cannot swallow it.
    """


class Worker:
    """Runs jobs from ``queues`` on ``backend``, one at a time, until stopped.

    :param backend: an open backend.
    :param queues: queue names to reserve from, most urgent first: a job waiting in an earlier
        queue is taken before any in a later one, whatever their priorities.
    :param plugin_manager: whose lifecycle hooks fire (the process's by default).
    :param name: shown in logs.
    :param idle_timeout: longest one blocking reserve lasts; ``stop()`` from another thread
        takes effect within it (a signal handler calling ``interrupt()`` ends it at once).
    :param time_limit: seconds an attempt of a job that sets no ``time_limit`` may run
        (``math.inf``: no limit).
    :param keeper: renews the leases of running jobs; the threads of one process share one.
    :param limiter: how a job past its limit is stopped; by default SIGALRM when ``run`` is
        called in the main thread, an asynchronous exception in any other.
    :param timers: the thread that fires asynchronous interruptions (shared by the threads of
        one process).
    :param records: where job records go (the backend's own if it keeps them, by default).
    :param result_ttl: seconds the record of a done job is kept, for jobs that set no
        ``result_ttl`` (0: write no records).
    :param prefetch: most jobs held at once (1: none prefetched). Used where the backend
        reserves in batches (``capabilities.reserve_many``) and the worker has one queue; see
        :meth:`run` for when it prefetches and what it promises about urgency.
    :param prefetch_window: longest a prefetched job waits to be started (seconds).
    :param clock: the monotonic clock the prefetch window is measured on (tests pass their
        own).
    """

    def __init__(
        self,
        backend: Backend,
        queues: Sequence[str],
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        name: str = "worker",
        idle_timeout: float = IDLE_RESERVE_TIMEOUT,
        time_limit: float = DEFAULT_TIME_LIMIT,
        keeper: LeaseKeeper | None = None,
        limiter: Limiter | None = None,
        timers: TimerThread | None = None,
        records: Records | None = None,
        result_ttl: float = DEFAULT_RESULT_TTL,
        prefetch: int = DEFAULT_PREFETCH,
        prefetch_window: float = PREFETCH_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not queues:
            raise ValueError("a worker needs at least one queue name")
        check_prefetch(prefetch, prefetch_window)
        for queue in queues:
            check_queue_name(queue)
        self.backend = backend
        self.queues = list(queues)
        self.pm = plugin_manager or get_plugin_manager()
        self.name = name
        self.idle_timeout = idle_timeout
        self.settler = JobSettler(backend, self.pm, time_limit,
                                  records or Records.of(backend), result_ttl)
        self._own_keeper = keeper is None
        self.keeper = keeper or LeaseKeeper(backend)
        self._own_timers = timers is None
        self._timers = timers or TimerThread("kue-limits")
        self._limiter = limiter
        self._fused = backend.capabilities.delete_and_reserve and isinstance(
            backend, FusedBackend
        )
        caps = backend.capabilities
        self.prefetch = min(prefetch, caps.max_reserve) if caps.reserve_many else 1
        self._batched = (self.prefetch > 1 and len(self.queues) == 1
                         and isinstance(backend, BatchBackend))
        # The server acks (and records) the jobs of one round trip while the next ones run.
        self._deferring = (self._batched and caps.deferred_acks
                           and isinstance(backend, DeferredAckBackend))
        #: Acks sent by the last deferred round trip, whose outcome is still to be read.
        self._unconfirmed: list[Ack] = []
        self.prefetch_window = prefetch_window
        self._clock = clock
        self._sizer = BatchSizer(self.prefetch, prefetch_window)
        #: Called (prefetch only) with the jobs each round trip reserved: a prefork child
        #: tells its supervisor, which gives them back at once should the child die (else
        #: they would wait for their ttr).
        self.on_batch: Callable[[Sequence[Reservation]], None] | None = None
        self._reported = False
        self._stop = threading.Event()
        self._waiting = False
        self.current: Reservation | None = None

    @property
    def stats(self) -> WorkerStats:
        """What this worker has done since it started."""
        return self.settler.stats

    def stop(self) -> None:
        """Ask the loop to stop after the job in hand (safe from a signal handler)."""
        self._stop.set()

    def interrupt(self) -> None:
        """From a signal handler in the worker's thread: stop, and if idle, stop waiting now.

        While a job runs this only asks the loop to stop after it; while the worker blocks in
        reserve it raises :class:`StopWaiting` out of that call.
        """
        self._stop.set()
        if self._waiting:
            self._waiting = False
            raise StopWaiting

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    def run(self, *, burst: bool = False, max_jobs: int | None = None) -> WorkerStats:
        """Take and run jobs until stopped, or (``burst``) until the queues are empty.

        :param burst: return as soon as no job is ready.
        :param max_jobs: return after this many jobs.
        :returns: counts of what happened.
        """
        if self._limiter is None:
            self._limiter = limiter_for_this_thread(self._timers)
        notify(self.pm, "kue_worker_started", worker=self)
        log.info("worker %s started on queues %s with jobs %s", self.name,
                 ", ".join(self.queues), ", ".join(sorted(registry())) or "(none)")
        if self._batched:
            try:
                self._run_batched(burst, max_jobs)
            finally:
                self._finish()
            return self.stats
        backoff = Backoff()
        # A job the fused delete-and-reserve call already reserved: it is in hand, so it runs
        # even if a stop was asked for meanwhile.
        in_hand: Reservation | None = None
        try:
            while in_hand is not None or not self._stop.is_set():
                if max_jobs is not None and self.stats.handled >= max_jobs:
                    break
                if in_hand is not None:
                    in_hand = self.process(in_hand, fetch_next=self._may_fetch(max_jobs))
                    continue
                try:
                    reserved = self._reserve_next(0 if burst else self.idle_timeout)
                except StopWaiting:
                    break
                except BackendUnavailable as exc:
                    self._back_off(exc, backoff)
                    continue
                backoff.reset()
                if reserved is None:
                    if burst:
                        break
                    continue
                in_hand = self.process(reserved, fetch_next=self._may_fetch(max_jobs))
        finally:
            self._finish()
        return self.stats

    def _back_off(self, exc: BackendUnavailable, backoff: Backoff) -> None:
        """Say the backend is down and wait the backoff's next step, or until a stop."""
        wait = backoff.next()
        log.warning("%s; retrying in %.1f s", exc, wait)
        self._stop.wait(wait)

    def _finish(self) -> None:
        log.info("worker %s stopping", self.name)
        notify(self.pm, "kue_worker_stopping", worker=self)
        if self._own_keeper:
            self.keeper.close()
        if self._own_timers:
            self._timers.close()

    # -- prefetching ----------------------------------------------------------------------

    def _run_batched(self, burst: bool, max_jobs: int | None) -> None:
        """The loop with prefetch: several jobs per round trip while the queue is deep.

        Each round trip (``settle_many``) acks the jobs finished since the last one, gives
        back the jobs not started and reserves the next batch. The batch starts at one job
        and doubles while batches come back full (the queue is deep), up to ``prefetch`` and
        to as many jobs as the running mean of one job's run fits in ``prefetch_window``;
        a batch that comes back short (the queue ran dry) starts again at one, and an idle
        worker blocks for one job, as without prefetch. Every job held, started or not, has
        its lease renewed by the keeper until it is acked or given back.

        Urgency: a prefetched job is started only within ``prefetch_window`` of the round trip
        that reserved it; the rest are given back in the next round trip, which reserves the
        most urgent jobs anew. So a job put while this worker holds less urgent ones is
        reserved, at the latest, ``prefetch_window`` plus one job's run (the job started last)
        after it was put. A stop (SIGTERM) gives back every job not started at once, after
        the job in hand.
        """
        backend: BatchBackend = self.backend  # type: ignore[assignment]
        held: deque[Reservation] = deque()
        acks: list[Ack] = []
        sizer = self._sizer
        sizer.reset()
        batch_at = 0.0
        backoff = Backoff()
        try:
            while True:
                stopping = self._stop.is_set() or (
                    max_jobs is not None and self.stats.handled >= max_jobs)
                if held and not stopping and self._clock() - batch_at <= self.prefetch_window:
                    self._run_held(held.popleft(), acks)
                    continue
                give_back = list(held)
                held.clear()
                room = self.prefetch if max_jobs is None else min(
                    self.prefetch, max_jobs - self.stats.handled)
                n = 0 if stopping else max(1, min(sizer.want, room))
                try:
                    reserved = self._settle_batch(backend, acks, give_back, n)
                except BackendUnavailable as exc:
                    if stopping:
                        log.warning("%s; %d finished and %d prefetched jobs come back after "
                                    "their ttr", exc, len(acks), len(give_back))
                        acks.clear()
                        return
                    held.extend(give_back)  # still ours, and renewed: given back next time
                    batch_at = -float("inf")
                    self._back_off(exc, backoff)
                    continue
                backoff.reset()
                if stopping:
                    self._report_batch([])
                    return
                if reserved:
                    sizer.got(n, len(reserved))
                elif burst:
                    self._report_batch([])
                    return
                else:
                    self._report_batch([])
                    sizer.reset()
                    if self._unconfirmed:  # their outcome, before a wait that may be long
                        acks.extend(self._confirm(backend))
                        if acks:  # lost with the connection: sent again first
                            continue
                    try:
                        reserved = self._block_for_job(backend)
                    except StopWaiting:
                        return
                    except BackendUnavailable as exc:
                        self._back_off(exc, backoff)
                        continue
                for job in reserved:
                    self.keeper.hold(job)
                held.extend(reserved)
                self._report_batch(reserved)
                batch_at = self._clock()
        finally:
            # An exception or a stop: read the deferred acks' outcome, settle what can be
            # settled, give back the rest (_settle_batch confirms the deferred acks first).
            if held or acks or self._unconfirmed:
                try:
                    self._settle_batch(backend, acks, list(held), 0)
                except Exception as exc:  # the jobs come back after their ttr
                    log.warning("could not give back %d prefetched jobs: %s", len(held), exc)

    def _report_batch(self, reserved: Sequence[Reservation]) -> None:
        """Tell ``on_batch`` the jobs now held, or (once) that none are.

        A batch of one job too: once it has run, its ack waits for the next round trip, and a
        child killed before that round trip leaves a finished job only its supervisor can give
        back at once (else it waits for its ttr).
        """
        if self.on_batch is None or (not reserved and not self._reported):
            return
        self._reported = bool(reserved)
        self.on_batch(reserved)

    def _settle_batch(self, backend: BatchBackend, acks: list[Ack], give_back: list[Reservation],
                      n: int) -> list[Reservation]:
        """Ack ``acks``, give back ``give_back``, reserve up to ``n`` (see settle_batch).

        The acks of the last deferred round trip are confirmed first (sent again if their
        outcome was lost); this one's are deferred too if it reserves.
        """
        if self._unconfirmed:
            acks[:0] = self._confirm(backend)
        return settle_batch(backend, self.keeper, self.settler, self.queues, acks, give_back, n,
                            self._unconfirmed if self._deferring else None)

    def _confirm(self, backend: BatchBackend) -> list[Ack]:
        """The outcome of the deferred acks (see confirm_acks): those to send again."""
        return confirm_acks(cast(DeferredAckBackend, backend), self.keeper, self.settler,
                            self._unconfirmed)

    def _block_for_job(self, backend: BatchBackend) -> list[Reservation]:
        """Wait, idle, for one job (a stop signal ends the wait at once: StopWaiting)."""
        if self._stop.is_set():
            raise StopWaiting
        self._waiting = True
        try:
            return backend.reserve_many(self.queues, 1, self.idle_timeout)
        finally:
            self._waiting = False

    def _run_held(self, job: Reservation, acks: list[Ack]) -> None:
        """Run one prefetched job; its ack, if it succeeded, is added to ``acks``."""
        began = self._clock()
        if self.keeper.lost(job):  # its lease lapsed while it waited: not ours to run
            self.settler.count(handled=1)
            self.settler.lost(job, ReservationLost(job.queue, job.id, "its lease was lost "
                                                   "before it started"))
            return
        self.process(job, acks=acks)  # held (renewed) from its reserve to its ack
        self._sizer.ran(self._clock() - began)

    def _reserve_next(self, timeout: float) -> Reservation | None:
        """The next job, taking the queues in the order given (see :func:`reserve_next`)."""
        if len(self.queues) > 1:
            job = reserve_next(self.backend, self.queues, 0)
            if job is not None or timeout == 0:
                return job
        self._waiting = timeout > 0
        try:
            return self.backend.reserve(self.queues, timeout)
        finally:
            self._waiting = False

    def _may_fetch(self, max_jobs: int | None) -> bool:
        """Whether finishing a job may reserve the next one in the same call."""
        return (
            self._fused and len(self.queues) == 1 and not self._stop.is_set()
            and (max_jobs is None or self.stats.handled + 1 < max_jobs)
        )

    def process(self, job: Reservation, *, fetch_next: bool = False,
                acks: list[Ack] | None = None) -> Reservation | None:
        """Run one reserved job and settle it: delete, release for retry, or bury.

        With ``fetch_next`` and a backend that offers the fused call, deleting a finished job
        also reserves the next ready one (one round trip instead of two), which is returned.
        With ``acks``, ``job`` is one the keeper holds (prefetched): a finished job is not
        deleted here, its ack is added to the list (its lease still renewed) for the next
        batched round trip; settled any other way, it is held no more.
        """
        self.current = job
        self.settler.count(handled=1)
        outcome = "lost"
        try:
            admitted = self.settler.admit(job)
            if admitted is None:
                outcome = "buried"
                return None
            outcome, next_job = self._run_and_settle(job, admitted, fetch_next, acks)
            return next_job
        except (ReservationLost, BackendUnavailable) as exc:
            self.settler.lost(job, exc)
        finally:
            if acks is not None and outcome != "deleted":
                self.keeper.drop(job)
            self.current = None
            notify(self.pm, "kue_job_settled", job=job, outcome=outcome)
        return None

    def _run_and_settle(self, job: Reservation, admitted: Admitted, fetch_next: bool,
                        acks: list[Ack] | None = None) -> tuple[str, Reservation | None]:
        assert self._limiter is not None
        started = self.settler.started(job, admitted)
        # A prefetched job (``acks``) is held already, from its reserve until its ack is sent.
        if acks is None:
            self.keeper.hold(job)
        error: BaseException | None = None
        result = None
        try:
            result = run_here(admitted, self.settler.running_job(job), self._limiter)
        except (Exception, TimeLimitExceeded) as exc:  # a job's failure never ends the worker
            error = exc
        finally:
            if acks is None or error is not None:
                self.keeper.drop(job)  # no renewal may land after it is settled here
        if error is not None:
            return self.settler.failed(job, admitted, error, started), None
        if acks is not None:
            acks.append(self.settler.succeeded_later(job, admitted, started, result))
            return "deleted", None
        next_from = self.queues if fetch_next else None
        return "deleted", self.settler.succeeded(job, admitted, started, result, next_from)
