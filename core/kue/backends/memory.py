"""The in-process backend, and the reference model of kue's semantics.

Every other backend is compared against this one by the contract suite's state machine, so it
is written for clarity first. ``memory://NAME``: every connect to the same NAME in one process
shares one store; the store lives as long as the process.

Order: each job gets a sequence number when it is put and keeps it for life, so a job that is
released, kicked or comes out of a delay goes back to its place among jobs of its priority.
Heaps hold ``(key..., id, version)`` entries; an entry is live only while the job's version
matches, which lets a state change "remove" a job from a heap in O(1). A touch moves a lease's
end later without a new heap entry: the old entry, once it comes up, is pushed again at the
lease's new end, so a job has one lease entry however often it is touched.

A queue object exists only while its queue holds a job: asking about a name (reserve, stats,
peek, kick) creates nothing, and deleting a queue's last job drops it.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kue.backends.record_table import RecordTable
from kue.backends.sweep import Sweep
from kue.spi import (
    Ack,
    BatchReply,
    Capabilities,
    JobInfo,
    JobState,
    PutItem,
    QueueStats,
    Reservation,
    ReservationLost,
    check_reserve_n,
    hookimpl,
    read_options,
)

__all__ = ["CAPABILITIES", "MemoryBackend", "kue_backend", "kue_contract_server"]

#: The longest single wait on the condition; a longer timeout waits in slices of this
#: (``threading.Condition.wait`` raises OverflowError past ``threading.TIMEOUT_MAX``).
MAX_WAIT_SLICE = 3600.0
#: Unique keys and claims written between two sweeps of the expired ones.
KEY_SWEEP_EVERY = 1000

CAPABILITIES = Capabilities(
    name="memory",
    durable=False,
    shared=False,
    # Memory holds anything, but a limit every backend shares keeps code portable.
    max_body=64 * 2**20,
    min_ttr=1.0,
    # Exact times under one lock; a waiter is woken by the condition at once.
    timing_tolerance=0.01,
    delete_by_id=True,
    delete_and_reserve=True,
    records=True,
    unique_put=True,
    reserve_many=True,
)

Clock = Callable[[], float]


@dataclass
class _Job:
    id: str
    seq: int
    queue: str
    body: bytes
    priority: int
    ttr: float
    state: JobState = JobState.READY
    attempts: int = 0
    #: Reservations ever made, given-back ones included: the receipt, never reused.
    leases: int = 0
    due: float = 0.0  # delayed: when it becomes ready; reserved: when the lease runs out
    version: int = 0


@dataclass
class _Queue:
    ready: list[tuple[int, int, str, int]] = field(default_factory=list)
    delayed: list[tuple[float, int, str, int]] = field(default_factory=list)
    leases: list[tuple[float, str, int]] = field(default_factory=list)
    buried: OrderedDict[str, None] = field(default_factory=OrderedDict)
    counts: dict[JobState, int] = field(default_factory=lambda: dict.fromkeys(JobState, 0))


class _Store:
    """All queues of one ``memory://NAME``, guarded by one condition variable."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        lock = threading.Lock()
        self.cond = threading.Condition(lock)
        #: Notified when a record changes, so result() waiters wake without waking reserves.
        self.records_changed = threading.Condition(lock)
        self.records = RecordTable(clock)
        #: Bumped by every record write, so a waiter can tell a write it has not yet seen.
        self.records_version = 0
        self.seen = threading.local()
        self.jobs: dict[str, _Job] = {}
        self.queues: dict[str, _Queue] = {}
        self.seq = itertools.count(1)
        #: put_unique's keys: (queue, key) -> (job id, expires, until_done).
        self.unique: dict[tuple[str, str], tuple[str, float, bool]] = {}
        #: claim's keys: (namespace, key) -> (value, expires).
        self.claims: dict[tuple[str, str], tuple[str, float]] = {}
        #: Key writes; every KEY_SWEEP_EVERY-th also sweeps expired ones out of ``unique``
        #: and ``claims``.
        self.key_sweep = Sweep(KEY_SWEEP_EVERY)

    def queue(self, name: str) -> _Queue:
        """The queue object of ``name``, created if needed (only for a job entering it)."""
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = _Queue()
        return q

    def existing(self, name: str, now: float) -> _Queue | None:
        """The queue object of ``name`` with due jobs promoted, or None if it holds no job."""
        q = self.queues.get(name)
        if q is not None:
            self.promote(q, now)
        return q

    # -- state changes; every one bumps the job's version so old heap entries die ----------

    def _leave(self, job: _Job) -> _Queue:
        q = self.queue(job.queue)
        q.counts[job.state] -= 1
        if job.state is JobState.BURIED:
            del q.buried[job.id]
        job.version += 1
        return q

    def make_ready(self, job: _Job, *, new: bool = False) -> None:
        q = self.queue(job.queue) if new else self._leave(job)
        job.state = JobState.READY
        q.counts[JobState.READY] += 1
        heapq.heappush(q.ready, (job.priority, job.seq, job.id, job.version))

    def make_delayed(self, job: _Job, due: float, *, new: bool = False) -> None:
        q = self.queue(job.queue) if new else self._leave(job)
        job.state = JobState.DELAYED
        job.due = due
        q.counts[JobState.DELAYED] += 1
        heapq.heappush(q.delayed, (due, job.seq, job.id, job.version))

    def make_reserved(self, job: _Job, now: float) -> None:
        q = self._leave(job)
        job.state = JobState.RESERVED
        job.attempts += 1
        job.leases += 1
        job.due = now + job.ttr
        q.counts[JobState.RESERVED] += 1
        heapq.heappush(q.leases, (job.due, job.id, job.version))

    def make_buried(self, job: _Job) -> None:
        q = self._leave(job)
        job.state = JobState.BURIED
        q.counts[JobState.BURIED] += 1
        q.buried[job.id] = None

    def remove(self, job: _Job) -> None:
        q = self._leave(job)
        del self.jobs[job.id]
        if not any(q.counts.values()):  # its heaps hold only dead entries now
            del self.queues[job.queue]

    # -- reading heaps ---------------------------------------------------------------------

    def _live(self, job_id: str, version: int) -> _Job | None:
        job = self.jobs.get(job_id)
        return job if job is not None and job.version == version else None

    def promote(self, q: _Queue, now: float) -> None:
        """Move due delayed jobs and expired reservations of ``q`` back to ready."""
        while q.delayed and q.delayed[0][0] <= now:
            _, _, job_id, version = heapq.heappop(q.delayed)
            job = self._live(job_id, version)
            if job is not None:
                self.make_ready(job)
        while q.leases and q.leases[0][0] <= now:
            _, job_id, version = heapq.heappop(q.leases)
            job = self._live(job_id, version)
            if job is None:
                continue
            if job.due > now:  # touched since this entry was pushed: it ends later
                heapq.heappush(q.leases, (job.due, job_id, version))
            else:
                self.make_ready(job)

    def top_ready(self, q: _Queue) -> _Job | None:
        while q.ready:
            _, _, job_id, version = q.ready[0]
            job = self._live(job_id, version)
            if job is not None:
                return job
            heapq.heappop(q.ready)
        return None

    def top_delayed(self, q: _Queue) -> _Job | None:
        while q.delayed:
            _, _, job_id, version = q.delayed[0]
            job = self._live(job_id, version)
            if job is not None:
                return job
            heapq.heappop(q.delayed)
        return None

    def next_wakeup(self, queues: Sequence[_Queue]) -> float | None:
        """The earliest time a delayed job comes due or a lease runs out in ``queues``."""
        times = [q.delayed[0][0] for q in queues if q.delayed]
        times += [q.leases[0][0] for q in queues if q.leases]
        return min(times, default=None)


