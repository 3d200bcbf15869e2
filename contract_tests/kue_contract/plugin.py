"""Options, fixtures and capability markers of the contract suite."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest

import kue
from kue.backend import Backend, Capabilities
from kue.plugins import get_plugin_manager, open_backend
from kue.queue import open_results
from kue.records import RecordStore
from kue_contract.report import Report
from kue_contract.servers import (
    MODES,
    Server,
    ServerSpec,
    ServerUnavailable,
    serve,
    spec_for,
    throwaway,
)

__all__ = [
    "RestartableServer",
    "connect_again",
    "kue_backend",
    "kue_backend_name",
    "kue_caps",
    "kue_results",
    "kue_url",
    "make_queue",
    "plugin_fixtures",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_testnodedown",
    "queue",
    "requires_capabilities",
    "restartable_server",
    "with_url_params",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the suite's ``--kue-*`` options (``--kue-backend``, ``--kue-url``, ...)."""
    group = parser.getgroup("kue", "kue contract suite")
    group.addoption(
        "--kue-backend", metavar="NAME",
        help="backend under test: an entry-point name in group kue.backends (memory, sqlite, ...)",
    )
    group.addoption(
        "--kue-url", metavar="URL",
        help="use the server at URL instead of starting a throwaway one",
    )
    group.addoption(
        "--kue-url-param", metavar="KEY=VALUE", action="append", default=[],
        help="add KEY=VALUE to the query of the backend's URL (the --kue-url one or the "
        "throwaway server's), to test a variant of the backend: --kue-url-param=fifo=1 runs "
        "the suite on SQS FIFO queues. Repeatable",
    )
    group.addoption(
        "--kue-results", metavar="URL",
        help="for a backend that keeps no job records (beanstalk, sqs): the record store to "
        "test its records through, e.g. redis://127.0.0.1:6379/0 (default: a SQLite file in a "
        "scratch directory)",
    )
    group.addoption(
        "--kue-report", metavar="PATH",
        help="write a conformance report to PATH: every contract case with its outcome "
        "(passed, failed, or skipped and by which declared capability) and the backend's "
        "capabilities; Markdown, or JSON if PATH ends in .json",
    )
    group.addoption(
        "--kue-servers", choices=MODES, default="auto",
        help="where throwaway servers come from: containers when an engine answers (auto), "
        "always containers, or always local processes on free loopback ports (default auto). "
        "Containers use the project's images (nox -s images) and find podman's service on "
        "/run/kue-podman.sock when DOCKER_HOST is unset",
    )
    group.addoption(
        "--kue-hypothesis", choices=("quick", "thorough"), default="quick",
        help="size of the state machines: quick (the default, for CI: 8 examples of 30 steps "
        "against the memory model, 8 of 25 against the unordered model) or thorough (100 of "
        "60, and 60 of 50)",
    )


#: The lines saying where each throwaway server came from, for the terminal summary.
_SERVER_LINES = pytest.StashKey[list[str]]()
#: The conformance report being gathered, when --kue-report asks for one.
_REPORT = pytest.StashKey[Report]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``requires`` marker; start the ``--kue-report`` report."""
    config.stash[_SERVER_LINES] = []
    if config.getoption("--kue-report", None) and config.getoption("numprocesses", None):
        raise pytest.UsageError(
            "--kue-report gathers its report in one process, not in pytest-xdist workers: add "
            "-n 0 (KUE_TEST_WORKERS=0 for a nox session)")
    if config.getoption("--kue-report", None):
        config.stash[_REPORT] = Report(str(config.getoption("--kue-backend") or ""))
    config.addinivalue_line(
        "markers",
        "requires(*capabilities): skip unless the backend declares these capabilities true",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Note each case's outcome for the conformance report (``--kue-report``)."""
    report = yield
    gathered = item.config.stash.get(_REPORT, None)
    if gathered is not None:
        _note(gathered, report)
    return report


