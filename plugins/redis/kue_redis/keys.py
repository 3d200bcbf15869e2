"""The Redis key layout of kue. Every key of one queue shares the hash tag ``{NAME}``.

For a queue ``NAME`` (``P`` is the key prefix, ``kue`` unless the URL says ``?prefix=``):

==========================  ======  ===========================================================
key                         type    holds
==========================  ======  ===========================================================
``P:{NAME}:ready``          ZSET    ready jobs; score = priority (exact: < 2**53), member =
                                    ``<seq, 19 digits>:<id>``, so equal priorities come out in
                                    seq order (ZSET ties sort by member)
``P:{NAME}:delayed``        ZSET    delayed jobs; score = due time (server ms), same members
``P:{NAME}:reserved``       ZSET    reserved jobs; score = lease deadline (server ms)
``P:{NAME}:buried``         LIST    buried jobs' members, longest buried at the head
``P:{NAME}:body``           HASH    id -> body bytes
``P:{NAME}:meta``           HASH    id -> ``"<priority> <seq> <ttr ms> <attempts>"``
``P:{NAME}:wake``           LIST    wake-up tokens that put / release / kick push and a blocked
                                    reserve pops (BLPOP); only hints, deleted when stale
``P:{NAME}:seq``            STRING  the queue's last sequence number
``P:{NAME}:record:<id>``    HASH    job ``<id>``'s record (kue.records): field -> JSON value
                            or      ("" once removed), and in the field ``<NUL>packed`` the
                            STRING  fields its finishing worker wrote, as one JSON object,
                                    which the single fields override; a STRING where that
                                    worker found no record and no waiter: the object alone,
                                    made a HASH by the next write. Expires as its writer
                                    said (a done job's retention)
``P:{NAME}:unique:<key>``  STRING  ``"<id> <until_done>"``: the job ``put_unique`` stored under
                                    unique key ``<key>``; expires after the key's ttl
``P:{NAME}:claim:<key>``    STRING  a claim (kue.records.ClaimStore) of namespace ``NAME``;
                                    expires after its ttl
``P:{NAME}:waiters:<id>``   STRING  how many ``wait_record`` calls wait for that record now;
                                    expires shortly after the longest of them ends
``P:{NAME}:changed:<id>``   LIST    one token per waiter, pushed by a write to the record (or a
                                    bury or delete of the job); a waiter BLPOPs it. Expires
                                    seconds after the write
==========================  ======  ===========================================================

A job's sequence number is taken when it is put and stays in its member for life, so a
released, kicked or formerly delayed job keeps its place among jobs of its priority. It is the
server's clock in microseconds (16 digits) followed by a 3-digit counter, and never below the
queue's last one plus one: exact put order within a queue even if the clock steps back, and
put order across queues (which reserve over several queues compares by) to the microsecond,
as the reference model orders them, without a key shared by all queues.

Every key but the records disappears when its queue's last job is deleted (Redis drops empty
hashes, sets and lists; the delete script drops the wake-up list and ``seq`` once ``meta`` is
gone; a later put starts again from the clock, which is past every seq the queue had). A record
outlives its job by design, until it expires; the waiters and changed keys of a job live only
while someone waits for its record, and expire by themselves if that waiter dies.

Listing queues (``list_queues``): a queue holds a job exactly while its ``meta`` hash exists,
so a SCAN for ``P:{*}:meta`` (:func:`meta_pattern`) of type hash, on every primary of a
cluster, finds them; :func:`queue_of_meta` reads the name back. Only a key whose last part
is free text can end in ``}:meta`` too: a per-job key ``P:{NAME}:<kind>:<id>`` whose id ends
so, of which only the record is a hash. Its would-be queue's name then holds ``}:``
(``NAME}:record:...``), and for such a name the queue's ``seq`` key tells them apart: a real
queue's is a string, which exists while ``meta`` does (every put sets it first, and it is
deleted only once ``meta`` is gone), where the same name's ``seq`` key would be another
record or nothing. That record is a hash: a string record is only ever written by
``complete``, for a job this backend put, whose id is a uuid4's hex digits and so never ends
in ``}:seq``.

Redis Cluster: each script touches only keys of one hash tag, so every queue works on a
cluster. kue's portable queue names hold no braces (:func:`kue.spi.check_queue_name`), so each
queue's tag is its own name and queues spread over the cluster's slots. A backend opened with
``slot=SLOT`` puts ``{SLOT}`` before every queue's name inside the tag instead:
``P:{{SLOT}NAME}:ready``, whose hash tag is ``{SLOT``, so every queue of that backend lives in
one slot, and a reserve over several of them is one script and one blocking BLPOP as on a
single server; a reserve over queues in different slots asks each queue in turn (see
:mod:`kue_redis.backend`). Listing (:func:`queue_of_meta`) reads back the whole tag; the
backend keeps the names that start with its own ``{SLOT}`` and strips it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PREFIX", "QueueKeys", "meta_pattern", "queue_of_meta", "slot_tag"]

#: The prefix of every key kue writes, unless the URL says ``?prefix=``.
DEFAULT_PREFIX = "kue"


def slot_tag(slot: str) -> str:
    """What starts the tag of every queue of a backend with ``slot=SLOT``: ``{SLOT}``, or ""."""
    return f"{{{slot}}}" if slot else ""


#: What a glob pattern of SCAN MATCH reads as special, escaped with a backslash.
_GLOB_SPECIAL = frozenset("*?[]\\^")


def meta_pattern(prefix: str) -> str:
    """The SCAN MATCH pattern of every queue's ``meta`` key under ``prefix``: ``P:{*}:meta``.

    Glob characters in the prefix (``*``, ``?``, brackets, backslash) match only themselves.
    """
    escaped = "".join("\\" + c if c in _GLOB_SPECIAL else c for c in prefix)
    return f"{escaped}:{{*}}:meta"


def queue_of_meta(prefix: str, key: bytes | str) -> str | None:
    """The queue whose ``meta`` key ``key`` is, or None if no queue's ``meta`` has this name.

    A name that contains ``}:`` may be read from a record key instead (see the module's
    notes): the caller checks that queue's ``seq`` key before taking it for a queue.
    """
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError:
            return None  # kue's key names are UTF-8: written by someone else
    head, tail = f"{prefix}:{{", "}:meta"
    if len(key) <= len(head) + len(tail) or not key.startswith(head) or not key.endswith(tail):
        return None
    return key[len(head) : -len(tail)]


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue, and the key lists the Lua scripts take, built once per queue."""

    ready: str
    delayed: str
    reserved: str
    buried: str
    body: str
    meta: str
    wake: str
    seq: str
    #: What every key name of the queue starts with: ``P:{NAME}:``.
    base: str
    #: KEYS of delete, release, bury, touch, kick, peek, stats, job_info, buried and kick_job.
    job_keys: tuple[str, ...]
    #: This queue's six KEYS in the reserve script.
    reserve_keys: tuple[str, ...]
    #: KEYS of the put and put_many scripts.
    put_keys: tuple[str, ...]

    @classmethod
    def of(cls, prefix: str, queue: str, slot: str = "") -> QueueKeys:
        """The keys of ``queue``; raises ValueError for an empty or non-string name.

        With a ``slot`` (the URL's ``slot=``), the queue's tag starts with ``{slot}``, which makes
        the keys' hash tag ``{slot``: every queue of that backend in one cluster slot.
        """
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"a queue name must be a non-empty string, got {queue!r}")
        base = f"{prefix}:{{{slot_tag(slot)}{queue}}}:"
        r, d, v, bu, bo, m, w, s = (
            base + name for name in ("ready", "delayed", "reserved", "buried", "body", "meta",
                                     "wake", "seq")
        )
        return cls(
            ready=r, delayed=d, reserved=v, buried=bu, body=bo, meta=m, wake=w, seq=s, base=base,
            job_keys=(r, d, v, bu, bo, m, w, s),
            reserve_keys=(r, d, v, bo, m, w),
            put_keys=(s, r, d, bo, m, w),
        )

    def unique_key(self, key: str) -> str:
        """The key that says which job holds unique key ``key`` (see the table above)."""
        return f"{self.base}unique:{key}"

    def claim_key(self, key: str) -> str:
        """The key of claim ``key`` in this queue's namespace (see the table above)."""
        return f"{self.base}claim:{key}"

    def record_keys(self, job_id: str) -> tuple[str, str, str]:
        """The record, waiters and changed keys of one job (see the table above)."""
        base = self.base
        return (f"{base}record:{job_id}", f"{base}waiters:{job_id}", f"{base}changed:{job_id}")
