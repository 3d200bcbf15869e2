"""FAULTS F3: the server is killed (-9) and restarted mid-run; with persistence, nothing is lost.

The test starts its own server (with persistence on) so it can kill and restart it on the
same port: redis-server with appendonly/appendfsync always, beanstalkd with its binlog.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kue
from kue.plugins import backend_entry_points
from kue_contract.servers import free_port, wait_for_port

import fault_jobs
import jepsen

TESTS = Path(__file__).parent
CHILDREN = 4
JOBS = 400


def _redis(port: int, data: Path) -> tuple[list[str], str]:
    return (["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(data)],
            f"redis://127.0.0.1:{port}/0")


def _beanstalk(port: int, data: Path) -> tuple[list[str], str]:
    return (["beanstalkd", "-l", "127.0.0.1", "-p", str(port), "-b", str(data)],
            f"beanstalk://127.0.0.1:{port}")


SERVERS = {"redis": _redis, "beanstalk": _beanstalk}


class Server:
    """A server process that can be killed and started again on the same port and data."""

    def __init__(self, make: Callable[[int, Path], tuple[list[str], str]], data: Path) -> None:
        self.port = free_port()
        self.argv, self.url = make(self.port, data)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for_port(self.port, alive=lambda: self.proc is not None and self.proc.poll() is None)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture(params=[n for n in SERVERS if n in backend_entry_points()])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    data = tmp_path / "data"
    data.mkdir()
    srv = Server(SERVERS[str(request.param)], data)
    srv.start()
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()


def test_a_server_restart_mid_run_loses_no_job_and_no_worker_exits(
    server: Server, tmp_path: Path, ledger: Path
) -> None:
    queue = kue.connect(server.url, queue=f"r-{uuid.uuid4().hex[:10]}")
    keys = {f"r{i}" for i in range(JOBS)}
    with queue.batch():
        for key in sorted(keys):
            queue.push(fault_jobs.work.message(key, 0.01))
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        pool = subprocess.Popen(
            [sys.executable, "-m", "kue.cli.worker", "--url", server.url, "-q", queue.name,
             "--import", "fault_jobs", "-c", str(CHILDREN)],
            env={**os.environ, "PYTHONPATH": str(TESTS)}, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while len(jepsen.read(ledger, keys).ended) < JOBS // 2:
            assert time.monotonic() < deadline, "half the jobs did not finish"
            time.sleep(0.01)
        server.kill()
        time.sleep(0.5)
        server.start()
        restarted = time.monotonic()
        # Done means every job ran and the queue is empty: a job whose delete was lost with
        # the server comes back after its ttr and runs again.
        while jepsen.read(ledger, keys).lost or queue.stats().total:
            assert time.monotonic() < restarted + 60, jepsen.read(ledger, keys).summary()
            time.sleep(0.05)
        print(f"back to done {time.monotonic() - restarted:.2f} s after the restart")
        pool.send_signal(signal.SIGTERM)
        assert pool.wait(timeout=30) == 0
    finally:
        if pool.poll() is None:
            pool.kill()
    verdict = jepsen.read(ledger, keys)
    print(verdict.summary())
    assert not verdict.lost and not verdict.unexpected
    # Only jobs in flight when the server died (one per child at most) may run twice.
    assert len(verdict.duplicated) <= CHILDREN, verdict.summary()
    text = log_path.read_text(errors="replace")
    assert "died" not in text, text[-3000:]
    assert queue.stats().total == 0
