"""One backend object shared by threads, and used again after fork()."""

from __future__ import annotations

import os
import threading
from collections import Counter

import greenstalk
import pytest

import kue
from kue_beanstalk.backend import BeanstalkBackend
from kue_contract.servers import LocalServer

JOBS = 500
THREADS = 8


def test_eight_threads_share_one_backend_and_each_job_is_reserved_once(
    backend: BeanstalkBackend, tube: str
) -> None:
    ids = backend.put_many(tube, [kue.PutItem(f"job {i}".encode()) for i in range(JOBS)])
    seen: list[tuple[str, bytes, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def consume() -> None:
        try:
            start.wait()
            while (job := backend.reserve([tube], 0)) is not None:
                # Each thread also puts and counts, so commands of all kinds interleave.
                backend.stats(tube)
                backend.delete(job)
                with lock:
                    seen.append((job.id, job.body, job.attempts))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consume) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    counts = Counter(job_id for job_id, _, _ in seen)
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}
    assert {attempts for _, _, attempts in seen} == {1}
    assert backend.stats(tube) == kue.QueueStats()


def test_threads_putting_at_once_lose_nothing(backend: BeanstalkBackend, tube: str) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def produce(n: int) -> None:
        for i in range(50):
            job_id = backend.put(tube, f"{n}-{i}".encode(), 0, 0, 60)
            with lock:
                ids.append(job_id)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(set(ids)) == THREADS * 50
    assert backend.stats(tube).ready == THREADS * 50


def test_a_reservation_made_in_one_thread_is_finished_in_another(
    backend: BeanstalkBackend, tube: str
) -> None:
    backend.put(tube, b"handed over", 0, 0, 60)
    got: list[kue.Reservation | None] = []
    t = threading.Thread(target=lambda: got.append(backend.reserve([tube], 2)))
    t.start()
    t.join(timeout=10)
    job = got[0]
    assert job is not None
    backend.touch(job)
    backend.release(job, 5, 0)
    again = backend.reserve([tube], 2)
    assert again is not None and again.id == job.id and again.priority == 5
    assert again.attempts == 2
    backend.delete(again)
    assert backend.stats(tube).total == 0
    # The ended thread's connection closed once its last reservation was finished.
    assert len(backend._pool._owners) == 1


def test_connections_of_ended_threads_are_closed(server: LocalServer, tube: str) -> None:
    backend = BeanstalkBackend(server.url)
    threads = [threading.Thread(target=backend.stats, args=(tube,)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    with greenstalk.Client(("127.0.0.1", server.port)) as raw:
        # this raw client and the backend's own connection in this thread
        assert raw.stats()["current-connections"] == 2
    backend.close()


def _in_child(check: object) -> int:
    """Run ``check`` in a forked child; return its exit status (0: passed)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            assert callable(check)
            check()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_opens_its_own_connection(backend: BeanstalkBackend, tube: str) -> None:
    backend.put(tube, b"from parent", 0, 0, 60)
    held = backend.reserve([tube], 2)
    assert held is not None
    with backend._pool.connection() as conn:
        parent_token = conn.token

    def child() -> None:
        # The parent's reservation belongs to the parent's connection.
        try:
            backend.delete(held)
        except kue.ReservationLost:
            pass
        else:
            raise AssertionError("a child must not act over its parent's connection")
        backend.put(tube, b"from child", 0, 0, 60)
        job = backend.reserve([tube], 2)
        assert job is not None and job.body == b"from child"
        backend.delete(job)
        with backend._pool.connection() as conn:
            assert conn.token != parent_token and conn.pid == os.getpid()

    assert _in_child(child) == 0
    # The parent's connection was never written on by the child: still in step, still held.
    backend.touch(held)
    assert backend.stats(tube) == kue.QueueStats(reserved=1)
    backend.delete(held)
    with backend._pool.connection() as conn:
        assert conn.token == parent_token
