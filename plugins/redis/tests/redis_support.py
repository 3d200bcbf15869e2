"""Helpers of kue_redis's tests: polls with a deadline, blocked clients, cluster placement.

A module of its own, not conftest.py, so that one pytest run with ``--import-mode=importlib``
can hold every test directory.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest
import redis
from redis.cluster import RedisCluster

from kue_redis.backend import RedisBackend
from kue_redis.keys import QueueKeys

__all__ = ["blocked_clients", "cluster_keys", "node_of", "queues_on_different_nodes",
           "reserve_in_thread", "wait_until"]


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
