"""Throwaway servers from the plugins' specs: the one place that starts, restarts and stops them.

A :class:`LocalServer` runs a :class:`ServerSpec` on a free 127.0.0.1 port (mirakuru); a
:class:`ContainerServer` in the project's own image (testcontainers, on Docker or the podman
service of ``nox -s images``), published on 127.0.0.1 only. testcontainers' reaper would need a
pull, so it is off: containers go at the end of their block, on SIGTERM, at exit, or, left by a
killed session, in the next session (each carries :data:`LABEL` and its owner, ``HOST:PID``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy
from mirakuru import SimpleExecutor

__all__ = ["KUE_PODMAN_SOCKET", "LABEL", "MODES", "TESTCONTAINERS_ENV", "ContainerServer",
           "LocalServer", "Server", "ServerSpec", "ServerUnavailable", "engine_answers",
           "free_port", "run_as", "run_setup", "serve", "spec_for", "throwaway", "version_of"]

#: Values of ``--kue-servers`` (and ``KUE_SERVERS``).
MODES = ("auto", "containers", "local")
KUE_PODMAN_SOCKET = "/run/kue-podman.sock"
LABEL = "org.kue.contract"
#: For an engine that cannot pull: no reaper, loopback, and mapped ports (else testcontainers
#: guesses it runs inside a container and fails on podman with KeyError: 'HostConfig').
TESTCONTAINERS_ENV = {"TESTCONTAINERS_RYUK_DISABLED": "true", "TC_HOST": "127.0.0.1",
                      "TESTCONTAINERS_CONNECTION_MODE": "docker_host"}
_BUILD_HINT = "build the project's images with `nox -s images` (podman, no registry needed)"


class ServerUnavailable(RuntimeError):
    """No throwaway server could be had; the message says how to get one."""


@dataclass(frozen=True)
class ServerSpec:
    """One backend's throwaway server, described once.

    Strings may name ``{host}`` and ``{port}`` (127.0.0.1 and a free port locally; all
    interfaces and :attr:`container_port` in a container), ``{scratch}`` (a directory kept as
    long as the server, across restarts) and ``{uid}`` (a fresh token). A spec without a
    :attr:`binary` is a backend with no server: its URL is all there is.
    """

    url: str  #: the backend URL, e.g. ``redis://{host}:{port}/0``
    binary: str | None = None  #: the executable (name on PATH, or path)
    args: tuple[str, ...] = ()  #: its arguments: port, scratch directory, loopback only
    #: Readiness, as a published port may accept before the server in its container listens:
    #: bytes to send and how the reply starts, or a path where any HTTP answer will do.
    ready: tuple[bytes, bytes] | str | None = None
    image: str | None = None  #: the container image, built by ``nox -s images``, never pulled
    container_port: int = 0  #: the port the server listens on inside its container
    version: tuple[str, ...] = ("--version",)  #: arguments that make the binary say its version
    install_hint: str = ""  #: how to install the binary
    durable: tuple[str, ...] = ()  #: arguments that keep the data across a restart
    python: tuple[str, ...] = ()  #: a server that is this Python: the distributions it needs
    name: str = ""  #: what logs call it (default: the binary's name)
    contract_jobs: int = 2000  #: jobs per concurrency test (fewer for a slow emulator: moto)
    variants: tuple[str, ...] = ()  #: URL parameters of variants the suite runs too (fifo=1)
    #: Commands run once in the scratch directory before the first start (initdb), with the
    #: same placeholders; an image runs them at build time, in its /tmp.
    setup: tuple[tuple[str, ...], ...] = ()
    user: str = ""  #: the OS user a server that refuses root runs as under root, in its image too
    files: tuple[str, ...] = ()  #: what else an image needs of this machine (PostgreSQL's lib)

    def argv(self, *extra: str, **where: object) -> list[str]:
        """The arguments and ``extra`` with ``host``, ``port``, ``scratch``... filled in."""
        return [arg.format(**where) for arg in (*self.args, *extra)]

    @property
    def label(self) -> str:
        """What logs call the server."""
        return self.name or Path(self.binary or "url").name


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@functools.cache
def version_of(spec: ServerSpec) -> str:
    """``NAME VERSION`` from the spec's version command; fails with the install hint."""
    path = shutil.which(spec.binary or "")
    try:
        out = subprocess.run([str(path), *spec.version], capture_output=True, text=True,
                             timeout=60, check=path is not None)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerUnavailable(f"`{spec.binary}` is missing or broken ({exc}), so no "
                                f"{spec.label} can be started. {spec.install_hint} Or pass "
                                "--kue-url=URL of a server you run yourself.") from exc
    found = re.search(r"\d+(?:\.\d+)+", out.stdout + out.stderr)
    return f"{spec.label} {found.group(0) if found else '(version unknown)'}"


