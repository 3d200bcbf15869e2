"""Optional backend protocols for admin tools: list queues, browse buried jobs, kick one by id.

A backend offers them by having the methods (checked with ``isinstance`` on these
``runtime_checkable`` protocols); the ``kue queues``, ``kue buried`` and ``kue retry`` commands
use them. A backend that has a method but cannot carry it out honestly on its server (SQS cannot
list a queue without receiving its messages) raises :class:`kue.Unsupported` from it, changing
nothing, and names it with the reason in its ``listing_unsupported`` attribute, a mapping from
method name to reason, so tools and the contract suite know ahead of calling
(:func:`declared_unsupported`).

What each backend does:

========== ===================== ============================ ==========================
backend    list_queues           buried                       kick_job
========== ===================== ============================ ==========================
memory     queues holding a job  yes                          yes
sqlite     queues holding a job  yes                          yes
redis      queues holding a job  yes                          yes
beanstalk  ``list-tubes``        Unsupported (peek-buried     ``kick-job`` of a buried
                                 shows only the oldest)       job of the tube
sqs        ``ListQueues`` under  Unsupported (a receive is    Unsupported (same reason)
           the URL's prefix      not a copy)
========== ===================== ============================ ==========================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from kue.backend import JobInfo

__all__ = ["JobBrowser", "QueueListing", "declared_unsupported"]


@runtime_checkable
class QueueListing(Protocol):
    """A backend that can say which queues it holds (``kue queues``)."""

    def list_queues(self) -> list[str]:
        """Every queue that holds at least one job or exists on the server, sorted by name.

        Each backend lists what it has: memory, sqlite and redis the queues that hold a job in
        any state (a queue whose jobs are all done is not listed); beanstalkd its tubes
        (``list-tubes``: a tube exists while it holds a job or a client uses or watches it),
        leaving out ``default`` while it is empty, since beanstalkd keeps that tube for ever;
        SQS the kue queues behind the SQS queues whose names start with the URL's prefix
        (band and ``-buried`` companions folded into their kue queue). A queue never used is
        not listed.
        """
        ...


@runtime_checkable
class JobBrowser(Protocol):
    """A backend that can list the buried jobs of a queue and kick one of them by id."""

    def buried(self, queue: str, limit: int, offset: int) -> list[JobInfo]:
        """Up to ``limit`` buried jobs of ``queue``, the most recently buried first.

        ``offset`` skips that many of the most recent first, for paging; each job is a copy
        (state ``buried``, its attempts, priority and body) and nothing is reserved. An empty
        list past the end. ``limit`` is at least 1 and ``offset`` at least 0 (callers check).
        """
        ...

    def kick_job(self, queue: str, job_id: str) -> bool:
        """Move the buried job ``job_id`` of ``queue`` to ready; True if it moved.

        False, changing nothing, if ``queue`` holds no buried job with that id: it is in
        another state, in another queue, gone, or the id is not one this backend makes. The
        job keeps its priority, its attempts count and its place among jobs of its priority,
        as :meth:`kue.Backend.kick` does.
        """
        ...


def declared_unsupported(backend: object) -> Mapping[str, str]:
    """The methods of these protocols ``backend`` declares it cannot do, with the reasons.

    Read from the backend's optional ``listing_unsupported`` attribute (method name ->
    reason); such a method raises :class:`kue.Unsupported` when called.
    """
    declared = getattr(backend, "listing_unsupported", None)
    return dict(declared) if isinstance(declared, Mapping) else {}
