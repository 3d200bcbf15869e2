"""What this process knows about the reservations it handed out, to raise ReservationLost.

SQS (and moto) may accept a delete or a visibility change with a receipt handle whose
visibility timeout ran out, even after another consumer received the message again. So the
backend remembers, per receipt handle, which SQS queue the message came from and when its
visibility runs out (measured from just before the request, so never later than SQS's own), and
refuses to act on a reservation that ran out or was already finished. A receipt this process
does not know (another process's, or one forgotten) is left to SQS to judge.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kue.spi import Reservation, ReservationLost

__all__ = ["Lease", "Leases"]


@dataclass
class Lease:
    """One reservation: where its message lives and when its visibility runs out."""

    url: str
    expires: float
    finished: bool = False


class Leases:
    """A thread-safe table of leases by receipt handle, pruned as it grows."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, limit: int = 10_000) -> None:
        self._clock = clock
        self._limit = limit
        self._lock = threading.Lock()
        self._table: dict[str, Lease] = {}

    def add(self, receipt: str, url: str, started: float, ttr: float) -> None:
        """Record a reservation whose visibility started no earlier than ``started``."""
        with self._lock:
            if len(self._table) >= self._limit:
                self._prune()
            self._table[receipt] = Lease(url, started + ttr)

    def check(self, job: Reservation) -> Lease | None:
        """The lease of ``job`` if it still holds; None if unknown; else ReservationLost."""
        with self._lock:
            lease = self._table.get(job.receipt)
            if lease is None:
                return None
            if lease.finished:
                raise ReservationLost(
                    job.queue, job.id, "it was already deleted, released or buried"
                )
            if self._clock() >= lease.expires:
                raise ReservationLost(job.queue, job.id, "its ttr ran out")
            return lease

    def renew(self, receipt: str, started: float, ttr: float) -> None:
        """Move the expiry of a touched reservation."""
        with self._lock:
            lease = self._table.get(receipt)
            if lease is not None:
                lease.expires = started + ttr

    def finish(self, receipt: str) -> None:
        """Mark a reservation deleted, released or buried: acting on it again is refused."""
        with self._lock:
            lease = self._table.get(receipt)
            if lease is not None:
                lease.finished = True

    def __len__(self) -> int:
        return len(self._table)

    def _prune(self) -> None:
        now = self._clock()
        for receipt in [r for r, lease in self._table.items() if lease.expires <= now]:
            del self._table[receipt]
        while len(self._table) >= self._limit:  # all still running: forget the oldest
            del self._table[next(iter(self._table))]
