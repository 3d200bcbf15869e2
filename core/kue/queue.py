"""``kue.connect()`` and the Queue application code holds: one named queue on one backend."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pluggy

from kue import validation
from kue.backend import (
    Backend,
    JobInfo,
    JobState,
    PutItem,
    QueueStats,
    Reservation,
    TransactionalBackend,
)
from kue.codec import Envelope, decode, encode
from kue.config import backend_name, load_settings, mask_url
from kue.errors import ConfigError, Unsupported
from kue.hookcalls import notify
from kue.job import DEFAULT_PRIORITY, DEFAULT_TTR, Job, build_job, envelope_of
from kue.plugins import get_plugin_manager, open_backend
from kue.records import NOTES_TTL, JobStatus, RecordStore
from kue.status import Records
from kue.unique import DEFAULT_UNIQUE_FOR, put_unique

__all__ = ["JobHandle", "Queue", "ReservedJob", "connect", "encode_body", "open_results"]


def encode_body(body: object) -> bytes:
    """Bytes as they are, str as UTF-8, anything else as compact JSON."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a job body must be bytes, str or JSON-able: {exc}") from exc


class ReservedJob:
    """A job this consumer holds until it deletes, releases or buries it, or its ttr runs out."""

    def __init__(self, queue: Queue, reservation: Reservation) -> None:
        self._queue = queue
        self.reservation = reservation

    @property
    def id(self) -> str:
        """The job's id."""
        return self.reservation.id

    @property
    def body(self) -> bytes:
        """The bytes that were put."""
        return self.reservation.body

    @property
    def attempts(self) -> int:
        """How many times the job has been reserved, this time included."""
        return self.reservation.attempts

    @property
    def priority(self) -> int:
        """The job's priority (0 most urgent)."""
        return self.reservation.priority

    @property
    def queue(self) -> str:
        """The name of the queue the job came from."""
        return self.reservation.queue

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.reservation.body)

    def envelope(self) -> Envelope:
        """The body parsed as a kue envelope (DecodeError if it is not one)."""
        return decode(self.reservation.body)

    def job(self) -> Job:
        """The registered Job the envelope names, built with its arguments."""
        return build_job(self.envelope())

    def delete(self) -> None:
        """Remove the job for good (it is done)."""
        self._queue.backend.delete(self.reservation)

    def release(self, priority: int | None = None, delay: float = 0) -> None:
        """Put the job back, ready after ``delay`` s, with ``priority`` if given."""
        caps = self._queue.backend.capabilities
        new_priority = (
            self.reservation.priority if priority is None else validation.check_priority(priority)
        )
        self._queue.backend.release(
            self.reservation, new_priority, validation.check_delay(delay, caps, release=True)
        )

    def bury(self, priority: int | None = None) -> None:
        """Set the job aside until kicked; it keeps its priority unless given one."""
        if priority is not None:
            validation.check_priority(priority)
        self._queue.backend.bury(self.reservation, priority)

    def touch(self) -> None:
        """Ask for the full ttr again, for a job that needs more time."""
        self._queue.backend.touch(self.reservation)

    def __repr__(self) -> str:
        r = self.reservation
        return f"<ReservedJob {r.id} queue={r.queue!r} attempts={r.attempts}>"


