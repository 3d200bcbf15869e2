"""One way to wait between retries while a server is unavailable: capped doubling.

Every retry loop in kue (the worker's reserve, settling a job, a prefork child opening its
backend) backs off through :class:`Backoff`, so they all wait 0.1, 0.2, 0.4 ... seconds up to
the same ceiling and start again from the first wait after a success.
"""

from __future__ import annotations

__all__ = ["FIRST_WAIT", "RECONNECT_BACKOFF_CAP", "Backoff"]

#: The first wait after a failure, in seconds.
FIRST_WAIT = 0.1
#: Ceiling of the wait between reconnect attempts when the backend is unavailable.
RECONNECT_BACKOFF_CAP = 2.0


class Backoff:
    """The waits of one retry loop: ``first``, then twice the last, never over ``cap``."""

    def __init__(self, first: float = FIRST_WAIT, cap: float = RECONNECT_BACKOFF_CAP) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"Backoff needs 0 < first <= cap, got first={first}, cap={cap}")
        self.first = first
        self.cap = cap
        self.failures = 0
        self._next = first

    @property
    def first_failure(self) -> bool:
        """True when the next wait is the first since the last success: the time to log once."""
        return self.failures == 0

    @property
    def upcoming(self) -> float:
        """The wait :meth:`next` will return, without taking it."""
        return self._next

    def next(self) -> float:
        """The wait for this failure; the one after doubles, up to the cap."""
        wait = self._next
        self.failures += 1
        self._next = min(wait * 2, self.cap)
        return wait

    def reset(self) -> None:
        """A success: the next failure waits ``first`` again."""
        self.failures = 0
        self._next = self.first
