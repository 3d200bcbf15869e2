"""Throwaway servers for the contract suite: a local binary on a free port, or a container.

Backend plugins use these helpers in their ``kue_contract_server`` hook. Every server listens on
127.0.0.1 only and is stopped when the test session ends. When none can be had, the error says
how to get one; the suite never skips for a missing server.

Containers run through testcontainers against any Docker-API engine: Docker, or podman's API
service, which ``nox -s images`` starts on :data:`KUE_PODMAN_SOCKET` and finds here by itself
when ``DOCKER_HOST`` is unset. Images are the project's own (``localhost/kue-*``, built by
``nox -s images``), never pulled. testcontainers' reaper (Ryuk) is an image that would have to
be pulled, so it is off and this module removes its containers itself: at the end of each block,
at interpreter exit, and, for a session that was killed, in the next session (every container
carries :data:`LABEL` and its owner's host and pid).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BUILD_HINT",
    "KUE_PODMAN_SOCKET",
    "LABEL",
    "MODES",
    "OWNER_LABEL",
    "ServerContainer",
    "ServerUnavailable",
    "container_engine_answers",
    "describe_server",
    "free_port",
    "local_process",
    "remove_leftover_containers",
    "require_engine",
    "require_image",
    "running_container",
    "testcontainer",
    "wait_for_port",
    "wait_for_reply",
]

#: Values of ``--kue-servers``: containers when an engine answers, else local processes.
MODES = ("auto", "containers", "local")

#: The unix socket on which ``nox -s images`` serves podman's Docker-compatible API.
KUE_PODMAN_SOCKET = "/run/kue-podman.sock"
#: The label on every container the suite starts (value ``1``).
LABEL = "org.kue.contract"
#: The label naming the session that started a container: ``HOST:PID``.
OWNER_LABEL = "org.kue.contract.owner"
#: How to get the project's images, shown when one is missing.
BUILD_HINT = "build the project's images with `nox -s images` (podman, no registry needed)"

#: testcontainers settings for an engine that cannot pull: no reaper, loopback, mapped ports.
_TESTCONTAINERS_ENV = {
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    "TC_HOST": "127.0.0.1",
    # Without it testcontainers guesses from /proc whether it runs inside a container and, on
    # podman, fails with KeyError: 'HostConfig'.
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
}

#: How each server URL handed out in this process was obtained, for the suite's log line.
_ORIGINS: dict[str, str] = {}
#: Containers started by this process and not yet removed; atexit removes what is left.
_LIVE: dict[str, Any] = {}
_LIVE_LOCK = threading.Lock()
_SWEPT = False


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


def wait_for_reply(host: str, port: int, probe: bytes, expect: bytes, what: str,
                   timeout: float = 15.0) -> None:
    """Wait until the server at ``host:port`` answers ``probe`` with a reply starting ``expect``.

    A container's published port may accept connections before the server inside listens, so
    readiness means a real answer, not an open port.

    :raises ServerUnavailable: no such answer within ``timeout`` seconds (``what`` names it).
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), \
                socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(probe)
            if sock.recv(64).startswith(expect):
                return
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"{what} at {host}:{port} did not answer")
        time.sleep(0.05)


def describe_server(url: str) -> str:
    """How the server at ``url`` was obtained: ``local process <binary>``, ``container <image>``.

    A URL this module did not hand out (memory, sqlite: no server) is ``the plugin's hook``.
    """
    return _ORIGINS.get(url, "the plugin's hook")


