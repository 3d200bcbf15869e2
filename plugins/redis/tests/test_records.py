"""Job records on redis: the record's two shapes, merge and expiry, complete, job_info, wait_record.

The generic behaviour (states through a job's life, results, errors, result() woken by a
worker) is in the contract suite (kue_contract.suite.records); these tests check what is
redis's own: one script for delete and record, the keys it leaves, how waiters are woken.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

import kue
from kue.backend import JobState, Reservation
from kue.errors import ReservationLost
from kue.records import RecordingBackend
from kue.worker import Worker
from kue_redis.backend import (
    PACKED_FIELD,
    RedisBackend,
    parse_record,
    record_args,
    record_digest,
)
from kue_redis.keys import QueueKeys

from redis_support import (
    blocked_clients,
    cluster_keys,
    queues_on_different_nodes,
    wait_until,
)


@kue.job(name="kue_redis_tests.records.add", max_attempts=1)
def add(a: int, b: int) -> int:
    """Returns a + b."""
    return a + b


@kue.job(name="kue_redis_tests.records.fail", max_attempts=1)
def fail() -> None:
    """Always fails, so its job is buried."""
    raise RuntimeError("no luck")


def _keys(raw: redis.Redis, prefix: str) -> set[str]:
    return {k.decode() for k in raw.scan_iter(match=f"{prefix}:*", count=1000)}


def _reserve(backend: RedisBackend, queue: str) -> Reservation:
    job = backend.reserve([queue], 0)
    assert job is not None
    return job


def _wait_in_thread(
    backend: RedisBackend, queue: str, job_id: str, timeout: float, *, read_first: bool = True
) -> tuple[threading.Thread, dict[str, float]]:
    """Run read_record (unless told not to), then wait_record, in a thread of its own.

    The returned dict gets the moment wait_record returned under "at".
    """
    out: dict[str, float] = {}

    def run() -> None:
        if read_first:
            backend.job_info(queue, job_id)
            backend.read_record(queue, job_id)
        backend.wait_record(queue, job_id, timeout)
        out["at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


# -- the record: merge, encoding, expiry ------------------------------------------------------


def test_the_backend_is_a_recording_backend(backend: RedisBackend) -> None:
    assert backend.capabilities.records is True
    assert isinstance(backend, RecordingBackend)


def test_update_record_merges_fields_and_a_none_value_removes_one(backend: RedisBackend) -> None:
    assert backend.read_record("q", "j1") is None
    backend.update_record("q", "j1", {"a": 1, "b": "x", "c": [1, {"d": 2.5}], "e": None}, None)
    assert backend.read_record("q", "j1") == {"a": 1, "b": "x", "c": [1, {"d": 2.5}]}
    backend.update_record("q", "j1", {"a": None, "b": "y", "f": {"g": True}}, None)
    # A field is replaced whole: a JSON object value is not merged into the one before it.
    backend.update_record("q", "j1", {"f": {"h": False}}, None)
    assert backend.read_record("q", "j1") == {"b": "y", "c": [1, {"d": 2.5}], "f": {"h": False}}
    # Other jobs and queues have records of their own.
    assert backend.read_record("q", "j2") is None
    assert backend.read_record("other", "j1") is None


@pytest.mark.parametrize("value", [
    0, -7, 2**63 + 1, 0.1, 1795891619.5207736, -1e-300, True, False,
    "", "text", "üñí©ødé \u2028 \"quoted\" \\ \n", [], {}, [None, 1, "2"],
    {"nested": {"list": [True, None, 1.5]}},
])
def test_values_round_trip_exactly(backend: RedisBackend, value: Any) -> None:
    backend.update_record("q", "j", {"v": value}, None)
    record = backend.read_record("q", "j")
    assert record is not None
    got = record["v"]
    assert got == value and type(got) is type(value)


def test_a_record_with_every_field_removed_reads_as_empty(backend: RedisBackend) -> None:
    backend.update_record("q", "j", {"a": 1}, None)
    backend.update_record("q", "j", {"a": None}, None)
    assert backend.read_record("q", "j") == {}


def test_a_record_expires_after_its_ttl_and_none_keeps_it(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    record_key = backend._keys("q").record_keys("j")[0]
    backend.update_record("q", "j", {"a": 1}, 3600)
    assert 3_590_000 < raw.pttl(record_key) <= 3_600_000
    backend.update_record("q", "j", {"b": 2}, None)  # None: no expiry, whatever was set
    assert raw.pttl(record_key) == -1
    backend.update_record("q", "j", {"c": 3}, 0.2)  # each write sets the expiry anew
    assert 0 < raw.pttl(record_key) <= 200
    assert backend.read_record("q", "j") == {"a": 1, "b": 2, "c": 3}
    wait_until(lambda: backend.read_record("q", "j") is None, timeout=3)
    backend.update_record("q", "j", {"d": 4}, 0)
    assert backend.read_record("q", "j") is None


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"x": math.nan}, object()])
def test_a_value_json_cannot_hold_is_refused_before_anything_is_sent(
    backend: RedisBackend, value: Any
) -> None:
    """Records are JSON on every backend: NaN and infinities too are refused, as in memory."""
    with pytest.raises((TypeError, ValueError)):
        backend.update_record("q", "j", {"v": value}, None)
    assert backend.read_record("q", "j") is None


def test_record_args_encode_as_json_dumps_does() -> None:
    import json

    fields = {"s": "é\n", "i": 3, "f": 0.1, "n": None, "b": True, "l": [1]}
    args = record_args(fields, 1.5)
    assert args[0] == 1500
    assert record_args({}, None) == [-1]
    pairs = dict(zip(args[1::2], args[2::2], strict=True))
    assert pairs.pop("n") == ""
    assert pairs == {k: json.dumps(v, separators=(",", ":")) for k, v in fields.items()
                     if v is not None}


# -- complete ---------------------------------------------------------------------------------


def test_complete_deletes_the_job_and_writes_its_record_in_one_step(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    job_id = backend.put("q", b"body", 5, 0, 30)
    job = _reserve(backend, "q")
    backend.update_record("q", job_id, {"progress": 0.5, "error": {"type": "E"}}, None)
    backend.complete(job, {"state": "done", "result": [1, 2], "error": None}, 60)
    assert backend.job_info("q", job_id) is None
    assert backend.stats("q").total == 0
    assert backend.read_record("q", job_id) == {"state": "done", "result": [1, 2],
                                                "progress": 0.5}
    # The record is all that is left of the queue, and it expires.
    record_key = QueueKeys.of(prefix, "q").record_keys(job_id)[0]
    assert _keys(raw, prefix) == {record_key}
    assert 0 < raw.pttl(record_key) <= 60_000


def test_a_complete_that_finds_no_record_and_no_waiter_writes_one_string_that_reads_the_same(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    job_id = backend.put("q", b"body", 5, 0, 30)
    backend.complete(_reserve(backend, "q"),
                     {"state": "done", "result": {"a": [1, "ü"]}, "error": None}, 60)
    record_key = backend._keys("q").record_keys(job_id)[0]
    assert raw.type(record_key) == b"string"
    assert 0 < raw.pttl(record_key) <= 60_000
    assert backend.read_record("q", job_id) == {"state": "done", "result": {"a": [1, "ü"]}}
    # The digest wait_record compares is the same as a hash's: nothing changed, it waits.
    started = time.monotonic()
    backend.wait_record("q", job_id, 0.2)
    assert time.monotonic() - started >= 0.18
    # A later write merges into it as into any record, and sets the expiry anew.
    backend.update_record("q", job_id, {"state": "gone", "extra": 1}, None)
    assert raw.type(record_key) == b"hash"
    assert raw.pttl(record_key) == -1
    assert backend.read_record("q", job_id) == {"state": "gone", "result": {"a": [1, "ü"]},
                                                "extra": 1}


def test_completes_fields_merge_like_any_write_though_kept_as_one_json_object(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    job_id = backend.put("q", b"body", 5, 0, 30)
    job = _reserve(backend, "q")
    backend.update_record("q", job_id, {"state": "reserved", "progress": 0.9,
                                        "error": {"type": "E"}, "note": "kept"}, None)
    backend.complete(job, {"state": "done", "result": {"a": 1}, "error": None, "note": None,
                           "progress": 1.0}, 60)
    record_key = backend._keys("q").record_keys(job_id)[0]
    assert raw.hkeys(record_key) == [PACKED_FIELD]  # what came before gave way
    assert backend.read_record("q", job_id) == {"state": "done", "result": {"a": 1},
                                                "progress": 1.0}
    # Writes after the complete win over it, a None removing what it wrote.
    backend.update_record("q", job_id, {"state": "gone", "progress": None, "extra": [1]}, 60)
    assert backend.read_record("q", job_id) == {"state": "gone", "result": {"a": 1},
                                                "extra": [1]}
    assert parse_record([PACKED_FIELD, b'{"a":1,"b":null}', b"b", b"2", b"a", b""]) == {"b": 2}


def test_complete_of_a_job_reserved_again_raises_and_writes_nothing(
    backend: RedisBackend,
) -> None:
    job_id = backend.put("q", b"body", 5, 0, 1)
    stale = _reserve(backend, "q")
    # Once the lease runs out the job is ready (job_info tells it) and handed on.
    wait_until(lambda: (i := backend.job_info("q", job_id)) is not None
               and i.state is JobState.READY, timeout=5)
    again = _reserve(backend, "q")
    assert again.id == job_id and again.attempts == 2
    with pytest.raises(ReservationLost):
        backend.complete(stale, {"state": "done", "result": "stale"}, 60)
    with pytest.raises(ReservationLost):
        backend.complete_and_reserve(stale, {"state": "done"}, 60, ["q"], 0)
    assert backend.read_record("q", job_id) is None
    info = backend.job_info("q", job_id)
    assert info is not None and info.state is JobState.RESERVED and info.attempts == 2
    backend.complete(again, {"state": "done", "result": "fresh"}, 60)
    assert backend.read_record("q", job_id) == {"state": "done", "result": "fresh"}
    with pytest.raises(ReservationLost):  # completed already: no second record write
        backend.complete(again, {"state": "done", "result": "twice"}, 60)
    assert backend.read_record("q", job_id) == {"state": "done", "result": "fresh"}


def test_complete_after_the_lease_ran_out_raises_and_the_job_comes_back(
    backend: RedisBackend,
) -> None:
    job_id = backend.put("q", b"body", 5, 0, 1)
    held = _reserve(backend, "q")
    wait_until(lambda: (i := backend.job_info("q", job_id)) is not None
               and i.state is JobState.READY, timeout=5)
    with pytest.raises(ReservationLost, match="ttr ran out"):
        backend.complete(held, {"state": "done"}, 60)
    assert backend.read_record("q", job_id) is None
    assert backend.stats("q").ready == 1


def test_complete_and_reserve_hands_out_the_next_job(backend: RedisBackend) -> None:
    first_id = backend.put("q", b"1", 1, 0, 30)
    second_id = backend.put("other", b"2", 1, 0, 30)
    first = _reserve(backend, "q")
    second = backend.complete_and_reserve(first, {"state": "done", "result": 1}, 60,
                                          ["q", "other"], 0)
    assert second is not None and second.id == second_id and second.queue == "other"
    assert backend.read_record("q", first_id) == {"state": "done", "result": 1}
    started = time.monotonic()
    assert backend.complete_and_reserve(second, {"result": 2}, 60, ["q", "other"], 0.3) is None
    assert time.monotonic() - started >= 0.25
    assert backend.read_record("other", second_id) == {"result": 2}
    assert backend.stats("q").total == backend.stats("other").total == 0


# -- job_info ---------------------------------------------------------------------------------


def test_job_info_tells_every_state_with_attempts_priority_body_and_due_in(
    backend: RedisBackend,
) -> None:
    ready_id = backend.put("q", b"ready", 7, 0, 30)
    delayed_id = backend.put("q", b"delayed", 3, 3600, 30)
    info = backend.job_info("q", ready_id)
    assert info is not None
    assert (info.queue, info.id, info.body, info.priority, info.state, info.attempts,
            info.due_in) == ("q", ready_id, b"ready", 7, JobState.READY, 0, None)
    info = backend.job_info("q", delayed_id)
    assert info is not None and info.state is JobState.DELAYED
    assert info.due_in is not None and 3590 < info.due_in <= 3600

    held = _reserve(backend, "q")
    info = backend.job_info("q", ready_id)
    assert info is not None and info.state is JobState.RESERVED and info.attempts == 1
    assert info.due_in is not None and 29 < info.due_in <= 30

    backend.bury(held, 9)
    info = backend.job_info("q", ready_id)
    assert info is not None and info.state is JobState.BURIED
    assert (info.priority, info.attempts, info.due_in) == (9, 1, None)

    assert backend.job_info("q", "no-such-id") is None
    assert backend.job_info("other-queue", ready_id) is None
    assert backend.kick("q", 1) == 1
    assert backend.stats("q").ready == 1  # job_info changed nothing on its own


def test_job_info_counts_a_delayed_job_whose_time_came_as_ready(backend: RedisBackend) -> None:
    job_id = backend.put("q", b"soon", 1, 0.05, 30)
    info = backend.job_info("q", job_id)
    assert info is not None and info.state is JobState.DELAYED
    wait_until(lambda: (i := backend.job_info("q", job_id)) is not None
               and i.state is JobState.READY and i.due_in is None, timeout=3)


# -- wait_record ------------------------------------------------------------------------------


def test_wait_record_is_woken_by_a_write_from_another_connection(
    make_backend: Callable[[], RedisBackend], raw: redis.Redis, prefix: str
) -> None:
    waiter, writer = make_backend(), make_backend()
    before = blocked_clients(raw)
    thread, out = _wait_in_thread(waiter, "q", "j", 10)
    wait_until(lambda: blocked_clients(raw) > before)
    written = time.monotonic()
    writer.update_record("q", "j", {"progress": 0.1}, 60)
    thread.join(5)
    assert "at" in out
    latency = out["at"] - written
    assert latency < 0.1, f"wait_record woke {latency * 1000:.1f} ms after the write"
    # The waiter's keys went with the wake-up: only the record is left.
    assert _keys(raw, prefix) == {QueueKeys.of(prefix, "q").record_keys("j")[0]}


def test_one_write_wakes_every_waiter(
    make_backend: Callable[[], RedisBackend], raw: redis.Redis
) -> None:
    writer = make_backend()
    before = blocked_clients(raw)
    waiting = [_wait_in_thread(make_backend(), "q", "j", 10) for _ in range(3)]
    wait_until(lambda: blocked_clients(raw) >= before + 3)
    written = time.monotonic()
    writer.update_record("q", "j", {"state": "done"}, 60)
    for thread, out in waiting:
        thread.join(5)
        assert "at" in out and out["at"] - written < 0.2


@pytest.mark.parametrize("ending", ["complete", "bury", "delete"])
def test_wait_record_is_woken_when_the_job_is_completed_buried_or_deleted(
    make_backend: Callable[[], RedisBackend], raw: redis.Redis, ending: str
) -> None:
    waiter, worker = make_backend(), make_backend()
    job_id = worker.put("q", b"body", 1, 0, 30)
    job = _reserve(worker, "q")
    before = blocked_clients(raw)
    thread, out = _wait_in_thread(waiter, "q", job_id, 10)
    wait_until(lambda: blocked_clients(raw) > before)
    ended = time.monotonic()
    if ending == "complete":
        worker.complete(job, {"state": "done"}, 60)
    elif ending == "bury":
        worker.bury(job, None)  # no record write: the state change alone wakes the waiter
    else:
        worker.delete(job)
    thread.join(5)
    assert "at" in out and out["at"] - ended < 0.1


def test_wait_record_returns_at_once_if_anything_changed_since_this_thread_read(
    make_backend: Callable[[], RedisBackend],
) -> None:
    """A write between a caller's read and its wait is not missed (the race result() runs)."""
    waiter, writer = make_backend(), make_backend()
    job_id = writer.put("q", b"body", 1, 0, 30)
    fields = {"s": "ünï\ncode", "n": [1.5, None], "gone": None, "long": "x" * 5000}
    writer.update_record("q", job_id, fields, 60)
    changes: list[Callable[[], None]] = [
        lambda: writer.update_record("q", job_id, {"progress": 0.5}, 60),
        lambda: writer.update_record("q", job_id, {"s": None}, 60),
        lambda: writer.bury(_reserve(writer, "q"), None),
    ]
    for change in changes:
        assert waiter.job_info("q", job_id) is not None
        waiter.read_record("q", job_id)
        started = time.monotonic()
        waiter.wait_record("q", job_id, 0.3)  # nothing changed: it waits its timeout
        assert time.monotonic() - started >= 0.25
        change()
        started = time.monotonic()
        waiter.wait_record("q", job_id, 10)
        assert time.monotonic() - started < 0.1


