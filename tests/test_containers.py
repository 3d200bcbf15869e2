"""FAULTS F3 and F4 through containers: the server's container is killed or stopped mid-test.

A container keeps its files and its published port across a kill and a start, which is what a
real server restart looks like to a client. These tests run only when a container engine
answers (``nox -s images`` sets one up). Without one they are skipped, naming the missing
engine, on a developer's machine; in CI (``CI`` set, where the test command builds the images
first) or with ``KUE_SERVERS=containers`` they fail instead.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import kue
from kue.plugins import backend_entry_points
from kue_contract.servers import (
    KUE_PODMAN_SOCKET,
    ContainerServer,
    Server,
    container_engine_answers,
    spec_for,
)

from restart_run import run_through_a_restart

CHILDREN = 2
JOBS = 200
#: The backends whose throwaway server can keep its jobs across a restart (spec.durable).
DURABLE = [n for n in ("redis", "beanstalk", "postgres") if n in backend_entry_points()]


@pytest.fixture(scope="session")
def engine() -> None:
    """Skip (or, in CI or with KUE_SERVERS=containers, fail) when no engine answers."""
    if container_engine_answers():
        return
    where = os.environ.get("DOCKER_HOST") or (
        f"Docker's default socket or podman's service on {KUE_PODMAN_SOCKET}"
    )
    message = (f"no container engine answers at {where}; `nox -s images` sets up podman "
               "and builds the images these tests run")
    if os.environ.get("KUE_SERVERS") == "containers" or os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(params=DURABLE)
def server(request: pytest.FixtureRequest, engine: None) -> Iterator[Server]:
    """A persistent server of one backend in a container, removed after the test."""
    spec = spec_for(str(request.param))
    with ContainerServer(spec, *spec.durable) as srv:
        yield srv


def test_a_container_killed_and_started_mid_run_loses_no_job(
    server: Server, tmp_path: Path, ledger: Path
) -> None:
    """F3: SIGKILL the server's container at half the jobs, start it; workers go on."""

    def restart() -> None:
        server.kill()
        time.sleep(0.5)
        server.start()

    run_through_a_restart(server.url, restart, jobs=JOBS, children=CHILDREN, ledger=ledger,
                          log_path=tmp_path / "worker.log")


def test_a_client_reconnects_after_the_container_is_stopped_and_started(
    server: Server,
) -> None:
    """F4: every connection is reset; the same Queue reports the outage, then goes on."""
    queue = kue.connect(server.url, queue=f"c-{uuid.uuid4().hex[:10]}")
    try:
        queue.put(b"kept", ttr=2)
        held = queue.reserve(timeout=5)
        assert held is not None and held.body == b"kept"
        server.stop(timeout=5)
        started = time.monotonic()
        with pytest.raises(kue.BackendUnavailable):
            queue.put(b"while down")
        assert time.monotonic() - started < 30, "a put to a stopped server hung"
        server.start()
        # The same Queue reconnects (beanstalkd: and uses/watches its tube again).
        after = queue.put(b"after restart")
        seen: dict[bytes, str] = {}
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            # The job held when the server stopped is ready again: at once on beanstalkd
            # (its binlog makes a reserved job ready), after its ttr on redis.
            job = queue.reserve(timeout=1)
            if job is not None:
                seen[job.body] = job.id
                job.delete()
        assert seen == {b"kept": held.id, b"after restart": after}
        assert queue.stats().total == 0
    finally:
        queue.close()
