"""The backend on a real three-node Redis Cluster (three local redis-server processes).

The whole contract suite also runs on such a cluster (``nox -s contract_cluster``); these
tests check what only a cluster shows: which slot each queue's keys land in, blocking across
nodes, the keyspace on every node, and the errors of a URL that does not match the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from kue.backend import PutItem, Reservation
from kue.errors import BackendUnavailable, ConfigError
from kue_contract.servers import free_port  # type: ignore[import-untyped, unused-ignore]
from kue_redis.backend import RedisBackend
from kue_redis.keys import QueueKeys

from redis_support import cluster_keys, queues_on_different_nodes, reserve_in_thread, wait_until


def _blocked_anywhere(client: RedisCluster) -> int:
    blocked = 0
    for node in client.get_primaries():  # type: ignore[no-untyped-call]
        blocked += int(client.get_redis_connection(node).info("clients")["blocked_clients"])
    return blocked


def test_queues_on_three_nodes_keep_priority_and_put_order_across_them(
    make_cluster_backend: Callable[[], RedisBackend], prefix: str
) -> None:
    backend = make_cluster_backend()
    cluster = backend.client
    assert isinstance(cluster, RedisCluster)
    a, b, c = queues_on_different_nodes(cluster, prefix, 3)
    backend.put(a, b"a-late", 20, 0, 30)
    backend.put(b, b"b-urgent", 1, 0, 30)
    backend.put(a, b"a-mid", 10, 0, 30)
    backend.put(c, b"c-mid", 10, 0, 30)
    backend.put_many(b, [PutItem(b"b-mid", priority=10), PutItem(b"b-last", priority=20)])
    got = []
    while (job := backend.reserve([a, b, c], 0)) is not None:
        got.append(job.body)
        backend.delete(job)
    assert got == [b"b-urgent", b"a-mid", b"c-mid", b"b-mid", b"a-late", b"b-last"]
    assert cluster_keys(cluster, prefix) == set()


def test_a_slot_option_puts_every_queue_in_one_slot_and_reserves_in_one_script(
    make_cluster_backend: Callable[[], RedisBackend], prefix: str
) -> None:
    plain = make_cluster_backend()
    backend = RedisBackend(f"{plain.settings.url}&slot=shop")
    try:
        names = ["mail", "sms"]
        keys = [k for n in names for k in QueueKeys.of(prefix, n, "shop").job_keys]
        slots = {key_slot(k.encode()) for k in keys}
        assert len(slots) == 1
        assert len({key_slot(QueueKeys.of(prefix, n).ready.encode()) for n in names}) == 2
        backend.put(names[1], b"sms", 5, 0, 30)
        backend.put(names[0], b"mail", 5, 0, 30)
        plain.put("mail", b"not in the slot", 5, 0, 30)
        assert backend.list_queues() == names
        assert plain.stats("mail").ready == 1 and backend.stats("mail").ready == 1
        first = backend.reserve(names, 0)
        assert first is not None and first.body == b"sms"
        second = backend.delete_and_reserve(first, names, 0)
        assert second is not None and second.body == b"mail" and second.queue == names[0]
        backend.delete(second)
        assert backend.list_queues() == []
        only = plain.reserve(["mail"], 0)
        assert only is not None and only.body == b"not in the slot"
        plain.delete(only)
        assert cluster_keys(backend.client, prefix) == set()  # type: ignore[arg-type]
    finally:
        backend.close()


@pytest.mark.parametrize("spread", [False, True], ids=["one queue", "queues on two nodes"])
def test_a_put_wakes_a_reserve_blocked_on_the_cluster(
    make_cluster_backend: Callable[[], RedisBackend], prefix: str, spread: bool
) -> None:
    consumer, producer = make_cluster_backend(), make_cluster_backend()
    cluster = producer.client
    assert isinstance(cluster, RedisCluster)
    queues = queues_on_different_nodes(cluster, prefix, 2) if spread else ["solo"]
    thread, out = reserve_in_thread(consumer, queues, 10)
    wait_until(lambda: _blocked_anywhere(cluster) > 0)  # the reserve blocks on a node
    put_at = time.monotonic()
    job_id = producer.put(queues[-1], b"wake up", 1, 0, 30)
    thread.join(5)
    assert "error" not in out, out.get("error")
    job = out["job"]
    assert isinstance(job, Reservation) and job.id == job_id
    latency = float(out["at"]) - put_at  # type: ignore[arg-type]
    # One queue blocks in BLPOP on its node; queues on two nodes take turns of 50 ms each.
    assert latency < (0.25 if spread else 0.1), f"woke {latency * 1000:.1f} ms after the put"
    consumer.delete(job)


def test_a_delayed_job_on_another_node_wakes_a_spread_reserve_in_time(
    make_cluster_backend: Callable[[], RedisBackend], prefix: str
) -> None:
    backend = make_cluster_backend()
    cluster = backend.client
    assert isinstance(cluster, RedisCluster)
    a, b = queues_on_different_nodes(cluster, prefix, 2)
    backend.put(b, b"later", 1, 0.3, 30)
    started = time.monotonic()
    job = backend.reserve([a, b], 5)
    assert job is not None and job.body == b"later"
    assert 0.25 < time.monotonic() - started < 2
    backend.delete(job)


def test_a_plain_url_to_a_cluster_node_says_to_add_cluster_true(
    cluster_url: str, prefix: str
) -> None:
    plain = cluster_url.replace("?cluster=true", f"?prefix={prefix}")
    backend = RedisBackend(plain)
    node = redis.Redis.from_url(plain.split("?")[0])
    port = node.connection_pool.connection_kwargs["port"]
    slots = node.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
    served = [range(int(r[0]), int(r[1]) + 1) for r in slots if int(r[2][1]) == port]
    node.close()
    # A queue whose keys another node serves.
    name = next(n for n in (f"q{i}" for i in range(1000))
                if not any(key_slot(QueueKeys.of(prefix, n).ready.encode()) in r for r in served))
    with pytest.raises(ConfigError, match="add cluster=true to the URL"):
        backend.put(name, b"x", 1, 0, 5)
    backend.close()


def test_cluster_urls_name_database_0_only() -> None:
    with pytest.raises(ConfigError, match="only database 0"):
        RedisBackend("redis://127.0.0.1:7000/2?cluster=true")
    with pytest.raises(ConfigError, match="cluster='maybe'"):
        RedisBackend("redis://127.0.0.1:7000/0?cluster=maybe")


def test_an_unreachable_cluster_raises_backend_unavailable_with_the_password_masked() -> None:
    backend = RedisBackend(f"redis://:hunter2@127.0.0.1:{free_port()}/0?cluster=true&retries=0")
    with pytest.raises(BackendUnavailable) as info:
        backend.put("q", b"x", 1, 0, 5)
    assert "hunter2" not in str(info.value) and ":***@127.0.0.1:" in str(info.value)


def test_a_spread_reserve_rides_out_its_connections_being_dropped(
    make_cluster_backend: Callable[[], RedisBackend], prefix: str
) -> None:
    consumer, producer = make_cluster_backend(), make_cluster_backend()
    cluster = producer.client
    assert isinstance(cluster, RedisCluster)
    queues = queues_on_different_nodes(cluster, prefix, 2)
    thread, out = reserve_in_thread(consumer, queues, 10)
    wait_until(lambda: _blocked_anywhere(cluster) > 0)  # the reserve blocks on a node
    killed = 0
    for node in cluster.get_primaries():  # type: ignore[no-untyped-call]
        conn = cluster.get_redis_connection(node)
        killed += int(conn.client_kill_filter(_type="normal", skipme=True))
    assert killed >= 1, "no connection was dropped"
    job_id = producer.put(queues[0], b"after the drop", 1, 0, 30)
    thread.join(10)
    assert "error" not in out, out.get("error")
    job = out["job"]
    assert isinstance(job, Reservation) and job.id == job_id
    consumer.delete(job)
