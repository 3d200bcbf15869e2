from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import grimp
import pytest

import kue
from kue.errors import ConfigError, UnknownBackend
from kue.plugins import _load, backend_entry_points, new_plugin_manager, open_backend


def test_importing_kue_imports_no_backend_and_no_client_library() -> None:
    code = (
        "import sys, kue; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('redis', 'greenstalk', 'boto3', 'botocore', 'sqlite3', 'kue_redis', 'kue_beanstalk', "
        "'kue_sqs') or m.startswith('kue.backends.')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_backend_plugins_import_kue_only_through_kue_spi() -> None:
    packages = sorted({ep.value.split(".")[0] for ep in backend_entry_points().values()} - {"kue"})
    assert packages, "no backend plugin is installed"
    graph = grimp.build_graph(*packages, "kue")
    reaching_in = sorted(
        f"{module} imports {imported}"
        for package in packages
        for module in graph.find_descendants(package) | {package}
        for imported in graph.find_modules_directly_imported_by(module)
        if (imported == "kue" or imported.startswith("kue.")) and imported != "kue.spi"
    )
    assert reaching_in == [], "a backend plugin reaches past kue.spi"


def test_built_in_backends_are_entry_points_like_any_plugin() -> None:
    eps = backend_entry_points()
    assert eps["memory"].value == "kue.backends.memory"
    assert eps["sqlite"].value == "kue.backends.sqlite"


def test_only_the_named_backend_is_loaded() -> None:
    pm = new_plugin_manager()
    backend = open_backend("memory", "memory://only", pm=pm)
    assert backend.capabilities.name == "memory"
    names = {name for name, _ in pm.list_name_plugin()}
    assert "kue.backends:memory" in names
    assert "kue.backends:sqlite" not in names


def test_an_unknown_backend_lists_the_installed_ones() -> None:
    with pytest.raises(UnknownBackend) as info:
        kue.connect("nosuch://x")
    assert "memory" in str(info.value) and "sqlite" in str(info.value)
    assert "nosuch" in str(info.value)


def test_a_plugin_that_fails_to_import_names_its_entry_point() -> None:
    ep = EntryPoint(name="broken", value="kue_no_such_module_xyz", group="kue.backends")
    with pytest.raises(ConfigError, match=r"plugin 'broken' .* failed to import"):
        _load(ep)


def test_lifecycle_hooks_reach_a_registered_plugin() -> None:
    seen: list[str] = []

    class Spy:
        @kue.hookimpl
        def kue_job_pushed(self, queue: str, job_id: str, envelope: kue.Envelope) -> None:
            seen.append(f"{queue}:{envelope.job}")

    pm = new_plugin_manager()
    pm.register(Spy())
    q = kue.connect("memory://hooks", queue="h", plugin_manager=pm)

    @kue.job(name="tests.noop")
    def noop() -> None:
        pass

    q.push(noop.message())
    with q.batch():
        q.push(noop.message())
    assert seen == ["h:tests.noop", "h:tests.noop"]
