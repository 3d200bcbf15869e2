"""Set up a container engine and build the contract suite's server images, without a registry.

``nox -s images`` runs this. Steps, each skipped when already done:

1. install podman and runc, and the redis-server and beanstalkd the images and the local-process
   tests use (Debian's packages), when missing;
2. write /etc/containers/containers.conf with the settings a machine without systemd needs;
3. start podman's Docker-compatible API service on ``unix:///run/kue-podman.sock`` in the
   background, from ``/`` with the system's PATH so it outlives the checkout that started it,
   or reuse the one that answers there;
4. build ``localhost/kue-redis``, ``localhost/kue-beanstalkd`` and ``localhost/kue-moto`` from
   this machine's own files (the server binary, or this Python and the installed moto, plus
   the libraries ``ldd`` lists) with ``podman import``: nothing is pulled. Each image carries
   a label with a hash of its inputs and is rebuilt only when they change;
5. run the redis image through the API service, as testcontainers does, with a port published
   on 127.0.0.1, and PING it, so a machine that cannot run containers says so here, with the
   step that failed; a reused service that cannot start one (seen when the checkout that
   started it was deleted) is replaced by a new one;
6. print the environment testcontainers needs (the contract suite also sets it by itself when
   it finds the socket).

Usage: ``python containers/build_images.py [--only redis,beanstalkd,moto] [--force]
[--no-setup]``. Run as root (rootful podman).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.metadata as metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Where podman's Docker-compatible API listens (the contract suite looks here too).
SOCKET = "/run/kue-podman.sock"
#: The service's output, for when it does not come up.
SERVICE_LOG = Path("/var/log/kue-podman-service.log")
#: The service's PATH: the system's, never a checkout's virtual environment, which may be
#: deleted while the service runs on (podman looks up conmon and runc on it).
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The service's command line: how it is started, and how stop_services() recognises it.
SERVICE_ARGV = ("podman", "system", "service", "--time=0", f"unix://{SOCKET}")
#: The engine configuration; each setting avoids an error seen on these machines.
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
CONTAINERS_CONF_TEXT = """\
# Written by kue's containers/build_images.py (nox -s images).
[containers]
# Without it: crun: setrlimit RLIMIT_NOFILE: Operation not permitted.
default_ulimits = []

[engine]
# crun fails with: cgroups in hybrid mode not supported.
runtime = "runc"
# There is no systemd to manage cgroups.
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
#: The environment testcontainers needs for this engine.
TESTCONTAINERS_ENV = {
    "DOCKER_HOST": f"unix://{SOCKET}",
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    "TC_HOST": "127.0.0.1",
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
}
#: Image labels: the hash of the inputs, the server, its full version.
INPUTS_LABEL = "org.kue.inputs"
SERVER_LABEL = "org.kue.server"
VERSION_LABEL = "org.kue.version"
#: Bump to rebuild every image when the way images are made changes.
RECIPE_VERSION = "1"
#: Errors the engine is known to give, and what avoids each.
KNOWN_ERRORS = {
    "RLIMIT_NOFILE": "set default_ulimits = [] in [containers] of containers.conf",
    "hybrid mode": 'set runtime = "runc" in [engine] of containers.conf',
    "cgroups": 'use runc with cgroup_manager = "cgroupfs" (no systemd here)',
    "HostConfig": "set TESTCONTAINERS_CONNECTION_MODE=docker_host",
}
#: Parts of the standard library a server never imports (tests alone are 120 MB).
STDLIB_SKIP = {
    "site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
    "pydoc_data", "distutils",
}
#: The distributions the moto image needs: moto and the web server moto_server runs on.
MOTO_REQUIREMENTS = ("moto", "flask", "flask-cors")


class BuildError(RuntimeError):
    """A step failed; the message says which and what to do."""


def say(message: str) -> None:
    """Print a progress line at once (nox shows it as it comes)."""
    print(f"[images] {message}", flush=True)


