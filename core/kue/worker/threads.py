"""Several worker loops in one process, one per thread (``kue-worker --threads N``).

Jobs that wait on the network (HTTP calls, database queries, another Redis) spend most of
their time outside Python, so N threads run up to N of them at once in one process, as a
Dramatiq worker's threads do. Every thread is a :class:`~kue.worker.Worker` of its own over
the one backend (every backend is safe to share between threads), so each reservation is
settled by the thread that ran its job, and a job's retries, burials and hooks are exactly
those of a single worker. Lifecycle hooks then fire from several threads: a plugin that
keeps state must guard it.

Stopping: a signal asks every thread to stop after its current job. Idle threads block in
reserve for at most :data:`THREAD_IDLE_TIMEOUT` seconds at a time, so each sees the request
within that, and the process exits once the last job in hand is settled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pluggy

from kue.backend import Backend
from kue.job import DEFAULT_TIME_LIMIT
from kue.records import DEFAULT_RESULT_TTL
from kue.status import Records
from kue.worker.lease import LeaseKeeper
from kue.worker.timers import TimerThread
from kue.worker.worker import DEFAULT_PREFETCH, StopWaiting, Worker, WorkerStats

__all__ = ["THREAD_IDLE_TIMEOUT", "ThreadedWorker"]

log = logging.getLogger("kue.worker")

#: Longest one idle thread blocks in reserve: how soon it notices a stop request.
THREAD_IDLE_TIMEOUT = 1.0


class ThreadedWorker:
    """``threads`` worker loops over one backend, each in a thread of its own.

    :param backend: an open backend, shared by every thread.
    :param queues: queue names, most urgent first (as for :class:`~kue.worker.Worker`).
    :param threads: how many jobs may run at once.
    :param plugin_manager: whose lifecycle hooks fire (the process's by default).
    :param name: shown in logs; each thread's worker adds its number.
    :param time_limit: the limit of jobs that set none; a job past it is interrupted in its
        thread (see :mod:`kue.worker.limits` for what cannot be interrupted).
    :param records: where job records go (the backend's own if it keeps them, by default).
    :param result_ttl: seconds a done job's record is kept (0: none).
    :param prefetch: most jobs each thread holds at once (see :class:`~kue.worker.Worker`).
    """

    def __init__(
        self,
        backend: Backend,
        queues: Sequence[str],
        threads: int,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        name: str = "worker",
        time_limit: float = DEFAULT_TIME_LIMIT,
        records: Records | None = None,
        result_ttl: float = DEFAULT_RESULT_TTL,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        # One heartbeat thread and one time-limit thread serve every worker thread.
        self.keeper = LeaseKeeper(backend)
        self._timers = TimerThread("kue-limits")
        self.workers = [
            Worker(backend, queues, plugin_manager=plugin_manager, name=f"{name} thread {i}",
                   idle_timeout=THREAD_IDLE_TIMEOUT, time_limit=time_limit,
                   keeper=self.keeper, timers=self._timers, records=records,
                   result_ttl=result_ttl, prefetch=prefetch)
            for i in range(1, threads + 1)
        ]
        self._done = threading.Event()
        self._errors: list[BaseException] = []

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for."""
        return self.workers[0].stopping

    def stop(self) -> None:
        """Ask every thread to stop after the job in hand (safe from a signal handler)."""
        for worker in self.workers:
            worker.stop()

    def run(self, *, burst: bool = False) -> WorkerStats:
        """Run every thread until stopped (or, with ``burst``, until each finds nothing ready).

        Returns the threads' counts added up. An exception that ends one thread's loop (not a
        job's: those are the worker's business) stops the others and is raised here.
        """
        live = [threading.Thread(target=self._loop, args=(w, burst), name=w.name, daemon=True)
                for w in self.workers]
        for thread in live:
            thread.start()
        # Waiting in short slices keeps the main thread free to run signal handlers.
        try:
            while any(t.is_alive() for t in live):
                self._done.wait(0.2)
                self._done.clear()
        finally:
            self.keeper.close()
            self._timers.close()
        if self._errors:
            raise self._errors[0]
        return self.stats

    @property
    def stats(self) -> WorkerStats:
        """The threads' counts added up."""
        total = WorkerStats()
        for worker in self.workers:
            total = total + worker.stats
        return total

    def _loop(self, worker: Worker, burst: bool) -> None:
        try:
            worker.run(burst=burst)
        except StopWaiting:
            pass
        except BaseException as exc:  # handed to run() in the main thread
            log.exception("%s ended with an error; stopping the other threads", worker.name)
            self._errors.append(exc)
            self.stop()
        finally:
            self._done.set()
