"""Admin listing on redis (kue.listing): list_queues, buried and kick_job, alone and on a cluster.

The shared contract suite checks the behaviour every backend owes; these tests check what is
the redis backend's own: the SCAN for queues (prefix, look-alike keys, every cluster node),
reading the buried list from its tail in one script, and kick_job's place in put order and
wake-up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis
from redis.cluster import RedisCluster

from kue.backend import JobInfo, JobState, PutItem, QueueStats, Reservation
from kue.listing import JobBrowser, QueueListing, declared_unsupported
from kue_redis.backend import RedisBackend
from kue_redis.keys import QueueKeys, meta_pattern, queue_of_meta

from redis_support import (
    blocked_clients,
    cluster_keys,
    node_of,
    queues_on_different_nodes,
    reserve_in_thread,
    wait_until,
)


def _take(backend: RedisBackend, queue: str) -> Reservation:
    job = backend.reserve([queue], 0)
    assert job is not None
    return job


def _bury(backend: RedisBackend, queue: str, bodies: list[bytes], priority: int = 5,
          ) -> list[str]:
    """Put one job per body, reserve all, bury them last-put first; ids in bury order."""
    for body in bodies:
        backend.put(queue, body, priority, 0, 30)
    held = [_take(backend, queue) for _ in bodies]
    order = []
    for job in reversed(held):
        backend.bury(job, None)
        order.append(job.id)
    return order


def _drain(backend: RedisBackend, queue: str) -> list[bytes]:
    got = []
    while (job := backend.reserve([queue], 0)) is not None:
        got.append(job.body)
        backend.delete(job)
    return got


def _keyspace(raw: redis.Redis, prefix: str) -> set[str]:
    return {k.decode() for k in raw.scan_iter(match=f"{prefix}:*", count=1000)}


# -- the key helpers -----------------------------------------------------------------------


def test_meta_pattern_escapes_glob_characters_of_the_prefix() -> None:
    assert meta_pattern("kue") == "kue:{*}:meta"
    assert meta_pattern("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f:{*}:meta"


@pytest.mark.parametrize("name", ["q", "a:b", "{shop}mail", "x}:meta", "émoji-✓", " "])
def test_queue_of_meta_reads_back_the_name_of_any_queue(name: str) -> None:
    meta = QueueKeys.of("p", name).meta
    assert queue_of_meta("p", meta) == name
    assert queue_of_meta("p", meta.encode()) == name


@pytest.mark.parametrize("key", [
    "p:{}:meta", "p:{q}:body", "p:{q}:meta:x", "other:{q}:meta", "p:x:{q}:meta", "p{q}:meta",
    b"p:{\xff}:meta",
])
def test_queue_of_meta_refuses_keys_that_are_no_meta_key(key: str | bytes) -> None:
    assert queue_of_meta("p", key) is None


# -- list_queues ---------------------------------------------------------------------------


def test_the_backend_offers_every_listing_method(backend: RedisBackend) -> None:
    assert isinstance(backend, QueueListing)
    assert isinstance(backend, JobBrowser)
    assert declared_unsupported(backend) == {}


def test_list_queues_names_queues_in_every_state_and_drops_them_once_empty(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    assert backend.list_queues() == []
    backend.put("ready", b"r", 5, 0, 30)
    backend.put("delayed", b"d", 5, 3600, 30)
    backend.put("reserved", b"v", 5, 0, 30)
    held = _take(backend, "reserved")
    (buried,) = _bury(backend, "buried", [b"b"])
    backend.put("done", b"x", 5, 0, 30)
    backend.delete(_take(backend, "done"))
    assert backend.list_queues() == ["buried", "delayed", "ready", "reserved"]

    backend.delete(held)
    assert backend.kick_job("buried", buried)
    assert _drain(backend, "buried") == [b"b"]
    assert _drain(backend, "ready") == [b"r"]
    assert backend.list_queues() == ["delayed"]
    assert backend.kick("delayed", 1) == 1
    assert _drain(backend, "delayed") == [b"d"]
    assert backend.list_queues() == []
    assert _keyspace(raw, prefix) == set()


def test_list_queues_reads_back_names_with_colons_braces_and_unicode(
    backend: RedisBackend,
) -> None:
    names = ["a:b", "a:b:meta", "{shop}mail", "{shop}sms", "x}y", "x}:z", "meta", "émoji-✓",
             "with space"]
    for name in names:
        backend.put(name, b"1", 5, 0, 30)
    assert backend.list_queues() == sorted(names)


def test_list_queues_takes_no_record_waiters_or_changed_key_for_a_queue(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    backend.put("q", b"1", 5, 0, 30)
    # Per-job keys whose names end in "}:meta", as ids ending so make them: would-be queues
    # named "q}:record:x" and so on.
    backend.update_record("q", "x}:meta", {"step": 1}, None)
    backend.update_record("gone", "x}:meta", {"step": 1}, None)
    backend.update_record("q", "meta", {"step": 1}, None)
    _, waiters, changed = QueueKeys.of(prefix, "q").record_keys("y}:meta")
    raw.set(waiters, 1)
    raw.rpush(changed, 1)
    assert queue_of_meta(prefix, QueueKeys.of(prefix, "q").record_keys("x}:meta")[0]) == (
        "q}:record:x")
    assert backend.list_queues() == ["q"]
    # A real queue of such a name is listed.
    backend.put("q}:record:z", b"1", 5, 0, 30)
    assert backend.list_queues() == ["q", "q}:record:z"]


def test_list_queues_honours_the_prefix_even_with_glob_characters(
    redis_url: str, prefix: str
) -> None:
    made = {p: RedisBackend(f"{redis_url}?prefix={p}")
            for p in (f"{prefix}*", f"{prefix}x", f"{prefix}:sub", f"{prefix}?", prefix)}
    try:
        for p, backend in made.items():
            backend.put("shared", b"1", 5, 0, 30)
            backend.put(f"only-{p}", b"1", 5, 0, 30)
        for p, backend in made.items():
            assert backend.list_queues() == sorted(["shared", f"only-{p}"]), p
    finally:
        for backend in made.values():
            backend.close()


def test_list_queues_scans_past_one_scan_call(backend: RedisBackend) -> None:
    names = [f"q{i:04d}" for i in range(2500)]
    with backend.client.pipeline(transaction=False) as pipe:
        for name in names:
            keys = QueueKeys.of(backend.settings.prefix, name)
            pipe.set(keys.seq, "0" * 19)
            pipe.hset(keys.meta, "id", f"5 {'0' * 19} 30000 0")
        pipe.execute()
    try:
        assert backend.list_queues() == names
    finally:
        for start in range(0, len(names), 500):
            backend.client.delete(*[k for name in names[start : start + 500]
                                    for k in QueueKeys.of(backend.settings.prefix, name).job_keys])


# -- buried --------------------------------------------------------------------------------


def test_buried_lists_the_newest_buried_first_with_each_job_as_it_is(
    backend: RedisBackend,
) -> None:
    order = _bury(backend, "q", [b"a", b"b", b"c"])
    job = _take_after_put(backend, "q", b"d", priority=9)
    backend.bury(job, 7)  # a new priority at the bury
    listed = backend.buried("q", 10, 0)
    assert [i.id for i in listed] == [job.id, *order[::-1]]
    assert listed[0] == JobInfo("q", job.id, b"d", 7, JobState.BURIED, 1)
    assert {i.body for i in listed[1:]} == {b"a", b"b", b"c"}
    assert all(i.state is JobState.BURIED and i.attempts == 1 and i.due_in is None
               for i in listed)
    assert backend.stats("q") == QueueStats(buried=4)


def _take_after_put(backend: RedisBackend, queue: str, body: bytes, priority: int,
                    ) -> Reservation:
    backend.put(queue, body, priority, 0, 30)
    return _take(backend, queue)


def test_buried_pages_from_the_newest(backend: RedisBackend) -> None:
    newest_first = _bury(backend, "q", [b"a", b"b", b"c", b"d", b"e"])[::-1]

    def ids(limit: int, offset: int) -> list[str]:
        return [i.id for i in backend.buried("q", limit, offset)]

    assert ids(2, 0) == newest_first[:2]
    assert ids(2, 2) == newest_first[2:4]
    assert ids(2, 4) == newest_first[4:]
    assert ids(1, 3) == newest_first[3:4]
    assert ids(10, 5) == []
    assert ids(10**30, 0) == newest_first
    assert ids(1, 10**30) == []


def test_buried_is_empty_for_an_unknown_queue_or_one_without_buried_jobs(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    assert backend.buried("nothing-here", 10, 0) == []
    assert _keyspace(raw, prefix) == set()  # reading wrote nothing
    backend.put("q", b"ready", 5, 0, 30)
    before = _keyspace(raw, prefix)
    assert backend.buried("q", 10, 0) == []
    assert _keyspace(raw, prefix) == before
    assert backend.stats("q") == QueueStats(ready=1)


def test_buried_refuses_a_limit_below_one_or_a_negative_offset(backend: RedisBackend) -> None:
    with pytest.raises(ValueError, match="limit"):
        backend.buried("q", 0, 0)
    with pytest.raises(ValueError, match="offset"):
        backend.buried("q", 1, -1)


# -- kick_job ------------------------------------------------------------------------------


def test_kick_job_keeps_the_job_s_place_in_put_order_priority_and_attempts(
    backend: RedisBackend,
) -> None:
    backend.put_many("q", [PutItem(b, priority=5) for b in (b"a", b"b", b"c", b"d")])
    a, b = _take(backend, "q"), _take(backend, "q")
    backend.bury(b, None)
    backend.bury(a, None)
    assert backend.kick_job("q", b.id) is True
    assert backend.stats("q") == QueueStats(ready=3, buried=1)
    assert [i.id for i in backend.buried("q", 10, 0)] == [a.id]
    # b was put before c and d: it comes out first among jobs of its priority.
    again = _take(backend, "q")
    assert (again.id, again.body, again.priority, again.attempts) == (b.id, b"b", 5, 2)
    backend.delete(again)
    backend.put("q", b"urgent", 1, 0, 30)
    assert backend.kick_job("q", a.id) is True
    assert _drain(backend, "q") == [b"urgent", b"a", b"c", b"d"]


def test_kick_job_keeps_a_priority_given_at_the_bury(backend: RedisBackend) -> None:
    backend.put_many("q", [PutItem(b"first", priority=5), PutItem(b"second", priority=5)])
    job = _take(backend, "q")
    assert job.body == b"first"
    backend.bury(job, 9)
    assert backend.kick_job("q", job.id) is True
    assert _drain(backend, "q") == [b"second", b"first"]


def test_kick_job_wakes_a_blocked_reserve(
    backend: RedisBackend, make_backend: Callable[[], RedisBackend], raw: redis.Redis
) -> None:
    (buried,) = _bury(backend, "q", [b"poison"])
    before = blocked_clients(raw)
    thread, out = reserve_in_thread(make_backend(), ["q"], 10)
    wait_until(lambda: blocked_clients(raw) > before)
    kicked_at = time.monotonic()
    assert backend.kick_job("q", buried) is True
    thread.join(5)
    job = out.get("job")
    assert isinstance(job, Reservation) and job.id == buried
    assert isinstance(out["at"], float) and out["at"] - kicked_at < 1.0


@pytest.mark.parametrize("job_id", ["no-such-id", "", "12", "x:y", "é", "0" * 19 + ":x"])
def test_kick_job_is_false_for_an_id_the_queue_never_had(
    backend: RedisBackend, job_id: str
) -> None:
    _bury(backend, "q", [b"kept"])
    assert backend.kick_job("q", job_id) is False
    assert backend.kick_job("unknown-queue", job_id) is False
    assert backend.stats("q") == QueueStats(buried=1)


def test_kick_job_leaves_jobs_in_other_states_and_queues_alone(backend: RedisBackend) -> None:
    ready = backend.put("q", b"ready", 5, 0, 30)
    delayed = backend.put("q", b"delayed", 5, 3600, 30)
    backend.put("q", b"reserved", 9, 0, 30)
    held = _take(backend, "q")
    assert held.body == b"ready"
    (theirs,) = _bury(backend, "other", [b"theirs"])
    for job_id in (ready, delayed, held.id, theirs):
        assert backend.kick_job("q", job_id) is False
    assert backend.stats("q") == QueueStats(ready=1, delayed=1, reserved=1)
    assert backend.stats("other") == QueueStats(buried=1)
    backend.delete(held)


def test_one_buried_job_kicked_by_many_at_once_moves_once(
    make_backend: Callable[[], RedisBackend],
) -> None:
    backend = make_backend()
    (buried,) = _bury(backend, "q", [b"once"])
    others = [make_backend() for _ in range(8)]
    start = threading.Barrier(len(others))
    results: list[bool] = []

    def kick(b: RedisBackend) -> None:
        start.wait()
        results.append(b.kick_job("q", buried))

    threads = [threading.Thread(target=kick, args=(b,)) for b in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [False] * 7 + [True]
    assert backend.stats("q") == QueueStats(ready=1)


def test_no_key_is_left_after_a_kicked_job_is_deleted(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    (buried,) = _bury(backend, "q", [b"x"])
    assert backend.kick_job("q", buried)
    assert _drain(backend, "q") == [b"x"]
    assert _keyspace(raw, prefix) == set()


# -- on a Redis Cluster --------------------------------------------------------------------


def test_list_queues_scans_every_node_of_a_cluster(
    make_cluster_backend: Callable[[], RedisBackend], prefix: str
) -> None:
    backend = make_cluster_backend()
    cluster = backend.client
    assert isinstance(cluster, RedisCluster)
    spread = queues_on_different_nodes(cluster, prefix, 3)
    assert len({node_of(cluster, QueueKeys.of(prefix, q).meta) for q in spread}) == 3
    tagged = ["{shop}mail", "{shop}sms"]
    for name in [*spread, *tagged]:
        backend.put(name, b"1", 5, 0, 30)
    backend.update_record(spread[0], "x}:meta", {"step": 1}, None)  # not a queue
    other = RedisBackend(backend.settings.url.replace(f"prefix={prefix}", f"prefix={prefix}x"))
    try:
        other.put("not-mine", b"1", 5, 0, 30)
        assert backend.list_queues() == sorted([*spread, *tagged])
        assert other.list_queues() == ["not-mine"]
        _drain(other, "not-mine")
    finally:
        other.close()
    for name in [*spread, *tagged]:
        _drain(backend, name)
    assert backend.list_queues() == []


def test_buried_and_kick_job_on_queues_of_every_cluster_node(
    make_cluster_backend: Callable[[], RedisBackend], prefix: str
) -> None:
    backend = make_cluster_backend()
    cluster = backend.client
    assert isinstance(cluster, RedisCluster)
    for queue in queues_on_different_nodes(cluster, prefix, 3):
        order = _bury(backend, queue, [b"a", b"b", b"c"])
        assert [i.id for i in backend.buried(queue, 2, 0)] == order[::-1][:2]
        assert [i.id for i in backend.buried(queue, 2, 2)] == order[:1]
        assert backend.kick_job(queue, order[1]) is True
        assert backend.kick_job(queue, order[1]) is False
        assert backend.kick_job(queue, "no-such-id") is False
        assert backend.stats(queue) == QueueStats(ready=1, buried=2)
        for job_id in order[::2]:
            assert backend.kick_job(queue, job_id) is True
        assert sorted(_drain(backend, queue)) == [b"a", b"b", b"c"]
    assert cluster_keys(cluster, prefix) == set()


def test_kick_job_wakes_a_reserve_blocked_on_the_cluster(
    make_cluster_backend: Callable[[], RedisBackend],
) -> None:
    backend = make_cluster_backend()
    (buried,) = _bury(backend, "solo", [b"poison"])
    cluster = backend.client
    assert isinstance(cluster, RedisCluster)

    def blocked() -> int:
        count = 0
        for node in cluster.get_primaries():  # type: ignore[no-untyped-call]
            count += int(cluster.get_redis_connection(node).info("clients")["blocked_clients"])
        return count

    thread, out = reserve_in_thread(make_cluster_backend(), ["solo"], 10)
    wait_until(lambda: blocked() > 0)
    kicked_at = time.monotonic()
    assert backend.kick_job("solo", buried) is True
    thread.join(5)
    job = out.get("job")
    assert isinstance(job, Reservation) and job.id == buried
    assert isinstance(out["at"], float) and out["at"] - kicked_at < 1.0
    backend.delete(job)