def _ping(base_url: str | None) -> bool:
    """True if the Docker-API engine at ``base_url`` (None: the environment's) answers."""
    try:
        import docker  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return False
    try:
        if base_url is None:
            client = docker.from_env(timeout=2)
        else:
            client = docker.DockerClient(base_url=base_url, timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure to reach an engine means: no engine
        return False


def container_engine_answers() -> bool:
    """True if a Docker-API engine (Docker, or podman's service) answers a ping.

    With ``DOCKER_HOST`` unset and no engine at Docker's default socket, podman's service on
    :data:`KUE_PODMAN_SOCKET` is tried, and when it answers ``DOCKER_HOST`` is set to it, so
    testcontainers and the docker SDK in this process (and its children) use it.
    """
    if _ping(None):
        return True
    if os.environ.get("DOCKER_HOST") or not Path(KUE_PODMAN_SOCKET).exists():
        return False
    kue_host = f"unix://{KUE_PODMAN_SOCKET}"
    if not _ping(kue_host):
        return False
    os.environ["DOCKER_HOST"] = kue_host
    return True


def require_engine(local_hint: str) -> None:
    """Raise :class:`ServerUnavailable` unless a container engine answers.

    :param local_hint: how to run the server as a local process instead (install hint).
    """
    if container_engine_answers():
        return
    where = os.environ.get("DOCKER_HOST") or (
        f"Docker's default socket, or {KUE_PODMAN_SOCKET}"
    )
    raise ServerUnavailable(
        f"--kue-servers=containers, but no container engine answers at {where}: start "
        f"Docker, or podman's API service (`nox -s images` sets it up on {KUE_PODMAN_SOCKET} "
        f"and builds the images); or use --kue-servers=local. {local_hint}"
    )


def require_image(image: str, what: str) -> None:
    """Raise :class:`ServerUnavailable` unless the engine holds ``image`` (it is never pulled).

    :param what: what the image runs, for the message ("redis-server 7.0 on port 6379").
    """
    try:
        import docker  # type: ignore[import-untyped, unused-ignore]

        client = docker.from_env(timeout=5)
    except Exception as exc:  # any failure to reach the engine means: no image to be had
        raise ServerUnavailable(f"cannot ask the container engine for images: {exc}") from exc
    try:
        client.images.get(image)
    except Exception as exc:  # docker.errors.ImageNotFound, or the engine failing
        raise ServerUnavailable(
            f"the container image {image} ({what}) is missing: {BUILD_HINT}, "
            f"or use --kue-servers=local ({exc})"
        ) from exc
    finally:
        client.close()


@contextlib.contextmanager
def local_process(
    binary: str,
    args: Callable[[int, Path], Sequence[str]],
    url: Callable[[int], str],
    install_hint: str,
    ready: Callable[[int], None] | None = None,
    env: dict[str, str] | None = None,
    name: str | None = None,
) -> Iterator[str]:
    """Run ``binary`` on a free loopback port for the duration of the block; yields its URL.

    :param binary: the executable's name, found on PATH (or its path).
    :param args: the arguments, given the port and a scratch directory.
    :param url: the backend URL for a port.
    :param install_hint: how to install the binary, shown when it is missing.
    :param ready: waits until the server answers (default: until the port accepts).
    :param name: what the log calls the server (default: the binary's name), for a server
        run as ``python -m module``.
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
            served = url(port)
            _ORIGINS[served] = f"local process {name or Path(binary).name}"
            yield served
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _configure_testcontainers() -> None:
    """Apply :data:`_TESTCONTAINERS_ENV` unless the environment says otherwise.

    testcontainers reads most settings once, when it is first imported, so they are also
    written into its configuration object in case it was imported before this ran.
    """
    for key, value in _TESTCONTAINERS_ENV.items():
        os.environ.setdefault(key, value)
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    testcontainers_config.ryuk_disabled = (
        os.environ["TESTCONTAINERS_RYUK_DISABLED"].strip().lower() in ("1", "true", "yes")
    )
    testcontainers_config.tc_host_override = os.environ["TC_HOST"]
    testcontainers_config.connection_mode_override = ConnectionMode(
        os.environ["TESTCONTAINERS_CONNECTION_MODE"]
    )


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def remove_leftover_containers() -> list[str]:
    """Remove containers that a session on this host started and could not remove (killed).

    Only containers whose owner process is gone are touched: sessions that run at the same
    time keep theirs. Returns the names of the containers removed.
    """
    import docker  # type: ignore[import-untyped, unused-ignore]

    client = docker.from_env(timeout=10)
    removed: list[str] = []
    try:
        for container in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
            host, _, pid = str(container.labels.get(OWNER_LABEL, "")).rpartition(":")
            if host != socket.gethostname() or not pid.isdigit() or _pid_alive(int(pid)):
                continue
            with contextlib.suppress(Exception):  # removed meanwhile by another session
                container.remove(force=True, v=True)
                removed.append(str(container.name))
    finally:
        client.close()
    return removed


def _sweep_once() -> None:
    """Remove leftovers of killed sessions, once per process, before the first container."""
    global _SWEPT
    if _SWEPT:
        return
    _SWEPT = True
    with contextlib.suppress(Exception):  # a failed sweep must not cost the test session
        remove_leftover_containers()


def _interrupt_on_sigterm() -> None:
    """Turn a first SIGTERM into KeyboardInterrupt, so blocks unwind and containers go.

    Python's default SIGTERM ends the process without running ``finally`` or atexit. Only the
    default is replaced, and only from the main thread (signals can be set nowhere else).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


@atexit.register
def _remove_live_containers() -> None:
    """At interpreter exit, remove the containers whose blocks never finished."""
    with _LIVE_LOCK:
        left = list(_LIVE.values())
        _LIVE.clear()
    for container in left:
        with contextlib.suppress(Exception):
            container.stop()


class ServerContainer:
    """A server in a container, published on a fixed port of 127.0.0.1.

    The host port stays the same across :meth:`stop`/:meth:`kill` and :meth:`start`, so a
    client holding the URL can prove it reconnects. Use :func:`running_container` to get one
    that is removed at the end of the block.

    :param image: a local image (never pulled).
    :param port: the port the server listens on inside the container.
    :param url: the backend URL for a host and port.
    :param command: arguments that replace the image's CMD.
    :param ready: waits until the server answers on the host and port (default: port accepts).
    """

    def __init__(
        self,
        image: str,
        port: int,
        url: Callable[[str, int], str],
        command: Sequence[str] | None = None,
        ready: Callable[[str, int], None] | None = None,
    ) -> None:
        self.image = image
        self.port = port
        self.host_port = 0
        self.url = ""
        self._make_url = url
        self._command = list(command) if command else None
        self._ready = ready
        self._tc: Any = None

    def _wait_ready(self, timeout: float = 30.0) -> None:
        try:
            wait_for_port(self.host_port, timeout=timeout, alive=self._running)
            if self._ready is not None:
                self._ready("127.0.0.1", self.host_port)
        except ServerUnavailable as exc:
            raise ServerUnavailable(
                f"container {self.image} did not answer on 127.0.0.1:{self.host_port}: {exc}\n"
                f"{self.logs()[-2000:]}"
            ) from exc

    def _running(self) -> bool:
        container = self._tc.get_wrapped_container()
        container.reload()
        return str(container.status) == "running"

    def start(self) -> None:
        """Create and start the container, or start it again after :meth:`stop`/:meth:`kill`."""
        if self._tc is not None:
            self._tc.get_wrapped_container().start()
            self._wait_ready()
            return
        _configure_testcontainers()
        _sweep_once()
        _interrupt_on_sigterm()
        from testcontainers.core.container import DockerContainer

        last: Exception | None = None
        for _ in range(3):  # the free port may be taken before the engine binds it
            self.host_port = free_port()
            tc = DockerContainer(
                self.image, labels={LABEL: "1", OWNER_LABEL: _owner()},
            )
            # Bind the loopback address only: with_bind_ports would publish on every
            # interface. The docker SDK takes (host ip, host port) for a port binding.
            tc.ports[f"{self.port}/tcp"] = ("127.0.0.1", self.host_port)  # type: ignore[assignment]
            if self._command:
                tc.with_command(self._command)
            try:
                tc.start()
            except Exception as exc:
                with contextlib.suppress(Exception):
                    tc.stop()
                last = exc
                if "address already in use" in str(exc).lower():
                    continue
                break
            self._tc = tc
            container_id = tc.get_container_id()
            with _LIVE_LOCK:
                _LIVE[container_id] = tc
            break
        if self._tc is None:
            raise ServerUnavailable(f"container {self.image} did not start: {last}") from last
        self.url = self._make_url("127.0.0.1", self.host_port)
        self._wait_ready()

    def stop(self, timeout: int = 10) -> None:
        """Stop the server as ``docker stop`` does: SIGTERM, then SIGKILL after ``timeout`` s."""
        self._tc.get_wrapped_container().stop(timeout=timeout)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; its files stay for a start."""
        self._tc.get_wrapped_container().kill()
        self._tc.get_wrapped_container().wait(timeout=30)

    def logs(self) -> str:
        """The container's output so far (empty if it cannot be had)."""
        try:
            return bytes(self._tc.get_wrapped_container().logs()).decode(errors="replace")
        except Exception:  # only used to explain another failure
            return ""

    def remove(self) -> None:
        """Stop and remove the container (idempotent)."""
        tc, self._tc = self._tc, None
        if tc is None:
            return
        with _LIVE_LOCK:
            _LIVE.pop(tc.get_container_id(), None)
        tc.stop()


@contextlib.contextmanager
def running_container(
    image: str,
    port: int,
    url: Callable[[str, int], str],
    command: Sequence[str] | None = None,
    ready: Callable[[str, int], None] | None = None,
) -> Iterator[ServerContainer]:
    """A started :class:`ServerContainer`, removed at the end of the block (even on errors)."""
    try:
        from testcontainers.core.container import DockerContainer  # noqa: F401
    except ImportError as exc:
        raise ServerUnavailable(
            "testcontainers is not installed; `pip install testcontainers` or use "
            "--kue-servers=local"
        ) from exc
    server = ServerContainer(image, port, url, command, ready)
    try:
        server.start()
        _ORIGINS[server.url] = f"container {image}"
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def testcontainer(image: str, port: int, url: Callable[[str, int], str],
                  command: Sequence[str] | None = None,
                  ready: Callable[[str, int], None] | None = None) -> Iterator[str]:
    """Run ``image`` through testcontainers, exposing ``port`` on loopback; yields its URL."""
    with running_container(image, port, url, command, ready) as server:
        yield server.url
