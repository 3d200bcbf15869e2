from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kue.plugins import backend_entry_points
from kue_contract.servers import throwaway

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


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


def wait_until(probe: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``probe`` every 10 ms until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"not reached within {timeout} s"
        time.sleep(0.01)


def worker_process(url: str, *extra: str) -> subprocess.Popen[str]:
    """``kue-worker`` on queue ``jobs`` of ``url`` with the test jobs, output captured as text."""
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.Popen(
        [sys.executable, "-m", "kue.cli.worker", "--url", url, "--import", "sample_jobs",
         "-q", "jobs", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
