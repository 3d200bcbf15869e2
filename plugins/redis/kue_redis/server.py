"""Throwaway Redis servers for tests and benchmarks: a local redis-server or a container.

Test-time only: :func:`contract_server` imports kue_contract, which the runtime plugin never
needs.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
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