def run(
    argv: Sequence[str], check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output; a failure names the command and shows its output."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()[-3000:]
        hints = [hint for key, hint in KNOWN_ERRORS.items() if key in output]
        extra = f"\nknown cause: {'; '.join(hints)}" if hints else ""
        raise BuildError(f"`{' '.join(argv)}` failed ({proc.returncode}):\n{output}{extra}")
    return proc


# --- the engine -------------------------------------------------------------------------------


#: Commands the test command's sessions need, by the Debian package that brings each: the
#: engine, and the servers the images are made from and the local-process tests start.
NEEDED_PACKAGES = {"podman": "podman", "runc": "runc", "redis-server": "redis-server",
                   "beanstalkd": "beanstalkd"}


def install_engine() -> None:
    """Install podman, runc, redis-server and beanstalkd with apt-get when any is missing.

    So the README's test command sets up a machine that has only Python: this session runs
    first in it.
    """
    missing = [pkg for cmd, pkg in NEEDED_PACKAGES.items() if shutil.which(cmd) is None]
    if not missing:
        say(f"{', '.join(NEEDED_PACKAGES)} are installed")
        return
    if os.geteuid() != 0:
        raise BuildError(f"{' and '.join(missing)} missing, and installing needs root")
    if shutil.which("apt-get") is None:
        raise BuildError(f"{' and '.join(missing)} missing and there is no apt-get: install "
                         "them with this system's package manager")
    say(f"installing {', '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            raise BuildError(f"`{' '.join(argv)}` failed:\n{(proc.stdout + proc.stderr)[-3000:]}")


def write_engine_config() -> None:
    """Write containers.conf unless it already says exactly that (a different one is kept)."""
    if CONTAINERS_CONF.exists():
        current = CONTAINERS_CONF.read_text()
        if current == CONTAINERS_CONF_TEXT:
            say(f"{CONTAINERS_CONF} is up to date")
            return
        backup = CONTAINERS_CONF.with_suffix(".conf.kue-backup")
        shutil.copy2(CONTAINERS_CONF, backup)
        say(f"kept the previous {CONTAINERS_CONF} as {backup}")
    CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
    CONTAINERS_CONF.write_text(CONTAINERS_CONF_TEXT)
    say(f"wrote {CONTAINERS_CONF}")


def service_answers(path: str | None = None, timeout: float = 2.0) -> bool:
    """True if the Docker API on the unix socket ``path`` (default :data:`SOCKET`) answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path or SOCKET)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def start_service(*, replace: bool = False) -> bool:
    """Start podman's API service on :data:`SOCKET` in the background, or reuse a running one.

    :param replace: stop the services running on :data:`SOCKET` and start a new one.
    :returns: True if a running service was reused.
    """
    if not replace and service_answers():
        say(f"podman's API service already answers on unix://{SOCKET}")
        return True
    if replace:
        stop_services()
    Path(SOCKET).unlink(missing_ok=True)  # a socket left by a service that died, or replaced
    SERVICE_LOG.parent.mkdir(parents=True, exist_ok=True)
    with SERVICE_LOG.open("ab") as log:
        # A session of its own, and no inherited pipes: the service outlives this script
        # (and nox) and does not hold their output open.
        # From / and with the system's PATH: the service must not depend on the checkout
        # (and its .venv) that happened to start it, which may be deleted while it runs.
        proc = subprocess.Popen(
            list(SERVICE_ARGV),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd="/", env={**os.environ, "PATH": SERVICE_PATH},
        )
    deadline = time.monotonic() + 20
    while not service_answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = SERVICE_LOG.read_text(errors="replace")[-2000:]
            raise BuildError(f"podman's API service did not answer on {SOCKET} "
                             f"(exit code {proc.poll()}); its log {SERVICE_LOG}:\n{tail}")
        time.sleep(0.1)
    say(f"started podman's API service on unix://{SOCKET} (pid {proc.pid}, log {SERVICE_LOG})")
    return False


def stop_services(timeout: float = 10.0) -> None:
    """Stop every ``podman system service`` of this machine that listens on :data:`SOCKET`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
            except OSError:
                continue  # gone meanwhile, or not ours to read
            if tuple(part.decode(errors="replace") for part in cmdline) == SERVICE_ARGV:
                pids.append(int(entry.name))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    say(f"stopped podman's API service on unix://{SOCKET}")


# --- root filesystems ------------------------------------------------------------------------


def ldd_libraries(files: Iterable[Path]) -> set[Path]:
    """The shared libraries (and the loader) that ``files`` need, as ``ldd`` resolves them."""
    files = list(files)
    found: set[Path] = set()
    for start in range(0, len(files), 200):
        batch = [str(f) for f in files[start:start + 200]]
        proc = run(["ldd", *batch], check=False)
        for line in proc.stdout.splitlines():
            if not line.startswith(("\t", " ")):
                continue  # "file:" headers when ldd is given several files
            if "not found" in line:
                raise BuildError(f"ldd cannot find a library: {line.strip()} (needed by one "
                                 f"of {', '.join(batch[:3])}...)")
            target = line.split("=>", 1)[-1].strip().split(" (", 1)[0].strip()
            if target.startswith("/"):
                found.add(Path(target))
    return found


@dataclass
class Rootfs:
    """The files of an image: path inside the image -> file on this machine (same path here)."""

    files: dict[str, Path] = field(default_factory=dict)

    def add(self, path: Path, inside: str | None = None) -> None:
        """Add ``path`` at ``inside`` (default: the same absolute path)."""
        self.files[inside or str(path)] = path

    def add_with_libraries(self, paths: Iterable[Path]) -> None:
        """Add ELF files and every library they load, at their paths on this machine."""
        paths = list(paths)
        for path in paths:
            self.add(path)
        for lib in ldd_libraries(paths):
            self.add(lib)

    def digest(self, header: dict[str, object]) -> str:
        """A sha256 over ``header`` and every file's path and contents."""
        h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
        for inside in sorted(self.files):
            h.update(inside.encode() + b"\0")
            with self.files[inside].open("rb") as f:
                h.update(hashlib.file_digest(f, "sha256").digest())
        return h.hexdigest()

    def write_tar(self, out: Path) -> None:
        """Write the files, their parent directories and a world-writable /tmp as a tar."""
        dirs = {"tmp"}
        for inside in self.files:
            parts = Path(inside.lstrip("/")).parts[:-1]
            dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        with tarfile.open(out, "w", dereference=True) as tar:
            for d in sorted(dirs):
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if d == "tmp" else 0o755
                tar.addfile(info)
            for inside in sorted(self.files):
                tar.add(self.files[inside], arcname=inside.lstrip("/"), recursive=False)


def python_rootfs(requirements: Sequence[str]) -> tuple[Rootfs, str]:
    """The running Python (interpreter, trimmed stdlib) and ``requirements`` as installed here.

    The distributions come from the environment running this script (the workspace's), with
    their dependencies; they go into the interpreter's own site-packages in the image. Returns
    the root filesystem and the interpreter's path in it.
    """
    prefix = Path(sys.base_prefix)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    interpreter = (prefix / "bin" / f"python{version}").resolve()
    if not interpreter.is_file():
        raise BuildError(f"no interpreter at {interpreter} (base prefix {prefix})")
    stdlib = Path(sysconfig.get_paths(vars={"installed_base": str(prefix),
                                            "base": str(prefix)})["stdlib"])
    rootfs = Rootfs()
    elves = [interpreter]
    for path in sorted(stdlib.rglob("*")):
        rel = path.relative_to(stdlib).parts
        if (rel[0] in STDLIB_SKIP or rel[0].startswith("config-") or path.is_dir()
                or ".opt-" in path.name):
            continue
        if rel[0] == "lib-dynload" and path.name.startswith("_tkinter"):
            continue
        rootfs.add(path)
        if path.suffix == ".so":
            elves.append(path)
    site = stdlib / "site-packages"
    for dist in dependency_closure(requirements):
        base = Path(str(dist.locate_file("")))
        for entry in dist.files or []:
            source = Path(str(dist.locate_file(entry))).resolve()
            try:
                rel_path = source.relative_to(base.resolve())
            except ValueError:
                continue  # scripts in bin/ and other files outside site-packages
            if not source.is_file() or "__pycache__" in rel_path.parts:
                continue
            rootfs.add(source, str(site / rel_path))
            if source.suffix == ".so":
                elves.append(source)
            if source.suffix == ".py":  # bytecode from this machine saves seconds at each start
                pyc = source.parent / "__pycache__" / (
                    f"{source.stem}.{sys.implementation.cache_tag}.pyc")
                if pyc.is_file():
                    rootfs.add(pyc, str(site / rel_path.parent / "__pycache__" / pyc.name))
    rootfs.add(interpreter)
    for lib in ldd_libraries(elves):
        rootfs.add(lib)
    return rootfs, str(interpreter)


def dependency_closure(requirements: Sequence[str]) -> list[metadata.Distribution]:
    """The installed distributions ``requirements`` need, with their extras and markers."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted: dict[str, set[str]] = {}
    dists: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        extras = set(req.extras)
        if name in wanted and extras <= wanted[name]:
            continue
        wanted[name] = wanted.get(name, set()) | extras
        try:
            dist = dists.get(name) or metadata.distribution(req.name)
        except metadata.PackageNotFoundError as exc:
            raise BuildError(f"{req.name} is not installed in {sys.prefix}, and the image is "
                             "built from what is installed: sync the workspace") from exc
        dists[name] = dist
        for line in dist.requires or []:
            dep = Requirement(line)
            envs = [{"extra": e} for e in (wanted[name] | {""})]
            if dep.marker is None or any(dep.marker.evaluate(env) for env in envs):
                todo.append(dep)
    return [dists[n] for n in sorted(dists)]


# --- images -----------------------------------------------------------------------------------


@dataclass
class Recipe:
    """How to make one server's image."""

    name: str
    image: str
    version: Callable[[], str]
    rootfs: Callable[[], tuple[Rootfs, list[str]]]
    cmd: list[str]
    port: int


def _binary(name: str, hint: str) -> Path:
    found = shutil.which(name)
    if found is None:
        raise BuildError(f"`{name}` is not on PATH, so its image cannot be made. {hint}")
    return Path(found)  # not resolved: redis-server is a link whose name picks the program


def _version_of(argv: Sequence[str], pattern: str) -> str:
    proc = run(argv)
    match = re.search(pattern, proc.stdout + proc.stderr)
    if match is None:
        raise BuildError(f"no version in the output of `{' '.join(argv)}`")
    return match.group(1)


def _server_rootfs(name: str, hint: str) -> tuple[Rootfs, list[str]]:
    binary = _binary(name, hint)
    rootfs = Rootfs()
    rootfs.add_with_libraries([binary])
    return rootfs, [str(binary)]


#: Where the image keeps kue_sqs.moto_serial, which runs moto's server with each SQS request
#: atomic (plain moto loses and duplicates messages under concurrent requests).
MOTO_SERIAL_INSIDE = "/opt/kue/moto_serial.py"


def _moto_rootfs() -> tuple[Rootfs, list[str]]:
    rootfs, interpreter = python_rootfs(MOTO_REQUIREMENTS)
    spec = importlib.util.find_spec("kue_sqs.moto_serial")
    if spec is None or spec.origin is None:
        raise BuildError("kue_sqs.moto_serial is not importable: install the kue-sqs plugin")
    rootfs.add(Path(spec.origin), MOTO_SERIAL_INSIDE)
    return rootfs, [interpreter, MOTO_SERIAL_INSIDE]


def _plugin_attr(module: str, attr: str) -> str:
    """The image name a plugin's server module expects (one place says it)."""
    return str(getattr(importlib.import_module(module), attr))


def _plugin_args(module: str) -> list[str]:
    """The server arguments a plugin's containers run with, as the image's CMD."""
    return [str(arg) for arg in importlib.import_module(module).CONTAINER_ARGS]


def recipes() -> list[Recipe]:
    """The three server images, named as the plugins' server modules expect them."""
    return [
        Recipe(
            "redis", _plugin_attr("kue_redis.server", "CONTAINER_IMAGE"),
            lambda: _version_of([str(_binary("redis-server", "apt-get install redis-server")),
                                 "--version"], r"v=(\d+\.\d+\.\d+)"),
            lambda: _server_rootfs("redis-server", "apt-get install redis-server"),
            _plugin_args("kue_redis.server"), 6379,
        ),
        Recipe(
            "beanstalkd", _plugin_attr("kue_beanstalk.server", "CONTAINER_IMAGE"),
            lambda: _version_of([str(_binary("beanstalkd", "apt-get install beanstalkd")), "-v"],
                                r"beanstalkd (\d+(?:\.\d+)+)"),
            lambda: _server_rootfs("beanstalkd", "apt-get install beanstalkd"),
            _plugin_args("kue_beanstalk.server"), 11300,
        ),
        Recipe(
            "moto", _plugin_attr("kue_sqs.server", "IMAGE"),
            lambda: metadata.version("moto"),
            _moto_rootfs,
            ["-H", "0.0.0.0", "-p", "5000"], 5000,
        ),
    ]


def image_label(image: str, label: str) -> str | None:
    """A label of a local image, or None when there is no such image."""
    proc = run(["podman", "image", "inspect", "--format", "{{json .Labels}}", image], check=False)
    if proc.returncode != 0:
        return None
    labels = json.loads(proc.stdout.strip() or "null") or {}
    value = labels.get(label)
    return str(value) if value is not None else ""


def image_id(image: str) -> str | None:
    """The id of a local image, or None."""
    proc = run(["podman", "image", "inspect", "--format", "{{.Id}}", image], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def build(recipe: Recipe, force: bool) -> None:
    """Build ``recipe``'s image unless one with the same inputs exists; tag it with versions."""
    started = time.monotonic()
    version = recipe.version()
    repo, _, tag = recipe.image.rpartition(":")
    if version.split(".")[:len(tag.split("."))] != tag.split("."):
        raise BuildError(
            f"{recipe.name} here is version {version}, but the plugin expects the image "
            f"{recipe.image}: change the image name in the plugin's server module to match"
        )
    full = f"{repo}:{version}"
    rootfs, entrypoint = recipe.rootfs()
    header: dict[str, object] = {"recipe": RECIPE_VERSION, "entrypoint": entrypoint,
                                 "cmd": recipe.cmd, "port": recipe.port, "version": version}
    digest = rootfs.digest(header)
    if not force and image_label(recipe.image, INPUTS_LABEL) == digest:
        if image_label(full, INPUTS_LABEL) != digest:
            run(["podman", "tag", recipe.image, full])
        say(f"{recipe.image} is up to date ({len(rootfs.files)} files, inputs "
            f"{digest[:12]}; checked in {time.monotonic() - started:.1f} s)")
        return
    old = image_id(recipe.image)
    with tempfile.TemporaryDirectory(prefix=f"kue-image-{recipe.name}-") as scratch:
        tar = Path(scratch) / "rootfs.tar"
        rootfs.write_tar(tar)
        size = tar.stat().st_size
        changes = [
            f"ENTRYPOINT {json.dumps(entrypoint)}",
            f"CMD {json.dumps(recipe.cmd)}",
            f"EXPOSE {recipe.port}",
            f"LABEL {INPUTS_LABEL}={digest}",
            f"LABEL {SERVER_LABEL}={recipe.name}",
            f"LABEL {VERSION_LABEL}={version}",
        ]
        argv = ["podman", "import"]
        for change in changes:
            argv += ["--change", change]
        run([*argv, str(tar), recipe.image])
    run(["podman", "tag", recipe.image, full])
    if old and old != image_id(recipe.image):
        run(["podman", "rmi", old], check=False)  # in use by a container: it stays, harmless
    tags = recipe.image if full == recipe.image else f"{recipe.image} and {full}"
    say(f"built {tags} ({len(rootfs.files)} files, {size / 1e6:.0f} MB, "
        f"inputs {digest[:12]}) in {time.monotonic() - started:.1f} s")


def smoke_test(image: str) -> None:
    """Run ``image`` (redis) through the API service, port published on 127.0.0.1; PING it.

    The API service, not the podman command: it is what testcontainers talks to, and a
    service can answer its ping yet fail to start containers.
    """
    import docker  # type: ignore[import-untyped, unused-ignore]  # testcontainers uses it

    started = time.monotonic()
    client = docker.DockerClient(base_url=f"unix://{SOCKET}", timeout=60)
    try:
        container = client.containers.run(
            image, detach=True, labels={"org.kue.contract.smoke": "1"},
            ports={"6379/tcp": ("127.0.0.1", None)},
        )
        container.reload()
        published = container.ports.get("6379/tcp") or []
        if not published:
            raise BuildError(f"{image} started but published no port for 6379/tcp")
        host, port = published[0]["HostIp"], int(published[0]["HostPort"])
        if host != "127.0.0.1":
            raise BuildError(f"the port was published on {host}, not on 127.0.0.1")
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                logs = container.logs().decode(errors="replace")
                raise BuildError(f"{image} published 127.0.0.1:{port} but never answered "
                                 f"PING there:\n{logs}")
            time.sleep(0.05)
    except docker.errors.DockerException as exc:
        raise BuildError(f"the API service on {SOCKET} could not run {image}: {exc}") from exc
    finally:
        # Every smoke container, also one created by a start that failed.
        with contextlib.suppress(docker.errors.DockerException):
            for leftover in client.containers.list(
                all=True, filters={"label": "org.kue.contract.smoke=1"}
            ):
                leftover.remove(force=True)
        client.close()
    say(f"{image} ran through the API service and answered PING on 127.0.0.1:{port} "
        f"({time.monotonic() - started:.1f} s): this machine runs containers")


def main(argv: Sequence[str] | None = None) -> int:
    """Set up the engine, build the images, check a container runs, print the environment."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", default="redis,beanstalkd,moto",
                        help="comma-separated images to build (default all three)")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--no-setup", action="store_true",
                        help="skip installing podman and the servers, writing podman's "
                        "configuration and starting its service (use an engine that is already "
                        "set up)")
    args = parser.parse_args(argv)
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    started = time.monotonic()
    step = "setting up the engine"
    try:
        reused = False
        if not args.no_setup:
            install_engine()
            write_engine_config()
            reused = start_service()
        for recipe in recipes():
            if recipe.name in wanted:
                step = f"building {recipe.image}"
                build(recipe, args.force)
        step = "running a container"
        image = _plugin_attr("kue_redis.server", "CONTAINER_IMAGE")
        try:
            smoke_test(image)
        except BuildError as exc:
            if not reused:
                raise
            say(f"the running API service answers but cannot run containers ({exc}); "
                "starting a new one")
            start_service(replace=True)
            smoke_test(image)
    except (BuildError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"[images] FAILED while {step}: {exc}", file=sys.stderr, flush=True)
        print("[images] this machine cannot run the contract suite's containers; the suite "
              "still runs with local processes (--kue-servers=local, or auto)",
              file=sys.stderr, flush=True)
        return 1
    say(f"done in {time.monotonic() - started:.1f} s. testcontainers needs (the contract suite "
        "sets these itself when it finds the socket):")
    for key, value in TESTCONTAINERS_ENV.items():
        print(f"export {key}={value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
