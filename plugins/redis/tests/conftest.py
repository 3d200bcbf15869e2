"""A throwaway redis-server for the plugin's own tests, and helpers to reach it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from kue_contract.servers import serve
from kue_redis.backend import RedisBackend
from kue_redis.keys import QueueKeys
from kue_redis.server import SERVER, local_cluster


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


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it holds, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.002)


def blocked_clients(client: redis.Redis) -> int:
    """How many clients the server holds in a blocking command right now."""
    return int(client.info("clients")["blocked_clients"])


def reserve_in_thread(
    backend: RedisBackend, queues: list[str], timeout: float
) -> tuple[threading.Thread, dict[str, object]]:
    """Run ``backend.reserve(queues, timeout)`` in a thread of its own.

    The returned dict gets the reservation under "job", an exception under "error", and the
    moment the call returned under "at".
    """
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["job"] = backend.reserve(queues, timeout)
        except BaseException as exc:  # handed to the test thread
            out["error"] = exc
        out["at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def node_of(client: RedisCluster, key: str) -> str:
    """The name of the node that serves ``key``."""
    node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
    assert node is not None
    return str(node.name)


def queues_on_different_nodes(client: RedisCluster, prefix: str, n: int) -> list[str]:
    """n queue names whose keys live on n different nodes."""
    names: dict[str, str] = {}
    while len(names) < n:
        name = f"q{uuid.uuid4().hex[:6]}"
        names.setdefault(node_of(client, QueueKeys.of(prefix, name).ready), name)
    return list(names.values())


def cluster_keys(client: RedisCluster, prefix: str) -> set[str]:
    """Every key of ``prefix`` on every primary of the cluster."""
    found: set[str] = set()
    for node in client.get_primaries():  # type: ignore[no-untyped-call]
        conn = client.get_redis_connection(node)
        found |= {k.decode() for k in conn.scan_iter(match=f"{prefix}:*")}
    return found
