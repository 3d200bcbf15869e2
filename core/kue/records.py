"""Job records: what a person can ask about a job by the id ``put`` returned.

A record store keeps, per job, a small JSON document: the result once the job is done, its last
error, its progress. Backends that can (memory, sqlite, redis, postgres) keep records natively
and write the record of a finished job in the same atomic step as its delete
(:class:`RecordingBackend`); beanstalkd and SQS point at another backend's store with a
``results`` URL, as Celery's result backend does (:mod:`kue.status` combines the two).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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
    "takes_done_records",
    "takes_done_rows",
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
    included (what :attr:`DoneRecord.row_json` holds after its opening brace).
    """
    return f'{{"state":"done","attempts":{attempts:d},"priority":{priority:d},{members}'


class DoneRecord(Mapping[str, Any]):
    """The record of a job the worker finished, as JSON text made once; its fields on demand.

    What the worker hands to a backend that stores records as JSON text and says so
    (:func:`takes_done_records`): such a backend stores :attr:`json` (or :attr:`row_json`)
    and never needs the fields apart. Read as a Mapping it is the fields, parsed from the
    text on first use. Never changed once made.

    :param json: the whole record as one compact JSON object: state "done", attempts and
        priority first, in that order, then ``"finished_at"`` and the other fields.
    :param attempts: the job's reservations, this one included (as the text says).
    :param priority: the job's priority (as the text says).
    """

    __slots__ = ("_fields", "_json", "_row", "attempts", "priority")

    def __init__(self, json: str, attempts: int, priority: int) -> None:
        self._json: str | None = json
        self._row: str | None = None
        self.attempts = attempts
        self.priority = priority
        self._fields: dict[str, Any] | None = None

    @classmethod
    def of_row(cls, row_json: str, attempts: int, priority: int) -> DoneRecord:
        """The record made as its :attr:`row_json` (see :func:`takes_done_rows`).

        Its :attr:`json` is made from that text if asked.
        """
        record = cls.__new__(cls)
        record._json, record._row = None, row_json
        record.attempts, record.priority, record._fields = attempts, priority, None
        return record

    @property
    def json(self) -> str:
        """The whole record as one compact JSON object (state "done" and every field)."""
        text = self._json
        if text is None:
            text = self._json = done_json(self.attempts, self.priority, self.row_json[1:])
        return text

    @property
    def row_json(self) -> str:
        """The record without state, attempts and priority, for a backend whose row keeps them.

        A backend that turns the job's row into its record has those three in the row's own
        columns already; the text is that much shorter.
        """
        text = self._row
        if text is None:
            whole = self.json
            text = self._row = "{" + whole[whole.index('"finished_at"'):]
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


#: The class attribute by which such a backend says it stores :attr:`DoneRecord.row_json`
#: (see :func:`takes_done_rows`).
TAKES_DONE_ROWS = "takes_done_rows"


def takes_done_rows(backend: object) -> bool:
    """Whether ``backend`` stores a :class:`DoneRecord`'s :attr:`~DoneRecord.row_json`.

    Class attribute True, with :func:`takes_done_records`: the worker then makes that text
    first (the whole record only if asked), which saves formatting and cutting the three
    fields the backend's row keeps itself.
    """
    return takes_done_records(backend) and getattr(type(backend), TAKES_DONE_ROWS, False) is True


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