_stores: dict[str, _Store] = {}
_stores_lock = threading.Lock()


def _store(name: str, clock: Clock) -> _Store:
    with _stores_lock:
        store = _stores.get(name)
        if store is None:
            store = _stores[name] = _Store(clock)
        return store


def _as_json(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` as they come back from JSON; TypeError or ValueError if they cannot.

    Records are JSON on every backend: the reference model refuses the same values.
    """
    return dict(json.loads(json.dumps(fields, allow_nan=False)))


class MemoryBackend:
    """A backend whose jobs live in this process's memory; thread-safe, not durable."""

    capabilities = CAPABILITIES

    def __init__(self, name: str = "default", *, clock: Clock | None = None) -> None:
        """Open the store called ``name``, shared by every MemoryBackend of that name.

        ``clock`` (seconds, monotonic) is only for a private store in tests; a shared store
        keeps the clock of whoever opened it first.
        """
        self.name = name
        self._store = _store(name, time.monotonic) if clock is None else _Store(clock)

    # -- putting ---------------------------------------------------------------------------

    def _put_locked(self, queue: str, body: bytes, priority: int, delay: float, ttr: float) -> str:
        store = self._store
        seq = next(store.seq)
        job = _Job(id=str(seq), seq=seq, queue=queue, body=body, priority=priority, ttr=ttr)
        store.jobs[job.id] = job
        if delay > 0:
            store.make_delayed(job, store.clock() + delay, new=True)
        else:
            store.make_ready(job, new=True)
        return job.id

    def put(self, queue: str, body: bytes, priority: int, delay: float, ttr: float) -> str:
        """Store a job; ready at once or after ``delay`` seconds."""
        with self._store.cond:
            job_id = self._put_locked(queue, body, priority, delay, ttr)
            self._store.cond.notify_all()
        return job_id

    def put_many(self, queue: str, items: Sequence[PutItem]) -> list[str]:
        """Store several jobs under one lock; ids in order."""
        with self._store.cond:
            ids = [
                self._put_locked(queue, i.body, i.priority, i.delay, i.ttr) for i in items
            ]
            self._store.cond.notify_all()
        return ids

    def put_unique(
        self, queue: str, body: bytes, priority: int, delay: float, ttr: float, key: str,
        ttl: float, until_done: bool,
    ) -> tuple[str, bool]:
        """Store a job under ``key`` unless a live job holds it (see kue.UniqueBackend)."""
        store = self._store
        with store.cond:
            now = store.clock()
            holder = self._key_holder(queue, key, now)
            if holder is not None:
                return holder, False
            job_id = self._put_locked(queue, body, priority, delay, ttr)
            store.unique[(queue, key)] = (job_id, now + ttl, until_done)
            self._count_key_write(now)
            store.cond.notify_all()
        return job_id, True

    def _key_holder(self, queue: str, key: str, now: float) -> str | None:
        """The id of the job that holds ``key`` of ``queue`` now, or None if it is free."""
        store = self._store
        entry = store.unique.get((queue, key))
        if entry is None:
            return None
        job_id, expires, until_done = entry
        if expires > now:
            if not until_done:
                return job_id
            job = store.jobs.get(job_id)
            if job is not None and job.state is not JobState.BURIED:
                return job_id
        del store.unique[(queue, key)]
        return None

    def _count_key_write(self, now: float) -> None:
        """Every KEY_SWEEP_EVERY key writes, drop the expired keys, so the tables stay small."""
        store = self._store
        if not store.key_sweep.count():
            return
        for k in [k for k, (_, expires, _) in store.unique.items() if expires <= now]:
            del store.unique[k]
        for c in [c for c, (_, expires) in store.claims.items() if expires <= now]:
            del store.claims[c]

    def claim(self, namespace: str, key: str, value: str, ttl: float,
              expect: str | None) -> str | None:
        """Set ``key`` to ``value`` for ``ttl`` s if it holds ``expect`` (see kue.ClaimStore)."""
        store = self._store
        with store.cond:
            now = store.clock()
            entry = store.claims.get((namespace, key))
            current = entry[0] if entry is not None and entry[1] > now else None
            if current != expect:
                return "" if current is None else current
            store.claims[(namespace, key)] = (value, now + ttl)
            self._count_key_write(now)
            return None

    # -- reserving -------------------------------------------------------------------------

    def _take(self, queues: Sequence[str], now: float) -> Reservation | None:
        store = self._store
        best: _Job | None = None
        for name in queues:
            q = store.existing(name, now)
            if q is None:
                continue
            job = store.top_ready(q)
            if job is not None and (
                best is None or (job.priority, job.seq) < (best.priority, best.seq)
            ):
                best = job
        if best is None:
            return None
        store.make_reserved(best, now)
        return Reservation(
            queue=best.queue,
            id=best.id,
            body=best.body,
            priority=best.priority,
            attempts=best.attempts,
            ttr=best.ttr,
            receipt=str(best.leases),
        )

    def reserve(self, queues: Sequence[str], timeout: float | None) -> Reservation | None:
        """Reserve the most urgent ready job; wait on a condition, woken by puts and releases."""
        jobs = self._reserve_up_to(queues, 1, timeout)
        return jobs[0] if jobs else None

    def reserve_many(
        self, queues: Sequence[str], n: int, timeout: float | None
    ) -> list[Reservation]:
        """Reserve up to ``n`` ready jobs, most urgent first (see kue.BatchBackend)."""
        check_reserve_n(n, self.capabilities)
        return self._reserve_up_to(queues, n, timeout)

    def settle_many(
        self, acks: Sequence[Ack], give_back: Sequence[Reservation], queues: Sequence[str],
        n: int, timeout: float | None,
    ) -> BatchReply:
        """Ack, give back, then reserve up to ``n`` (see kue.BatchBackend.settle_many)."""
        check_reserve_n(n, self.capabilities, zero=True)
        # Each ack with its record as JSON, made before anything is settled (or refused).
        settled = [(a, None if a.fields is None else _as_json(a.fields)) for a in acks]
        store = self._store
        lost: list[Reservation] = []
        with store.cond:
            for ack, fields in settled:
                try:
                    held = self._held(ack.job)
                except ReservationLost:
                    lost.append(ack.job)
                    continue
                store.remove(held)
                if fields is not None:
                    store.records.update((ack.job.queue, ack.job.id), fields, ack.ttl)
                    store.records_version += 1
            if any(fields is not None for _, fields in settled):
                store.records_changed.notify_all()
            for job in give_back:
                self._give_back_locked(job)
            if give_back:
                store.cond.notify_all()
        reserved = self._reserve_up_to(queues, n, timeout) if n else []
        return BatchReply(reserved, lost)

    def _give_back_locked(self, r: Reservation) -> None:
        """Make a held job ready in its place, its attempt not counted; skip one not held."""
        store = self._store
        job = store.jobs.get(r.id)
        if (job is None or job.state is not JobState.RESERVED or str(job.leases) != r.receipt
                or job.due <= store.clock()):
            return
        job.attempts -= 1
        store.make_ready(job)

    def _reserve_up_to(
        self, queues: Sequence[str], n: int, timeout: float | None
    ) -> list[Reservation]:
        """Wait up to ``timeout`` for the first ready job, then take up to n - 1 more."""
        store = self._store
        deadline = None if timeout is None else time.monotonic() + timeout
        with store.cond:
            while True:
                now = store.clock()
                job = self._take(queues, now)
                if job is not None:
                    jobs = [job]
                    while len(jobs) < n and (job := self._take(queues, now)) is not None:
                        jobs.append(job)
                    return jobs
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    return []
                wakeup = store.next_wakeup(
                    [q for n in queues if (q := store.queues.get(n)) is not None])
                if wakeup is not None:
                    until_due = max(wakeup - now, 0.001)
                    wait = until_due if wait is None else min(wait, until_due)
                store.cond.wait(MAX_WAIT_SLICE if wait is None else min(wait, MAX_WAIT_SLICE))

    # -- acting on a reservation -----------------------------------------------------------

    def _held(self, r: Reservation) -> _Job:
        """The job behind ``r`` if this reservation still holds it, else ReservationLost."""
        store = self._store
        job = store.jobs.get(r.id)
        if job is not None and job.state is JobState.RESERVED and job.due <= store.clock():
            store.make_ready(job)
            store.cond.notify_all()
            raise ReservationLost(r.queue, r.id, "its ttr ran out")
        if job is None or job.state is not JobState.RESERVED or str(job.leases) != r.receipt:
            raise ReservationLost(r.queue, r.id)
        return job

    def delete(self, job: Reservation) -> None:
        """Remove a reserved job for good."""
        with self._store.cond:
            self._store.remove(self._held(job))

    def delete_and_reserve(
        self, job: Reservation, queues: Sequence[str], timeout: float | None
    ) -> Reservation | None:
        """Delete ``job``, then reserve as :meth:`reserve` does (kue.backend.FusedBackend).

        Raises ReservationLost if ``job`` is no longer held; then nothing is reserved.
        """
        with self._store.cond:
            self._store.remove(self._held(job))
        return self.reserve(queues, timeout)

    def delete_by_id(self, queue: str, job_id: str) -> bool:
        """Delete a job that is not reserved, by id (for admin tools); False if not found."""
        with self._store.cond:
            job = self._store.jobs.get(job_id)
            if job is None or job.queue != queue:
                return False
            if job.state is JobState.RESERVED and job.due > self._store.clock():
                raise ValueError(
                    f"job {job_id} is reserved by a worker; delete it once it is released, "
                    "buried or done"
                )
            self._store.remove(job)
            return True

    def release(self, job: Reservation, priority: int, delay: float) -> None:
        """Give a reserved job back with a new priority, ready now or after ``delay``."""
        store = self._store
        with store.cond:
            held = self._held(job)
            held.priority = priority
            if delay > 0:
                store.make_delayed(held, store.clock() + delay)
            else:
                store.make_ready(held)
            store.cond.notify_all()

    def bury(self, job: Reservation, priority: int | None) -> None:
        """Set a reserved job aside until kicked."""
        with self._store.cond:
            held = self._held(job)
            if priority is not None:
                held.priority = priority
            self._store.make_buried(held)

    def touch(self, job: Reservation) -> None:
        """Renew the lease to a full ttr from now."""
        store = self._store
        with store.cond:
            held = self._held(job)
            held.due = store.clock() + held.ttr  # its lease entry moves when it comes up

    # -- looking and kicking ---------------------------------------------------------------

    def kick(self, queue: str, n: int) -> int:
        """Move the n longest-buried jobs, or if none are buried the n soonest-due delayed."""
        store = self._store
        with store.cond:
            q = store.existing(queue, store.clock())
            if q is None:
                return 0
            moved = 0
            if q.buried:
                for job_id in list(itertools.islice(q.buried, min(n, len(q.buried)))):
                    store.make_ready(store.jobs[job_id])
                    moved += 1
            else:
                while moved < n:
                    job = store.top_delayed(q)
                    if job is None:
                        break
                    store.make_ready(job)
                    moved += 1
            if moved:
                store.cond.notify_all()
            return moved

    def peek(self, queue: str, state: JobState) -> JobInfo | None:
        """The job that leaves ``state`` next, as a copy."""
        store = self._store
        if state not in (JobState.READY, JobState.DELAYED, JobState.BURIED):
            raise ValueError(f"peek takes ready, delayed or buried, not {state!r}")
        with store.cond:
            q = store.existing(queue, store.clock())
            if q is None:
                return None
            job: _Job | None
            if state is JobState.READY:
                job = store.top_ready(q)
            elif state is JobState.DELAYED:
                job = store.top_delayed(q)
            else:
                job = store.jobs[next(iter(q.buried))] if q.buried else None
            if job is None:
                return None
            return JobInfo(job.queue, job.id, job.body, job.priority, job.state, job.attempts)

    def stats(self, queue: str) -> QueueStats:
        """Counts of jobs per state, after due jobs and expired leases have moved."""
        store = self._store
        with store.cond:
            q = store.existing(queue, store.clock())
            if q is None:
                return QueueStats()
            c = q.counts
            return QueueStats(
                ready=c[JobState.READY],
                delayed=c[JobState.DELAYED],
                reserved=c[JobState.RESERVED],
                buried=c[JobState.BURIED],
            )

    # -- records (kue.records.RecordingBackend) ---------------------------------------------

    def complete(self, job: Reservation, fields: Mapping[str, Any], ttl: float) -> None:
        """Delete a held job and write its record under one lock: nothing sees one alone."""
        fields = _as_json(fields)
        store = self._store
        with store.cond:
            store.remove(self._held(job))
            store.records.update((job.queue, job.id), fields, ttl)
            store.records_version += 1
            store.records_changed.notify_all()

    def update_record(self, queue: str, job_id: str, fields: Mapping[str, Any],
                      ttl: float | None) -> None:
        """Merge ``fields`` into the job's record."""
        fields = _as_json(fields)
        store = self._store
        with store.cond:
            store.records.update((queue, job_id), fields, ttl)
            store.records_version += 1
            store.records_changed.notify_all()

    def read_record(self, queue: str, job_id: str) -> dict[str, Any] | None:
        """The job's record, unless none was written or it expired."""
        store = self._store
        with store.cond:
            store.seen.version = store.records_version
            return store.records.read((queue, job_id))

    def wait_record(self, queue: str, job_id: str, timeout: float) -> None:
        """Wait until a record changes after this thread last read one, or ``timeout`` s."""
        store = self._store
        with store.cond:
            seen = getattr(store.seen, "version", store.records_version)
            store.records_changed.wait_for(lambda: store.records_version != seen, timeout)

    def job_info(self, queue: str, job_id: str) -> JobInfo | None:
        """The live job with this id, in whatever state."""
        store = self._store
        with store.cond:
            if queue in store.queues:
                store.promote(store.queues[queue], store.clock())
            job = store.jobs.get(job_id)
            if job is None or job.queue != queue:
                return None
            timed = job.state in (JobState.DELAYED, JobState.RESERVED)
            return JobInfo(queue, job.id, job.body, job.priority, job.state, job.attempts,
                           due_in=max(0.0, job.due - store.clock()) if timed else None)

    # -- admin listing (kue.listing.QueueListing, kue.listing.JobBrowser) -------------------

    def list_queues(self) -> list[str]:
        """The queues of this store that hold a job in any state, sorted."""
        with self._store.cond:
            return sorted(name for name, q in self._store.queues.items()
                          if any(q.counts.values()))

    def buried(self, queue: str, limit: int, offset: int) -> list[JobInfo]:
        """Buried jobs of ``queue``, the most recently buried first, as copies."""
        store = self._store
        with store.cond:
            q = store.queues.get(queue)
            if q is None:
                return []
            newest_first = reversed(q.buried)
            jobs = [store.jobs[job_id]
                    for job_id in itertools.islice(newest_first, offset, offset + limit)]
            return [JobInfo(job.queue, job.id, job.body, job.priority, job.state, job.attempts)
                    for job in jobs]

    def kick_job(self, queue: str, job_id: str) -> bool:
        """Move one buried job to ready by id; False if ``queue`` has no such buried job."""
        store = self._store
        with store.cond:
            job = store.jobs.get(job_id)
            if job is None or job.queue != queue or job.state is not JobState.BURIED:
                return False
            store.make_ready(job)
            store.cond.notify_all()
            return True

    def close(self) -> None:
        """Nothing to release: the store outlives this object, as ``memory://NAME`` promises."""


@hookimpl
def kue_backend(name: str, url: str, options: dict[str, Any]) -> MemoryBackend | None:
    """Open ``memory://NAME``; every backend of one NAME shares one store."""
    if name != "memory":
        return None
    read_options("memory", (), url, options)  # it takes none: refuse any, naming it
    return MemoryBackend(urlsplit(url).netloc or "default")


@hookimpl
def kue_contract_server(name: str) -> str | None:
    """A fresh store for the contract suite (kue_contract's hook): no server, just a URL."""
    return "memory://contract-{uid}" if name == "memory" else None
