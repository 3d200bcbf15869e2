"""``delete_and_reserve``: the worker's one-round-trip call, and reserve's pipelined stats-job."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import kue
from kue.backend import FusedBackend
from kue_beanstalk.backend import BeanstalkBackend
from kue_contract.servers import LocalServer


def _wait_for(probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        time.sleep(0.02)


def test_the_backend_offers_the_fused_call(backend: BeanstalkBackend) -> None:
    assert backend.capabilities.delete_and_reserve is True
    assert isinstance(backend, FusedBackend)


def test_a_ready_job_costs_one_round_trip(
    backend: BeanstalkBackend, tube: str, writes: list[str]
) -> None:
    ids = [backend.put(tube, f"job {i}".encode(), 100 + i, 0, 30 + i) for i in range(4)]
    job = backend.reserve([tube], 0)
    assert job is not None and job.id == ids[0]
    for i in range(1, 4):
        writes.clear()
        nxt = backend.delete_and_reserve(job, [tube], 0)
        assert writes == ["reserve"], "delete, reserve and stats-job go in one write"
        assert nxt is not None
        assert (nxt.id, nxt.body, nxt.queue) == (ids[i], f"job {i}".encode(), tube)
        assert (nxt.priority, nxt.ttr, nxt.attempts) == (100 + i, 30 + i, 1)
        job = nxt
    writes.clear()
    assert backend.delete_and_reserve(job, [tube], 0) is None
    assert writes == ["reserve"]
    assert backend.stats(tube).total == 0


def test_a_drain_of_reserve_and_delete_costs_two_round_trips(
    backend: BeanstalkBackend, tube: str, writes: list[str]
) -> None:
    for _ in range(3):
        backend.put(tube, b"x", 0, 0, 60)
    first = backend.reserve([tube], 0)
    assert first is not None
    backend.delete(first)
    for _ in range(2):
        writes.clear()
        job = backend.reserve([tube], 0)
        assert job is not None and job.attempts == 1
        backend.delete(job)
        # The stats-job of the id guessed next rides along with the reserve.
        assert writes == ["reserve", "delete"]


def test_a_wrong_guess_still_gives_the_right_reservation(
    backend: BeanstalkBackend, tube: str
) -> None:
    other = f"{tube}-other"
    backend.put(tube, b"a", 5, 0, 60)
    backend.put(other, b"in between", 0, 0, 60)
    backend.put(tube, b"b", 7, 0, 60)
    a = backend.reserve([tube], 0)
    assert a is not None
    b = backend.delete_and_reserve(a, [tube], 0)  # guesses a's id + 1: the other tube's job
    assert b is not None and (b.body, b.priority, b.queue, b.attempts) == (b"b", 7, tube, 1)
    backend.delete(b)


def test_attempts_count_a_ttr_expiry_and_a_release(
    backend: BeanstalkBackend, tube: str
) -> None:
    backend.put(tube, b"first", 0, 0, 60)
    backend.put(tube, b"again", 1, 0, 2)
    backend.put(tube, b"last", 2, 0, 60)
    first = backend.reserve([tube], 0)
    assert first is not None
    again = backend.delete_and_reserve(first, [tube], 0)
    assert again is not None and again.body == b"again" and again.attempts == 1
    _wait_for(lambda: backend.stats(tube).ready == 2, timeout=5)  # its ttr ran out
    redelivered = backend.reserve([tube], 0)
    assert redelivered is not None and redelivered.id == again.id
    assert redelivered.attempts == 2
    backend.release(redelivered, 1, 0)
    third = backend.reserve([tube], 0)
    assert third is not None and third.id == again.id and third.attempts == 3
    last = backend.delete_and_reserve(third, [tube], 0)
    assert last is not None and last.body == b"last" and last.attempts == 1
    backend.delete(last)


def test_a_lost_reservation_releases_the_job_the_pipeline_took_and_raises(
    server: LocalServer, backend: BeanstalkBackend, tube: str
) -> None:
    backend.put(tube, b"expires", 0, 0, 2)
    backend.put(tube, b"next", 77, 0, 60)
    job = backend.reserve([tube], 0)
    assert job is not None
    other = BeanstalkBackend(server.url)
    try:
        # Its ttr runs out and another consumer takes it, so beanstalkd refuses the delete.
        _wait_for(lambda: backend.stats(tube).ready == 2, timeout=5)
        taken = other.reserve([tube], 0)
        assert taken is not None and taken.id == job.id
        # Pretend the deadline kept for it is far off, so no touch goes first and the delete
        # is sent in the pipeline with the reserve, which then takes the next job.
        conn = backend._pool.owner(job.receipt.rpartition(":")[0])
        assert conn is not None
        conn.held[int(job.id)].deadline = time.monotonic() + 600
        with pytest.raises(kue.ReservationLost):
            backend.delete_and_reserve(job, [tube], 0)
        stats = backend.stats(tube)
        assert (stats.ready, stats.reserved) == (1, 1), "the next job went back to ready"
        seen = backend.peek(tube, kue.JobState.READY)
        assert seen is not None and (seen.body, seen.priority) == (b"next", 77)
        other.delete(taken)
    finally:
        other.close()


def test_a_lost_reservation_near_its_deadline_reserves_nothing(
    backend: BeanstalkBackend, tube: str, writes: list[str]
) -> None:
    backend.put(tube, b"expires", 0, 0, 2)
    backend.put(tube, b"next", 0, 0, 60)
    job = backend.reserve([tube], 0)
    assert job is not None
    _wait_for(lambda: backend.stats(tube).ready == 2, timeout=5)
    writes.clear()
    with pytest.raises(kue.ReservationLost):
        backend.delete_and_reserve(job, [tube], 0)
    assert "reserve" not in writes, "the failed touch stops it before anything is reserved"
    assert backend.stats(tube).ready == 2


def test_the_fused_call_works_across_several_tubes(
    backend: BeanstalkBackend, tube: str
) -> None:
    a, b = f"{tube}-a", f"{tube}-b"
    backend.put(a, b"a1", 1, 0, 60)
    backend.put(b, b"b1", 5, 0, 60)
    backend.put(a, b"a2", 3, 0, 60)
    backend.put("default", b"not watched", 0, 0, 60)
    first = backend.reserve([a], 0)
    assert first is not None and first.body == b"a1"
    # The watch list changes with the queues asked for, then beanstalkd's order holds across
    # tubes: lowest priority first.
    second = backend.delete_and_reserve(first, [a, b], 0)
    assert second is not None and (second.body, second.queue) == (b"a2", a)
    third = backend.delete_and_reserve(second, [a, b], 0)
    assert third is not None and (third.body, third.queue) == (b"b1", b)
    assert backend.delete_and_reserve(third, [a, b], 0) is None
    assert backend.stats(a).total == backend.stats(b).total == 0
    assert backend.stats("default").ready == 1


def test_with_a_timeout_it_waits_for_a_job_like_reserve(
    backend: BeanstalkBackend, tube: str
) -> None:
    backend.put(tube, b"only", 0, 0, 60)
    job = backend.reserve([tube], 0)
    assert job is not None
    started = time.monotonic()
    assert backend.delete_and_reserve(job, [tube], 0.3) is None
    assert 0.3 <= time.monotonic() - started < 2.5
    assert backend.stats(tube).total == 0


def test_the_worker_runs_jobs_through_the_fused_call(
    server: LocalServer, tube: str, writes: list[str]
) -> None:
    from kue.worker import Worker

    ran: list[int] = []

    @kue.job(queue=tube, name=f"record-{tube}")
    def record(n: int) -> None:
        ran.append(n)

    queue = kue.connect(server.url, queue=tube)
    with queue.batch():
        for i in range(5):
            queue.push(record.message(i))
    writes.clear()
    stats = Worker(queue.backend, [tube]).run(burst=True)
    assert ran == [0, 1, 2, 3, 4] and stats.succeeded == 5
    # One reserve to start, then one fused write per job (the first guess is a miss).
    assert writes.count("delete") == 0
    assert queue.stats().total == 0
    queue.close()
