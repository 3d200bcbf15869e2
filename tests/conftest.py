from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kue.plugins import backend_entry_points
from kue_contract.servers import throwaway

# The test modules import their helpers (support, sample_jobs...) as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "ledger.txt"
    path.touch()
    monkeypatch.setenv("KUE_TEST_LEDGER", str(path))
    yield path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/kue.sqlite3"


#: Backends whose queues several processes can share, one name per plugin module (redis, not
#: also rediss): every installed backend but memory. The prefork fault tests run on each.
SHARED_BACKENDS = sorted({
    ep.value: name for name, ep in sorted(backend_entry_points().items(), reverse=True)
    if name != "memory"
}.values())


@pytest.fixture(scope="session", params=SHARED_BACKENDS)
def shared_backend_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A throwaway server (or file) for each backend shared between processes."""
    with throwaway(str(request.param)) as server:
        yield server.url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests for pytest-xdist's ``--dist loadgroup`` (``nox -s tests``).

    Each xdist worker starts the throwaway servers of the tests it runs, and a server is dear
    on a loaded machine (moto_server and initdb take seconds of CPU). So each plugin's own
    tests go to one worker, and the rest by module, as ``--dist loadfile`` would send them;
    but a module whose tests run on every backend of :data:`SHARED_BACKENDS` (the fault tests,
    minutes each) goes one backend at a time, so the backends of one module run side by side.
    """
    if config.getoption("dist", "no") != "loadgroup":
        return
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("shared_backend_url") if callspec else None
        if backend is not None:
            group = f"{item.path.name}-{backend}"
        elif item.path.parent.name == "tests" and item.path.parent.parent.parent.name == "plugins":
            group = f"plugin-{item.path.parent.parent.name}"
        else:
            group = item.path.name
        item.add_marker(pytest.mark.xdist_group(group))
