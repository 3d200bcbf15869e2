"""A batched round trip that does not wait for its acks (``capabilities.deferred_acks``).

A prefetching worker's round trip acks the jobs it finished and reserves the next ones
(:class:`kue.backend.BatchBackend`). A backend that can send the acks after the reserve and
answer the reserve first lets the worker run the new jobs while the server does the acks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from kue.backend import Ack, BatchBackend, Reservation

__all__ = ["DeferredAckBackend"]


@runtime_checkable
class DeferredAckBackend(BatchBackend, Protocol):
    """A batch backend whose round trip need not wait for its acks (``capabilities.deferred_acks``).

    A worker that prefetches spends its round trip waiting for the server to delete (and
    record) the jobs it finished as well as to reserve the next; here it waits for the reserve
    alone, and the server does the acks while the worker runs the jobs it got. Per thread: the
    outcome belongs to the thread that sent the acks, which reads it before its next round trip.
    """

    def settle_many_deferred(
        self, acks: Sequence[Ack], give_back: Sequence[Reservation], queues: Sequence[str],
        n: int,
    ) -> list[Reservation]:
        """Give back ``give_back``, reserve up to ``n`` without waiting, then ack ``acks``.

        As :meth:`BatchBackend.settle_many` with no wait, but the reserve goes first and the
        reserved jobs return before the acks are done: they are done in order after it, each
        atomically as there, and their outcome is read with :meth:`acks_outcome`. A job acked
        here is never among those reserved (it is held). Bad values raise before anything is
        sent, as there. Other calls of this thread may come in between.
        """
        ...

    def acks_outcome(self) -> list[Reservation]:
        """The acks of this thread's earlier deferred calls that were not done; [] if none.

        Each acked job is done (deleted, its record written) unless listed: as
        :attr:`BatchReply.lost`, a job whose reservation was no longer held. Waits for the
        server where the outcome is still on its way.

        :raises BackendUnavailable: the outcome was lost with the connection: the acks may or
            may not be done, and sending them again (a normal ack) is safe, a job already done
            being listed lost then.
        """
        ...