def spec_for(name: str, pm: pluggy.PluginManager | None = None) -> ServerSpec:
    """Ask the plugin of backend ``name`` for its spec; adds the hook's spec on first use."""
    from kue.plugins import get_plugin_manager, load_backend_plugin
    from kue_contract import hookspecs

    pm = pm or get_plugin_manager()
    load_backend_plugin(name, pm)
    if not getattr(pm.hook, "kue_contract_server", None) or \
            not pm.hook.kue_contract_server.has_spec():
        pm.add_hookspecs(hookspecs)
    spec = pm.hook.kue_contract_server(name=name)
    if spec is None:
        raise ServerUnavailable(f"the {name} plugin does not describe a throwaway server (hook "
                                "kue_contract_server); pass --kue-url=URL of a server you run")
    return ServerSpec(url=spec) if isinstance(spec, str) else spec


def run_as(user: str) -> dict[str, Any]:
    """``subprocess`` arguments that run a command as ``user`` if this process is root, else {}.

    :raises ServerUnavailable: root, and no such user on this machine.
    """
    if not user or os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ServerUnavailable(f"the server refuses to run as root and should run as OS user "
                                f"{user!r}, which this machine lacks: create it (`useradd "
                                f"--system {user}`) or run the tests as another user") from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def run_setup(spec: ServerSpec, where: dict[str, object], cwd: Path) -> None:
    """Give ``cwd`` to the spec's user, then run its :attr:`ServerSpec.setup` commands there.

    :raises ServerUnavailable: a command failed; the message has its output.
    """
    ids = run_as(spec.user)
    for item in [cwd, *cwd.rglob("*")] if ids else []:
        os.chown(item, ids["user"], ids["group"], follow_symlinks=False)
    for command in spec.setup:
        argv = [arg.format(**where) for arg in command]
        try:
            subprocess.run(argv, cwd=str(cwd), capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, check=True, **ids)
        except (OSError, subprocess.SubprocessError) as exc:
            output = f"{getattr(exc, 'stdout', '') or ''}{getattr(exc, 'stderr', '') or ''}"
            raise ServerUnavailable(f"{spec.label} setup `{' '.join(argv)}` failed: {exc}\n"
                                    f"{output[-2000:]}\n{spec.install_hint}") from exc


class Server:
    """A server run from a spec, on one port and one scratch directory across restarts.

    A context manager; this base class runs nothing (a spec without a binary).
    """

    def __init__(self, spec: ServerSpec, *extra: str) -> None:
        self.spec, self.extra, self.port, self.url = spec, extra, 0, ""
        self.scratch = Path(tempfile.mkdtemp(prefix=f"kue-{spec.label.split()[0]}-"))
        self.described = "the plugin's URL (no server)"
        self._uid = uuid.uuid4().hex[:12]

    def where(self, **place: object) -> dict[str, object]:
        """What fills the spec's strings: host, port, scratch and token, unless ``place`` says."""
        return {"host": "127.0.0.1", "port": self.port, "scratch": self.scratch,
                "uid": self._uid, **place}

    def start(self) -> None:
        """Start the server (again, after :meth:`stop` or :meth:`kill`: same port and files)."""
        self.url = self.spec.url.format(**self.where())

    def stop(self, timeout: int = 10) -> None:
        """Stop it as ``docker stop`` does: SIGTERM, then SIGKILL after ``timeout`` seconds."""

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crash would."""

    def remove(self) -> None:
        """Stop it for good and delete its scratch directory."""
        shutil.rmtree(self.scratch, ignore_errors=True)

    def describe(self) -> str:
        """Where the server comes from, for the suite's log line."""
        return self.described

    def _wait(self, running: Callable[[], bool], log: Callable[[], str]) -> None:
        """Wait until the server answers; fail with its log if it stops running or takes 30 s."""
        deadline = time.monotonic() + 30
        while not _answers(self.spec, self.port):
            if not running() or time.monotonic() > deadline:
                raise ServerUnavailable(f"{self.described} did not answer on 127.0.0.1:"
                                        f"{self.port}\n{log()[-2000:]}\n{self.spec.install_hint}")
            time.sleep(0.05)  # each check of a container asks its engine

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class _Process(SimpleExecutor):
    """mirakuru's executor, with the server in a process group of its own but not a session.

    mirakuru calls setsid, and Linux's autogroup scheduling then gives the server a CPU share
    of its own, which changes the contract suite's timing and the benchmarks' figures. In its
    own process group, mirakuru's killpg still reaches it.
    """

    @property
    def _popen_kwargs(self) -> dict[str, Any]:
        kw = dict(super()._popen_kwargs)
        kw.pop("preexec_fn", None)
        return {**kw, "process_group": 0}


