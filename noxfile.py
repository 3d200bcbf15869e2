"""Developer tasks. Every session runs in the uv workspace environment (``uv run nox ...``).

Sessions are thin: each calls :func:`pytest` or a tool with the right arguments.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import nox

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "none"
nox.options.sessions = [
    "images", "lint", "typecheck", "tests", "contract", "contract_local", "docs",
    "example_plugin", "webapp",
]

#: Backends whose contract suite runs: the built-ins, then each in-tree plugin.
PLUGINS = sorted(p.name for p in ROOT.glob("plugins/*") if (p / "pyproject.toml").is_file())
BACKENDS = ["memory", "sqlite", *PLUGINS]


def pytest(session: nox.Session, *args: str) -> None:
    """Run pytest from the workspace environment with the session's extra arguments."""
    session.run(sys.executable, "-m", "pytest", *args, *session.posargs, external=True)


def parallel(workers: int, dist: str) -> list[str]:
    """pytest-xdist arguments: ``workers`` processes (``KUE_TEST_WORKERS`` overrides), ``dist``.

    The tests and the contract suite mostly wait (ttrs and delays running out, worker
    processes starting, server round trips), so more processes than CI's two cores still
    shorten the run. Each xdist worker starts its own throwaway servers (free ports, containers
    named by the engine). ``KUE_TEST_WORKERS=0`` runs in one process; so does ``-- -n 0``.
    """
    count = os.environ.get("KUE_TEST_WORKERS", str(workers))
    return ["-n", count, f"--dist={dist}"]


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and fault tests of core and the worker, and each plugin's own tests, in one run.

    ``--import-mode=importlib`` (pyproject.toml) lets test modules of one basename
    (test_records.py in tests/ and in a plugin's tests/) sit side by side in one process.
    Four xdist workers; tests/conftest.py groups the tests that share a server on one worker.
    """
    pytest(session, *parallel(4, "loadgroup"),
           "tests", *(str(p) for p in sorted(ROOT.glob("plugins/*/tests"))))


#: The contract suite on local servers in two xdist workers, one test class at a time each:
#: the model test (hypothesis) and the concurrency tests (processes) take most of a run and
#: land on different workers; each worker starts a throwaway server of its own. Not through
#: containers (``contract``): two workers asking podman's API at once on a loaded machine saw
#: its 2 s ping time out and a whole run error. Not the conformance session: its report is
#: gathered in one process.
CONTRACT_PARALLEL = parallel(2, "loadscope")


@nox.session
@nox.parametrize("backend", BACKENDS)
def contract(session: nox.Session, backend: str) -> None:
    """The shared contract suite against one backend (a throwaway server where it needs one)."""
    servers = os.environ.get("KUE_SERVERS", "auto")
    pytest(session, "-p", "kue_contract", "--pyargs", "kue_contract",
           f"--kue-backend={backend}", f"--kue-servers={servers}")


@nox.session
def images(session: nox.Session) -> None:
    """Set up rootful podman and build the contract suite's server images, with no registry.

    See containers/build_images.py; arguments after ``--`` go to it (``--only moto``,
    ``--no-setup``).
    """
    session.run(sys.executable, str(ROOT / "containers" / "build_images.py"), *session.posargs,
                external=True)


@nox.session
@nox.parametrize("backend", PLUGINS)
def contract_local(session: nox.Session, backend: str) -> None:
    """The contract suite against a server backend run as a local process on a free port.

    ``contract`` takes containers when an engine answers (after ``nox -s images``); this proves
    the local-process path on the same change. The variants its server spec names (SQS with
    FIFO queues) run here too, each as a pytest run of its own.
    """
    from kue_contract.servers import spec_for

    for variant in ["", *spec_for(backend).variants]:
        params = [f"--kue-url-param={param}" for param in variant.split("&") if param]
        pytest(session, *CONTRACT_PARALLEL, "-p", "kue_contract", "--pyargs", "kue_contract",
               f"--kue-backend={backend}", "--kue-servers=local", *params)


#: Where ``nox -s conformance`` writes each backend's report, for the docs.
CONFORMANCE = ROOT / "docs" / "conformance"


@nox.session
def conformance(session: nox.Session) -> None:
    """Regenerate the docs' conformance reports: the contract suite against every backend.

    Each backend (and variant) runs once on local throwaway servers with
    ``--kue-report=docs/conformance/NAME.md``; the generated pages are committed, so building
    the docs needs no server. Not in the default sessions: run it after changing the suite or
    a backend's capabilities. A failing case is reported, not hidden: the session fails too.
    """
    from kue_contract.servers import spec_for

    failed = []
    for backend in BACKENDS:
        for variant in ["", *spec_for(backend).variants]:
            params = [param for param in variant.split("&") if param]
            suffix = "".join("-" + param.partition("=")[0] for param in params)
            report = CONFORMANCE / f"{backend}{suffix}.md"
            try:
                pytest(session, "-p", "kue_contract", "--pyargs", "kue_contract", "-q",
                       f"--kue-backend={backend}", "--kue-servers=local",
                       *(f"--kue-url-param={param}" for param in params),
                       f"--kue-report={report}")
            except nox.command.CommandFailed:
                failed.append(report.name)
    if failed:
        session.error(f"contract cases failed; see {', '.join(failed)}")


#: What ``nox -s mutants`` mutates: the modules of core that implement a backend's queue
#: protocol, judged by the contract suite alone, and (``sqlite-own``) the sqlite backend's
#: modules no contract call reaches (old files, its URL and options, its clock) with the
#: sweep counter, judged by their own tests (:data:`MUTANT_OWN_TESTS`).
MUTANT_TARGETS = {
    "memory": ("kue/backends/memory.py",),
    "sqlite": ("kue/backends/sqlite.py", "kue/backends/sqlite_records.py",
               "kue/backends/sqlite_unique.py"),
    "sqlite-own": ("kue/backends/sqlite_schema.py", "kue/backends/sqlite_clock.py",
                   "kue/backends/sqlite_options.py", "kue/backends/sweep.py"),
}
#: The test files that judge a target instead of the contract suite. The two timing tests
#: are left out: they hold sqlite.py's wake-ups, not these modules, and a loaded machine
#: could fail them on the unmutated code.
MUTANT_OWN_TESTS = {"sqlite-own": ("tests/test_sqlite.py", "tests/test_sweep.py")}
MUTANT_OWN_DESELECT = "not within_50_ms and not spin_a_core"
#: Mutants tested at once: the machine this ran on has two cores.
MUTANT_CHILDREN = 2
#: Where it works: a scratch copy of core's package and the contract suite per target (outside
#: the workspace's pytest configuration), kept between runs so mutmut resumes.
MUTANTS = ROOT / ".mutants"
#: A string literal that is SQL text: an upper-case SQL keyword or a ``column op value`` term,
#: and no quote of its own (SQLite compares a quoted literal by case; it reads keywords and
#: names in any case).
_SQL_TEXT = re.compile(
    r"^[^'\"]*(\b(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|PRAGMA|BEGIN|COMMIT|ROLLBACK|"
    r"WHERE|AND|ORDER BY|UNION|RETURNING|NOT NULL|LIMIT)\b|^\s*[a-z_]+ (!=|=|<=|>=) (\?|\d+)\s*$)"
    r"[^'\"]*$"
)


def is_sql_text(literal: str) -> bool:
    """Whether a Python string literal (quotes and prefix included) holds only SQL text."""
    body = literal.lstrip("bBrRuU")
    return len(body) >= 2 and _SQL_TEXT.match(body[1:-1]) is not None


def mutmut_main() -> None:
    """mutmut's command line, minus the case-only mutations of SQL text.

    mutmut 3.8.1 turns each string literal to lower and to upper case; SQLite reads keywords
    and names in any case, so those mutants of SQL text are equivalent by construction, and
    mutmut has no switch for one operator (its ``# pragma: no mutate`` and
    ``do_not_mutate_patterns`` drop every mutation of a line, the ``!=`` and the ``[0]`` of
    ``conn.execute("PRAGMA data_version").fetchone()[0] != version`` too). So this wraps its
    string operator: SQL text (:func:`is_sql_text`) keeps only the ``"XX" + s + "XX"``
    mutation, which SQLite does see. Runs in the process mutmut forks its workers from.
    """
    import libcst as cst
    from mutmut.__main__ import cli
    from mutmut.mutation import mutators

    original = mutators.operator_string

    def operator_string(node: cst.BaseString) -> Iterable[cst.BaseString]:
        for mutant in original(node):
            if (isinstance(node, cst.SimpleString) and isinstance(mutant, cst.SimpleString)
                    and is_sql_text(node.value)
                    and mutant.value.lower() == node.value.lower()):
                continue
            yield mutant

    operators = cast(list[Any], mutators.mutation_operators)
    index = next(i for i, (_, op) in enumerate(operators) if op is original)
    operators[index] = (cst.BaseString, operator_string)
    cli()


@nox.session
def mutants(session: nox.Session) -> None:
    """Mutation testing of the memory and sqlite backends against the contract suite alone.

    For each target (or only those named after ``--``: ``nox -s mutants -- memory``) mutmut
    mutates its modules in a scratch copy of ``kue`` and runs, for each mutant, the tests
    that call the mutated function: the contract suite (``-p kue_contract
    --kue-backend=NAME``), or for ``sqlite-own`` the test files of :data:`MUTANT_OWN_TESTS`,
    two mutants at a time (``KUE_MUTANTS_CHILDREN`` sets another number). A mutant is killed
    when a test fails or times out. Case-only mutations of SQL text are left out
    (:func:`mutmut_main`).
    Other words after ``--`` name mutants to run again (``nox -s mutants -- sqlite
    'kue.backends.sqlite.x_close__mutmut_1'``; globs too), against the suite as it is now.
    Prints mutmut's summary and every survivor; docs/contract.md records the last result.
    Slow (ten minutes for memory, twenty for sqlite), so not in the default sessions.
    ``KUE_MUTANTS_FRESH=1`` starts over instead of resuming.
    """
    import shutil

    targets = [arg for arg in session.posargs if arg in MUTANT_TARGETS] or list(MUTANT_TARGETS)
    names = [arg for arg in session.posargs if arg not in MUTANT_TARGETS]
    launch = f"import runpy; runpy.run_path({str(ROOT / 'noxfile.py')!r})['mutmut_main']()"
    for target in targets:
        modules = ", ".join(f'"{module}"' for module in MUTANT_TARGETS[target])
        work = MUTANTS / target
        if os.environ.get("KUE_MUTANTS_FRESH") and work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        for package, source in (("kue", ROOT / "core" / "kue"),
                                ("kue_contract", ROOT / "contract_tests" / "kue_contract")):
            shutil.rmtree(work / package, ignore_errors=True)
            shutil.copytree(source, work / package,
                            ignore=shutil.ignore_patterns("__pycache__"))
        own = MUTANT_OWN_TESTS.get(target, ())
        if own:
            shutil.rmtree(work / "own_tests", ignore_errors=True)
            (work / "own_tests").mkdir()
            for test_file in own:
                shutil.copy(ROOT / test_file, work / "own_tests")
            args = f'"-k", "{MUTANT_OWN_DESELECT}"'
            tests = ", ".join(f'"own_tests/{Path(test_file).name}"' for test_file in own)
            copies = '"kue_contract", "own_tests"'
        else:
            args = f'"-p", "kue_contract", "--kue-backend={target}"'
            tests = '"kue_contract/test_contract.py"'
            copies = '"kue_contract"'
        (work / "pyproject.toml").write_text(
            "# Written by nox -s mutants.\n"
            "[tool.mutmut]\n"
            'source_paths = ["kue"]\n'
            f"only_mutate = [{modules}]\n"
            f"also_copy = [{copies}]\n"
            f'pytest_add_cli_args = [{args}, "-p", "no:cacheprovider"]\n'
            f"pytest_add_cli_args_test_selection = [{tests}]\n"
            "# Stop pytest's search for a configuration here, not at the workspace's.\n"
            "[tool.pytest.ini_options]\n"
            'addopts = ""\n'
        )
        session.chdir(work)
        session.run(sys.executable, "-c", launch, "run", "--max-children",
                    os.environ.get("KUE_MUTANTS_CHILDREN", str(MUTANT_CHILDREN)), *names,
                    external=True)
        session.run(sys.executable, "-c", launch, "results", external=True)
    session.chdir(ROOT)


@nox.session
def contract_cluster(session: nox.Session) -> None:
    """The contract suite against the redis backend on a three-node Redis Cluster.

    The nodes are local redis-server processes on free loopback ports (kue_redis.server).
    """
    from kue_redis.server import local_cluster

    with local_cluster() as url:
        pytest(session, *CONTRACT_PARALLEL, "-p", "kue_contract", "--pyargs", "kue_contract",
               "--kue-backend=redis", f"--kue-url={url}")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole workspace; import-linter holds core's layers (pyproject.toml)."""
    session.run(sys.executable, "-m", "ruff", "check", ".", external=True)
    session.run(str(Path(sys.executable).parent / "lint-imports"), external=True)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over core, the contract suite, the plugins and the tests."""
    targets = ["core/kue", "contract_tests/kue_contract", "tests", "noxfile.py", "docs/conf.py",
               "docs/_ext", "examples/kue-filequeue/kue_filequeue", "containers", "bench"]
    targets += [str(p) for p in sorted(ROOT.glob("plugins/*/kue_*"))]
    session.run(sys.executable, "-m", "mypy", "--strict", *targets, external=True)


@nox.session
def demo(session: nox.Session) -> None:
    """Put jobs on the default SQLite queue, then let kue-worker run them."""
    demo_dir = ROOT / "examples" / "demo"
    with tempfile.TemporaryDirectory(prefix="kue-demo-") as workdir:
        env = {"PYTHONPATH": str(demo_dir)}
        session.chdir(workdir)
        session.run(sys.executable, str(demo_dir / "produce.py"), env=env, external=True)
        kue_worker = str(Path(sys.executable).with_name("kue-worker"))
        session.run(kue_worker, "--import", "demo_jobs", "--burst", env=env, external=True)
        session.run(sys.executable, str(demo_dir / "produce.py"), "--stats", env=env,
                    external=True)


@nox.session
def webapp(session: nox.Session) -> None:
    """The Flask example end to end: a signup request queues a job, a real kue-worker runs it."""
    pytest(session, "tests/test_webapp.py")


@nox.session(venv_backend="uv", python="3.11")
def example_plugin(session: nox.Session) -> None:
    """examples/kue-filequeue, installed as a third party would: the contract suite, its tests.

    A fresh virtualenv (not the workspace's) gets core, the contract suite and the example as
    built wheels, not editable; ``--no-sources`` keeps uv from reading the workspace's sources.
    """
    session.install("--no-sources", "./core", "./contract_tests", "./examples/kue-filequeue")
    session.run("pytest", "-p", "kue_contract", "--pyargs", "kue_contract",
                "--kue-backend=filequeue", *session.posargs)
    # The example's tests are its own, as a third party's would be: imported the default way
    # (its crash test pickles a test function for a spawned process), not with kue's
    # --import-mode=importlib from the workspace's pyproject.toml.
    session.run("pytest", "-p", "kue_contract", "--import-mode=prepend",
                "examples/kue-filequeue/tests", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx site into docs/_build/html; any warning fails the build."""
    session.run(sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
                "docs", "docs/_build/html", *session.posargs, external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """kue's benchmarks against raw clients and peer libraries (not a test; 8-17 minutes here).

    Starts its own servers on free loopback ports. Arguments go to bench/run.py: ``--quick``,
    ``--only NAME``, ``--readme`` (update bench/README.md).
    """
    session.run(sys.executable, str(ROOT / "bench" / "run.py"), *session.posargs, external=True)
