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
