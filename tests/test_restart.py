"""FAULTS F3: the server is killed (-9) and restarted mid-run; with persistence, nothing is lost.

Each backend whose spec says how to keep its data (``durable``: redis-server's appendonly file
with appendfsync always, beanstalkd's binlog) runs as a local process that kue_contract kills
and starts again on the same port and scratch directory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kue.plugins import backend_entry_points
from kue_contract.servers import LocalServer, Server, spec_for

from restart_run import run_through_a_restart

CHILDREN = 4
JOBS = 400
#: The backends whose throwaway server can keep its jobs across a restart.
DURABLE = [n for n in ("redis", "beanstalk", "postgres") if n in backend_entry_points()]


@pytest.fixture(params=DURABLE)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    spec = spec_for(str(request.param))
    with LocalServer(spec, *spec.durable) as srv:
        yield srv


def test_a_server_restart_mid_run_loses_no_job_and_no_worker_exits(
    server: Server, tmp_path: Path, ledger: Path
) -> None:
    def restart() -> None:
        server.kill()
        time.sleep(0.5)
        server.start()

    run_through_a_restart(server.url, restart, jobs=JOBS, children=CHILDREN, ledger=ledger,
                          log_path=tmp_path / "worker.log")
