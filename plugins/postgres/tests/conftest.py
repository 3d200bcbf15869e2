"""A throwaway PostgreSQL cluster for the plugin's own tests, and helpers to reach it."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kue
from kue_contract.servers import LocalServer, serve
from kue_postgres.backend import PostgresBackend
from kue_postgres.server import SERVER

# The test modules import their helpers from postgres_support, beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from postgres_support import LEDGER, Ledger


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


@pytest.fixture
def ledger() -> Ledger:
    LEDGER.runs.clear()
    return LEDGER
