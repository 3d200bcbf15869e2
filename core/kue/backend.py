"""The protocol every backend implements, and the values that cross it.

A backend works on bytes and takes the queue name with each call, so one backend object serves
any number of queues. Validation of priority, delay, ttr and body size happens in
:mod:`kue.validation` before a backend is called; a backend may rely on getting valid values.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "MAX_BATCH_RESERVE",
    "MAX_PRIORITY",
    "Ack",
    "Backend",
    "BatchBackend",
    "BatchReply",
    "Capabilities",
    "DeletableBackend",
    "FusedBackend",
    "JobInfo",
    "JobState",
    "PutItem",
    "QueueStats",
    "Reservation",
    "TransactionalBackend",
    "UniqueBackend",
]

#: The least urgent priority. 0 is the most urgent, everywhere.
MAX_PRIORITY = 2**32 - 1
#: The most jobs one ``reserve_many`` may ask for, whatever the backend.
MAX_BATCH_RESERVE = 1000


class JobState(enum.StrEnum):
    """Where a job is in its life."""

    READY = "ready"
    DELAYED = "delayed"
    RESERVED = "reserved"
    BURIED = "buried"


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports and its limits; the contract suite skips by these.

    :param name: the backend's entry-point name.
    :param priority: jobs come out lowest priority number first.
    :param fifo: among equal priority, the job put first comes out first.
    :param delay: ``put(delay=...)`` is honoured (and, unless ``release_delay`` says
        otherwise, ``release(delay=...)``).
    :param release_delay: ``release(delay=...)`` is honoured: the job is handed out again no
        sooner than the delay. True where ``delay`` is, and on SQS FIFO queues, which take no
        delay at put but can hold a released job back (it then counts as reserved).
    :param bury: ``bury`` and ``kick`` exist.
    :param kick_delayed: with nothing buried, ``kick`` moves delayed jobs to ready (SQS cannot
        reach a message before its delay ends).
    :param peek: ``peek`` exists for ready, delayed and buried.
    :param durable: jobs survive a restart of the process that holds them.
    :param shared: several processes (or machines) can use one queue at once.
    :param max_body: largest body in bytes.
    :param max_delay: largest delay in seconds.
    :param min_ttr: smallest usable ttr in seconds.
    :param max_ttr: largest ttr in seconds.
    :param whole_seconds: delays and ttrs are rounded up to whole seconds.
    :param timing_tolerance: seconds a timed event may be late: a reservation is never handed
        to another consumer before its ttr ran out and is by ttr + this; a delayed job (or one
        released with a delay) is never ready early and is ready by its delay + this; a put
        wakes a consumer blocked in ``reserve`` (one queue or several, in this process or,
        where ``shared``, another) within this. Whole seconds where the server counts in
        them (beanstalkd, SQS), milliseconds where it keeps exact times. The contract suite
        adds a fixed allowance for the test machine's own scheduling.
    :param max_batch: largest number of items one ``put_many`` round trip carries.
    :param delete_and_reserve: the backend is a :class:`FusedBackend`: deleting a finished
        job and reserving the next is one round trip, and the worker uses it.
    :param delete_by_id: the backend is a :class:`DeletableBackend`: a job no worker holds can
        be deleted by its id (``kue delete``).
    :param records: the backend is a :class:`kue.records.RecordingBackend`: it keeps job
        records (status, result, last error, progress) and writes a finished job's record in
        the same atomic step as its delete.
    :param transactional_put: the backend is a :class:`TransactionalBackend`: ``put`` and
        ``put_many`` take the caller's open database connection (``connection=``) and write
        the job in its transaction, so it exists if and only if that transaction commits.
    :param parallel: several jobs of one queue can be reserved at the same time. False: while a
        job is reserved, no other job of its queue with the same priority is handed out until it
        is deleted, released, buried or its ttr runs out (SQS FIFO queues with one message group
        per queue, which is how they keep put order); consumers then take turns.
    :param unique_put: the backend is a :class:`UniqueBackend`: ``put_unique`` stores a job
        only if no live job holds its key, atomically on the server, so any number of
        processes putting with one key store one job (unique jobs, periodic ticks).
    :param reserve_many: the backend is a :class:`BatchBackend`: it reserves up to n jobs in
        one round trip, and acks finished jobs, gives back unstarted ones and reserves more in
        one round trip too (the worker's prefetch). Its most jobs per call is
        ``max_reserve``.
    :param max_reserve: the most jobs one ``reserve_many`` call hands out (SQS: 10).
    :param deferred_acks: the backend is a :class:`kue.deferred_acks.DeferredAckBackend`: its
        batched round trip returns what it reserved before its acks are done.
    """

    name: str
    priority: bool = True
    fifo: bool = True
    delay: bool = True
    bury: bool = True
    kick_delayed: bool = True
    peek: bool = True
    durable: bool = False
    shared: bool = False
    max_body: int = 2**31 - 1
    max_delay: float = float(2**32 - 1)
    min_ttr: float = 1.0
    max_ttr: float = float(2**32 - 1)
    whole_seconds: bool = False
    timing_tolerance: float = 1.0
    max_batch: int = 10_000
    delete_and_reserve: bool = False
    delete_by_id: bool = False
    parallel: bool = True
    release_delay: bool = True
    records: bool = False
    unique_put: bool = False
    transactional_put: bool = False
    reserve_many: bool = False
    max_reserve: int = MAX_BATCH_RESERVE
    deferred_acks: bool = False
    extra: dict[str, object] = field(default_factory=dict)


