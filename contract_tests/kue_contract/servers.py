"""Throwaway servers for the contract suite: a local binary on a free port, or a container.

Backend plugins use these helpers in their ``kue_contract_server`` hook. Every server listens on
127.0.0.1 only and is stopped when the test session ends. When none can be had, the error says
how to get one; the suite never skips for a missing server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "MODES",
    "ServerUnavailable",
    "container_engine_answers",
    "free_port",
    "local_process",
    "testcontainer",
    "wait_for_port",
]

#: Values of ``--kue-servers``: containers when an engine answers, else local processes.
MODES = ("auto", "containers", "local")


class ServerUnavailable(RuntimeError):
    """No throwaway server could be started; the message says how to get one."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0,
                  alive: Callable[[], bool] | None = None) -> None:
    """Wait until ``host:port`` accepts a connection; ``alive`` reports a crashed server early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise ServerUnavailable(f"server for port {port} exited before it listened")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise ServerUnavailable(f"nothing listened on {host}:{port} within {timeout:g} s")


def container_engine_answers() -> bool:
    """True if a Docker-API engine (Docker, or podman's service) answers a ping."""
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure to reach an engine means: no engine
        return False


@contextlib.contextmanager
def local_process(
    binary: str,
    args: Callable[[int, Path], Sequence[str]],
    url: Callable[[int], str],
    install_hint: str,
    ready: Callable[[int], None] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run ``binary`` on a free loopback port for the duration of the block; yields its URL.

    :param binary: the executable's name, found on PATH.
    :param args: the arguments, given the port and a scratch directory.
    :param url: the backend URL for a port.
    :param install_hint: how to install the binary, shown when it is missing.
    :param ready: waits until the server answers (default: until the port accepts).
    """
    path = shutil.which(binary)
    if path is None:
        raise ServerUnavailable(
            f"`{binary}` is not on PATH, so no throwaway server can be started. {install_hint} "
            "Or pass --kue-url=URL of a server you run yourself."
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"kue-{Path(binary).name}-") as scratch:
        log_path = Path(scratch) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [path, *args(port, Path(scratch))],
                stdout=log, stderr=subprocess.STDOUT, cwd=scratch,
                env={**os.environ, **(env or {})},
            )
        try:
            try:
                if ready is not None:
                    wait_for_port(port, alive=lambda: proc.poll() is None)
                    ready(port)
                else:
                    wait_for_port(port, alive=lambda: proc.poll() is None)
            except ServerUnavailable as exc:
                output = log_path.read_text(errors="replace")[-2000:]
                raise ServerUnavailable(f"{binary} did not start: {exc}\n{output}") from exc
            yield url(port)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def testcontainer(image: str, port: int, url: Callable[[str, int], str],
                  command: Sequence[str] | None = None) -> Iterator[str]:
    """Run ``image`` through testcontainers, exposing ``port``; yields the URL (host, port)."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    os.environ.setdefault("TC_HOST", "127.0.0.1")
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError as exc:
        raise ServerUnavailable(
            "testcontainers is not installed; `pip install testcontainers` or use "
            "--kue-servers=local"
        ) from exc
    container = DockerContainer(image).with_exposed_ports(port)
    if command:
        container = container.with_command(list(command))
    try:
        container.start()
    except Exception as exc:
        raise ServerUnavailable(f"container {image} did not start: {exc}") from exc
    try:
        host = container.get_container_host_ip()
        mapped = int(container.get_exposed_port(port))
        if host not in ("localhost",) and not host.startswith("127."):
            raise ServerUnavailable(f"container host {host} is not on loopback")
        wait_for_port(mapped, host="127.0.0.1")
        yield url("127.0.0.1", mapped)
    finally:
        container.stop()
