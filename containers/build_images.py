"""Set up podman and build the contract suite's server images from the plugins' specs.

Run as root by ``nox -s images``; containers/README.md says what each step does. Nothing is
pulled. Usage: ``python containers/build_images.py [--only redis,moto,...] [--no-setup]``.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from kue.plugins import backend_entry_points
from kue_contract import servers
from kue_contract.servers import KUE_PODMAN_SOCKET as SOCKET
from kue_contract.servers import ServerSpec, ServerUnavailable

SERVICE_LOG = Path("/var/log/kue-podman-service.log")
#: The system's PATH, never a checkout's virtual environment, which may be deleted while the
#: service runs (podman looks up conmon and runc on it); lddtree's ``python3`` is Debian's.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SERVICE_ARGV = ["podman", "system", "service", "--time=0", f"unix://{SOCKET}"]
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
#: Commands the test command's sessions need, by the Debian package that brings each.
#: PostgreSQL's server binaries are not on PATH on Debian (/usr/lib/postgresql/N/bin); its
#: pg_ctlcluster is, and comes with the server package.
NEEDED_PACKAGES = {"podman": "podman", "runc": "runc", "lddtree": "pax-utils",
                   "redis-server": "redis-server", "beanstalkd": "beanstalkd",
                   "pg_ctlcluster": "postgresql"}
#: Parts of the standard library a server never imports (tests alone are 120 MB).
STDLIB_SKIP = ("site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip",
               "lib2to3", "pydoc_data", "distutils", "config-*", "_tkinter*", "*.opt-*")


class BuildError(RuntimeError):
    """A step failed; the message says which and what to do."""


FAILURES = (BuildError, ServerUnavailable, OSError, subprocess.TimeoutExpired)


def say(message: str) -> None:
    """Print a progress line at once (nox shows it as it comes)."""
    print(f"[images] {message}", flush=True)


def run(argv: Sequence[str], check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output; a failure names the command and shows its output."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=900, env=env)
    if check and proc.returncode != 0:
        raise BuildError(f"`{' '.join(argv)}` failed ({proc.returncode}):\n"
                         f"{(proc.stdout + proc.stderr).strip()[-3000:]}")
    return proc


def install_packages() -> None:
    """Install what :data:`NEEDED_PACKAGES` lists with apt-get when any command is missing."""
    missing = [pkg for cmd, pkg in NEEDED_PACKAGES.items() if shutil.which(cmd) is None]
    if not missing:
        return say(f"{', '.join(NEEDED_PACKAGES)} are installed")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BuildError(f"{' and '.join(missing)} missing; installing needs root and apt-get "
                         "(or install them with this system's package manager)")
    say(f"installing {', '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def write_engine_config() -> None:
    """Write containers.conf unless it already says exactly that (a different one is kept)."""
    if CONTAINERS_CONF.exists():
        if CONTAINERS_CONF.read_text() == CONTAINERS_CONF_TEXT:
            return say(f"{CONTAINERS_CONF} is up to date")
        shutil.copy2(CONTAINERS_CONF, CONTAINERS_CONF.with_suffix(".conf.kue-backup"))
        say(f"kept the previous {CONTAINERS_CONF} as *.kue-backup")
    CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
    CONTAINERS_CONF.write_text(CONTAINERS_CONF_TEXT)
    say(f"wrote {CONTAINERS_CONF}")


def start_service(*, replace: bool = False) -> bool:
    """Start podman's API service on :data:`SOCKET` or reuse one (True); ``replace``: anew."""
    if not replace and servers.engine_answers(f"unix://{SOCKET}", patience=5):
        say(f"podman's API service already answers on unix://{SOCKET}")
        return True
    old = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == SERVICE_ARGV]
    # Those running there, if any: SIGTERM, then SIGKILL after 10 s.
    for proc in old:
        proc.terminate()
    for proc in psutil.wait_procs(old, timeout=10)[1]:
        proc.kill()
    Path(SOCKET).unlink(missing_ok=True)  # left by a service that died, or replaced
    SERVICE_LOG.parent.mkdir(parents=True, exist_ok=True)
    with SERVICE_LOG.open("ab") as log:
        # A session of its own and no inherited pipes: it outlives this script and nox.
        service = subprocess.Popen(SERVICE_ARGV, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, cwd="/",
                                   env={**os.environ, "PATH": SYSTEM_PATH})
    deadline = time.monotonic() + 20
    while not servers.engine_answers(f"unix://{SOCKET}", patience=0):
        if service.poll() is not None or time.monotonic() > deadline:
            raise BuildError(f"podman's API service did not answer on {SOCKET} (exit code "
                             f"{service.poll()}); its log {SERVICE_LOG}:\n"
                             f"{SERVICE_LOG.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    say(f"started podman's API service on unix://{SOCKET} (pid {service.pid}, log "
        f"{SERVICE_LOG})")
    return False


