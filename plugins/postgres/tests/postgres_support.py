"""Helpers of the PostgreSQL plugin's tests (a module of its own name: one pytest run holds
every plugin's tests, so a bare ``conftest`` import would be ambiguous)."""

from __future__ import annotations

import threading
from typing import Any

import psycopg

import kue
from kue.plugins import new_plugin_manager
from kue.worker import Worker
from kue_postgres.backend import PostgresBackend

__all__ = ["LEDGER", "Ledger", "count_round_trips", "raw", "record", "start_workers",
           "stop_workers"]


def count_round_trips(backend: PostgresBackend) -> list[int]:
    """Count the backend's round trips from now on (its ``_run`` calls): ``counter[0]``."""
    counter = [0]
    original = backend._run

    def counted(op: Any, **kw: Any) -> Any:
        counter[0] += 1
        return original(op, **kw)

    backend._run = counted  # type: ignore[method-assign]
    return counter


class Ledger:
    """Which job keys ran, how often, from the test jobs below (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[str, int] = {}

    def add(self, key: str) -> None:
        with self.lock:
            self.runs[key] = self.runs.get(key, 0) + 1

    def done(self) -> set[str]:
        with self.lock:
            return set(self.runs)


LEDGER = Ledger()


@kue.job(name="kue_postgres_tests.record", max_attempts=5)
def record(key: str) -> str:
    """Notes that it ran, in the ledger."""
    LEDGER.add(key)
    return key


def start_workers(backend: PostgresBackend, queue: str, n: int) -> list[tuple[Worker,
                                                                             threading.Thread]]:
    """``n`` in-process workers on ``queue``, each in a thread of its own."""
    started = []
    for i in range(n):
        worker = Worker(backend, [queue], name=f"w{i}", idle_timeout=1.0,
                        plugin_manager=new_plugin_manager(load_entry_points=False))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread))
    return started


def stop_workers(workers: list[tuple[Worker, threading.Thread]]) -> None:
    for worker, _ in workers:
        worker.stop()
    for _, thread in workers:
        thread.join(30)
        assert not thread.is_alive(), "a worker did not stop"


def raw(url: str) -> psycopg.Connection[Any]:
    """A plain psycopg connection to the test database (the URL without kue's options)."""
    return psycopg.connect(url.split("?")[0], autocommit=True)
