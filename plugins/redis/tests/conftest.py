"""A throwaway redis-server for the plugin's own tests, and helpers to reach it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from kue_redis.backend import RedisBackend
from kue_redis.server import local_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with local_server() as url:
        yield url


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
