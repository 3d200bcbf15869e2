"""Throwaway beanstalkd servers for tests and benchmarks: a local process or a container.

Test-time only: these functions import kue_contract, which the runtime plugin never needs.
"""

from __future__ import annotations

import importlib
import shutil
import signal
import socket
import subprocess
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

__all__ = [
    "CONTAINER_ARGS",
    "CONTAINER_IMAGE",
    "CONTAINER_PORT",
    "INSTALL_HINT",
    "LocalBeanstalkd",
    "container_ready",
    "container_server",
    "contract_server",
    "free_port",
    "local_server",
    "server_args",
]

#: The image ``nox -s images`` builds (containers/build_images.py), tagged with the server's
#: version; the builder refuses a beanstalkd of another version.
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


#: The arguments containers run with: every interface inside the container (the engine
#: publishes the port on the host's loopback only), no binlog unless a test asks for one.
CONTAINER_ARGS = ("-l", "0.0.0.0", "-p", str(CONTAINER_PORT))


def container_ready(host: str, port: int, timeout: float = 15.0) -> None:
    """Wait until beanstalkd at ``host:port`` answers ``stats``.

    A published port may accept connections before the server in the container listens.
    """
    _servers().wait_for_reply(host, port, b"stats\r\n", b"OK ", "beanstalkd", timeout)


def container_server(*extra: str) -> AbstractContextManager[str]:
    """Run :data:`CONTAINER_IMAGE` through testcontainers; yields its URL.

    :param extra: beanstalkd arguments added to the image's (``-b /tmp`` for a binlog, ...).
    :raises kue_contract.servers.ServerUnavailable: no engine answers, or the image is missing.
    """
    servers = _servers()
    servers.require_engine(f"beanstalkd must then be on PATH. {INSTALL_HINT}")
    servers.require_image(CONTAINER_IMAGE, f"beanstalkd 1.12 listening on {CONTAINER_PORT}")
    server: AbstractContextManager[str] = servers.testcontainer(
        CONTAINER_IMAGE, CONTAINER_PORT, _url, [*CONTAINER_ARGS, *extra], container_ready
    )
    return server


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
