"""Job records: what a person can ask about a job by the id ``put`` returned.

A record store keeps, per job, a small JSON document: the result once the job is done, its last
error, its progress. Backends that can (memory, sqlite, redis, postgres) keep records natively
and write the record of a finished job in the same atomic step as its delete
(:class:`RecordingBackend`); beanstalkd and SQS point at another backend's store with a
``results`` URL, as Celery's result backend does (:mod:`kue.status` combines the two).
"""

from __future__ import annotations

import enum
import functools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any, Protocol, runtime_checkable

from kue.backend import Backend, JobInfo, Reservation

__all__ = [
    "DEFAULT_RESULT_TTL",
    "NOTES_TTL",
    "ClaimStore",
    "DoneRecord",
    "EncodedFields",
    "JobStatus",
    "RecordState",
    "RecordStore",
    "RecordingBackend",
    "done_json",
    "done_members",
    "enqueued_json",
    "takes_done_records",
]

#: Seconds the record of a done job is kept by default: one day, Celery's ``result_expires``.
DEFAULT_RESULT_TTL = 86400.0
#: Seconds the notes of a live job (last error, progress) are kept after their last write: a
#: job deleted by hand leaves nothing behind for longer than this.
NOTES_TTL = 30 * 86400.0


class RecordState(enum.StrEnum):
    """Where a job is, as its record tells it."""

    READY = "ready"
    DELAYED = "delayed"
    RESERVED = "reserved"
    BURIED = "buried"
    DONE = "done"
    #: Its record expired, or it was deleted by hand: it was once here.
    GONE = "gone"


class EncodedFields(dict[str, Any]):
    """A record's fields together with their JSON text, encoded once by whoever made them.

    The worker makes one per finished job: a backend may store :attr:`json` as it is instead
    of encoding the fields again (the text is the fields' JSON object, None values as null).
    Everywhere else it is the plain dict of the fields. Never changed once made.
    """

    __slots__ = ("json",)

    def __init__(self, fields: Mapping[str, Any], json: str) -> None:
        super().__init__(fields)
        #: The fields as one compact JSON object.
        self.json = json


def done_json(attempts: int, priority: int, members: str) -> str:
    """A done record's whole JSON text: state, attempts and priority, then ``members``.

    ``members`` is the rest of the object from ``"finished_at"`` on, its closing brace
    included.
    """
    return f'{{"state":"done","attempts":{attempts:d},"priority":{priority:d},{members}'


@functools.lru_cache(maxsize=256)
def _name_json(name: str) -> str:
    """A job's name as JSON text (a worker runs few job names, each many times)."""
    return encode_basestring_ascii(name)


def _micros_json(micros: int) -> str:
    """Whole microseconds since the epoch as the JSON number of their seconds.

    Made from the digits: cheaper than a float's repr, and exact (it parses to the float
    nearest ``micros / 1e6``).
    """
    m = str(micros)
    return f"{m[:-6]}.{m[-6:]}"


def enqueued_json(enqueued_at: float) -> str:
    """The envelope's time as JSON text; null for one JSON cannot hold or that is unset (0).

    A time of this era is written from its whole microseconds' digits, as the record's own
    times are: a float's repr costs twice as much, for digits below a microsecond that the
    clock that made it does not have. Any other finite value is its repr.
    """
    if 1.0 <= enqueued_at < 1e12:
        return _micros_json(int(enqueued_at * 1e6 + 0.5))
    return repr(enqueued_at) if enqueued_at and math.isfinite(enqueued_at) else "null"


def done_members(finished: int, started: int, name: str, enqueued: str, value: str,
                 result_error: str | None = None) -> str:
    """The done record's members from ``"finished_at"`` on, closing brace included.

    ``finished`` and ``started`` are whole microseconds; ``enqueued`` and ``value`` are JSON
    text already; ``result_error``, if any, says why the result was not kept.
    """
    if result_error is not None:
        value += ',"result_error":' + encode_basestring_ascii(result_error)
    return (f'"finished_at":{_micros_json(finished)},"started_at":{_micros_json(started)},'
            f'"name":{_name_json(name)},"enqueued_at":{enqueued},"error":null,'
            f'"result":{value}}}')


