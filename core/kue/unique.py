"""Unique puts: one job per key, however many processes put with it at once.

The same step serves unique jobs (``queue.push(job, unique_key=...)``) and periodic ticks (a
tick's key derives from its schedule and time, so every scheduler of a fleet puts it and one
job results). Two ways, by backend:

- **natively** where the backend is a :class:`kue.backend.UniqueBackend`
  (``capabilities.unique_put``: memory, sqlite, redis, postgres): the check and the put are
  one atomic step on the server (a lock, a write transaction, a Lua script, a row lock).
  Nothing can come between.
- **through a claim** in the record store where it is not (beanstalkd and SQS, with a
  ``results`` store: :class:`kue.records.ClaimStore`). The caller first claims the key with a
  *pending* mark for :data:`PENDING_TTL` seconds, then puts the job, then replaces the mark with
  the job's id for the key's ttl. Other callers that find a pending mark wait for it to turn
  into an id. A caller that dies between the claim and the put loses nothing: its mark expires
  and the next caller (another scheduler, the next push) takes the key and puts the job; the
  cost is a delay of up to :data:`PENDING_TTL`. A caller that dies (or stalls past
  :data:`PENDING_TTL`) between the put and the confirmation leaves a job whose key another
  caller may take again: at most one extra job per such death, never a lost one.

A key held "until done" (unique jobs) is free again once its job is done (deleted) or buried;
natively the backend tells from the job itself, through a claim from the job's record (which
the worker writes to the results store as the job finishes). A key held for its whole ttl
(periodic ticks) stays held whatever becomes of the job, so a tick that already ran is never
put again.
"""

from __future__ import annotations

import logging
import time
import uuid

from kue.backend import Backend, UniqueBackend
from kue.errors import Unsupported
from kue.records import ClaimStore, RecordStore
from kue.status import Records

__all__ = ["DEFAULT_UNIQUE_FOR", "PENDING_TTL", "put_unique", "supports_unique"]

log = logging.getLogger("kue.unique")

#: Seconds a unique key is held when the push says no ``unique_for``: one day.
DEFAULT_UNIQUE_FOR = 86400.0
#: Seconds a claim's pending mark lasts: how long a caller that died between claiming a key and
#: putting its job can delay that job. A put takes milliseconds; this is ample.
PENDING_TTL = 30.0
#: First and longest wait between looks at a pending mark, in seconds.
_FIRST_POLL, _MAX_POLL = 0.002, 0.1

_PENDING = "pending "
_HELD = "job "


def supports_unique(backend: Backend, store: RecordStore | None) -> bool:
    """Whether unique puts work here: natively, or through the record store's claims."""
    return (backend.capabilities.unique_put and isinstance(backend, UniqueBackend)) or (
        store is not None and isinstance(store, ClaimStore))


def put_unique(
    backend: Backend, records: Records, queue: str, body: bytes, priority: int, delay: float,
    ttr: float, key: str, ttl: float, *, until_done: bool,
) -> tuple[str, bool]:
    """Put a job under ``key`` unless a job holds it; returns (job id, whether it was put).

    Values must already be checked (:mod:`kue.validation`). Raises :class:`kue.Unsupported`
    where neither the backend nor its record store can hold a key.
    """
    if backend.capabilities.unique_put and isinstance(backend, UniqueBackend):
        return backend.put_unique(queue, body, priority, delay, ttr, key, ttl, until_done)
    store = records.store
    if store is None or not isinstance(store, ClaimStore):
        raise Unsupported(
            backend.capabilities.name,
            "unique puts (capability unique_put=False): give it a results store that can hold "
            "them (results = \"sqlite:///...\", \"redis://...\" or \"postgresql://...\")",
        )
    return _claimed_put(backend, store, records, queue, body, priority, delay, ttr, key, ttl,
                        until_done)


def _claimed_put(
    backend: Backend, store: ClaimStore, records: Records, queue: str, body: bytes,
    priority: int, delay: float, ttr: float, key: str, ttl: float, until_done: bool,
) -> tuple[str, bool]:
    token = f"{_PENDING}{uuid.uuid4().hex}"
    poll = _FIRST_POLL
    while True:
        current = store.claim(queue, key, token, PENDING_TTL, None)
        if current is None:
            break
        if current.startswith(_PENDING):
            time.sleep(poll)  # another caller is putting the job: its id comes in a moment
            poll = min(poll * 2, _MAX_POLL)
            continue
        job_id, _, mode = current.removeprefix(_HELD).rpartition(" ")
        if mode == "1" and _finished(records, queue, job_id):
            if store.claim(queue, key, token, PENDING_TTL, current) is None:
                break
            continue
        return job_id, False
    try:
        job_id = backend.put(queue, body, priority, delay, ttr)
    except BaseException:
        store.claim(queue, key, "free", 0.001, token)  # let the next caller have it at once
        raise
    if store.claim(queue, key, f"{_HELD}{job_id} {int(until_done)}", ttl, token) is not None:
        log.warning("unique key %r of queue %r: the claim lapsed before job %s was put (a "
                    "stall of over %g s); another caller may put it again", key, queue,
                    job_id, PENDING_TTL)
    return job_id, True


def _finished(records: Records, queue: str, job_id: str) -> bool:
    """Whether the job is known to be done, buried or gone (unknown: still held)."""
    status = records.status(queue, job_id)
    return status is not None and status.finished