def _note(gathered: Report, report: pytest.TestReport) -> None:
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        gathered.record(report.nodeid, "skipped", reason.removeprefix("Skipped: "))
    elif report.failed:
        gathered.record(report.nodeid, "failed" if report.when == "call" else "error")
    elif report.when == "call":
        gathered.record(report.nodeid, "passed")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the conformance report, if ``--kue-report`` asked for one.

    In a pytest-xdist worker, hand the worker's server lines to the controller, whose terminal
    summary shows them (:func:`pytest_testnodedown`).
    """
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["kue_server_lines"] = session.config.stash[_SERVER_LINES]
    gathered = session.config.stash.get(_REPORT, None)
    path = session.config.getoption("--kue-report", None)
    if gathered is None or not path:
        return
    gathered.write(Path(str(path)))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Under pytest-xdist: take a finished worker's server lines for the terminal summary."""
    lines = getattr(node, "workeroutput", {}).get("kue_server_lines", [])
    node.config.stash[_SERVER_LINES].extend(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where the session's throwaway servers came from: a local process or a container."""
    for line in terminalreporter.config.stash.get(_SERVER_LINES, []):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def kue_backend_name(request: pytest.FixtureRequest) -> str:
    """The backend under test, from ``--kue-backend``."""
    name = request.config.getoption("--kue-backend")
    if not name:
        raise pytest.UsageError(
            "the kue contract suite needs --kue-backend=NAME (memory, sqlite, redis, ...)"
        )
    return str(name)


def with_url_params(url: str, params: Sequence[str]) -> str:
    """``url`` with each ``KEY=VALUE`` of ``params`` added to its query.

    :raises pytest.UsageError: a param has no ``=`` or an empty key.
    """
    pairs = []
    for param in params:
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise pytest.UsageError(f"--kue-url-param={param!r} must be KEY=VALUE, e.g. fifo=1")
        pairs.append((key, value))
    if not pairs:
        return url
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(pairs)) if q)
    return urlunsplit(parts._replace(query=query))


@pytest.fixture(scope="session")
def kue_url(request: pytest.FixtureRequest, kue_backend_name: str) -> Iterator[str]:
    """The URL of the backend under test: ``--kue-url``, or a throwaway server from its plugin.

    Each ``--kue-url-param`` is added to the URL's query, to test a variant of the backend.
    """
    params: list[str] = request.config.getoption("--kue-url-param") or []
    given = request.config.getoption("--kue-url")
    if given:
        yield with_url_params(str(given), params)
        return
    mode = str(request.config.getoption("--kue-servers"))
    with serve(spec_for(kue_backend_name), mode) as server:
        url = with_url_params(server.url, params)
        # The CI log must show which path each run took: a local process or a container.
        # Printed now (seen with -s) and again in the summary, which output capture spares.
        line = (f"kue contract suite: backend {kue_backend_name} at {kue.config.mask_url(url)} "
                f"from {server.describe()} (servers: {mode})")
        request.config.stash[_SERVER_LINES].append(line)
        print(f"\n{line}")
        yield url


@pytest.fixture(scope="session")
def kue_contract_jobs(kue_backend_name: str) -> int:
    """Jobs per concurrency test: the spec's ``contract_jobs``, 2000 for a plugin without one."""
    try:
        return spec_for(kue_backend_name).contract_jobs
    except ServerUnavailable:  # a plugin that describes no server, run with --kue-url
        return ServerSpec(url="").contract_jobs


@pytest.fixture(scope="session")
def kue_backend(kue_backend_name: str, kue_url: str) -> Iterator[Backend]:
    """One open backend for the session; tests keep apart by using fresh queue names."""
    backend = open_backend(kue_backend_name, kue_url)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def kue_caps(request: pytest.FixtureRequest, kue_backend: Backend) -> Capabilities:
    """The capabilities the backend under test declares (and notes them for the report)."""
    gathered = request.config.stash.get(_REPORT, None)
    if gathered is not None:
        gathered.capabilities = kue_backend.capabilities
    return kue_backend.capabilities


def fresh_name() -> str:
    """A queue name no other test uses, valid on every backend (letters, digits, hyphen)."""
    return f"kc-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def kue_results(
    request: pytest.FixtureRequest, kue_backend: Backend
) -> Iterator[RecordStore | None]:
    """The record store of a backend that keeps no records: ``--kue-results``, else SQLite.

    A user of such a backend (beanstalkd, SQS) names a ``results`` URL; without one, the
    record contract runs through a SQLite file in a scratch directory, the store kue ships.
    """
    if kue_backend.capabilities.records:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="kue-contract-results-") as scratch:
        url = request.config.getoption("--kue-results") or f"sqlite:///{scratch}/records.sqlite3"
        store = open_results(str(url), kue_backend, get_plugin_manager())
        yield store
        if store is not None:
            store.close()  # type: ignore[attr-defined]


@pytest.fixture
def make_queue(kue_backend: Backend, kue_url: str,
               kue_results: RecordStore | None) -> Callable[[], kue.Queue]:
    """A factory of Queues with fresh names on the backend under test."""

    def make() -> kue.Queue:
        return kue.Queue(kue_backend, fresh_name(), url=kue_url, results=kue_results)

    return make