class DoneRecord(Mapping[str, Any]):
    """The record of a job the worker finished: its parts as the worker has them.

    What the worker hands to a backend that says it takes one (:func:`takes_done_records`).
    Such a backend stores :attr:`json`, made from the parts once, on first use; or, keeping
    a done job in a row of its own (sqlite), binds the parts to that row's columns, so no
    text is made at all. Read as a Mapping it is the fields, parsed from :attr:`json`.
    Never changed once made.

    :param attempts: the job's reservations, this one included.
    :param priority: the job's priority.
    :param finished_us: when it finished, in whole microseconds since the epoch.
    :param started_us: when this attempt started, likewise.
    :param name: the job's name.
    :param enqueued_at: the envelope's time (0 when unset).
    :param result_json: the JSON text of the value the job returned ("null" for one JSON
        cannot hold).
    :param result_error: why the value was not kept (JSON cannot hold it), else None.
    """

    __slots__ = ("_fields", "_json", "attempts", "enqueued_at", "finished_us", "name",
                 "priority", "result_error", "result_json", "started_us")

    def __init__(self, attempts: int, priority: int, finished_us: int, started_us: int,
                 name: str, enqueued_at: float, result_json: str,
                 result_error: str | None = None) -> None:
        self.attempts = attempts
        self.priority = priority
        self.finished_us = finished_us
        self.started_us = started_us
        self.name = name
        self.enqueued_at = enqueued_at
        self.result_json = result_json
        self.result_error = result_error
        self._json: str | None = None
        self._fields: dict[str, Any] | None = None

    @property
    def json(self) -> str:
        """The whole record as one compact JSON object: state "done" and every field.

        State, attempts and priority come first, then ``"finished_at"`` and the others.
        """
        text = self._json
        if text is None:
            text = self._json = done_json(self.attempts, self.priority, done_members(
                self.finished_us, self.started_us, self.name, enqueued_json(self.enqueued_at),
                self.result_json, self.result_error))
        return text

    def _parsed(self) -> dict[str, Any]:
        if self._fields is None:
            self._fields = json.loads(self.json)
        return self._fields

    def __getitem__(self, name: str) -> Any:
        return self._parsed()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())

    def __repr__(self) -> str:
        return f"DoneRecord({self.json})"


#: The class attribute by which a :class:`RecordingBackend` says it takes a
#: :class:`DoneRecord` as the fields of ``complete`` and of an ``Ack`` (see
#: :func:`takes_done_records`).
TAKES_DONE_RECORDS = "takes_done_records"


def takes_done_records(backend: object) -> bool:
    """Whether ``backend`` stores a :class:`DoneRecord` as its text (class attribute True).

    A backend that does not say so gets the fields as a dict (:class:`EncodedFields`), as
    every backend may: one that encodes them itself, a wrapper, a plugin written before.
    """
    return getattr(type(backend), TAKES_DONE_RECORDS, False) is True


@runtime_checkable
class RecordStore(Protocol):
    """Keeps one JSON document per (queue, job id); values must be JSON-able."""

    def update_record(self, queue: str, job_id: str, fields: Mapping[str, Any],
                      ttl: float | None) -> None:
        """Merge ``fields`` into the job's record (creating it); it expires ``ttl`` s later."""
        ...

    def read_record(self, queue: str, job_id: str) -> dict[str, Any] | None:
        """The job's record, or None if there is none (never written, or expired)."""
        ...

    def wait_record(self, queue: str, job_id: str, timeout: float) -> None:
        """Return once the job's record may have changed, or after ``timeout`` s.

        Blocks without a busy loop where the store can be woken (a condition, a blocking pop,
        a commit counter); spurious returns are allowed: callers read the record again.
        """
        ...


@runtime_checkable
class ClaimStore(Protocol):
    """A store that can hold a key for a while, atomically: the unique-put of record stores.

    Backends that cannot put a job only if its key is free (beanstalkd, SQS) take unique jobs
    and periodic ticks through their ``results`` store's claims (see :mod:`kue.unique`).
    """

    def claim(self, namespace: str, key: str, value: str, ttl: float,
              expect: str | None) -> str | None:
        """Set ``key`` of ``namespace`` to ``value`` for ``ttl`` seconds, if it holds ``expect``.

        ``expect`` None: only if the key is free (never set, or expired). Otherwise only if its
        live value equals ``expect`` (compare and set). Returns None when it was set, else the
        live value that stopped it ("" for a free key when ``expect`` was given). One atomic
        step: of many callers with the same ``expect``, exactly one sets the key.
        """
        ...


@runtime_checkable
class RecordingBackend(Backend, RecordStore, Protocol):
    """A backend that keeps records itself and can finish a job and record it atomically."""

    def complete(self, job: Reservation, fields: Mapping[str, Any], ttl: float) -> None:
        """Delete a held job and merge ``fields`` into its record in one atomic step.

        Raises ReservationLost (and writes nothing) if the reservation is no longer held.
        """
        ...

    def job_info(self, queue: str, job_id: str) -> JobInfo | None:
        """The live job with this id (any state, reserved included), or None."""
        ...


@dataclass(frozen=True)
class JobStatus:
    """All kue knows of one job: where it is, what it returned, how it failed, how far it is.

    Times are Unix epoch seconds. ``result`` is the JSON value the job returned (None until
    it is done); ``error`` the last failure's ``type``, ``message`` and ``traceback``.
    """

    id: str
    queue: str
    state: RecordState
    name: str | None = None
    attempts: int = 0
    priority: int | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    due_at: float | None = None
    result: Any = None
    error: dict[str, str] | None = None
    progress: float | None = None
    progress_note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """True once the job is done or buried: waiting longer changes nothing by itself."""
        return self.state in (RecordState.DONE, RecordState.BURIED, RecordState.GONE)
