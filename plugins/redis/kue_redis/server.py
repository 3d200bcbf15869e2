"""Throwaway Redis servers for tests and benchmarks: a local redis-server or a container.

Test-time only: :func:`contract_server` imports kue_contract, which the runtime plugin never
needs.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import ModuleType
from typing import cast

__all__ = ["CONTAINER_IMAGE", "INSTALL_HINT", "contract_server", "local_server", "server_args"]

#: The image the project builds for container runs.
CONTAINER_IMAGE = "localhost/kue-redis:7.0"
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


def _image_missing(image: str) -> bool:
    """True if the engine answers that ``image`` is not there (pulling it would fail too)."""
    import docker  # type: ignore[import-untyped, unused-ignore]

    client = docker.from_env(timeout=5)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return True
    finally:
        client.close()
    return False


@contextmanager
def _container() -> Iterator[str]:
    servers = _servers()
    if _image_missing(CONTAINER_IMAGE):
        raise servers.ServerUnavailable(
            f"the container image {CONTAINER_IMAGE} is missing: build the project's images "
            "first, or use --kue-servers=local with redis-server on PATH"
        )
    server = cast(
        AbstractContextManager[str],
        servers.testcontainer(CONTAINER_IMAGE, 6379, lambda host, port: f"redis://{host}:{port}/0"),
    )
    with server as url:
        yield url


def contract_server(mode: str) -> AbstractContextManager[str]:
    """The server for the contract suite in ``mode`` (auto, containers or local)."""
    servers = _servers()
    if mode == "local":
        return local_server()
    if mode == "auto":
        return _container() if servers.container_engine_answers() else local_server()
    if mode != "containers":
        raise servers.ServerUnavailable(
            f"unknown server mode {mode!r}: use auto, containers or local"
        )
    if not servers.container_engine_answers():
        raise servers.ServerUnavailable(
            "--kue-servers=containers, but no container engine answers (start Docker, or "
            "podman's API service, and check DOCKER_HOST); or use --kue-servers=local with "
            f"redis-server on PATH. {INSTALL_HINT}"
        )
    return _container()