@pytest.fixture
def connect_again(
    kue_backend_name: str, kue_url: str, kue_results: RecordStore | None
) -> Iterator[Callable[[str], kue.Queue]]:
    """A factory of Queues of a given name on a backend object of their own.

    That is another connection to the same server (or file, or ``memory://`` store); each is
    closed after the test.
    """
    opened: list[Backend] = []

    def connect(name: str) -> kue.Queue:
        backend = open_backend(kue_backend_name, kue_url)
        opened.append(backend)
        return kue.Queue(backend, name, url=kue_url, results=kue_results)

    yield connect
    for backend in opened:
        backend.close()


class RestartableServer:
    """A server the suite owns and may restart; :attr:`url` carries the ``--kue-url-param``."""

    def __init__(self, server: Server, params: Sequence[str]) -> None:
        self.server, self.params = server, list(params)

    @property
    def url(self) -> str:
        """The backend URL of the server as it runs now."""
        return with_url_params(self.server.url, self.params)

    def restart(self) -> None:
        """Stop the server as ``docker stop`` does and start it again: same port, same files."""
        self.server.stop()
        self.server.start()


@pytest.fixture
def restartable_server(
    request: pytest.FixtureRequest, kue_backend_name: str
) -> Iterator[RestartableServer]:
    """A server of the backend's own, started with its spec's ``durable`` arguments.

    Skipped, naming the reason, where the suite cannot restart a server: with ``--kue-url`` (a
    server it does not own), or when the plugin's throwaway server keeps nothing across a
    restart (a spec with a binary but no ``durable`` arguments, such as the SQS emulator). A
    spec without a binary (sqlite) restarts by closing every connection and opening the same
    file again.
    """
    if request.config.getoption("--kue-url"):
        pytest.skip("--kue-url names a server this suite does not own, so it cannot restart it")
    spec = spec_for(kue_backend_name)
    if spec.binary is not None and not spec.durable:
        pytest.skip(f"the {kue_backend_name} plugin's throwaway server ({spec.label}) has no "
                    "durable arguments: it keeps nothing across a restart")
    params: list[str] = request.config.getoption("--kue-url-param") or []
    mode = str(request.config.getoption("--kue-servers"))
    with serve(spec, mode, *spec.durable) as server:
        yield RestartableServer(server, params)


@pytest.fixture
def queue(make_queue: Callable[[], kue.Queue]) -> kue.Queue:
    """A Queue with a fresh name on the backend under test."""
    return make_queue()


@pytest.fixture(autouse=True)
def requires_capabilities(request: pytest.FixtureRequest) -> None:
    """Skip a test marked ``requires("bury", ...)`` whose capabilities the backend lacks."""
    needed = [name for m in request.node.iter_markers("requires") for name in m.args]
    if not needed:
        return
    caps: Capabilities = request.getfixturevalue("kue_caps")
    for name in needed:
        if not getattr(caps, name):
            pytest.skip(f"the {caps.name} backend declares capability {name}=False")


def plugin_fixtures(backend: str, server_url: str, isolate: str) -> tuple[object, ...]:
    """Fixtures for a plugin's own tests, from its server spec; bind them in its conftest.py.

    ``redis_url, prefix, url, make_backend, backend = plugin_fixtures("redis", "redis_url",
    "prefix")`` gives, in order: ``server_url`` (session-wide: the URL of the backend's
    throwaway server, a local process), ``isolate`` (a fresh ``t<hex>`` token per test),
    ``url`` (the server's URL with ``isolate=<token>`` added, so tests keep apart: a key
    prefix, a schema), ``make_backend`` (opens backends on ``url`` or a URL given, all closed
    after the test) and ``backend`` (one such backend).
    """

    @pytest.fixture(scope="session", name=server_url)
    def _server_url() -> Iterator[str]:
        with throwaway(backend, "local") as server:
            yield server.url

    @pytest.fixture(name=isolate)
    def _isolate() -> str:
        return f"t{uuid.uuid4().hex[:12]}"

    @pytest.fixture(name="url")
    def _url(request: pytest.FixtureRequest) -> str:
        token = request.getfixturevalue(isolate)
        return with_url_params(request.getfixturevalue(server_url), [f"{isolate}={token}"])

    @pytest.fixture(name="make_backend")
    def _make_backend(url: str) -> Iterator[Callable[..., Backend]]:
        made: list[Backend] = []

        def make(at: str | None = None) -> Backend:
            made.append(open_backend(backend, at or url))
            return made[-1]

        yield make
        for opened in made:
            opened.close()

    @pytest.fixture(name="backend")
    def _backend(make_backend: Callable[..., Backend]) -> Backend:
        return make_backend()

    return _server_url, _isolate, _url, _make_backend, _backend
