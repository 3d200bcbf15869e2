"""The lease heartbeat: a held job's reservation is renewed (touched) while its job runs.

ttr is then the time after which the job of a *dead or frozen* worker comes back, not a cap on
how long a job may run: a SIGKILLed or SIGSTOPped process renews nothing. BullMQ's lock renewal
and Dramatiq's heartbeat are the models. Each held job is touched every ``ttr / 3`` seconds, so
a renewal that is late by up to two thirds of its ttr (a slow server, a busy GIL) still lands
in time; at the default ttr of 60 s that is 3 round trips per job-minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kue.backend import Backend, Reservation
from kue.errors import BackendUnavailable, ReservationLost
from kue.worker.timers import Timer, TimerThread

__all__ = ["RENEW_FRACTION", "LeaseKeeper"]

log = logging.getLogger("kue.worker")

#: Share of a job's ttr between two renewals of its lease.
RENEW_FRACTION = 1 / 3
#: Shortest wait between two renewals, so a tiny ttr cannot make the heartbeat spin.
MIN_RENEW_INTERVAL = 0.2

_Key = tuple[str, str, str]


def _key(job: Reservation) -> _Key:
    return (job.queue, job.id, job.receipt)


class LeaseKeeper:
    """Renews the reservations of running jobs on one timer thread per worker process.

    Holding and dropping a job only marks it in a table (about a microsecond: the worker's
    hot path); one sweep timer, due at the earliest renewal, renews whatever is due then, so
    a job that ends before a third of its ttr costs no timer and no round trip.

    :param backend: the backend the jobs were reserved on (its ``touch`` is called from the
        keeper's thread; every backend is safe to share between threads).
    :param on_renew: called with the job after each renewal attempt, lost or not: a prefork
        child reports it to the supervisor as a sign of life.
    """

    def __init__(
        self, backend: Backend, on_renew: Callable[[Reservation], None] | None = None
    ) -> None:
        self.backend = backend
        self.on_renew = on_renew
        self.renewals = 0
        self._timers = TimerThread("kue-lease")
        #: Held jobs and when each is next renewed.
        self._held: dict[_Key, tuple[Reservation, float]] = {}
        self._lost: set[_Key] = set()
        self._renewing: _Key | None = None
        self._sweep: Timer | None = None
        self._cond = threading.Condition()

    def hold(self, job: Reservation) -> None:
        """Start renewing ``job`` until :meth:`drop`."""
        due = time.monotonic() + self._interval(job)
        with self._cond:
            self._held[_key(job)] = (job, due)
            if self._sweep is None or due < self._sweep.when:
                self._schedule(due)

    def drop(self, job: Reservation) -> bool:
        """Stop renewing ``job`` (before it is settled); False if a renewal found it lost.

        Waits for a renewal of this job that is under way, so none lands after the job is
        settled.
        """
        key = _key(job)
        with self._cond:
            self._held.pop(key, None)
            while self._renewing == key:
                self._cond.wait()
            if self._lost and key in self._lost:
                self._lost.discard(key)
                return False
        return True

    def lost(self, job: Reservation) -> bool:
        """Whether a renewal found the lease of held ``job`` lost (it is then held no more).

        The job stays held otherwise: the prefetching worker checks a job it held before
        starting it, and keeps renewing it until the job's ack is sent.
        """
        key = _key(job)
        if not self._lost:  # the hot path: no lease was ever lost
            return False
        with self._cond:
            while self._renewing == key:
                self._cond.wait()
            if key in self._lost:
                self._lost.discard(key)
                return True
        return False

    def close(self) -> None:
        """Stop the heartbeat thread."""
        self._timers.close()

    @staticmethod
    def _interval(job: Reservation) -> float:
        return max(job.ttr * RENEW_FRACTION, MIN_RENEW_INTERVAL)

    def _schedule(self, when: float) -> None:
        """Move the sweep to ``when`` (the caller holds the lock)."""
        if self._sweep is not None:
            self._timers.cancel(self._sweep)
        self._sweep = self._timers.call_at(when, self._run_sweep)

    def _run_sweep(self) -> None:
        """Renew every held job that is due, then schedule the next sweep."""
        now = time.monotonic()
        with self._cond:
            self._sweep = None
            due = [job for job, when in self._held.values() if when <= now]
        for job in due:
            self._renew(job)
        with self._cond:
            if self._held and self._sweep is None:
                self._schedule(min(when for _, when in self._held.values()))

    def _renew(self, job: Reservation) -> None:
        key = _key(job)
        with self._cond:
            if key not in self._held:
                return  # dropped meanwhile
            self._renewing = key
        retry_in = self._interval(job)
        try:
            self.backend.touch(job)
            self.renewals += 1
        except ReservationLost as exc:
            log.warning("lease of job %s on %s lost while it ran: %s", job.id, job.queue, exc)
            with self._cond:
                self._lost.add(key)
                self._held.pop(key, None)
        except BackendUnavailable as exc:
            # Try again soon: the lease may still be saved before its ttr runs out.
            retry_in = max(retry_in / 4, MIN_RENEW_INTERVAL)
            log.warning("could not renew the lease of job %s: %s; retrying in %.1f s",
                        job.id, exc, retry_in)
        except Exception:
            log.exception("renewing the lease of job %s failed", job.id)
        finally:
            with self._cond:
                self._renewing = None
                if key in self._held:
                    self._held[key] = (job, time.monotonic() + retry_in)
                self._cond.notify_all()
        if self.on_renew is not None:
            self.on_renew(job)
