"""Judging and settling one reserved job: admit it, then delete, release or bury it.

Shared by every worker mode (:class:`~kue.worker.Worker` for one job at a time and
:class:`~kue.worker.concurrent.ConcurrentWorker` for many), so retries, burials, their reasons
and the hooks are the same whichever mode ran the job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import pluggy

from kue.backend import Backend, FusedBackend, Reservation
from kue.codec import DecodeError, Envelope, decode
from kue.errors import BackendUnavailable, ReservationLost, TimeLimitExceeded, UnknownJob
from kue.hookcalls import notify
from kue.job import DEFAULT_TIME_LIMIT, Job, lookup
from kue.validation import retry_delay_within
from kue.worker.failure import Failure
from kue.worker.logs import job_fields

__all__ = ["RECONNECT_BACKOFF_CAP", "Admitted", "JobSettler", "WorkerStats"]

log = logging.getLogger("kue.worker")

#: Ceiling of the wait between reconnect attempts when the backend is unavailable.
RECONNECT_BACKOFF_CAP = 2.0


@dataclass
class WorkerStats:
    """What a worker has done since it started."""

    succeeded: int = 0  #: jobs that returned and were deleted
    failed: int = 0  #: attempts that raised or ran out of time (retried or then buried)
    retried: int = 0  #: failed attempts released for another try
    buried: int = 0  #: jobs set aside: out of attempts, undecodable, or naming no job
    lost: int = 0  #: jobs whose lease was gone when the worker came to settle them
    handled: int = 0  #: jobs reserved

    def __add__(self, other: WorkerStats) -> WorkerStats:
        return WorkerStats(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                              for f in fields(self)})

    def summary(self, seconds: float) -> str:
        """One line: succeeded, retried, buried, leases lost, seconds."""
        return (f"{self.succeeded} succeeded, {self.retried} retried, {self.buried} buried, "
                f"{self.lost} leases lost in {seconds:.1f} s")


@dataclass(frozen=True)
class Admitted:
    """A reserved job whose envelope decoded to a registered job it may still run."""

    envelope: Envelope
    job_class: type[Job]
    time_limit: float

    def build(self) -> Job:
        """The Job instance with the envelope's arguments."""
        return self.job_class(*self.envelope.args, **self.envelope.kwargs)


