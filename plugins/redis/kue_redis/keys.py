"""The Redis key layout of kue. Every key of one queue shares the hash tag ``{NAME}``.

For a queue ``NAME`` (``P`` is the key prefix, ``kue`` unless the URL says ``?prefix=``):

==========================  ======  ===========================================================
key                         type    holds
==========================  ======  ===========================================================
``P:{NAME}:ready``          ZSET    ready jobs; score = priority (exact: < 2**53), member =
                                    ``<seq, 16 digits>:<id>``, so equal priorities come out in
                                    seq order (ZSET ties sort by member)
``P:{NAME}:delayed``        ZSET    delayed jobs; score = due time (server ms), same members
``P:{NAME}:reserved``       ZSET    reserved jobs; score = lease deadline (server ms)
``P:{NAME}:buried``         LIST    buried jobs' members, longest buried at the head
``P:{NAME}:body``           HASH    id -> body bytes
``P:{NAME}:meta``           HASH    id -> ``"<priority> <seq> <ttr ms> <attempts>"``
``P:{NAME}:wake``           LIST    wake-up tokens that put / release / kick push and a blocked
                                    reserve pops (BLPOP); only hints, deleted when stale
``P:seq``                   STRING  the one global sequence counter (INCR at put)
==========================  ======  ===========================================================

A job's sequence number comes from ``P:seq`` when it is put and stays in its member for
life, so a released, kicked or formerly delayed job keeps its place among jobs of its
priority, and jobs of different queues compare by (priority, seq) as in the reference model.

Every per-queue key disappears when its last job is deleted (Redis drops empty hashes, sets
and lists; the scripts delete the wake-up list). ``P:seq`` is the one key that stays: it
must, or a later put could reuse a seq and jump the queue.

Redis Cluster: each per-queue script touches only keys of one hash tag, but ``put`` also
increments ``P:seq`` and ``reserve`` on several queues reads them in one script and blocks on
their wake-up lists with one BLPOP; both span slots. This backend talks to a single node (or
a primary with replicas); a cluster port would need a seq per queue (giving up put order
across queues, which only matters between equal priorities) and one script per queue.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PREFIX", "QueueKeys", "seq_key"]

#: The prefix of every key kue writes, unless the URL sets ``?prefix=``.
DEFAULT_PREFIX = "kue"


def seq_key(prefix: str) -> str:
    """The global sequence counter's key."""
    return f"{prefix}:seq"


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
    #: KEYS of delete, release, bury, touch, kick, peek and stats.
    job_keys: tuple[str, ...]
    #: This queue's six KEYS in the reserve script.
    reserve_keys: tuple[str, ...]
    #: KEYS of the put script (the global seq counter first).
    put_keys: tuple[str, ...]

    @classmethod
    def of(cls, prefix: str, queue: str) -> QueueKeys:
        """The keys of ``queue``; raises ValueError for a name that cannot carry a hash tag."""
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"a queue name must be a non-empty string, got {queue!r}")
        base = f"{prefix}:{{{queue}}}:"
        r, d, v, bu, bo, m, w = (
            base + name for name in ("ready", "delayed", "reserved", "buried", "body", "meta",
                                     "wake")
        )
        return cls(
            ready=r, delayed=d, reserved=v, buried=bu, body=bo, meta=m, wake=w,
            job_keys=(r, d, v, bu, bo, m, w),
            reserve_keys=(r, d, v, bo, m, w),
            put_keys=(seq_key(prefix), r, d, bo, m, w),
        )
