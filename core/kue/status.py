"""A job's status by id: what the backend knows of the live job, merged with its record.

The backend answers while the job exists (``job_info``: state, attempts, priority, when it is
due); the record answers for what only the worker knows (the result, the last error, progress)
and after the job is gone. A backend that keeps no records (beanstalkd, SQS) can point at
another backend's store with a ``results`` URL; the worker then writes the states it sees there
too, since that store cannot see the queue.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from kue.backend import Backend, JobInfo
from kue.codec import DecodeError, decode
from kue.errors import JobFailed, ResultTimeout
from kue.records import JobStatus, RecordingBackend, RecordState, RecordStore

__all__ = ["InspectableBackend", "Records"]


@runtime_checkable
class InspectableBackend(Protocol):
    """A backend that can look a live job up by id (memory, sqlite, redis, beanstalkd)."""

    def job_info(self, queue: str, job_id: str) -> JobInfo | None:
        """The live job with this id, in whatever state, or None."""
        ...


class Records:
    """Reads and writes job records for one backend, natively or through a results store.

    :param backend: the queue's backend.
    :param store: where records live: the backend itself when it keeps them, else the
        store a ``results`` URL opened, else None (status then knows only live jobs).
    :param ttls: seconds the records of done jobs are kept, by queue name (configuration's
        ``result_ttl`` table); a job's own ``result_ttl`` comes first.
    """

    def __init__(self, backend: Backend, store: RecordStore | None,
                 ttls: Mapping[str, float] | None = None) -> None:
        self.backend = backend
        self.store = store
        self.ttls = dict(ttls or {})
        self.native = id(store) == id(backend) and isinstance(backend, RecordingBackend)
        self._inspectable = isinstance(backend, InspectableBackend)

    @classmethod
    def of(cls, backend: Backend, results: RecordStore | None = None,
           ttls: Mapping[str, float] | None = None) -> Records:
        """Records kept by ``backend`` itself if it can, else in ``results``."""
        if backend.capabilities.records and isinstance(backend, RecordStore):
            return cls(backend, backend, ttls)
        return cls(backend, results, ttls)

    def write(self, queue: str, job_id: str, fields: Mapping[str, Any],
              ttl: float | None) -> None:
        """Merge ``fields`` into the job's record, if there is anywhere to keep it."""
        if self.store is not None:
            self.store.update_record(queue, job_id, fields, ttl)

    def status(self, queue: str, job_id: str) -> JobStatus | None:
        """All that is known of the job, or None if nothing is (a wrong id, or long gone)."""
        info = (self.backend.job_info(queue, job_id)  # type: ignore[attr-defined]
                if self._inspectable else None)
        record = self.store.read_record(queue, job_id) if self.store is not None else None
        if info is None and record is None:
            return None
        fields: dict[str, Any] = dict(record or {})
        if info is not None and fields.get("state") == RecordState.DONE:
            # Finished between the two reads: a done record is only written as the job
            # leaves, so the live view read first is the stale one.
            info = None
        if info is not None:
            fields["state"] = info.state.value
            fields["attempts"] = info.attempts
            fields["priority"] = info.priority
            if info.due_in is not None:
                fields["due_at"] = time.time() + info.due_in
            try:
                envelope = decode(info.body)
                fields.setdefault("name", envelope.job)
                fields.setdefault("enqueued_at", envelope.enqueued_at or None)
            except DecodeError:
                pass
        elif self.native and fields.get("state") not in (RecordState.DONE, RecordState.BURIED):
            # The record of a finished job is written with its delete: a live state in the
            # record of a job the backend does not have means it was deleted by hand. (A
            # separate results store is written just after the delete, so there the
            # record's own state stands.)
            fields["state"] = RecordState.GONE
        elif "state" not in fields:
            fields["state"] = RecordState.GONE
        return _status(queue, job_id, fields)

    def wait(self, queue: str, job_id: str, timeout: float | None) -> JobStatus:
        """The job's status once it is done or buried; ResultTimeout after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.status(queue, job_id)
            if current is not None and current.finished:
                return current
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ResultTimeout(queue, job_id, timeout or 0.0,
                                    current.state.value if current else "unknown")
            if self.store is None:
                raise ResultTimeout(queue, job_id, 0.0, "no record store")
            self.store.wait_record(queue, job_id, 1.0 if left is None else min(left, 1.0))

    def result(self, queue: str, job_id: str, timeout: float | None) -> Any:
        """The job's return value once done; JobFailed once buried."""
        final = self.wait(queue, job_id, timeout)
        if final.state is RecordState.DONE:
            return final.result
        raise JobFailed(queue, job_id, final.state.value, final.error)


_KNOWN = ("name", "attempts", "priority", "enqueued_at", "started_at", "finished_at", "due_at",
          "result", "error", "progress", "progress_note")


def _status(queue: str, job_id: str, fields: dict[str, Any]) -> JobStatus:
    known = {k: fields[k] for k in _KNOWN if k in fields}
    extra = {k: v for k, v in fields.items() if k not in _KNOWN and k != "state"}
    return JobStatus(id=job_id, queue=queue, state=RecordState(fields["state"]), extra=extra,
                     **known)
