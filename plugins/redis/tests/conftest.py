"""A throwaway redis-server for the plugin's own tests (helpers: redis_support.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from kue_contract.plugin import plugin_fixtures
from kue_redis.backend import RedisBackend
from kue_redis.server import local_cluster

# The test modules import redis_support as a top-level module.
sys.path.insert(0, str(Path(__file__).parent))

#: ``prefix`` is a key prefix of the test's own, so keyspace checks see only its keys.
redis_url, prefix, url, make_backend, backend = plugin_fixtures("redis", "redis_url", "prefix")


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
