"""FAULTS F3: the server is killed (-9) and restarted mid-run; with persistence, nothing is lost.

The test starts its own server (with persistence on) so it can kill and restart it on the
same port: redis-server with appendonly/appendfsync always, beanstalkd with its binlog.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kue.plugins import backend_entry_points
from kue_contract.servers import free_port, wait_for_port

from restart_run import run_through_a_restart

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
    def restart() -> None:
        server.kill()
        time.sleep(0.5)
        server.start()

    run_through_a_restart(server.url, restart, jobs=JOBS, children=CHILDREN, ledger=ledger,
                          log_path=tmp_path / "worker.log")
