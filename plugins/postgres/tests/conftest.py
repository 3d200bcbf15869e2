"""A throwaway PostgreSQL cluster for the plugin's own tests, and helpers to reach it."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import kue
from kue_contract.plugin import plugin_fixtures
from kue_contract.servers import LocalServer
from kue_postgres.backend import PostgresBackend
from kue_postgres.server import SERVER

# The test modules import their helpers from postgres_support, beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from postgres_support import LEDGER, Ledger

#: ``schema`` is a schema of the test's own, so its tables hold only its jobs.
pg_url, schema, url, make_backend, backend = plugin_fixtures("postgres", "pg_url", "schema")


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
