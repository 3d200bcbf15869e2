"""Many jobs at once in one process: ``kue-worker --coroutines N`` (arq's ``max_jobs``).

The process's main thread runs an event loop. Up to N jobs are in flight at once: coroutine
jobs run on the loop itself (cancelled at their time limit), sync jobs on a pool of
``--threads`` threads (interrupted at their limit, as in :mod:`kue.worker.threads`). Backend
calls are blocking, so they run in threads too: reserves on one thread of their own (on
beanstalkd every job is held by the connection that reserved it), admitting and settling on a
small pool. Every job in flight has its lease renewed (:mod:`kue.worker.lease`).

Up to :data:`RESERVERS` reserving threads take jobs, each on its own connection, so a server
that answers a reserve in milliseconds (SQS over HTTP) still fills the slots. While jobs are in
flight, each asks without waiting and, when nothing is ready, sleeps until a job finishes or
:data:`BUSY_POLL` passes: a blocking reserve would hold the connection the running jobs'
renewals and settles need (on beanstalkd only that connection may act on its jobs).

With prefetch (a backend that reserves in batches, one queue) one reserving thread instead
takes up to ``prefetch`` jobs per round trip while the queue is deep and acks the jobs finished
since the last one in the same call, as the one-job worker does (:mod:`kue.worker.batch`): a
prefetched job is started only within the prefetch window of the round trip that reserved it,
and the jobs not started are given back at the next round trip, or at once on a stop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pluggy

from kue.backend import Ack, Backend, BatchBackend, Reservation
from kue.backoff import Backoff
from kue.errors import BackendUnavailable, ReservationLost
from kue.hookcalls import notify
from kue.interrupts import TimeLimitExceeded
from kue.job import DEFAULT_TIME_LIMIT, is_async, registry
from kue.plugins import get_plugin_manager
from kue.records import DEFAULT_RESULT_TTL
from kue.status import Records
from kue.validation import check_queue_name
from kue.worker.aio import limited
from kue.worker.batch import BatchSizer, settle_batch
from kue.worker.current import RunningJob, with_current
from kue.worker.execute import run_here
from kue.worker.lease import LeaseKeeper
from kue.worker.limits import ThreadLimiter
from kue.worker.settle import Admitted, JobSettler, WorkerStats
from kue.worker.timers import TimerThread
from kue.worker.worker import DEFAULT_PREFETCH, PREFETCH_WINDOW, check_prefetch, reserve_next

__all__ = ["BUSY_POLL", "RESERVERS", "SETTLING_THREADS", "ConcurrentWorker"]

log = logging.getLogger("kue.worker")
T = TypeVar("T")

#: Longest wait between two non-blocking reserves while jobs are in flight.
BUSY_POLL = 0.25
#: Longest one blocking reserve lasts while nothing is in flight: how soon a stop is seen.
IDLE_TIMEOUT = 1.0
#: Threads that admit and settle jobs (each a round trip or two).
SETTLING_THREADS = 4
#: Most threads that reserve at once (never more than the jobs allowed in flight).
RESERVERS = 4


class ConcurrentWorker:
    """Up to ``coroutines`` jobs at once in this process, on an event loop it owns.

    :param backend: an open backend.
    :param queues: queue names, most urgent first.
    :param coroutines: most jobs in flight at once, coroutine and sync together.
    :param threads: most sync jobs running at once (a thread each).
    :param plugin_manager: whose hooks fire (the process's by default).
    :param name: shown in logs.
    :param time_limit: the limit of jobs that set none.
    :param records: where job records go (the backend's own if it keeps them, by default).
    :param result_ttl: seconds a done job's record is kept (0: none).
    :param prefetch: most jobs one round trip reserves (1: none prefetched). Used where the
        backend reserves in batches (``capabilities.reserve_many``) and the worker has one
        queue; jobs beyond the free slots wait at most ``prefetch_window`` to be started.
    :param prefetch_window: longest a prefetched job waits to be started (seconds).
    :param clock: the monotonic clock the prefetch window is measured on (tests pass their
        own).
    """

    def __init__(
        self,
        backend: Backend,
        queues: Sequence[str],
        coroutines: int,
        *,
        threads: int = 1,
        plugin_manager: pluggy.PluginManager | None = None,
        name: str = "worker",
        time_limit: float = DEFAULT_TIME_LIMIT,
        records: Records | None = None,
        result_ttl: float = DEFAULT_RESULT_TTL,
        prefetch: int = DEFAULT_PREFETCH,
        prefetch_window: float = PREFETCH_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_prefetch(prefetch, prefetch_window)
        if coroutines < 1 or threads < 1:
            raise ValueError(f"coroutines and threads must be at least 1, got {coroutines} "
                             f"and {threads}")
        if not queues:
            raise ValueError("a worker needs at least one queue name")
        for queue in queues:
            check_queue_name(queue)
        self.backend = backend
        self.queues = list(queues)
        self.coroutines = coroutines
        self.threads = threads
        self.pm = plugin_manager or get_plugin_manager()
        self.name = name
        self.settler = JobSettler(backend, self.pm, time_limit,
                                  records or Records.of(backend), result_ttl)
        self.keeper = LeaseKeeper(backend)
        self._timers = TimerThread("kue-limits")
        self._stopping = False
        self._wake: asyncio.Event | None = None
        caps = backend.capabilities
        self.prefetch = min(prefetch, caps.max_reserve) if caps.reserve_many else 1
        self._batched = (self.prefetch > 1 and len(self.queues) == 1
                         and isinstance(backend, BatchBackend))
        self.prefetch_window = prefetch_window
        self._clock = clock
        self._sizer = BatchSizer(self.prefetch, prefetch_window, parallel=coroutines)
        #: Acks of the jobs finished since the last batched round trip (prefetch only).
        self._acks: list[Ack] = []

    @property
    def stats(self) -> WorkerStats:
        """What this worker has done since it started."""
        return self.settler.stats

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for."""
        return self._stopping

    def stop(self) -> None:
        """Stop taking jobs; those in flight finish (safe from a signal handler)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    def run(self, *, burst: bool = False) -> WorkerStats:
        """Run until stopped (or, with ``burst``, until nothing is ready and nothing runs)."""
        notify(self.pm, "kue_worker_started", worker=self)
        log.info("worker %s started on queues %s with jobs %s, up to %d at once (%d in "
                 "threads)", self.name, ", ".join(self.queues),
                 ", ".join(sorted(registry())) or "(none)", self.coroutines, self.threads)
        try:
            asyncio.run(self._main(burst))
        finally:
            log.info("worker %s stopping", self.name)
            notify(self.pm, "kue_worker_stopping", worker=self)
            self.keeper.close()
            self._timers.close()
        return self.stats

    async def _main(self, burst: bool) -> None:
        self._wake = asyncio.Event()
        reservers = 1 if self._batched else min(RESERVERS, self.coroutines)
        pools = [ThreadPoolExecutor(1, thread_name_prefix="kue-reserve")
                 for _ in range(reservers)]
        settlers = ThreadPoolExecutor(SETTLING_THREADS, thread_name_prefix="kue-settle")
        runners = ThreadPoolExecutor(self.threads, thread_name_prefix="kue-job")
        in_flight: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(self.coroutines)
        try:
            if self._batched:
                await self._feed_batched(pools[0], burst, in_flight, settlers, runners)
            else:
                await asyncio.gather(*(self._feed(pool, burst, slots, in_flight, settlers,
                                                  runners) for pool in pools))
            while in_flight:
                await asyncio.gather(*in_flight)
            if self._acks:  # the jobs that finished after the last round trip
                await self._send_acks(pools[0], [], 0)
        finally:
            for pool in [*pools, settlers, runners]:
                pool.shutdown(wait=True, cancel_futures=True)

    # -- prefetching ----------------------------------------------------------------------

    async def _feed_batched(self, reserver: ThreadPoolExecutor, burst: bool,
                            in_flight: set[asyncio.Task[None]], settlers: ThreadPoolExecutor,
                            runners: ThreadPoolExecutor) -> None:
        """Reserve in batches on one thread, starting held jobs as slots free up.

        As :meth:`kue.worker.Worker.run` with prefetch, with up to ``coroutines`` jobs running:
        a held job starts when a slot is free, within ``prefetch_window`` of the round trip
        that reserved it; past the window the jobs not started are given back in the next
        round trip, which acks the finished jobs and reserves for the free slots. With every
        slot busy and nothing held, the worker waits for a job to finish.
        """
        backend: BatchBackend = self.backend  # type: ignore[assignment]
        held: deque[Reservation] = deque()
        sizer = self._sizer
        batch_at = -math.inf
        backoff = Backoff()
        try:
            while not self._stopping:
                free = self.coroutines - len(in_flight)
                left = self.prefetch_window - (self._clock() - batch_at)
                if held and left >= 0:
                    if free > 0:
                        self._start_held(held.popleft(), in_flight, settlers, runners)
                    else:  # until a slot frees or the window ends
                        await self._pause(left, in_flight)
                    continue
                give_back = list(held)
                held.clear()
                n = min(sizer.want, self.prefetch) if free > 0 else 0
                if not give_back and not self._acks and n == 0:
                    await self._pause(None, in_flight)  # every slot busy, nothing to send
                    continue
                try:
                    reserved = await self._send_acks(reserver, give_back, n)
                except BackendUnavailable as exc:
                    held.extend(give_back)  # still ours, and renewed: given back next time
                    batch_at = -math.inf
                    wait = backoff.next()
                    log.warning("%s; retrying in %.1f s", exc, wait)
                    await self._pause(wait, set())
                    continue
                backoff.reset()
                if not reserved and n > 0:
                    sizer.reset()
                    if in_flight:
                        await self._pause(None if burst else BUSY_POLL, in_flight)
                        continue
                    if burst:
                        return
                    try:  # idle: wait for one job, a second at a time (a stop is seen)
                        reserved = await _call(reserver, backend.reserve_many, self.queues, 1,
                                               IDLE_TIMEOUT)
                    except BackendUnavailable as exc:
                        wait = backoff.next()
                        log.warning("%s; retrying in %.1f s", exc, wait)
                        await self._pause(wait, set())
                        continue
                elif reserved:
                    sizer.got(n, len(reserved))
                for job in reserved:
                    self.keeper.hold(job)
                held.extend(reserved)
                batch_at = self._clock()
        finally:
            if held or self._acks:  # a stop (or an error): give back at once what did not start
                try:
                    await self._send_acks(reserver, list(held), 0)
                except Exception as exc:  # the jobs come back after their ttr
                    log.warning("could not give back %d prefetched jobs: %s", len(held), exc)

    async def _send_acks(self, reserver: ThreadPoolExecutor, give_back: list[Reservation],
                         n: int) -> list[Reservation]:
        """One round trip: the acks so far, ``give_back``, and a reserve of up to ``n``."""
        # Jobs finishing meanwhile add their acks to a fresh list, sent next time.
        acks, self._acks = self._acks, []
        try:
            return await _call(reserver, settle_batch, self.backend, self.keeper, self.settler,
                               self.queues, acks, give_back, n)
        except BaseException:
            self._acks[:0] = acks  # not sent: still held and renewed, sent next time
            raise

    def _start_held(self, job: Reservation, in_flight: set[asyncio.Task[None]],
                    settlers: ThreadPoolExecutor, runners: ThreadPoolExecutor) -> None:
        """Start a prefetched job in a task of its own, unless its lease lapsed meanwhile."""
        if not self.keeper.drop(job):  # lost while it waited: not ours to run
            self.settler.count(handled=1)
            self.settler.lost(job, ReservationLost(job.queue, job.id, "its lease was lost "
                                                   "before it started"))
            return
        began = self._clock()
        task = asyncio.create_task(self._handle(job, settlers, runners))
        in_flight.add(task)
        task.add_done_callback(lambda _: self._sizer.ran(self._clock() - began))
        task.add_done_callback(functools.partial(_finished, in_flight, None))

    async def _feed(self, reserver: ThreadPoolExecutor, burst: bool, slots: asyncio.Semaphore,
                    in_flight: set[asyncio.Task[None]], settlers: ThreadPoolExecutor,
                    runners: ThreadPoolExecutor) -> None:
        """Reserve on one thread while there is room, handing each job to a task of its own."""
        mine: set[asyncio.Task[None]] = set()  # in flight on this reserver's connection
        backoff = Backoff()
        while not self._stopping:
            await slots.acquire()
            timeout = 0.0 if burst or mine else IDLE_TIMEOUT
            try:
                job = await _call(reserver, reserve_next, self.backend, self.queues, timeout)
            except BackendUnavailable as exc:
                slots.release()
                wait = backoff.next()
                log.warning("%s; retrying in %.1f s", exc, wait)
                await self._pause(wait, set())
                continue
            backoff.reset()
            if job is None:
                slots.release()
                if burst and not in_flight:
                    return
                if in_flight:
                    await self._pause(None if burst else BUSY_POLL, in_flight)
                continue
            task = asyncio.create_task(self._handle(job, settlers, runners))
            in_flight.add(task)
            mine.add(task)
            task.add_done_callback(mine.discard)
            task.add_done_callback(functools.partial(_finished, in_flight, slots))

    async def _pause(self, seconds: float | None, in_flight: set[asyncio.Task[None]]) -> None:
        """Wait until a job in flight finishes, a stop is asked for, or ``seconds`` pass."""
        assert self._wake is not None
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait()),
                                             *in_flight}
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters - in_flight:
            waiter.cancel()

    async def _handle(self, job: Reservation, settlers: ThreadPoolExecutor,
                      runners: ThreadPoolExecutor) -> None:
        self.settler.count(handled=1)
        outcome = "lost"
        try:
            admitted = await _call(settlers, self.settler.admit, job)
            if admitted is None:
                outcome = "buried"
                return
            started = self.settler.started(job, admitted)
            running = self.settler.running_job(job)
            self.keeper.hold(job)
            error: BaseException | None = None
            result: Any = None
            try:
                if is_async(admitted.job_class):
                    result = await limited(with_current(running, admitted.build().run()),
                                           admitted.time_limit)
                else:
                    result = await _call(runners, self._run_sync, admitted, running)
            except (Exception, TimeLimitExceeded) as exc:  # a job's failure never ends the worker
                error = exc
            finally:
                await _call(settlers, self.keeper.drop, job)
            if error is not None:
                outcome = await _call(settlers, self.settler.failed, job, admitted, error,
                                      started)
            elif self._batched:  # acked with the next round trip; renewed until then
                records = self.settler.records
                if records.store is None or records.native:  # nothing to send yet
                    ack = self.settler.succeeded_later(job, admitted, started, result)
                else:
                    ack = await _call(settlers, self.settler.succeeded_later, job, admitted,
                                      started, result)
                self.keeper.hold(job)
                self._acks.append(ack)
                outcome = "deleted"
            else:
                await _call(settlers, self.settler.succeeded, job, admitted, started, result)
                outcome = "deleted"
        except (ReservationLost, BackendUnavailable) as exc:
            self.settler.lost(job, exc)
        finally:
            notify(self.pm, "kue_job_settled", job=job, outcome=outcome)

    def _run_sync(self, admitted: Admitted, running: RunningJob) -> Any:
        """A sync job in a runner thread, interrupted there at its limit."""
        return run_here(admitted, running, ThreadLimiter(self._timers))


async def _call(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call on ``pool`` without blocking the loop."""
    return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


def _finished(in_flight: set[asyncio.Task[None]], slots: asyncio.Semaphore | None,
              task: asyncio.Task[None]) -> None:
    in_flight.discard(task)
    if slots is not None:
        slots.release()
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("handling a job failed", exc_info=exc)
