"""A throwaway PostgreSQL cluster for the plugin's own tests, and helpers to reach it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

import kue
from kue.plugins import new_plugin_manager
from kue.worker import Worker
from kue_contract.servers import LocalServer, serve
from kue_postgres.backend import PostgresBackend
from kue_postgres.server import SERVER


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with serve(SERVER, "local") as server:
        yield server.url


@pytest.fixture
def schema() -> str:
    """A schema of this test's own, so its tables hold only its jobs."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def url(pg_url: str, schema: str) -> str:
    return f"{pg_url}?schema={schema}"


@pytest.fixture
def make_backend(url: str) -> Iterator[Callable[..., PostgresBackend]]:
    made: list[PostgresBackend] = []

    def make(at: str | None = None) -> PostgresBackend:
        backend = PostgresBackend(at or url)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def backend(make_backend: Callable[..., PostgresBackend]) -> PostgresBackend:
    return make_backend()


@pytest.fixture
def queue(backend: PostgresBackend, url: str) -> kue.Queue:
    return kue.Queue(backend, f"q-{uuid.uuid4().hex[:8]}", url=url)


@pytest.fixture
def durable_server() -> Iterator[LocalServer]:
    """A cluster of this test's own with fsync on, to kill and start again."""
    with LocalServer(SERVER, *SERVER.durable) as server:
        yield server


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


@pytest.fixture
def ledger() -> Ledger:
    LEDGER.runs.clear()
    return LEDGER


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
