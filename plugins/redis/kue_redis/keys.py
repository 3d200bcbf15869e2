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
==========================  ======  ===========================================================

A job's sequence number is taken when it is put and stays in its member for life, so a
released, kicked or formerly delayed job keeps its place among jobs of its priority. It is the
server's clock in microseconds (16 digits) followed by a 3-digit counter, and never below the
queue's last one plus one: exact put order within a queue even if the clock steps back, and
put order across queues (which reserve over several queues compares by) to the microsecond,
as the reference model orders them, without a key shared by all queues.

Every key disappears when its queue's last job is deleted (Redis drops empty hashes, sets and
lists; the delete script drops the wake-up list and ``seq`` once ``meta`` is gone; a later put
starts again from the clock, which is past every seq the queue had).

Redis Cluster: each script touches only keys of one hash tag, so every queue works on a
cluster. Queues whose names share a hash tag of their own, such as ``{shop}mail`` and
``{shop}sms`` (their keys' tag is then ``{shop``), live in one slot, and a reserve over them
is one script and one blocking BLPOP as on a single server; a reserve over queues in
different slots asks each queue in turn (see :mod:`kue_redis.backend`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PREFIX", "QueueKeys"]

#: The prefix of every key kue writes, unless the URL says ``?prefix=``.
DEFAULT_PREFIX = "kue"


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
    #: KEYS of delete, release, bury, touch, kick, peek and stats.
    job_keys: tuple[str, ...]
    #: This queue's six KEYS in the reserve script.
    reserve_keys: tuple[str, ...]
    #: KEYS of the put and put_many scripts.
    put_keys: tuple[str, ...]

    @classmethod
    def of(cls, prefix: str, queue: str) -> QueueKeys:
        """The keys of ``queue``; raises ValueError for an empty or non-string name."""
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"a queue name must be a non-empty string, got {queue!r}")
        base = f"{prefix}:{{{queue}}}:"
        r, d, v, bu, bo, m, w, s = (
            base + name for name in ("ready", "delayed", "reserved", "buried", "body", "meta",
                                     "wake", "seq")
        )
        return cls(
            ready=r, delayed=d, reserved=v, buried=bu, body=bo, meta=m, wake=w, seq=s,
            job_keys=(r, d, v, bu, bo, m, w, s),
            reserve_keys=(r, d, v, bo, m, w),
            put_keys=(s, r, d, bo, m, w),
        )