#: A :class:`PutItem`'s defaults: one object each, shared by every item that takes them.
_PRIORITY = 2**31
_DELAY = 0.0
_TTR = 60.0


@dataclass(frozen=True, init=False)
class PutItem:
    """One job of a ``put_many`` batch."""

    body: bytes
    priority: int = _PRIORITY
    delay: float = _DELAY
    ttr: float = _TTR

    def __init__(self, body: bytes, priority: int = _PRIORITY, delay: float = _DELAY,
                 ttr: float = _TTR) -> None:
        # A frozen dataclass's generated __init__ sets each field with its own
        # object.__setattr__ call, which made building the items cost as much as the rest of a
        # put_many's client work per job; one update of the instance's dict stores the same.
        self.__dict__.update(body=body, priority=priority, delay=delay, ttr=ttr)


@dataclass(frozen=True, init=False)
class Reservation:
    """A job handed to one consumer, with what it needs to finish it.

    :param queue: the queue the job came from.
    :param id: the job's id, stable for its whole life.
    :param body: the bytes that were put.
    :param priority: the job's current priority.
    :param attempts: how many times it has been reserved, this time included.
    :param ttr: seconds the consumer has before the job is handed to another.
    :param receipt: backend-specific proof of this reservation (a lease token or receipt handle).
    """

    queue: str
    id: str
    body: bytes
    priority: int
    attempts: int
    ttr: float
    receipt: str = ""

    def __init__(self, queue: str, id: str, body: bytes, priority: int, attempts: int,
                 ttr: float, receipt: str = "") -> None:
        # One per job reserved: half the cost of seven object.__setattr__ calls (as PutItem).
        self.__dict__.update(queue=queue, id=id, body=body, priority=priority,
                             attempts=attempts, ttr=ttr, receipt=receipt)


@dataclass(frozen=True)
class JobInfo:
    """A copy of a job seen by ``peek``; nothing is reserved."""

    queue: str
    id: str
    body: bytes
    priority: int
    state: JobState
    attempts: int = 0
    #: Seconds until a delayed job is due or a reservation runs out; None in other states.
    due_in: float | None = None


@dataclass(frozen=True)
class QueueStats:
    """How many jobs a queue holds in each state."""

    ready: int = 0
    delayed: int = 0
    reserved: int = 0
    buried: int = 0

    @property
    def total(self) -> int:
        """All jobs the queue holds, whatever their state."""
        return self.ready + self.delayed + self.reserved + self.buried


@runtime_checkable
class Backend(Protocol):
    """What a backend plugin implements. Priorities: 0 most urgent, 2**32-1 least.

    Order of ``reserve``: lowest priority first, then the job put first; a released, kicked or
    delayed job keeps its place among jobs of its priority.
    """

    capabilities: Capabilities

    def put(self, queue: str, body: bytes, priority: int, delay: float, ttr: float) -> str:
        """Store a job and return its id."""
        ...

    def put_many(self, queue: str, items: Sequence[PutItem]) -> list[str]:
        """Store several jobs in as few round trips as the backend allows; ids in order."""
        ...

    def reserve(self, queues: Sequence[str], timeout: float | None) -> Reservation | None:
        """Hand out the most urgent ready job of ``queues``, waiting up to ``timeout`` seconds.

        ``timeout=None`` waits for ever, ``0`` does not wait. Returns None on timeout.
        """
        ...

    def delete(self, job: Reservation) -> None:
        """Remove a reserved job for good. Raises ReservationLost if no longer held."""
        ...

    def release(self, job: Reservation, priority: int, delay: float) -> None:
        """Give a reserved job back, with a new priority, ready after ``delay`` seconds."""
        ...

    def bury(self, job: Reservation, priority: int | None) -> None:
        """Set a reserved job aside until kicked; ``priority`` replaces its own if given."""
        ...

    def touch(self, job: Reservation) -> None:
        """Give a reserved job its full ttr again."""
        ...

    def kick(self, queue: str, n: int) -> int:
        """Move up to n buried jobs (longest buried first), or if none, delayed jobs, to ready."""
        ...

    def peek(self, queue: str, state: JobState) -> JobInfo | None:
        """The job that would leave ``state`` next (ready, delayed or buried), as a copy."""
        ...

    def stats(self, queue: str) -> QueueStats:
        """Counts of jobs per state."""
        ...

    def close(self) -> None:
        """Release connections and files. The backend is not used afterwards."""
        ...


