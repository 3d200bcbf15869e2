"""Prefetch shared by the worker modes: how many jobs to ask for, and one batched round trip.

The one-job-at-a-time :class:`~kue.worker.Worker` (each ``--threads`` thread, each prefork
child) and the ``--coroutines`` :class:`~kue.worker.concurrent.ConcurrentWorker` both take
several jobs per round trip while the queue is deep (``BatchBackend.settle_many``): the acks of
the jobs finished since the last round trip, the jobs given back and the next reserve go in one
call. See docs/worker.md ("Prefetch") for the promises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

from kue.backend import Ack, BatchBackend, Reservation
from kue.deferred_acks import DeferredAckBackend
from kue.errors import ReservationLost
from kue.worker.lease import LeaseKeeper
from kue.worker.settle import JobSettler

__all__ = ["BatchSizer", "confirm_acks", "settle_batch"]

log = logging.getLogger("kue.worker")

#: Weight of the newest job in the running mean of one job's run time.
RUN_WEIGHT = 0.2


class BatchSizer:
    """How many jobs the next round trip asks for.

    The first asks for one; each batch that comes back full doubles the next, up to
    ``prefetch`` and to as many jobs as can be started within ``window`` seconds at the mean
    run time (``parallel`` jobs running at once); one that comes back short starts again at
    one (the queue ran dry: no deeper than what is ready).

    :param prefetch: most jobs one round trip asks for.
    :param window: longest a prefetched job may wait to be started (seconds).
    :param parallel: how many jobs run at once (the ``--coroutines`` slots; 1 otherwise).
    """

    def __init__(self, prefetch: int, window: float, parallel: int = 1) -> None:
        self.prefetch = prefetch
        self.window = window
        self.parallel = parallel
        self.want = 1
        #: Running mean of one job's run, settling included (seconds).
        self.mean_run = 0.0

    def ran(self, took: float) -> None:
        """Add one job's run time (seconds) to the running mean."""
        self.mean_run = took if self.mean_run == 0 else (
            self.mean_run + RUN_WEIGHT * (took - self.mean_run))

    def got(self, asked: int, got: int) -> None:
        """Size the next round trip after one that asked for ``asked`` and got ``got`` jobs."""
        if got < asked:
            self.want = 1
            return
        fits = self.prefetch
        per_job = self.mean_run / self.parallel
        if per_job > 0 and self.window < per_job * self.prefetch:
            fits = max(1, int(self.window / per_job))
        self.want = max(1, min(asked * 2, self.prefetch, fits))

    def reset(self) -> None:
        """Start again at one job (an idle wait, a queue that ran dry)."""
        self.want = 1


def settle_batch(backend: BatchBackend, keeper: LeaseKeeper, settler: JobSettler,
                 queues: Sequence[str], acks: list[Ack], give_back: Sequence[Reservation],
                 n: int, unconfirmed: list[Ack] | None = None) -> list[Reservation]:
    """Ack ``acks``, give back ``give_back``, reserve up to ``n`` without waiting.

    ``acks`` is emptied once sent; an ack whose lease was lost is counted as lost. If the call
    fails, every job stays held (renewed by ``keeper``) for the next try. With
    ``unconfirmed`` (the backend is a :class:`~kue.deferred_acks.DeferredAckBackend`), a call that
    reserves does not wait for its acks: they move to ``unconfirmed``, for
    :func:`confirm_acks` before the next round trip.
    """
    if not acks and not give_back and n == 0:
        return []
    for ack in acks:
        if not keeper.drop(ack.job):
            log.warning("lease of finished job %s on %s was lost before its ack",
                        ack.job.id, ack.job.queue)
    for job in give_back:
        keeper.drop(job)
    lost: list[Reservation] = []
    try:
        if unconfirmed is not None and acks and n > 0:
            deferring = cast(DeferredAckBackend, backend)
            reserved = deferring.settle_many_deferred(acks, give_back, queues, n)
            unconfirmed.extend(acks)
        else:
            reply = backend.settle_many(acks, give_back, queues, n, 0)
            reserved, lost = reply.reserved, reply.lost
    except BaseException:
        for job in [*(ack.job for ack in acks), *give_back]:
            keeper.hold(job)  # not sent: keep renewing them until they are
        raise
    acks.clear()
    for job in lost:
        settler.lost(job, ReservationLost(job.queue, job.id))
    return reserved


def confirm_acks(backend: DeferredAckBackend, keeper: LeaseKeeper, settler: JobSettler,
                 unconfirmed: list[Ack]) -> list[Ack]:
    """Read the outcome of the acks in ``unconfirmed`` (emptied); those to send again.

    A lost ack is counted as lost. If the outcome cannot be known (the connection dropped
    with it), the jobs are held (renewed by ``keeper``) again and returned: an ack sent again
    is safe, a job done already being counted as lost then.
    """
    sent = list(unconfirmed)
    unconfirmed.clear()
    try:
        lost = backend.acks_outcome()
    except Exception as exc:  # no outcome: as a round trip that failed, send them again
        log.warning("%s; sending the %d acks of the last round trip again", exc, len(sent))
        for ack in sent:
            keeper.hold(ack.job)
        return sent
    for job in lost:
        settler.lost(job, ReservationLost(job.queue, job.id))
    return []
