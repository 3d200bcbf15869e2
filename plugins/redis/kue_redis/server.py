"""The throwaway redis-server of tests and benchmarks, described once; kue_contract runs it.

Test-time only: imports kue_contract, which the runtime plugin never needs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from kue_contract.servers import ServerSpec, ServerUnavailable, free_port, serve

__all__ = ["SERVER", "local_cluster"]

#: redis-server on loopback with nothing saved, unless a test asks for persistence (durable).
#: The image is this machine's redis-server; ``nox -s images`` refuses another major.minor.
SERVER = ServerSpec(
    url="redis://{host}:{port}/0", binary="redis-server",
    args=("--port", "{port}", "--bind", "{host}", "--save", "", "--appendonly", "no",
          "--protected-mode", "no", "--dir", "{scratch}"),
    ready=(b"PING\r\n", b""),  # any reply: +PONG, or -NOAUTH under --requirepass
    image="localhost/kue-redis:7.0", container_port=6379,
    install_hint="Install Redis (Debian/Ubuntu: `apt-get install redis-server`; macOS: "
    "`brew install redis`).",
    # appendfsync always: an acknowledged write is on disk before a SIGKILL can lose it.
    durable=("--appendonly", "yes", "--appendfsync", "always"),
)


@contextmanager
def local_cluster(nodes: int = 3, timeout: float = 20.0) -> Iterator[str]:
    """A Redis Cluster of ``nodes`` primaries, local redis-servers; yields a ``?cluster`` URL.

    Each node gets an equal share of the 16384 slots, the first meets the others, and the block
    starts once every node reports ``cluster_state:ok``; the client learns the rest from the
    first node's URL.
    """
    import redis

    with ExitStack() as stack:
        servers = [stack.enter_context(serve(
            SERVER, "local", "--cluster-enabled", "yes", "--cluster-node-timeout", "5000",
            # The bus port is given, not left at port + 10000, which may be taken or too high.
            "--cluster-config-file", "nodes.conf", "--cluster-port", str(free_port()),
        )) for _ in range(nodes)]
        clients = [stack.enter_context(redis.Redis(port=s.port)) for s in servers]
        for i, client in enumerate(clients):
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * 16384 // nodes,
                                   (i + 1) * 16384 // nodes - 1)
        for server in servers[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", server.port,
                                       server.extra[-1])
        deadline = time.monotonic() + timeout
        while not all(_cluster_ok(client, nodes) for client in clients):
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"a Redis Cluster of {nodes} nodes did not reach "
                                        f"cluster_state:ok within {timeout} s")
            time.sleep(0.05)
        yield f"{servers[0].url}?cluster=true"


def _cluster_ok(client: Any, nodes: int) -> bool:
    info = client.cluster("INFO")  # redis-py parses CLUSTER INFO into a dict
    return bool(info["cluster_state"] == "ok" and info["cluster_known_nodes"] == str(nodes))