@runtime_checkable
class FusedBackend(Backend, Protocol):
    """A backend that can finish one job and reserve the next in one round trip."""

    def delete_and_reserve(
        self, job: Reservation, queues: Sequence[str], timeout: float | None
    ) -> Reservation | None:
        """Delete ``job``, then reserve as :meth:`Backend.reserve` does.

        Raises ReservationLost if ``job`` is no longer held; then nothing is reserved.
        """
        ...


@runtime_checkable
class DeletableBackend(Backend, Protocol):
    """A backend that can delete a job it has not reserved, by id (``kue delete``)."""

    def delete_by_id(self, queue: str, job_id: str) -> bool:
        """Delete the job unless a worker holds it; False if ``queue`` has no such job.

        Raises ValueError naming the job if a live reservation holds it.
        """
        ...


@runtime_checkable
class UniqueBackend(Backend, Protocol):
    """A backend that can put a job only if no job holds its key (``capabilities.unique_put``).

    The check and the put are one atomic step on the server, so any number of threads and
    processes putting with one key store exactly one job.
    """

    def put_unique(
        self, queue: str, body: bytes, priority: int, delay: float, ttr: float, key: str,
        ttl: float, until_done: bool,
    ) -> tuple[str, bool]:
        """Store a job under ``key`` unless ``key`` is held; return (job id, stored).

        ``key`` is held by the job stored with it, within ``queue``, for ``ttl`` seconds; with
        ``until_done`` it is freed sooner, once that job leaves the queue (deleted: done, or
        deleted by hand) or is buried. While it is held, a put with the key stores nothing and
        returns the holding job's id with ``stored`` False; once it is free, the next put with
        the key stores a new job and holds the key again.
        """
        ...


@runtime_checkable
class TransactionalBackend(Backend, Protocol):
    """A backend that can put jobs in the caller's own database transaction (the outbox).

    ``connection`` is the caller's connection (or session) to the backend's database; what
    kinds a backend takes it documents (PostgreSQL: psycopg, SQLAlchemy, Django). The job is
    written in the connection's open transaction: rolled back, it never existed; committed,
    it is ready (and wakes consumers) at the commit. Nothing is committed by the backend.
    """

    def put_in(self, connection: object, queue: str, body: bytes, priority: int, delay: float,
               ttr: float) -> str:
        """As :meth:`Backend.put`, in ``connection``'s transaction."""
        ...

    def put_many_in(self, connection: object, queue: str, items: Sequence[PutItem]) -> list[str]:
        """As :meth:`Backend.put_many`, in ``connection``'s transaction."""
        ...


@dataclass(frozen=True)
class Ack:
    """A finished job for :meth:`BatchBackend.settle_many`: delete it, and record it if asked.

    :param job: the reservation of the finished job.
    :param fields: where the backend keeps records (``capabilities.records``), the fields to
        merge into the job's record in the same atomic step as the delete (as
        ``RecordingBackend.complete`` does); None: delete only.
    :param ttl: seconds the record is kept (with ``fields``).
    """

    job: Reservation
    fields: Mapping[str, Any] | None = None
    ttl: float = 0.0


@dataclass(frozen=True)
class BatchReply:
    """What :meth:`BatchBackend.settle_many` did.

    :param reserved: the jobs reserved, most urgent first (priority, then put order).
    :param lost: the acked jobs whose reservation was no longer held (ttr ran out, or
        settled already): they were not deleted and their records were not written.
    """

    reserved: list[Reservation]
    lost: list[Reservation] = field(default_factory=list)


@runtime_checkable
class BatchBackend(Backend, Protocol):
    """A backend that reserves several jobs per round trip (``capabilities.reserve_many``).

    Each job of a batch is a reservation of its own: its own lease (ttr from the moment the
    batch was reserved; ``touch`` renews one job), its own attempt count and receipt; acks of
    one job never affect another.
    """

    def reserve_many(
        self, queues: Sequence[str], n: int, timeout: float | None
    ) -> list[Reservation]:
        """Reserve up to ``n`` ready jobs of ``queues``, most urgent first.

        Waits up to ``timeout`` seconds (None: for ever, 0: not at all) for the first job;
        takes whatever else is ready at that moment, without waiting for more. Returns [] on
        timeout. ``n`` is 1 to ``capabilities.max_reserve`` (ValueError otherwise).
        """
        ...

    def settle_many(
        self, acks: Sequence[Ack], give_back: Sequence[Reservation], queues: Sequence[str],
        n: int, timeout: float | None,
    ) -> BatchReply:
        """Ack ``acks``, give back ``give_back``, then reserve up to ``n``: one round trip.

        Each ack deletes its job (and writes its record, with ``fields``) unless its
        reservation is no longer held: such acks are listed in ``lost`` and change nothing;
        the others and the reserve go ahead. A job given back is ready again at once in its
        place, its attempt not counted (it never started); one no longer held is skipped.
        ``n`` may be 0 (ack and give back only: nothing reserved, no wait); otherwise the
        reserve is :meth:`reserve_many`'s. A value the record store cannot encode raises
        TypeError or ValueError before anything is done.
        """
        ...
