"""FAULTS F3 and F4 on PostgreSQL: the server killed mid-run, connections reset under workers.

Workers here are in-process threads on one backend, so every reconnect goes through the
backend's pool and the shared backoff; ``tests/test_restart.py`` runs the same kill with
``kue-worker -c 4`` processes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from postgres_support import Ledger, raw, record, start_workers, stop_workers

import kue
from kue_contract.servers import LocalServer
from kue_postgres.backend import PostgresBackend

JOBS = 3000
WORKERS = 3


def _fill(url: str, n: int) -> tuple[kue.Queue, set[str]]:
    queue = kue.connect(url, queue=f"f-{uuid.uuid4().hex[:8]}")
    keys = {f"k{i}" for i in range(n)}
    with queue.batch():
        for key in sorted(keys):
            queue.push(record.message(key), ttr=5)
    return queue, keys


def _wait(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.02)


def test_kill_9_of_the_server_mid_run_and_a_restart_lose_nothing(
    durable_server: LocalServer, ledger: Ledger
) -> None:
    queue, keys = _fill(durable_server.url, JOBS)
    backend = PostgresBackend(durable_server.url)
    workers = start_workers(backend, queue.name, WORKERS)
    try:
        # Killed early: the workers run about 12,000 of these jobs a second, so waiting for
        # half of them could see them all done before the kill, and no work left to resume.
        _wait(lambda: len(ledger.done()) >= JOBS // 10, 60, "a tenth of the jobs")
        durable_server.kill()
        killed = time.monotonic()
        assert len(ledger.done()) < JOBS // 2, "the jobs were done before the server was killed"
        time.sleep(0.5)
        durable_server.start()
        seen_at_restart = len(ledger.done())
        _wait(lambda: len(ledger.done()) > seen_at_restart, 10, "work after the restart")
        back_after = time.monotonic() - killed
        _wait(lambda: ledger.done() == keys, 60, "every job")
        assert all(thread.is_alive() for _, thread in workers), "a worker died"
    finally:
        stop_workers(workers)
    assert keys - ledger.done() == set(), "lost"
    assert ledger.done() - keys == set(), "unexpected"
    duplicated = {k for k, n in ledger.runs.items() if n > 1}
    assert len(duplicated) <= WORKERS, f"only the jobs in flight may run twice: {duplicated}"
    assert back_after < 5.5, f"workers took {back_after:.1f} s to get going again"
    _wait(lambda: queue.stats().total == 0, 10, "an empty queue")
    backend.close()
    queue.close()


def test_connections_reset_under_running_workers_reconnect_and_lose_nothing(
    pg_url: str, ledger: Ledger
) -> None:
    url = f"{pg_url}?schema=reset{uuid.uuid4().hex[:6]}"
    queue, keys = _fill(url, 2000)
    backend = PostgresBackend(url)
    workers = start_workers(backend, queue.name, WORKERS)
    resets = 0
    stop = threading.Event()
    try:
        with raw(pg_url) as admin:
            while ledger.done() != keys and resets < 100:
                # What a proxy's RST does to each client: the server drops every connection
                # but this one (the workers', their listener's and the pool's idle ones).
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                    "backend_type = 'client backend' AND pid <> pg_backend_pid()"
                ).fetchone()
                resets += 1 if killed and killed[0] else 0
                time.sleep(0.05)
        _wait(lambda: ledger.done() == keys, 60, "every job")
        assert all(thread.is_alive() for _, thread in workers), "a worker died"
    finally:
        stop.set()
        stop_workers(workers)
    assert resets >= 10, f"only {resets} resets happened during the run"
    assert ledger.done() == keys
    duplicated = {k for k, n in ledger.runs.items() if n > 1}
    assert len(duplicated) <= resets * WORKERS
    _wait(lambda: queue.stats().total == 0, 20, "an empty queue")
    # The backend still works after all that, on fresh connections.
    assert backend.reserve([queue.name], 0) is None
    backend.close()
    queue.close()
