"""Judging and settling one reserved job: admit it, then delete, release or bury it.

Shared by every worker mode (:class:`~kue.worker.Worker` for one job at a time and
:class:`~kue.worker.concurrent.ConcurrentWorker` for many), so retries, burials, their reasons
and the hooks are the same whichever mode ran the job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import pluggy

from kue.backend import Ack, Backend, FusedBackend, Reservation
from kue.backoff import Backoff
from kue.codec import DecodeError, Envelope, decode
from kue.errors import (
    BackendUnavailable,
    KueError,
    ReservationLost,
    UnknownJob,
    WorkerDied,
)
from kue.hookcalls import notify
from kue.interrupts import TimeLimitExceeded
from kue.job import DEFAULT_TIME_LIMIT, Job, lookup
from kue.records import DEFAULT_RESULT_TTL, NOTES_TTL, takes_done_records
from kue.status import Records
from kue.validation import retry_delay_within
from kue.worker.current import RunningJob
from kue.worker.done_record import done_fields, done_record
from kue.worker.failure import Failure
from kue.worker.logs import job_fields

__all__ = ["Admitted", "JobSettler", "WorkerStats"]

log = logging.getLogger("kue.worker")



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


@dataclass(slots=True)
class Admitted:
    """A reserved job whose envelope decoded to a registered job it may still run."""

    envelope: Envelope
    job_class: type[Job]
    time_limit: float
    #: Reservations before the job was last buried (and then kicked or retried by a person):
    #: its attempts count afresh from there.
    earlier: int = 0

    def attempt(self, job: Reservation) -> int:
        """The number of this attempt, counted since the job was last kicked from buried."""
        return job.attempts - self.earlier

    def build(self) -> Job:
        """The Job instance with the envelope's arguments."""
        return self.job_class(*self.envelope.args, **self.envelope.kwargs)