def specs() -> dict[str, ServerSpec]:
    """Every installed backend's spec that names an image, by the image's short name."""
    found = {}
    for name in sorted(backend_entry_points()):
        with contextlib.suppress(ServerUnavailable):  # a plugin that describes no server
            spec = servers.spec_for(name)
            if spec.image:
                found[spec.image.rpartition("/")[2].split(":")[0].removeprefix("kue-")] = spec
    return found


def lddtree(*args: str) -> list[str]:
    """The words pax-utils' lddtree prints; it runs on the system's python3 (with pyelftools)."""
    return run(["lddtree", *args], env={**os.environ, "PATH": SYSTEM_PATH}).stdout.split()


def add_python(spec: ServerSpec, context: Path, scratch: Path) -> tuple[str, list[str]]:
    """Put the spec's distributions and -m module, and this Python's stdlib, in ``context``.

    uv installs the distributions at the versions this environment has; they are compiled
    (else each start spends seconds compiling). Returns the interpreter and the libraries
    the extension modules load, for lddtree to copy.
    """
    prefix, ver = Path(sys.base_prefix), f"{sys.version_info[0]}.{sys.version_info[1]}"
    stdlib = Path(sysconfig.get_paths(vars={"installed_base": str(prefix),
                                            "base": str(prefix)})["stdlib"])
    site = context / stdlib.relative_to("/") / "site-packages"
    shutil.copytree(stdlib, site.parent, ignore=shutil.ignore_patterns(*STDLIB_SKIP))
    uv, pins = [os.environ.get("UV", "uv"), "pip"], scratch / "pins"
    pins.write_text(run([*uv, "freeze", "--exclude-editable", "--python", sys.executable]).stdout)
    run([*uv, "install", "--quiet", "--python", sys.executable, "--target", str(site),
         "--constraints", str(pins), "--link-mode=copy", *spec.python])
    if spec.args[:1] == ("-m",):  # the module the server runs, in empty parent packages
        module = importlib.util.find_spec(spec.args[1])
        assert module is not None and module.origin is not None, spec.args[1]
        *packages, leaf = spec.args[1].split(".")
        site.joinpath(*packages).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(module.origin, site.joinpath(*packages, f"{leaf}.py"))
        for i in range(1, len(packages) + 1):
            site.joinpath(*packages[:i], "__init__.py").touch()
    # Compiled under the image's path and checked by the source's hash, not its time: the
    # same files give the same image, which podman's cache then keeps.
    compileall.compile_dir(site, ddir=str(stdlib / "site-packages"), quiet=1, workers=0,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    for path in filter(Path.is_file, site.rglob("*")):
        os.utime(path, (0, 0))
    libs = lddtree("--list", "--skip-non-elfs", *map(str, site.parent.rglob("*.so")))
    return (str((prefix / "bin" / f"python{ver}").resolve()),
            [lib for lib in libs if not lib.startswith(str(context))])


def build(short: str, spec: ServerSpec) -> None:
    """Build the spec's image from this machine's files; tag it with the full version too."""
    started, image = time.monotonic(), str(spec.image)
    version = servers.version_of(spec).rsplit(" ", 1)[-1]
    repo, _, tag = image.rpartition(":")
    if version.split(".")[:len(tag.split("."))] != tag.split("."):
        raise BuildError(f"{spec.label} here is version {version}, but the plugin's spec names "
                         f"the image {image}: change the image in the plugin's server module")
    with tempfile.TemporaryDirectory(prefix=f"kue-image-{short}-") as scratch:
        context = Path(scratch) / "context"
        paths = [str(p) for root in map(Path, spec.files)  # directories whole
                 for p in [root, *root.rglob("*")] if p.is_file()]
        if spec.python:
            entrypoint, libs = add_python(spec, context, Path(scratch))
        else:  # a link's name picks the program
            entrypoint, libs = str(shutil.which(str(spec.binary))), []
        # Each file at its own path, with the libraries it loads; a link as its file under its
        # own name; times kept, so podman's cache sees an unchanged file as unchanged.
        lddtree("--copy-to-tree", str(context), "--copy-non-elfs", entrypoint, *libs, *paths)
        count = sum(1 for p in context.rglob("*") if p.is_file())
        (context / "tmp").mkdir()
        (context / "tmp").chmod(0o1777)
        user = _image_user(spec, Path(scratch), context)
        if spec.setup:  # run here, at build time: the image's /tmp holds what they made
            servers.run_setup(spec, {"host": "0.0.0.0", "port": spec.container_port,
                             "scratch": context / "tmp", "uid": "image"}, context / "tmp")
        cmd = spec.argv(host="0.0.0.0", port=spec.container_port, scratch="/tmp")
        owned = (f"COPY --chown={user} tmp /tmp\nUSER {user}\n") if user else ""
        (Path(scratch) / "Containerfile").write_text(
            f"FROM scratch\nCOPY . /\n{owned}ENTRYPOINT {json.dumps([entrypoint])}\n"
            f"CMD {json.dumps(cmd)}\nEXPOSE {spec.container_port}\n"
            f"LABEL org.kue.server={short} org.kue.version={version}\n")
        old = run(["podman", "image", "inspect", "--format", "{{.Id}}", image], check=False)
        new = run(["podman", "build", "--quiet", "-f", f"{scratch}/Containerfile", "-t", image,
                   "-t", f"{repo}:{version}", str(context)]).stdout  # the image's id
    if old.returncode == 0 and old.stdout != new:
        run(["podman", "rmi", old.stdout.strip()], check=False)  # in use: it stays, harmless
    say(f"{'rebuilt' if old.stdout != new else 'unchanged:'} {image} and {repo}:{version} "
        f"({count} files) in {time.monotonic() - started:.1f} s")


def _image_user(spec: ServerSpec, scratch: Path, context: Path) -> str:
    """``UID:GID`` of the spec's user (else ""); it gets passwd lines and may read the context."""
    ids = servers.run_as(spec.user)
    if not ids:
        return ""
    uid, gid = ids["user"], ids["group"]
    (context / "etc").mkdir(exist_ok=True)
    (context / "etc" / "passwd").write_text(f"{spec.user}:x:{uid}:{gid}::/tmp:/sbin/nologin\n")
    (context / "etc" / "group").write_text(f"{spec.user}:x:{gid}:\n")
    for directory in (scratch, context):
        directory.chmod(0o755)
    return f"{uid}:{gid}"


def smoke_test(spec: ServerSpec) -> None:
    """Run the redis image as the contract suite does and PING it on 127.0.0.1."""
    started = time.monotonic()
    try:
        with servers.ContainerServer(spec) as server:
            say(f"{spec.image} answered PING on 127.0.0.1:{server.port} through the API "
                f"service ({time.monotonic() - started:.1f} s): this machine runs containers")
    except ServerUnavailable as exc:
        raise BuildError(f"the API service on {SOCKET} could not run {spec.image}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Set up the engine, build each image, check a container runs, print the environment."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", help="comma-separated images to build (default: all)")
    parser.add_argument("--no-setup", action="store_true", help="skip installing packages, "
                        "writing podman's configuration and starting its service")
    args = parser.parse_args(argv)
    step, failed = "setting up the engine", []
    try:
        reused = False
        if not args.no_setup:
            install_packages()
            write_engine_config()
            reused = start_service()
        wanted = specs()
        for short, spec in wanted.items():
            if args.only is None or short in args.only.split(","):
                try:
                    build(short, spec)
                except FAILURES as exc:
                    print(f"[images] FAILED to build {spec.image}: {exc}", file=sys.stderr)
                    failed.append(short)
        step = "running a container"
        try:
            smoke_test(wanted["redis"])
        except BuildError as exc:
            if not reused:
                raise
            say(f"the running API service cannot run containers ({exc}); starting a new one")
            start_service(replace=True)
            smoke_test(wanted["redis"])
    except (*FAILURES, KeyError) as exc:
        print(f"[images] FAILED while {step}: {exc}\n[images] this machine cannot run the "
              "contract suite's containers (containers/README.md: engine errors seen and what "
              "avoids each); the suite still runs with local processes (--kue-servers=local)",
              file=sys.stderr, flush=True)
        return 1
    for key, value in {"DOCKER_HOST": f"unix://{SOCKET}", **servers.TESTCONTAINERS_ENV}.items():
        print(f"export {key}={value}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
