from __future__ import annotations

import redis
from redis.crc import key_slot

from kue.backend import JobState, PutItem
from kue_redis.backend import RedisBackend
from kue_redis.keys import QueueKeys


def _keys(raw: redis.Redis, prefix: str) -> set[str]:
    return {k.decode() for k in raw.scan_iter(match=f"{prefix}:*", count=1000)}


def test_no_key_is_left_once_every_job_is_deleted(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    backend.put("a", b"ready", 5, 0, 5)
    backend.put("a", b"delayed", 5, 3600, 5)
    backend.put_many("b", [PutItem(b"x"), PutItem(b"y", delay=3600)])
    first = backend.reserve(["a"], 0)
    assert first is not None
    backend.bury(first, None)
    assert len(_keys(raw, prefix)) > 1

    # Every job through kick, touch, release and finally delete.
    assert backend.kick("a", 10) == 1
    assert backend.kick("a", 10) == 1  # nothing buried: the delayed one
    assert backend.kick("b", 10) == 1
    assert backend.peek("a", JobState.READY) is not None
    done = 0
    while (job := backend.reserve(["a", "b"], 0)) is not None:
        backend.touch(job)
        if job.attempts == 1 and job.body == b"x":
            backend.release(job, 1, 0)
            continue
        backend.delete(job)
        done += 1
    assert done == 4
    assert _keys(raw, prefix) == set()


def test_a_queue_keys_share_one_hash_slot(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    backend.put("orders", b"1", 1, 0, 5)
    backend.put("orders", b"2", 1, 3600, 5)
    job = backend.reserve(["orders"], 0)
    assert job is not None
    backend.bury(job, 7)
    names = _keys(raw, prefix)
    assert names, "the queue wrote no keys"
    expected = set(QueueKeys.of(prefix, "orders").job_keys)
    assert names <= expected
    assert len({key_slot(n.encode()) for n in expected}) == 1
