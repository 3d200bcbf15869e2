"""Throwaway beanstalkd servers for tests and benchmarks: a local process or a container.

Test-time only: these functions import kue_contract, which the runtime plugin never needs.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

__all__ = [
    "CONTAINER_IMAGE",
    "CONTAINER_PORT",
    "INSTALL_HINT",
    "LocalBeanstalkd",
    "contract_server",
    "free_port",
    "local_server",
    "server_args",
]

#: The image the project builds for container runs.
CONTAINER_IMAGE = "localhost/kue-beanstalkd:1.12"
#: The port beanstalkd listens on inside the container.
CONTAINER_PORT = 11300
#: How to get beanstalkd when it is missing.
INSTALL_HINT = (
    "Install beanstalkd (Debian/Ubuntu: `apt-get install beanstalkd`; macOS: "
    "`brew install beanstalkd`)."
)


def _servers() -> Any:
    # kue_contract ships no type information, and is imported only here, at test time.
    return importlib.import_module("kue_contract.servers")


def server_args(port: int, scratch: Path) -> list[str]:
    """Arguments for beanstalkd: loopback only, no binlog (so not durable, as declared)."""
    return ["-l", "127.0.0.1", "-p", str(port)]


def _url(host: str, port: int) -> str:
    return f"beanstalk://{host}:{port}"


def local_server() -> AbstractContextManager[str]:
    """Run beanstalkd on a free loopback port; yields its URL."""
    server: AbstractContextManager[str] = _servers().local_process(
        "beanstalkd", server_args, lambda port: _url("127.0.0.1", port), INSTALL_HINT
    )
    return server


@contextlib.contextmanager
def container_server() -> Iterator[str]:
    """Run the project's beanstalkd image through testcontainers; yields its URL."""
    servers = _servers()
    if not servers.container_engine_answers():
        raise servers.ServerUnavailable(
            "--kue-servers=containers, but no container engine answers (start Docker, or "
            "podman's API service, and check DOCKER_HOST); or use --kue-servers=local with "
            f"beanstalkd on PATH. {INSTALL_HINT}"
        )
    _require_image(servers.ServerUnavailable)
    with servers.testcontainer(CONTAINER_IMAGE, CONTAINER_PORT, _url) as url:
        yield str(url)


def _require_image(unavailable: type[Exception]) -> None:
    try:
        docker = importlib.import_module("docker")
        client = docker.from_env(timeout=5)
    except Exception as exc:  # any failure to reach the engine means: no image to be had
        raise unavailable(f"cannot ask the container engine for images: {exc}") from exc
    try:
        client.images.get(CONTAINER_IMAGE)
    except Exception as exc:  # docker.errors.ImageNotFound, or the engine failing
        raise unavailable(
            f"the container image {CONTAINER_IMAGE} is missing ({exc}); build it (a beanstalkd "
            "1.12 image listening on port 11300), or use --kue-servers=local"
        ) from exc
    finally:
        client.close()


def contract_server(mode: str) -> AbstractContextManager[str]:
    """The server for the contract suite in ``mode`` (auto, containers or local)."""
    servers = _servers()
    if mode == "local":
        return local_server()
    if mode == "containers":
        return container_server()
    if mode == "auto":
        return container_server() if servers.container_engine_answers() else local_server()
    raise servers.ServerUnavailable(
        f"unknown server mode {mode!r}: use auto, containers or local"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalBeanstalkd:
    """A beanstalkd on 127.0.0.1 that tests and benchmarks start, kill, restart and signal.

    It keeps its port across restarts, so clients can prove they reconnect.

    :param args: extra beanstalkd arguments, such as ``("-z", "1000")`` for max-job-size.
    :raises FileNotFoundError: beanstalkd is not on PATH (the message says how to install it).
    """

    def __init__(self, *args: str) -> None:
        binary = shutil.which("beanstalkd")
        if binary is None:
            raise FileNotFoundError(f"`beanstalkd` is not on PATH. {INSTALL_HINT}")
        self.binary = binary
        self.args = args
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's ``beanstalk://`` URL."""
        return _url("127.0.0.1", self.port)

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it accepts connections."""
        self.proc = subprocess.Popen(
            [self.binary, *server_args(self.port, Path()), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"beanstalkd exited with {self.proc.returncode} at start")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def send(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the server (SIGUSR1 puts beanstalkd into drain mode)."""
        if self.proc is None:
            raise RuntimeError("beanstalkd was not started")
        self.proc.send_signal(sig)

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LocalBeanstalkd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
