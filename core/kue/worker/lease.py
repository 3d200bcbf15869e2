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
        self._held: dict[_Key, Timer] = {}
        self._lost: set[_Key] = set()
        self._renewing: _Key | None = None
        self._cond = threading.Condition()

    def hold(self, job: Reservation) -> None:
        """Start renewing ``job`` until :meth:`drop`."""
        key = _key(job)
        with self._cond:
            self._held[key] = self._timers.call_later(self._interval(job), self._renewer(job))

    def drop(self, job: Reservation) -> bool:
        """Stop renewing ``job`` (before it is settled); False if a renewal found it lost.

        Waits for a renewal of this job that is under way, so none lands after the job is
        settled.
        """
        key = _key(job)
        with self._cond:
            timer = self._held.pop(key, None)
            if timer is not None:
                self._timers.cancel(timer)
            while self._renewing == key:
                self._cond.wait()
            if key in self._lost:
                self._lost.discard(key)
                return False
        return True

    def close(self) -> None:
        """Stop the heartbeat thread."""
        self._timers.close()

    @staticmethod
    def _interval(job: Reservation) -> float:
        return max(job.ttr * RENEW_FRACTION, MIN_RENEW_INTERVAL)

    def _renewer(self, job: Reservation) -> Callable[[], None]:
        key = _key(job)

        def renew() -> None:
            with self._cond:
                if key not in self._held:
                    return
                self._renewing = key
            retry_in = self._interval(job)
            try:
                self.backend.touch(job)
                self.renewals += 1
            except ReservationLost as exc:
                log.warning("lease of job %s on %s lost while it ran: %s", job.id, job.queue,
                            exc)
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
                        self._held[key] = self._timers.call_later(retry_in, renew)
                    self._cond.notify_all()
            if self.on_renew is not None:
                self.on_renew(job)

        return renew