class Queue:
    """One named queue on one backend. Safe to share between threads if its backend is."""

    def __init__(
        self,
        backend: Backend,
        name: str = "default",
        *,
        url: str = "",
        plugin_manager: pluggy.PluginManager | None = None,
        results: RecordStore | None = None,
    ) -> None:
        validation.check_queue_name(name)
        self.backend = backend
        self.name = name
        self.url = url
        self._pm = plugin_manager
        #: Where this queue's job records live (see :mod:`kue.status`).
        self.records = Records.of(backend, results)
        self._buffer: list[tuple[PutItem, Envelope]] = []
        self._batching = 0
        self._bound = threading.local()  # the connection ``using`` bound in each thread

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The plugin manager whose hooks this queue calls."""
        if self._pm is None:
            self._pm = get_plugin_manager()
        return self._pm

    @property
    def capabilities(self) -> Any:
        """The backend's :class:`kue.Capabilities`."""
        return self.backend.capabilities

    # -- plain bodies ----------------------------------------------------------------------

    def put(
        self,
        body: object,
        priority: int = DEFAULT_PRIORITY,
        delay: float = 0,
        ttr: float = DEFAULT_TTR,
        *,
        connection: object = None,
    ) -> str:
        """Put a plain body (bytes, str, or JSON-able value) and return the job's id.

        ``connection``: the caller's open database connection (or session); the job is then
        written in its transaction and exists only once that commits (backends with
        ``capabilities.transactional_put``; others raise :class:`kue.Unsupported`).
        """
        tx = self._transactional(connection)
        data, pri, dly, t = validation.check_put(
            encode_body(body), priority, delay, ttr, self.backend.capabilities
        )
        if tx is not None:
            return tx[0].put_in(tx[1], self.name, data, pri, dly, t)
        return self.backend.put(self.name, data, pri, dly, t)

    def put_many(self, items: list[PutItem], *, connection: object = None) -> list[str]:
        """Put several prepared items in one backend batch; returns their ids in order.

        ``connection`` as for :meth:`put`.
        """
        tx = self._transactional(connection)
        checked = validation.check_put_items(items, self.backend.capabilities)
        if not checked:
            return []
        if tx is not None:
            return tx[0].put_many_in(tx[1], self.name, checked)
        return self.backend.put_many(self.name, checked)

    def _transactional(self, connection: object) -> tuple[TransactionalBackend, object] | None:
        """The backend and connection a put goes through in the caller's transaction, if any.

        ``connection`` given, else the one :meth:`using` bound in this thread, else None.
        Raises Unsupported, before anything is sent, on a backend that cannot.
        """
        if connection is None:
            connection = getattr(self._bound, "connection", None)
            if connection is None:
                return None
        backend = self.backend
        if not backend.capabilities.transactional_put or \
                not isinstance(backend, TransactionalBackend):
            raise Unsupported(backend.capabilities.name,
                              "putting a job in the caller's transaction (connection=)")
        return backend, connection

    @contextmanager
    def using(self, connection: object) -> Iterator[Queue]:
        """Inside the block, this thread's puts and pushes go in ``connection``'s transaction.

        As ``connection=`` on each call (:meth:`put`, :meth:`put_many`, :meth:`push`, and the
        ``put_many`` of :meth:`batch` and :meth:`flush`). Raises :class:`kue.Unsupported` at
        once on a backend without ``capabilities.transactional_put``.
        """
        self._transactional(connection)
        previous = getattr(self._bound, "connection", None)
        self._bound.connection = connection
        try:
            yield self
        finally:
            self._bound.connection = previous

    def reserve(self, timeout: float | None = None) -> ReservedJob | None:
        """Take the most urgent ready job, waiting up to ``timeout`` s (None: for ever)."""
        if timeout is not None:
            validation.check_timeout(timeout)
        # This queue's own name was checked when it was opened.
        r = self.backend.reserve([self.name], timeout)
        return None if r is None else ReservedJob(self, r)

    def reserve_from(self, queues: list[str], timeout: float | None = None) -> ReservedJob | None:
        """Take the most urgent ready job of several queues on this backend."""
        names = validation.check_queues(queues)
        if timeout is not None:
            validation.check_timeout(timeout)
        r = self.backend.reserve(names, timeout)
        return None if r is None else ReservedJob(self, r)

    def peek(self, state: JobState | str = JobState.READY) -> JobInfo | None:
        """A copy of the next job in ``state`` (ready, delayed or buried); nothing is reserved."""
        st = JobState(state)
        if st is JobState.RESERVED:
            raise ValueError("peek takes 'ready', 'delayed' or 'buried', not 'reserved'")
        return self.backend.peek(self.name, st)

    def kick(self, n: int = 1) -> int:
        """Move up to n buried jobs (or, if none, delayed jobs) to ready; returns how many."""
        return self.backend.kick(self.name, validation.check_count(n))

    def stats(self) -> QueueStats:
        """Counts of ready, delayed, reserved and buried jobs."""
        return self.backend.stats(self.name)

    # -- Job objects -----------------------------------------------------------------------

    def _item(
        self, job: Job, priority: int | None, delay: float | None, ttr: float | None
    ) -> tuple[PutItem, Envelope]:
        if not isinstance(job, Job):
            raise TypeError(
                f"push takes a kue.Job (or func.message(...)), got {type(job).__name__}; "
                "use put() for plain bodies"
            )
        cls = type(job)
        envelope = envelope_of(job)
        body, pri, dly, t = validation.check_put(
            encode(envelope),
            cls.priority if priority is None else priority,
            cls.delay if delay is None else delay,
            cls.ttr if ttr is None else ttr,
            self.backend.capabilities,
        )
        return PutItem(body, pri, dly, t), envelope

    def push(
        self,
        job: Job,
        *,
        priority: int | None = None,
        delay: float | None = None,
        ttr: float | None = None,
        unique_key: str | None = None,
        unique_for: float | None = None,
        connection: object = None,
    ) -> JobHandle | None:
        """Push a Job; returns its id, or None inside ``batch()`` (sent when the batch ends).

        The id is a :class:`JobHandle`: a str that also offers ``.status()`` and
        ``.result(timeout)``. Priority, delay and ttr default to the job class's own.

        ``unique_key``: push only if no job pushed with this key to this queue is still
        queued or running; otherwise push nothing and return that job's id (its handle's
        ``created`` is False). The key is held until its job is done or buried, or for
        ``unique_for`` seconds (default one day), whichever comes first. Native on memory,
        sqlite, redis and postgres; beanstalkd and SQS need a ``results`` store (see
        docs/periodic.md).
        """
        if unique_key is not None or unique_for is not None:
            if connection is not None:
                raise ValueError("a unique push cannot join the caller's transaction "
                                 "(connection=...): push it after the commit")
            if unique_key is None:
                raise ValueError("unique_for needs a unique_key")
            handle = self.push_unique(job, unique_key, DEFAULT_UNIQUE_FOR
                                      if unique_for is None else unique_for,
                                      priority=priority, delay=delay, ttr=ttr)
            return handle
        tx = self._transactional(connection)
        item, envelope = self._item(job, priority, delay, ttr)
        if self._batching:
            if connection is not None:
                raise ValueError("push(connection=...) inside batch() cannot be buffered: "
                                 "wrap the batch in queue.using(connection) instead")
            self._buffer.append((item, envelope))
            return None
        if tx is not None:
            job_id = tx[0].put_in(tx[1], self.name, item.body, item.priority, item.delay,
                                  item.ttr)
        else:
            job_id = self.backend.put(self.name, item.body, item.priority, item.delay, item.ttr)
        self._record_pushed(job_id, item, envelope)
        notify(self.plugin_manager, "kue_job_pushed", queue=self.name, job_id=job_id,
               envelope=envelope)
        return JobHandle(job_id, self)

    def push_unique(
        self,
        job: Job,
        key: str,
        ttl: float,
        *,
        until_done: bool = True,
        priority: int | None = None,
        delay: float | None = None,
        ttr: float | None = None,
        envelope_id: str | None = None,
    ) -> JobHandle:
        """Push ``job`` under ``key`` unless a job holds the key; the handle says which.

        ``until_done``: the key is freed once its job is done or buried (a unique job); False
        holds it for all of ``ttl`` seconds whatever becomes of the job (a periodic tick, which
        must never run twice). ``envelope_id`` replaces the envelope's random id (a tick's
        id names its schedule and time). Not inside ``batch()``: a unique push is sent at once.
        """
        key, ttl = validation.check_unique(key, ttl)
        if self._batching:
            raise ValueError(f"push with unique_key {key!r} inside batch(): unique pushes are "
                             "sent at once, push it outside the batch")
        item, envelope = self._item(job, priority, delay, ttr)
        if envelope_id is not None:
            envelope = dataclasses.replace(envelope, id=envelope_id)
            item = dataclasses.replace(item, body=encode(envelope))
        job_id, created = put_unique(self.backend, self.records, self.name, item.body,
                                     item.priority, item.delay, item.ttr, key, ttl,
                                     until_done=until_done)
        if created:
            self._record_pushed(job_id, item, envelope)
            notify(self.plugin_manager, "kue_job_pushed", queue=self.name, job_id=job_id,
                   envelope=envelope)
        return JobHandle(job_id, self, created=created)

    def _record_pushed(self, job_id: str, item: PutItem, envelope: Envelope) -> None:
        """In a results store that cannot see the queue, note the job as waiting."""
        if self.records.store is not None and not self.records.native:
            self.records.write(self.name, job_id, {
                "state": "delayed" if item.delay > 0 else "ready", "name": envelope.job,
                "enqueued_at": envelope.enqueued_at, "priority": item.priority,
            }, NOTES_TTL)

    # -- job records -----------------------------------------------------------------------

    def status(self, job_id: str) -> JobStatus | None:
        """Where the job is, its result, last error and progress; None if nothing is known."""
        return self.records.status(self.name, str(job_id))

    def result(self, job_id: str, timeout: float | None = None) -> Any:
        """Wait for the job to be done and return its result (the JSON value ``run`` returned).

        Raises :class:`kue.JobFailed` (with the last error) once the job is buried, and
        :class:`kue.ResultTimeout` if ``timeout`` s pass first.
        """
        if timeout is not None:
            validation.check_timeout(timeout)
        return self.records.result(self.name, str(job_id), timeout)

    async def apush(
        self,
        job: Job,
        *,
        priority: int | None = None,
        delay: float | None = None,
        ttr: float | None = None,
    ) -> JobHandle | None:
        """:meth:`push` for async code: it runs in a thread, so the event loop never blocks.

        Returns the job's id (None inside ``batch()``, as ``push`` does).
        """
        import asyncio  # not at the top: it takes ~15 ms that ``import kue`` need not pay

        return await asyncio.to_thread(self.push, job, priority=priority, delay=delay, ttr=ttr)

    def flush(self) -> list[str]:
        """Send every buffered push with one ``put_many``; returns their ids.

        The buffer is emptied only once the backend accepted the batch, so a failed flush
        loses nothing and can be retried.
        """
        if not self._buffer:
            return []
        pending = list(self._buffer)
        tx = self._transactional(None)
        items = [item for item, _ in pending]
        ids = (tx[0].put_many_in(tx[1], self.name, items) if tx is not None
               else self.backend.put_many(self.name, items))
        del self._buffer[: len(pending)]
        for job_id, (item, envelope) in zip(ids, pending, strict=True):
            self._record_pushed(job_id, item, envelope)
            notify(
                self.plugin_manager, "kue_job_pushed", queue=self.name, job_id=job_id,
                envelope=envelope
            )
        return ids

    @property
    def pending(self) -> int:
        """How many pushes wait in the buffer for ``flush()``."""
        return len(self._buffer)

    @contextmanager
    def batch(self) -> Iterator[Queue]:
        """Buffer pushes inside the block and send them with one ``put_many`` at its end."""
        self._batching += 1
        try:
            yield self
        finally:
            self._batching -= 1
        if not self._batching:
            self.flush()

    def pop(self, timeout: float | None = None) -> ReservedJob | None:
        """Reserve the next job; ``.job()`` on the result rebuilds the Job object."""
        return self.reserve(timeout)

    def close(self) -> None:
        """Close the backend's connections (and the results store's)."""
        self.backend.close()
        store = self.records.store
        if store is not None and not self.records.native:
            close = getattr(store, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = mask_url(self.url) or self.backend.capabilities.name
        return f"<kue.Queue {self.name!r} on {where}>"


def connect(
    url: str | None = None,
    *,
    queue: str = "default",
    options: dict[str, Any] | None = None,
    plugin_manager: pluggy.PluginManager | None = None,
) -> Queue:
    """Open ``queue`` on the backend ``url`` names; with no URL, the configured one.

    The URL's scheme names the backend (``redis://``, ``sqlite:///path``, ``memory://NAME``).
    Only that backend's plugin is imported. A queue name outside the portable rule
    (:func:`kue.validation.check_queue_name`) is refused before the backend is opened.
    """
    validation.check_queue_name(queue)
    settings = load_settings({"url": url})
    opts = {**settings.options, **(options or {})}
    pm = plugin_manager or get_plugin_manager()
    backend = open_backend(backend_name(settings.url), settings.url, opts, pm)
    results = open_results(settings.results, backend, pm) if settings.results else None
    return Queue(backend, queue, url=settings.url, plugin_manager=pm, results=results)


def open_results(url: str, backend: Backend, pm: pluggy.PluginManager) -> RecordStore | None:
    """The record store a ``results`` URL names, for a backend that keeps no records.

    None when the backend keeps records itself (the URL is then not needed). A URL whose
    backend keeps no records either is a ConfigError that says which can.
    """
    if backend.capabilities.records:
        return None
    store = open_backend(backend_name(url), url, {}, pm)
    if not (store.capabilities.records and isinstance(store, RecordStore)):
        store.close()
        raise ConfigError(
            f"results URL {mask_url(url)} names the {store.capabilities.name} backend, which "
            "keeps no job records; use a sqlite:///, redis:// or postgresql:// URL"
        )
    return store


class JobHandle(str):
    """A job's id (a str, usable wherever the id is) that can also ask about its job."""

    queue: Queue
    #: False when a push with a unique key found the key held: this is the holder's id, and
    #: the push put nothing.
    created: bool

    def __new__(cls, job_id: str, queue: Queue, *, created: bool = True) -> JobHandle:
        """The id ``job_id`` of a job on ``queue``."""
        handle = super().__new__(cls, job_id)
        handle.queue = queue
        handle.created = created
        return handle

    def status(self) -> JobStatus | None:
        """The job's status (see :meth:`Queue.status`)."""
        return self.queue.status(str(self))

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job's result (see :meth:`Queue.result`)."""
        return self.queue.result(str(self), timeout)
