from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from kue.backend import Reservation
from kue.errors import ReservationLost
from kue_redis.backend import RedisBackend

from redis_support import blocked_clients, reserve_in_thread, wait_until


def test_a_put_from_another_connection_wakes_a_blocked_reserve_at_once(
    make_backend: Callable[[], RedisBackend], raw: redis.Redis
) -> None:
    consumer, producer = make_backend(), make_backend()
    before = blocked_clients(raw)
    thread, out = reserve_in_thread(consumer, ["idle", "q"], 10)
    wait_until(lambda: blocked_clients(raw) > before)
    put_at = time.monotonic()
    job_id = producer.put("q", b"wake up", 1, 0, 5)
    thread.join(5)
    assert "error" not in out, out.get("error")
    job = out["job"]
    assert isinstance(job, Reservation) and job.id == job_id
    latency = float(out["at"]) - put_at  # type: ignore[arg-type]
    assert latency < 0.1, f"reserve woke {latency * 1000:.1f} ms after the put"
    consumer.delete(job)


def test_a_blocked_reserve_wakes_for_a_delayed_job_put_later_with_an_earlier_due_time(
    make_backend: Callable[[], RedisBackend], raw: redis.Redis
) -> None:
    consumer, producer = make_backend(), make_backend()
    before = blocked_clients(raw)
    thread, out = reserve_in_thread(consumer, ["q"], 8)
    wait_until(lambda: blocked_clients(raw) > before)
    put_at = time.monotonic()
    producer.put("q", b"soon", 1, 0.5, 5)
    thread.join(8)
    job = out["job"]
    assert isinstance(job, Reservation)
    waited = float(out["at"]) - put_at  # type: ignore[arg-type]
    # Redis checks blocking timeouts once per cron tick (100 ms at the default hz 10).
    assert 0.45 <= waited < 0.8
    consumer.delete(job)


def test_a_blocked_reserve_wakes_when_a_lease_runs_out(
    make_backend: Callable[[], RedisBackend],
) -> None:
    first_consumer, second_consumer = make_backend(), make_backend()
    first_consumer.put("q", b"slow", 1, 0, 1)
    held = first_consumer.reserve(["q"], 0)
    assert held is not None
    started = time.monotonic()
    again = second_consumer.reserve(["q"], 5)
    waited = time.monotonic() - started
    assert again is not None and again.id == held.id and again.attempts == 2
    assert 0.8 <= waited < 1.4
    second_consumer.delete(again)


def test_a_connection_dropped_during_a_blocking_reserve_is_retried(
    make_backend: Callable[[], RedisBackend], raw: redis.Redis
) -> None:
    consumer, producer = make_backend(), make_backend()
    before = blocked_clients(raw)
    thread, out = reserve_in_thread(consumer, ["q"], 10)
    wait_until(lambda: blocked_clients(raw) > before)
    killed = raw.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    wait_until(lambda: blocked_clients(raw) > before)  # blocked again on a new connection
    job_id = producer.put("q", b"after the drop", 1, 0, 5)
    thread.join(5)
    assert "error" not in out, out.get("error")
    job = out["job"]
    assert isinstance(job, Reservation) and job.id == job_id
    consumer.delete(job)


def test_reserve_with_timeout_returns_none_in_time(backend: RedisBackend) -> None:
    started = time.monotonic()
    assert backend.reserve(["empty"], 0.3) is None
    assert 0.25 <= time.monotonic() - started < 0.8
    started = time.monotonic()
    assert backend.reserve(["empty"], 0) is None
    assert time.monotonic() - started < 0.1


def test_delete_and_reserve_deletes_then_hands_out_the_next_job(backend: RedisBackend) -> None:
    assert backend.capabilities.delete_and_reserve is True
    first_id = backend.put("q", b"1", 1, 0, 5)
    second_id = backend.put("other", b"2", 1, 0, 5)
    first = backend.reserve(["q"], 0)
    assert first is not None and first.id == first_id
    second = backend.delete_and_reserve(first, ["q", "other"], 0)
    assert second is not None and second.id == second_id
    with pytest.raises(ReservationLost):
        backend.delete_and_reserve(first, ["q"], 0)
    assert backend.stats("other").reserved == 1
    started = time.monotonic()
    assert backend.delete_and_reserve(second, ["q", "other"], 0.3) is None
    assert time.monotonic() - started >= 0.25
    assert backend.stats("q").total == backend.stats("other").total == 0
