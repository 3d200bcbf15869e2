"""A throwaway redis-server for the plugin's own tests (helpers: redis_support.py)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from kue_contract.servers import serve
from kue_redis.backend import RedisBackend
from kue_redis.server import SERVER, local_cluster

# The test modules import redis_support as a top-level module.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with serve(SERVER, "local") as server:
        yield server.url


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so keyspace checks see only its keys."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_backend(redis_url: str, prefix: str) -> Iterator[Callable[[], RedisBackend]]:
    made: list[RedisBackend] = []

    def make() -> RedisBackend:
        backend = RedisBackend(f"{redis_url}?prefix={prefix}")
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def backend(make_backend: Callable[[], RedisBackend]) -> RedisBackend:
    return make_backend()


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    """A three-node Redis Cluster of local redis-server processes, for the whole session."""
    with local_cluster() as url:
        yield url


@pytest.fixture
def make_cluster_backend(cluster_url: str, prefix: str) -> Iterator[Callable[[], RedisBackend]]:
    made: list[RedisBackend] = []

    def make() -> RedisBackend:
        backend = RedisBackend(f"{cluster_url}&prefix={prefix}")
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
