"""Every hook kue calls, each with when it fires, what it is given and what it may return.

Plugins implement these with ``@kue.hookimpl`` and are found through two entry-point groups:
``kue.backends`` (loaded only when configuration names that backend) and ``kue.plugins``
(always loaded: metrics, tracing, logging).

Lifecycle hooks observe; they never decide: kue calls each implementation on its own
(:func:`kue.hookcalls.notify`), and one that raises is logged with its plugin's name and
ignored, so a job settles as it would without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from kue.backend import Backend, Reservation
    from kue.codec import Envelope

__all__ = ["WorkerInfo", "hookimpl", "hookspec"]


class WorkerInfo(Protocol):
    """What the worker hooks are handed, whichever kind of worker it is.

    A one-process worker, a ``--threads`` or ``--coroutines`` worker, or the supervisor of
    ``-c N`` prefork children all offer this much.
    """

    @property
    def queues(self) -> Sequence[str]:
        """The queues the worker reserves from, in the order it tries them."""
        ...

#: Marks a hook specification of the ``kue`` project.
hookspec = pluggy.HookspecMarker("kue")
#: Marks a plugin's implementation of a kue hook.
hookimpl = pluggy.HookimplMarker("kue")


@hookspec(firstresult=True)
def kue_backend(name: str, url: str, options: dict[str, Any]) -> Backend | None:
    """Open a backend. Fires when ``kue.connect`` or a worker needs the backend ``name``.

    :param name: the entry-point name the URL's scheme (or configuration) chose.
    :param url: the full URL, possibly with credentials; never log it unmasked.
    :param options: extra settings from configuration (``[tool.kue.options]``).
    :returns: a :class:`kue.Backend`, or None if this plugin does not serve ``name``.
    """


@hookspec
def kue_job_pushed(queue: str, job_id: str, envelope: Envelope) -> None:
    """Fires after a Job was put on a queue (for a batch, after the batch was sent).

    :param queue: the queue's name.
    :param job_id: the id the backend gave the job.
    :param envelope: the decoded envelope that was sent.
    """


@hookspec
def kue_job_started(job: Reservation, envelope: Envelope) -> None:
    """Fires in the worker just before a job runs.

    :param job: the reservation (queue, id, attempts, ttr).
    :param envelope: the decoded job envelope.
    """


@hookspec
def kue_job_succeeded(job: Reservation, envelope: Envelope, duration: float) -> None:
    """Fires after a job returned and was deleted.

    :param job: the reservation.
    :param envelope: the decoded job envelope.
    :param duration: seconds the job ran.
    """


@hookspec
def kue_job_failed(
    job: Reservation, envelope: Envelope, error: BaseException, will_retry: bool, duration: float
) -> None:
    """Fires after a job raised or ran past its time limit.

    :param job: the reservation.
    :param envelope: the decoded job envelope.
    :param error: the exception the job raised (:class:`kue.TimeLimitExceeded` for a time
        limit).
    :param will_retry: True if the job was released for another attempt, False if it was buried.
    :param duration: seconds the job ran.
    """


@hookspec
def kue_job_buried(job: Reservation, reason: str) -> None:
    """Fires after the worker buried a job: out of attempts, undecodable, or unknown name.

    :param job: the reservation; its body may not be a valid envelope.
    :param reason: one line saying why.
    """


@hookspec
def kue_job_settled(job: Reservation, outcome: str) -> None:
    """Fires once for every job a worker reserved, after it was settled, whatever happened.

    :param job: the reservation.
    :param outcome: ``"deleted"``, ``"released"``, ``"buried"``, or ``"lost"`` (the
        reservation ran out before it could be settled, or the server was unreachable).
    """


@hookspec
def kue_worker_started(worker: WorkerInfo) -> None:
    """Fires once a worker has its backend and is about to take jobs.

    :param worker: the worker; ``worker.queues`` names what it reserves from.
    """


@hookspec
def kue_worker_stopping(worker: WorkerInfo) -> None:
    """Fires when a worker stops taking jobs (signal, burst done, or max jobs reached).

    :param worker: the worker.
    """
