"""The single-process worker loop: reserve, decode, run, then delete, release or bury.

A job that raises is released with exponential backoff and jitter until its class's
``max_attempts``, then buried. A body that cannot be decoded, or that names no registered job,
is buried at once with the reason logged: retrying it could never succeed.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pluggy

from kue.backend import Backend, FusedBackend, Reservation
from kue.codec import DecodeError, Envelope, decode
from kue.errors import BackendUnavailable, ReservationLost, UnknownJob
from kue.job import Job, lookup
from kue.plugins import get_plugin_manager
from kue.validation import retry_delay_within

__all__ = ["StopWaiting", "Worker", "WorkerStats", "current_job"]

log = logging.getLogger("kue.worker")

#: Longest one reserve blocks when idle. A stop signal interrupts the wait (see
#: :meth:`Worker.interrupt`), so this only bounds how often an idle worker wakes.
IDLE_RESERVE_TIMEOUT = 20.0
#: Ceiling of the wait between reconnect attempts when the backend is unavailable.
RECONNECT_BACKOFF_CAP = 2.0


_current: contextvars.ContextVar[Reservation | None] = contextvars.ContextVar(
    "kue_current_job", default=None
)


def current_job() -> Reservation | None:
    """The reservation of the job running in this thread (id, queue, attempts), if any."""
    return _current.get()


class StopWaiting(BaseException):
    """Raised by a stop signal into a worker blocked in reserve; ends the loop at once.

    A BaseException, so a client library's ``except Exception`` cannot swallow it.
    """


@dataclass
class WorkerStats:
    """What a worker has done since it started."""

    succeeded: int = 0  #: jobs that returned and were deleted
    failed: int = 0  #: attempts that raised (retried or then buried)
    retried: int = 0
    buried: int = 0
    lost: int = 0
    handled: int = 0


class Worker:
    """Runs jobs from ``queues`` on ``backend`` until stopped.

    :param backend: an open backend.
    :param queues: queue names to reserve from, most urgent first: a job waiting in an earlier
        queue is taken before any in a later one, whatever their priorities.
    :param plugin_manager: whose lifecycle hooks fire (the process's by default).
    :param name: shown in logs.
    :param idle_timeout: longest one blocking reserve lasts; ``stop()`` from another thread
        takes effect within it (a signal handler calling ``interrupt()`` ends it at once).
    """

    def __init__(
        self,
        backend: Backend,
        queues: Sequence[str],
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        name: str = "worker",
        idle_timeout: float = IDLE_RESERVE_TIMEOUT,
    ) -> None:
        if not queues:
            raise ValueError("a worker needs at least one queue name")
        self.backend = backend
        self.queues = list(queues)
        self.pm = plugin_manager or get_plugin_manager()
        self.name = name
        self.idle_timeout = idle_timeout
        self._fused = backend.capabilities.delete_and_reserve and isinstance(
            backend, FusedBackend
        )
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._waiting = False
        self._reserved_at = 0.0
        self._outcome = "lost"
        self.current: Reservation | None = None

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
        self.pm.hook.kue_worker_started(worker=self)
        log.info("worker %s started on queues %s", self.name, ", ".join(self.queues))
        backoff = 0.1
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
                    log.warning("%s; retrying in %.1f s", exc, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, RECONNECT_BACKOFF_CAP)
                    continue
                backoff = 0.1
                if reserved is None:
                    if burst:
                        break
                    continue
                in_hand = self.process(reserved, fetch_next=self._may_fetch(max_jobs))
        finally:
            log.info("worker %s stopping", self.name)
            self.pm.hook.kue_worker_stopping(worker=self)
        return self.stats

    def _reserve_next(self, timeout: float) -> Reservation | None:
        """The next job, taking the queues in the order given (the first is the most urgent).

        With several queues each is asked in turn without waiting; only when all are empty
        does the worker block, on all of them at once.
        """
        if len(self.queues) > 1:
            for queue in self.queues:
                job = self.backend.reserve([queue], 0)
                if job is not None:
                    return job
            if timeout == 0:
                return None
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

    def process(self, job: Reservation, *, fetch_next: bool = False) -> Reservation | None:
        """Run one reserved job and settle it: delete, release for retry, or bury.

        With ``fetch_next`` and a backend that offers the fused call, deleting a finished job
        also reserves the next ready one (one round trip instead of two), which is returned.
        """
        self.current = job
        self._reserved_at = time.monotonic()
        self.stats.handled += 1
        self._outcome = "lost"
        try:
            return self._process(job, fetch_next)
        except ReservationLost as exc:
            self.stats.lost += 1
            log.warning("%s", exc)
        except BackendUnavailable as exc:
            # The job ran (or was judged) but settling it failed: it comes back through its
            # ttr once the server answers again, so log and carry on rather than exit.
            self.stats.lost += 1
            log.warning("could not settle job %s: %s; it will come back after its ttr",
                        job.id, exc)
        finally:
            self.current = None
            self.pm.hook.kue_job_settled(job=job, outcome=self._outcome)
        return None

    def _settle(self, job: Reservation, action: Callable[[], None]) -> None:
        """Run ``action`` (delete, release or bury), riding out a short server outage.

        Retries with capped backoff while the backend is unavailable, for as long as the
        reservation can still be held; past that the job comes back through its ttr anyway.
        """
        deadline = self._reserved_at + job.ttr
        backoff = 0.1
        while True:
            try:
                action()
                return
            except BackendUnavailable as exc:
                if time.monotonic() + backoff >= deadline:
                    raise
                if backoff == 0.1:
                    log.warning("%s; retrying to settle job %s", exc, job.id)
                time.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF_CAP)

    def _bury(self, job: Reservation, reason: str, name: str = "?") -> None:
        self._settle(job, lambda: self.backend.bury(job, None))
        self._outcome = "buried"
        self.stats.buried += 1
        log.error(
            "buried job %s %s on %s (attempt %d): %s", name, job.id, job.queue, job.attempts,
            reason, extra=_fields(name, job),
        )
        self.pm.hook.kue_job_buried(job=job, reason=reason)

    def _process(self, job: Reservation, fetch_next: bool) -> Reservation | None:
        try:
            envelope: Envelope = decode(job.body)
            job_class: type[Job] = lookup(envelope.job)
        except (DecodeError, UnknownJob) as exc:
            self._bury(job, str(exc))
            return None
        if job.attempts > job_class.max_attempts:
            # Reserved more often than it may run: earlier attempts died with their worker
            # (a crash, a kill, an expired ttr) before they could count as failures.
            self._bury(
                job, f"reserved {job.attempts} times, over max_attempts "
                f"{job_class.max_attempts}: earlier attempts died with their worker",
                envelope.job,
            )
            return None
        self.pm.hook.kue_job_started(job=job, envelope=envelope)
        started = time.monotonic()
        token = _current.set(job)
        try:
            job_class(*envelope.args, **envelope.kwargs).run()
        except Exception as exc:  # a job's failure must never end the worker
            _current.reset(token)
            duration = time.monotonic() - started
            self.stats.failed += 1
            will_retry = job.attempts < job_class.max_attempts
            self.pm.hook.kue_job_failed(
                job=job, envelope=envelope, error=exc, will_retry=will_retry, duration=duration
            )
            if will_retry:
                delay = retry_delay_within(job_class.retry_delay(job.attempts),
                                           self.backend.capabilities)
                self._settle(job, lambda: self.backend.release(job, job.priority, delay))
                self._outcome = "released"
                self.stats.retried += 1
                log.warning(
                    "job %s %s on %s failed (attempt %d of %d, %.3f s): %r; retry in %.1f s",
                    envelope.job, job.id, job.queue, job.attempts, job_class.max_attempts,
                    duration, exc, delay, extra=_fields(envelope.job, job, duration),
                )
            else:
                self._bury(
                    job, f"failed {job.attempts} times, last with {exc!r}", envelope.job
                )
            return None
        _current.reset(token)
        duration = time.monotonic() - started
        next_job = self._delete(job, fetch_next)
        self.stats.succeeded += 1
        if log.isEnabledFor(logging.INFO):  # the fields cost a share of a fast job's time
            log.info(
                "done job %s %s on %s (attempt %d, %.3f s)",
                envelope.job, job.id, job.queue, job.attempts, duration,
                extra=_fields(envelope.job, job, duration),
            )
        self.pm.hook.kue_job_succeeded(job=job, envelope=envelope, duration=duration)
        return next_job

    def _delete(self, job: Reservation, fetch_next: bool) -> Reservation | None:
        """Delete a finished job; with ``fetch_next``, reserve the next in the same call."""
        if fetch_next:
            fused: FusedBackend = self.backend  # type: ignore[assignment]
            try:
                next_job = fused.delete_and_reserve(job, self.queues, 0)
                self._outcome = "deleted"
                return next_job
            except BackendUnavailable:
                pass  # the script is atomic: nothing happened; fall back to a plain delete
        self._settle(job, lambda: self.backend.delete(job))
        self._outcome = "deleted"
        return None


def _fields(name: str, job: Reservation, duration: float | None = None) -> dict[str, object]:
    """The structured fields of a job's log line (see :mod:`kue.worker.logs`)."""
    fields: dict[str, object] = {
        "job": name, "id": job.id, "queue": job.queue, "attempt": job.attempts,
    }
    if duration is not None:
        fields["duration"] = round(duration, 6)
    return fields