def test_wait_record_times_out_and_takes_its_registration_back(
    backend: RedisBackend, raw: redis.Redis, prefix: str
) -> None:
    assert backend.read_record("q", "j") is None
    started = time.monotonic()
    backend.wait_record("q", "j", 0.2)
    assert 0.18 <= time.monotonic() - started < 1.0
    assert _keys(raw, prefix) == set()
    # A later write finds no waiter to wake, and the next wait is not woken by a stale token.
    backend.update_record("q", "j", {"a": 1}, 60)
    backend.read_record("q", "j")
    started = time.monotonic()
    backend.wait_record("q", "j", 0.2)
    assert time.monotonic() - started >= 0.18


def test_the_python_and_lua_digests_of_a_record_agree(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    backend.update_record("q", "j", {"b": "ü", "a": [1], "": 0, "c": None}, 60)
    pairs = list(raw.hgetall(backend._keys("q").record_keys("j")[0]).items())
    assert record_digest([x for p in pairs for x in p]) == record_digest(
        [x for p in reversed(pairs) for x in p])  # order does not matter
    backend.read_record("q", "j")
    assert backend._last_seen("q", "j")[1] == record_digest([x for p in pairs for x in p])


# -- through kue: a worker and result() -------------------------------------------------------


def test_result_and_status_through_a_queue_and_a_worker(redis_url: str, prefix: str) -> None:
    url = f"{redis_url}?prefix={prefix}"
    queue = kue.connect(url, queue="jobs")
    worker_queue = kue.connect(url, queue="jobs")
    try:
        ok = queue.push(add.message(2, 3))
        bad = queue.push(fail.message())
        assert ok is not None and bad is not None
        status = ok.status()
        assert status is not None and status.state is kue.RecordState.READY
        worker = Worker(worker_queue.backend, ["jobs"], idle_timeout=0.2)
        thread = threading.Thread(target=worker.run, kwargs={"burst": True})
        thread.start()
        assert ok.result(10) == 5
        with pytest.raises(kue.JobFailed, match="no luck"):
            bad.result(10)
        thread.join(10)
        done = ok.status()
        assert done is not None and done.state is kue.RecordState.DONE and done.attempts == 1
        buried = bad.status()
        assert buried is not None and buried.state is kue.RecordState.BURIED
        assert buried.error is not None and buried.error["message"] == "no luck"
    finally:
        queue.close()
        worker_queue.close()


# -- on a cluster -----------------------------------------------------------------------------


def test_records_on_a_cluster_live_in_their_queue_slot(
    make_cluster_backend: Callable[[], RedisBackend], prefix: str
) -> None:
    backend = make_cluster_backend()
    cluster = backend.client
    assert isinstance(cluster, RedisCluster)
    a, b = queues_on_different_nodes(cluster, prefix, 2)
    keys = QueueKeys.of(prefix, a)
    assert {key_slot(k.encode()) for k in (*keys.job_keys, *keys.record_keys("x"))} == {
        key_slot(keys.ready.encode())}

    first_id = backend.put(a, b"a", 1, 0, 30)
    second_id = backend.put(b, b"b", 2, 0, 30)
    first = _reserve(backend, a)
    # Queues on two nodes: complete, then reserve, as two calls.
    second = backend.complete_and_reserve(first, {"state": "done", "result": "a"}, 60, [a, b], 0)
    assert second is not None and second.id == second_id
    assert backend.read_record(a, first_id) == {"state": "done", "result": "a"}
    info = backend.job_info(b, second_id)
    assert info is not None and info.state is JobState.RESERVED
    backend.complete(second, {"state": "done", "result": "b"}, 60)
    assert backend.read_record(b, second_id) == {"state": "done", "result": "b"}
    assert cluster_keys(cluster, prefix) == {
        QueueKeys.of(prefix, a).record_keys(first_id)[0],
        QueueKeys.of(prefix, b).record_keys(second_id)[0],
    }


def test_wait_record_on_a_cluster_is_woken_by_a_write(
    make_cluster_backend: Callable[[], RedisBackend], prefix: str
) -> None:
    waiter, writer = make_cluster_backend(), make_cluster_backend()
    cluster = writer.client
    assert isinstance(cluster, RedisCluster)
    job_id = writer.put("solo", b"body", 1, 0, 30)
    job = _reserve(writer, "solo")
    home = cluster.get_node_from_key(QueueKeys.of(prefix, "solo").ready)  # type: ignore[no-untyped-call]
    node = cluster.get_redis_connection(home)
    before = blocked_clients(node)
    thread, out = _wait_in_thread(waiter, "solo", job_id, 10)
    wait_until(lambda: blocked_clients(node) > before)
    ended = time.monotonic()
    writer.complete_and_reserve(job, {"state": "done", "result": 1}, 60, ["solo"], 0)
    thread.join(5)
    assert "at" in out and out["at"] - ended < 0.1
    assert waiter.read_record("solo", job_id) == {"state": "done", "result": 1}