class JobSettler:
    """Admits, settles and reports the jobs of one worker (thread-safe).

    :param backend: where the jobs were reserved.
    :param pm: whose hooks fire; a hook that raises is logged and ignored.
    :param time_limit: the limit of jobs that set none (``math.inf`` for none).
    :param records: where job records go; none are written when it has no store.
    :param result_ttl: seconds a done job's record is kept, for jobs that set no
        ``result_ttl`` (0: no record of done jobs).
        A queue's own retention (``records.ttls``, configuration's ``result_ttl`` table)
        comes between a job's and this.
    """

    def __init__(self, backend: Backend, pm: pluggy.PluginManager,
                 time_limit: float = DEFAULT_TIME_LIMIT, records: Records | None = None,
                 result_ttl: float = DEFAULT_RESULT_TTL) -> None:
        self.backend = backend
        self.pm = pm
        self.time_limit = time_limit
        self.records = records or Records.of(backend)
        self.result_ttl = result_ttl
        self._complete_and_reserve = self.records.native and callable(
            getattr(backend, "complete_and_reserve", None))
        # A record written with the delete, by a backend that says it takes one, is its parts
        # (DoneRecord), made into text only if the backend stores text; every other store
        # gets the fields too.
        self._done_record: Callable[[Reservation, str, float, float, Any], Mapping[str, Any]] = (
            done_record if self.records.native and takes_done_records(backend)
            else done_fields)
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
            self.bury(job, f"not a kue envelope: {exc}", error=exc)
            return None
        try:
            job_class = lookup(envelope.job)
        except UnknownJob as exc:
            self.bury(job, f"no job named {envelope.job!r} is registered in this worker "
                           "(kue-worker --import the module that defines it)", envelope.job,
                      error=exc)
            return None
        earlier = 0
        if job.attempts > job_class.max_attempts:
            earlier = self._attempts_before_kick(job)
        if job.attempts - earlier > job_class.max_attempts:
            # A failure releases the job and counts; reaching here means earlier attempts
            # ended with no verdict: their worker was killed, froze or lost its lease.
            reason = (f"its worker died while running it (reserved {job.attempts - earlier} "
                      f"times, over max_attempts {job_class.max_attempts})")
            self.bury(job, reason, envelope.job, error=WorkerDied(reason))
            return None
        limit = job_class.time_limit if job_class.time_limit is not None else self.time_limit
        return Admitted(envelope, job_class, limit, earlier)

    def _attempts_before_kick(self, job: Reservation) -> int:
        """The reservations a buried job had had when a person kicked it, from its record.

        A kicked job deserves its max_attempts anew (as a retried job in RQ or Sidekiq); the
        backend's reservation count goes on, so the record's count at burial is subtracted.
        Without a record the count goes on, and the job is buried again at once.
        """
        if self.records.store is None:
            return 0
        try:
            record = self.records.store.read_record(job.queue, job.id) or {}
        except KueError:
            return 0
        buried_after = record.get("attempts_at_burial")
        if isinstance(buried_after, int) and 0 < buried_after < job.attempts:
            return buried_after
        return 0

    # -- outcomes -------------------------------------------------------------------------

    def started(self, job: Reservation, admitted: Admitted) -> float:
        """Fire ``kue_job_started``; returns the start time (``time.monotonic()``)."""
        notify(self.pm, "kue_job_started", job=job, envelope=admitted.envelope)
        if self.records.store is not None and not self.records.native:
            # A results store cannot see the queue: tell it the job runs.
            self._record(job, {"state": "reserved", "started_at": time.time(),
                               "attempts": job.attempts}, NOTES_TTL)
        return time.monotonic()

    def running_job(self, job: Reservation) -> RunningJob:
        """What ``kue.current_job()`` returns inside the job."""
        if self.records.store is None:
            return RunningJob(job)
        return RunningJob(job, lambda fields: self._record(job, fields, NOTES_TTL))

    def succeeded(self, job: Reservation, admitted: Admitted, started: float, result: Any,
                  next_from: Sequence[str] | None = None) -> Reservation | None:
        """Delete a finished job and keep its record; with ``next_from``, reserve the next.

        Where the backend keeps records, the delete and the record are one atomic step.
        """
        duration = time.monotonic() - started
        ttl = self._result_ttl(job, admitted)
        fields = None
        if ttl > 0 and self.records.store is not None:
            envelope = admitted.envelope  # encoded once (a result JSON cannot hold: None)
            fields = self._done_record(job, envelope.job, envelope.enqueued_at, started, result)
        if fields is not None and self.records.native:
            next_job = self._complete(job, fields, ttl, next_from)
        else:
            next_job = self._delete(job, next_from)
            if fields is not None:
                self._record(job, fields, ttl)
        self.count(succeeded=1)
        name = admitted.envelope.job
        if log.isEnabledFor(logging.INFO):  # the fields cost a share of a fast job's time
            log.info("done job %s %s on %s (attempt %d, %.3f s)", name, job.id, job.queue,
                     job.attempts, duration, extra=job_fields(name, job, duration))
        notify(self.pm, "kue_job_succeeded", job=job, envelope=admitted.envelope,
               duration=duration)
        return next_job

    def succeeded_later(self, job: Reservation, admitted: Admitted, started: float,
                        result: Any) -> Ack:
        """As :meth:`succeeded`, but the delete is left to the caller: the returned Ack.

        The prefetching worker sends the acks of a batch with its next reserve
        (``BatchBackend.settle_many``). Where the backend keeps records the Ack carries the
        record (written with the delete); a results store gets it now.
        """
        duration = time.monotonic() - started
        ttl = self._result_ttl(job, admitted)
        if ttl > 0 and self.records.store is not None:
            envelope = admitted.envelope  # encoded once (a result JSON cannot hold: None)
            fields = self._done_record(job, envelope.job, envelope.enqueued_at, started, result)
            if self.records.native:  # written with the delete, the text as it was encoded
                ack = Ack(job, fields, ttl)
            else:
                ack = Ack(job)
                self._record(job, fields, ttl)
        else:
            ack = Ack(job)
        self.count(succeeded=1)
        name = admitted.envelope.job
        if log.isEnabledFor(logging.INFO):
            log.info("done job %s %s on %s (attempt %d, %.3f s)", name, job.id, job.queue,
                     job.attempts, duration, extra=job_fields(name, job, duration))
        notify(self.pm, "kue_job_succeeded", job=job, envelope=admitted.envelope,
               duration=duration)
        return ack

    def failed(self, job: Reservation, admitted: Admitted, exc: BaseException,
               started: float) -> str:
        """Release a failed attempt for a retry with backoff, or bury it out of attempts.

        Returns the outcome: ``"released"`` or ``"buried"``.
        """
        duration = time.monotonic() - started
        cls, name = admitted.job_class, admitted.envelope.job
        failure = Failure.of(exc)
        self.count(failed=1)
        attempt = admitted.attempt(job)
        will_retry = attempt < cls.max_attempts
        notify(self.pm, "kue_job_failed", job=job, envelope=admitted.envelope, error=exc,
               will_retry=will_retry, duration=duration)
        if not will_retry:
            if isinstance(exc, TimeLimitExceeded):
                reason = f"{exc} (attempt {attempt} of {cls.max_attempts})"
            else:
                times = "once" if attempt == 1 else f"{attempt} times"
                reason = f"failed {times}, last with {failure.summary}"
            self.bury(job, reason, name, exc, failure)
            return "buried"
        delay = retry_delay_within(cls.retry_delay(attempt), self.backend.capabilities)
        self._record(job, {"error": failure.as_dict(), "attempts": job.attempts,
                           "state": "delayed" if delay > 0 else "ready"}, NOTES_TTL)
        self.settle(job, lambda: self.backend.release(job, job.priority, delay))
        self.count(retried=1)
        log.warning(
            "job %s %s on %s failed (attempt %d of %d, %.3f s): %s; retry in %.1f s",
            name, job.id, job.queue, attempt, cls.max_attempts, duration,
            failure.summary, delay, extra=job_fields(name, job, duration),
            exc_info=exc,
        )
        return "released"

    def bury(self, job: Reservation, reason: str, name: str = "?",
             exc: BaseException | None = None, failure: Failure | None = None, *,
             error: BaseException | None = None) -> None:
        """Bury ``job`` and say why: in the log, its record and the ``kue_job_buried`` hook.

        ``exc`` is a failure of the job's own (logged with its traceback); ``error`` one of
        the worker's judgement (kept in the record, logged as the reason alone).
        """
        kept = failure or Failure.of(exc or error or WorkerDied(reason))
        self._record(job, {"error": {**kept.as_dict(), "reason": reason}, "state": "buried",
                           "attempts": job.attempts, "attempts_at_burial": job.attempts,
                           "buried_at": time.time()}, NOTES_TTL)
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
        backoff = Backoff()
        while True:
            try:
                action()
                return
            except BackendUnavailable as exc:
                if time.monotonic() + backoff.upcoming >= deadline:
                    raise
                if backoff.first_failure:
                    log.warning("%s; retrying to settle job %s", exc, job.id)
                time.sleep(backoff.next())

    def _result_ttl(self, job: Reservation, admitted: Admitted) -> float:
        own = admitted.job_class.result_ttl
        if own is not None:
            return own
        return self.records.ttls.get(job.queue, self.result_ttl)

    def _record(self, job: Reservation, fields: Mapping[str, Any], ttl: float | None) -> None:
        """Merge fields into the job's record; a store that fails costs the record only.

        A value JSON cannot hold raises TypeError or ValueError, before anything is written.
        """
        if self.records.store is None:
            return
        try:
            self.records.write(job.queue, job.id, fields, ttl)
        except KueError as exc:
            log.warning("could not write the record of job %s: %s", job.id, exc)

    def _complete(self, job: Reservation, fields: Mapping[str, Any], ttl: float,
                  next_from: Sequence[str] | None) -> Reservation | None:
        """Delete and record in one atomic step; with ``next_from``, reserve the next too."""
        recording: Any = self.backend
        if next_from is not None and self._complete_and_reserve and self._fused:
            try:
                return recording.complete_and_reserve(  # type: ignore[no-any-return]
                    job, fields, ttl, next_from, 0)
            except BackendUnavailable:
                pass  # atomic: nothing happened; fall back to the plain call
        self.settle(job, lambda: recording.complete(job, fields, ttl))
        return None

    def _delete(self, job: Reservation, next_from: Sequence[str] | None) -> Reservation | None:
        if next_from is not None and self._fused:
            fused: FusedBackend = self.backend  # type: ignore[assignment]
            try:
                return fused.delete_and_reserve(job, next_from, 0)
            except BackendUnavailable:
                pass  # the script is atomic: nothing happened; fall back to a plain delete
        self.settle(job, lambda: self.backend.delete(job))
        return None

