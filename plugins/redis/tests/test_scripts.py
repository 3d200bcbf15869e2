from __future__ import annotations

import redis

from kue.backend import JobState, PutItem
from kue_redis.backend import RedisBackend
from kue_redis.keys import QueueKeys
from kue_redis.scripts import ScriptArg


def test_a_put_after_script_flush_loads_the_script_again(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    backend.put("q", b"before", 1, 0, 5)
    raw.script_flush()
    assert backend.put("q", b"after", 1, 0, 5)
    raw.script_flush()
    assert len(backend.put_many("q", [PutItem(b"batch")] * 3)) == 3
    raw.script_flush()
    job = backend.reserve(["q"], 0)
    assert job is not None and job.body == b"before"
    raw.script_flush()
    backend.delete(job)
    assert backend.stats("q").ready == 4


def test_the_put_script_is_a_no_op_for_an_id_that_exists(
    backend: RedisBackend, prefix: str
) -> None:
    keys = QueueKeys.of(prefix, "q").put_keys
    put = backend._scripts["put"]
    assert put.run(backend.client, keys, ["job-1", b"body", 3, 0, 5000]) == 1
    # What redis-py does after a dropped connection: the same command again.
    assert put.run(backend.client, keys, ["job-1", b"body", 3, 0, 5000]) == 0
    assert backend.stats("q").ready == 1
    job = backend.reserve(["q"], 0)
    assert job is not None and job.id == "job-1" and job.priority == 3
    backend.delete(job)
    assert backend.stats("q").total == 0


def test_a_resent_put_many_batch_stores_nothing_twice(backend: RedisBackend, prefix: str) -> None:
    keys = QueueKeys.of(prefix, "q").put_keys
    put_many = backend._scripts["put_many"]
    batch: list[ScriptArg] = [
        "a", b"first", 7, 0, 5000, "b", b"later", 1, 60_000, 5000, "c", b"second", 7, 0, 5000,
    ]
    assert put_many.run(backend.client, keys, batch) == 3
    # What redis-py does after a dropped connection: the same command again.
    assert put_many.run(backend.client, keys, batch) == 0
    stats = backend.stats("q")
    assert (stats.ready, stats.delayed) == (2, 1)
    taken = [backend.reserve(["q"], 0) for _ in range(2)]
    assert [(j.id, j.body, j.priority) for j in taken if j is not None] == [
        ("a", b"first", 7), ("c", b"second", 7)
    ]
    assert backend.peek("q", JobState.DELAYED) is not None


def test_priorities_up_to_two_to_the_32_keep_exact_order(backend: RedisBackend) -> None:
    top = 2**32 - 1
    for pri in (top, top - 1, top, 0, top - 1):
        backend.put("q", str(pri).encode(), pri, 0, 5)
    seen = []
    while (job := backend.reserve(["q"], 0)) is not None:
        seen.append((job.priority, job.body))
        backend.delete(job)
    assert [p for p, _ in seen] == [0, top - 1, top - 1, top, top]


def test_put_order_within_a_queue_holds_when_the_server_clock_steps_back(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    """A seq is never below the queue's last one plus one, whatever the clock says."""
    keys = QueueKeys.of(prefix, "q")
    backend.put("q", b"first", 5, 0, 5)
    seconds, micros = raw.time()
    an_hour_ahead = (seconds + 3600) * 1_000_000 + micros
    # As if the clock had read an hour later at the last put, then stepped back.
    raw.set(keys.seq, f"{an_hour_ahead:016d}999")
    backend.put_many("q", [PutItem(b"second", priority=5), PutItem(b"third", priority=5)])
    backend.put("q", b"fourth", 5, 0, 5)
    assert int(raw.get(keys.seq) or b"0") > an_hour_ahead * 1000
    got = []
    while (job := backend.reserve(["q"], 0)) is not None:
        got.append(job.body)
        backend.delete(job)
    assert got == [b"first", b"second", b"third", b"fourth"]
    assert raw.exists(keys.seq) == 0
