"""Throwaway Redis servers for tests and benchmarks: a local redis-server or a container.

Test-time only: :func:`contract_server` imports kue_contract, which the runtime plugin never
needs.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from types import ModuleType
from typing import cast

__all__ = [
    "CONTAINER_ARGS",
    "CONTAINER_IMAGE",
    "CONTAINER_PORT",
    "INSTALL_HINT",
    "container_ready",
    "container_server",
    "contract_server",
    "local_cluster",
    "local_server",
    "server_args",
]

#: The image ``nox -s images`` builds (containers/build_images.py), tagged with the server's
#: major.minor version; the builder refuses a redis-server of another version.
CONTAINER_IMAGE = "localhost/kue-redis:7.0"
#: The port redis-server listens on inside the container.
CONTAINER_PORT = 6379
#: The arguments containers run with: nothing saved unless a test asks for persistence.
CONTAINER_ARGS = ("--protected-mode", "no", "--save", "", "--appendonly", "no")
#: How to get redis-server when it is missing.
INSTALL_HINT = (
    "Install Redis (Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`)."
)


def _servers() -> ModuleType:
    """kue_contract's server helpers, imported only when a test asks for a server."""
    return importlib.import_module("kue_contract.servers")


def server_args(port: int, scratch: Path, extra: Sequence[str] = ()) -> list[str]:
    """redis-server arguments: loopback only, nothing saved, files in ``scratch``."""
    return [
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--protected-mode", "no",
        "--dir", str(scratch),
        *extra,
    ]


def local_server(
    extra: Sequence[str] = (), password: str | None = None
) -> AbstractContextManager[str]:
    """Run redis-server on a free loopback port; yields its URL (with the password, if any)."""
    auth = f":{password}@" if password else ""
    args = [*extra, *(["--requirepass", password] if password else [])]
    return cast(
        AbstractContextManager[str],
        _servers().local_process(
            "redis-server",
            lambda port, scratch: server_args(port, scratch, args),
            lambda port: f"redis://{auth}127.0.0.1:{port}/0",
            INSTALL_HINT,
        ),
    )


#: Slots of a Redis Cluster, numbered 0 to 16383.
CLUSTER_SLOTS = 16384


@contextmanager
def local_cluster(nodes: int = 3, timeout: float = 20.0) -> Iterator[str]:
    """Run a Redis Cluster of ``nodes`` primaries, each a local redis-server on free ports.

    Each node gets an equal share of the slots (CLUSTER ADDSLOTSRANGE), the first one meets
    the others, and the block starts once every node reports ``cluster_state:ok``. Yields the
    first node's URL with ``?cluster=true``; the client learns the rest from it.

    :raises kue_contract.servers.ServerUnavailable: redis-server is missing or the cluster
        did not form within ``timeout`` seconds.
    """
    import redis

    servers = _servers()
    with ExitStack() as stack:
        ports: list[int] = []
        buses: list[int] = []
        for _ in range(nodes):
            # The bus port is given, not left at port + 10000, which may be taken or too high.
            bus = servers.free_port()
            buses.append(bus)
            url = stack.enter_context(local_server(extra=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(bus), "--cluster-node-timeout", "5000",
            ]))
            ports.append(int(url.rsplit(":", 1)[1].split("/")[0]))
        clients = [stack.enter_context(redis.Redis(port=port)) for port in ports]
        share = CLUSTER_SLOTS // nodes
        for i, client in enumerate(clients):
            last = CLUSTER_SLOTS - 1 if i == nodes - 1 else (i + 1) * share - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
        for port, bus in zip(ports[1:], buses[1:], strict=True):
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)
        deadline = time.monotonic() + timeout
        while not all(_cluster_ok(client, nodes) for client in clients):
            if time.monotonic() > deadline:
                raise servers.ServerUnavailable(
                    f"a Redis Cluster on ports {ports} did not reach cluster_state:ok "
                    f"within {timeout} s"
                )
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{ports[0]}/0?cluster=true"


def _cluster_ok(client: object, nodes: int) -> bool:
    info = client.execute_command("CLUSTER", "INFO")  # type: ignore[attr-defined]
    text = info.decode() if isinstance(info, bytes) else str(info)
    fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
    return fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(nodes)


def _container_url(host: str, port: int) -> str:
    return f"redis://{host}:{port}/0"


def container_ready(host: str, port: int, timeout: float = 15.0) -> None:
    """Wait until redis-server at ``host:port`` answers PING (a published port may accept early).

    :raises kue_contract.servers.ServerUnavailable: no PONG within ``timeout`` seconds.
    """
    _servers().wait_for_reply(host, port, b"PING\r\n", b"+PONG", "redis-server (PING)", timeout)


def container_server(extra: Sequence[str] = ()) -> AbstractContextManager[str]:
    """Run :data:`CONTAINER_IMAGE` through testcontainers; yields its URL.

    :param extra: redis-server arguments added to the image's (``--appendonly yes``, ...).
    :raises kue_contract.servers.ServerUnavailable: no engine answers, or the image is missing.
    """
    servers = _servers()
    servers.require_engine(f"redis-server must then be on PATH. {INSTALL_HINT}")
    servers.require_image(CONTAINER_IMAGE, f"redis-server listening on {CONTAINER_PORT}")
    command = [*CONTAINER_ARGS, *extra]
    return cast(
        AbstractContextManager[str],
        servers.testcontainer(CONTAINER_IMAGE, CONTAINER_PORT, _container_url, command,
                              container_ready),
    )


def contract_server(mode: str) -> AbstractContextManager[str]:
    """The server for the contract suite in ``mode`` (auto, containers or local)."""
    servers = _servers()
    if mode == "local":
        return local_server()
    if mode == "auto":
        return container_server() if servers.container_engine_answers() else local_server()
    if mode != "containers":
        raise servers.ServerUnavailable(
            f"unknown server mode {mode!r}: use auto, containers or local"
        )
    return container_server()