class LocalServer(Server):
    """The spec's binary as a local process on a free 127.0.0.1 port, through mirakuru."""

    _exec: _Process | None = None

    def start(self) -> None:  # noqa: D102
        log = self.scratch / "server.log"
        if self._exec is None:
            self.described = f"local process {version_of(self.spec)}"  # or the install hint
            self.port = free_port()
            run_setup(self.spec, self.where(), self.scratch)
            self._log = log.open("ab")
            self._exec = _Process([str(shutil.which(str(self.spec.binary))),
                                   *self.spec.argv(*self.extra, **self.where())],
                                  cwd=str(self.scratch), timeout=30, stdin=subprocess.DEVNULL,
                                  stdout=self._log, stderr=subprocess.STDOUT,
                                  popen_kwargs=run_as(self.spec.user))
        self._wait(self._exec.start().running, lambda: log.read_text(errors="replace"))
        super().start()

    def stop(self, timeout: int = 10) -> None:  # noqa: D102
        if self._exec is not None and self._exec.running():
            self._exec.stop()

    def kill(self) -> None:  # noqa: D102
        if self._exec is not None:
            self._exec.kill()

    def send(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process (SIGSTOP hangs it; SIGUSR1 drains beanstalkd)."""
        assert self._exec is not None and self._exec.process is not None, "not started"
        self._exec.process.send_signal(sig)

    def remove(self) -> None:  # noqa: D102
        if self._exec is not None:
            with contextlib.suppress(Exception):
                self._exec.stop()
            self._log.close()
        super().remove()


class ContainerServer(Server):
    """The spec's image in a container, its port published on a fixed port of 127.0.0.1."""

    _tc: Any = None

    def start(self) -> None:  # noqa: D102
        if self._tc is None:
            self._create()
        self._tc.get_wrapped_container().start()  # a no-op on a running container
        self._wait(self._running, lambda: bytes(self._tc.get_wrapped_container().logs()).decode(
            errors="replace"))
        super().start()

    def _running(self) -> bool:
        box = self._tc.get_wrapped_container()
        box.reload()
        return bool(box.status == "running")

    def _create(self) -> None:
        _require_image(self.spec)
        from testcontainers.core.container import DockerContainer

        self.described = f"container {self.spec.image}"
        for attempt in range(3):  # the free port may be taken before the engine binds it
            self.port = free_port()
            tc = DockerContainer(str(self.spec.image), labels={
                LABEL: "1", f"{LABEL}.owner": f"{socket.gethostname()}:{os.getpid()}"})
            # The loopback address only (with_bind_ports would publish on every interface).
            tc.ports[f"{self.spec.container_port}/tcp"] = ("127.0.0.1", self.port)  # type: ignore[assignment]
            tc.with_command(self.spec.argv(*self.extra, **self.where(
                host="0.0.0.0", port=self.spec.container_port, scratch="/tmp")))
            try:
                self._tc = tc.start()
                atexit.register(self.remove)  # a process that never leaves its block
                return
            except Exception as exc:
                with contextlib.suppress(Exception):
                    tc.stop()
                if attempt == 2 or "address already in use" not in str(exc).lower():
                    raise ServerUnavailable(f"container {self.spec.image} did not start: "
                                            f"{exc}") from exc

    def stop(self, timeout: int = 10) -> None:  # noqa: D102
        self._tc.get_wrapped_container().stop(timeout=timeout)

    def kill(self) -> None:  # noqa: D102
        self._tc.get_wrapped_container().kill()
        self._tc.get_wrapped_container().wait(timeout=30)

    def remove(self) -> None:  # noqa: D102
        tc, self._tc = self._tc, None
        if tc is not None:
            atexit.unregister(self.remove)
            tc.stop()
        super().remove()


def serve(spec: ServerSpec, mode: str = "auto", *extra: str) -> Server:
    """A :class:`Server` for ``spec`` as ``mode`` says; ``extra`` arguments go to the server.

    ``local``: a local process; ``containers``: a container (the engine and the image must be
    there); ``auto``: a container when the spec has an image and an engine answers.
    """
    if mode not in MODES:
        raise ServerUnavailable(f"unknown server mode {mode!r}: use {', '.join(MODES)}")
    if spec.binary is None:
        return Server(spec, *extra)
    if mode == "containers" or (mode == "auto" and spec.image and engine_answers()):
        return ContainerServer(spec, *extra)
    return LocalServer(spec, *extra)


def throwaway(name: str, mode: str | None = None, *extra: str) -> Server:
    """The server of backend ``name`` (mode default: ``KUE_SERVERS``, else auto)."""
    return serve(spec_for(name), mode or os.environ.get("KUE_SERVERS", "auto"), *extra)


def _answers(spec: ServerSpec, port: int) -> bool:
    """One check of the spec's :attr:`~ServerSpec.ready` on 127.0.0.1 (none: the port)."""
    try:
        if isinstance(spec.ready, str):
            with contextlib.suppress(urllib.error.HTTPError):  # any HTTP answer will do
                urllib.request.urlopen(f"http://127.0.0.1:{port}{spec.ready}", timeout=2).close()
            return True
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            if spec.ready is None:
                return True
            sock.sendall(spec.ready[0])
            answer = sock.recv(64)  # empty: a port that accepted for a server not yet there
            return answer != b"" and answer.startswith(spec.ready[1])
    except OSError:
        return False


def engine_answers(url: str | None = None, patience: float = 30) -> bool:
    """True if a Docker API answers at ``url``; None: DOCKER_HOST, or else where one answers.

    Without DOCKER_HOST: Docker's socket, else podman's service of ``nox -s images``, which
    DOCKER_HOST then names, for testcontainers. While a socket file exists, pings are retried
    for ``patience`` seconds: with four test processes on two cores, podman's service once
    missed a 2 s ping and a whole group errored.
    """
    for key, value in TESTCONTAINERS_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import docker  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return False
    url = url or os.environ.get("DOCKER_HOST")
    for where in [url] if url else ["unix:///var/run/docker.sock", f"unix://{KUE_PODMAN_SOCKET}"]:
        deadline = time.monotonic() + patience
        while True:
            with contextlib.suppress(Exception):  # no engine there, or not yet
                client = docker.from_env(environment={**os.environ, "DOCKER_HOST": where},
                                         timeout=5)
                with contextlib.closing(client):
                    if client.ping():
                        os.environ.setdefault("DOCKER_HOST", where)
                        return True
            if not Path(where.removeprefix("unix://")).exists() or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return False


def _require_image(spec: ServerSpec) -> None:
    """Raise :class:`ServerUnavailable` unless an engine answers and holds the spec's image.

    Also removes the containers of killed sessions, and makes SIGTERM unwind: its default runs
    no ``finally``, so the session's containers would outlive it.
    """
    if not engine_answers():
        where = os.environ.get("DOCKER_HOST") or f"Docker's socket, or {KUE_PODMAN_SOCKET}"
        raise ServerUnavailable(
            f"--kue-servers=containers, but no container engine answers at {where}: start "
            f"Docker, or {_BUILD_HINT} (it starts podman's API service); or use "
            f"--kue-servers=local. {spec.install_hint}")
    import docker  # type: ignore[import-untyped, unused-ignore]

    with contextlib.closing(docker.from_env(timeout=10)) as client:
        try:
            client.images.get(spec.image)
        except Exception as exc:  # ImageNotFound, or the engine failing
            raise ServerUnavailable(f"the container image {spec.image} ({spec.label}) cannot "
                                    f"be had: {_BUILD_HINT}, or use --kue-servers=local "
                                    f"({exc!r})") from exc
        with contextlib.suppress(Exception):  # another session may remove one first
            for box in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
                host, _, pid = str(box.labels.get(f"{LABEL}.owner", "")).rpartition(":")
                if host == socket.gethostname() and not Path(f"/proc/{pid or 0}").exists():
                    box.remove(force=True, v=True)  # its session was killed
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
    raise KeyboardInterrupt(f"signal {signum}")
