"""Throwaway moto servers for the contract suite and this plugin's own tests.

``local``: ``moto_server -H 127.0.0.1 -p PORT`` as a child process. ``containers``: the image
``localhost/kue-moto:5`` through testcontainers. ``auto``: containers when an engine answers,
else local. The URL carries fake credentials and a region, so boto3 needs nothing from the
machine, and always names the loopback endpoint: these servers never reach AWS.
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import AbstractContextManager
from pathlib import Path

__all__ = ["IMAGE", "MOTO_PORT", "moto_server", "moto_url"]

#: The container image of moto the contract suite uses, and the port moto listens on in it.
IMAGE = "localhost/kue-moto:5"
MOTO_PORT = 5000


def moto_url(host: str, port: int, prefix: str = "kue-") -> str:
    """The ``sqs://`` URL of a moto server at ``host:port``, with fake credentials."""
    return (
        f"sqs://testing:testing@/?region=us-east-1&endpoint=http://{host}:{port}"
        f"&prefix={prefix}&create=1"
    )


def _moto_binary() -> str:
    """``moto_server``; a venv's bin directory not on PATH is added to PATH for it."""
    if shutil.which("moto_server") is None:
        beside = Path(sys.executable).parent
        if (beside / "moto_server").exists():
            os.environ["PATH"] = f"{os.environ.get('PATH', '')}{os.pathsep}{beside}"
    return "moto_server"


def _container() -> AbstractContextManager[str]:
    from kue_contract.servers import (  # type: ignore[import-untyped, unused-ignore]
        ServerUnavailable,
        container_engine_answers,
        testcontainer,
    )

    if not container_engine_answers():
        raise ServerUnavailable(
            "no container engine answers (Docker, or podman's service): start one, or run "
            "with --kue-servers=local to use a local moto_server (pip install 'moto[server]')"
        )
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=5)
        try:
            client.images.get(IMAGE)
        finally:
            client.close()
    except Exception as exc:  # docker.errors.ImageNotFound, or the engine went away
        raise ServerUnavailable(
            f"container image {IMAGE} is not available ({exc}); build or tag a moto server "
            f"image as {IMAGE} (moto_server listening on {MOTO_PORT}), or run with "
            "--kue-servers=local"
        ) from exc
    server: AbstractContextManager[str] = testcontainer(IMAGE, MOTO_PORT, moto_url)
    return server


def moto_server(mode: str) -> AbstractContextManager[str]:
    """A context manager that starts moto as ``mode`` says and yields its ``sqs://`` URL."""
    from kue_contract.servers import (  # type: ignore[import-untyped, unused-ignore]
        container_engine_answers,
        local_process,
    )

    if mode == "containers" or (mode == "auto" and container_engine_answers()):
        return _container()
    server: AbstractContextManager[str] = local_process(
        _moto_binary(),
        args=lambda port, scratch: ["-H", "127.0.0.1", "-p", str(port)],
        url=lambda port: moto_url("127.0.0.1", port),
        install_hint="Install moto's server: pip install 'moto[server]'.",
    )
    return server