class JobSettler:
    """Admits, settles and reports the jobs of one worker (thread-safe).

    :param backend: where the jobs were reserved.
    :param pm: whose hooks fire; a hook that raises is logged and ignored.
    :param time_limit: the limit of jobs that set none (``math.inf`` for none).
    """

    def __init__(self, backend: Backend, pm: pluggy.PluginManager,
                 time_limit: float = DEFAULT_TIME_LIMIT) -> None:
        self.backend = backend
        self.pm = pm
        self.time_limit = time_limit
        self.stats = WorkerStats()
        self._lock = threading.Lock()
        self._fused = backend.capabilities.delete_and_reserve and isinstance(
            backend, FusedBackend)

    def count(self, **deltas: int) -> None:
        """Add to the stats (workers settle from several threads)."""
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    # -- admitting ------------------------------------------------------------------------

    def admit(self, job: Reservation) -> Admitted | None:
        """The job to run, or None once a job that can never run was buried with its reason."""
        try:
            envelope = decode(job.body)
        except DecodeError as exc:
            self.bury(job, f"not a kue envelope: {exc}")
            return None
        try:
            job_class = lookup(envelope.job)
        except UnknownJob:
            self.bury(job, f"no job named {envelope.job!r} is registered in this worker "
                           "(kue-worker --import the module that defines it)", envelope.job)
            return None
        if job.attempts > job_class.max_attempts:
            # A failure releases the job and counts; reaching here means earlier attempts
            # ended with no verdict: their worker was killed, froze or lost its lease.
            self.bury(job, f"its worker died while running it (reserved {job.attempts} times, "
                           f"over max_attempts {job_class.max_attempts})", envelope.job)
            return None
        limit = job_class.time_limit if job_class.time_limit is not None else self.time_limit
        return Admitted(envelope, job_class, limit)

    # -- outcomes -------------------------------------------------------------------------

    def succeeded(self, job: Reservation, admitted: Admitted, duration: float,
                  next_from: Sequence[str] | None = None) -> Reservation | None:
        """Delete a finished job; with ``next_from`` and a fused backend, reserve the next."""
        next_job = self._delete(job, next_from)
        self.count(succeeded=1)
        name = admitted.envelope.job
        if log.isEnabledFor(logging.INFO):  # the fields cost a share of a fast job's time
            log.info("done job %s %s on %s (attempt %d, %.3f s)", name, job.id, job.queue,
                     job.attempts, duration, extra=job_fields(name, job, duration))
        notify(self.pm, "kue_job_succeeded", job=job, envelope=admitted.envelope,
               duration=duration)
        return next_job

    def failed(self, job: Reservation, admitted: Admitted, exc: BaseException,
               duration: float) -> None:
        """Release a failed attempt for a retry with backoff, or bury it out of attempts."""
        cls, name = admitted.job_class, admitted.envelope.job
        failure = Failure.of(exc)
        self.count(failed=1)
        will_retry = job.attempts < cls.max_attempts
        notify(self.pm, "kue_job_failed", job=job, envelope=admitted.envelope, error=exc,
               will_retry=will_retry, duration=duration)
        if not will_retry:
            if isinstance(exc, TimeLimitExceeded):
                reason = f"{exc} (attempt {job.attempts} of {cls.max_attempts})"
            else:
                reason = f"failed {job.attempts} times, last with {failure.summary}"
            self.bury(job, reason, name, exc)
            return
        delay = retry_delay_within(cls.retry_delay(job.attempts), self.backend.capabilities)
        self.settle(job, lambda: self.backend.release(job, job.priority, delay))
        self.count(retried=1)
        log.warning(
            "job %s %s on %s failed (attempt %d of %d, %.3f s): %s; retry in %.1f s",
            name, job.id, job.queue, job.attempts, cls.max_attempts, duration,
            failure.summary, delay, extra=job_fields(name, job, duration),
            exc_info=exc,
        )

    def bury(self, job: Reservation, reason: str, name: str = "?",
             exc: BaseException | None = None) -> None:
        """Bury ``job`` and say why, in the log and to the ``kue_job_buried`` hook."""
        self.settle(job, lambda: self.backend.bury(job, None))
        self.count(buried=1)
        log.error("buried job %s %s on %s (attempt %d): %s", name, job.id, job.queue,
                  job.attempts, reason, extra=job_fields(name, job),
                  exc_info=exc)
        notify(self.pm, "kue_job_buried", job=job, reason=reason)

    def lost(self, job: Reservation, exc: Exception) -> None:
        """Count a job whose lease was gone (or server unreachable) when it came to settle."""
        self.count(lost=1)
        if isinstance(exc, ReservationLost):
            log.warning("%s", exc)
        else:
            log.warning("could not settle job %s: %s; it will come back after its ttr",
                        job.id, exc)

    # -- talking to the backend -----------------------------------------------------------

    def settle(self, job: Reservation, action: Callable[[], None]) -> None:
        """Run ``action`` (delete, release or bury), riding out a short server outage.

        Retries with capped backoff while the backend is unavailable, for as long as the
        reservation could still be held (its ttr); past that the job comes back anyway.
        """
        deadline = time.monotonic() + job.ttr
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

    def _delete(self, job: Reservation, next_from: Sequence[str] | None) -> Reservation | None:
        if next_from is not None and self._fused:
            fused: FusedBackend = self.backend  # type: ignore[assignment]
            try:
                return fused.delete_and_reserve(job, next_from, 0)
            except BackendUnavailable:
                pass  # the script is atomic: nothing happened; fall back to a plain delete
        self.settle(job, lambda: self.backend.delete(job))
        return None

