"""FAULTS F3 and F4: the server is killed (-9) or stopped mid-run, then started again.

Each backend whose spec can keep its data (``durable``) runs as a local process and in a
container, started again on the same port and files, as a real restart looks to a client. The
container cases are skipped without an engine, unless ``CI`` is set or KUE_SERVERS=containers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import kue
from kue.plugins import backend_entry_points
from kue.worker.worker import DEFAULT_PREFETCH
from kue_contract.servers import LocalServer, Server, ServerUnavailable, serve, spec_for

import fault_jobs
import jepsen

#: Jobs and worker children of the F3 run: fewer through a container, whose start is slower.
SIZES = {"local": (400, 4), "containers": (200, 2)}
#: One backend per spec (redis, not also rediss) whose server can keep jobs across a restart.
DURABLE = sorted({spec_for(n): n for n in sorted(backend_entry_points(), reverse=True)
                  if spec_for(n).durable}.values())


@pytest.fixture(params=[(n, m) for n in DURABLE for m in SIZES], ids="-".join)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A persistent server of one backend, a local process or a container, removed after."""
    spec = spec_for(request.param[0])
    try:
        with serve(spec, request.param[1], *spec.durable) as srv:
            yield srv
    except ServerUnavailable as exc:
        if request.param[1] == "local" or os.environ.get("KUE_SERVERS") == "containers" or \
                os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def test_a_server_killed_and_started_mid_run_loses_no_job_and_no_worker_exits(
    server: Server, tmp_path: Path, ledger: Path
) -> None:
    """F3: SIGKILL the server at half the jobs and start it; workers go on, nothing is lost.

    Bar: nothing lost or unexpected, at most one duplicate per child (the jobs in flight when
    the server died), no worker process died, and the queue ends empty.
    """
    jobs, children = SIZES["local" if isinstance(server, LocalServer) else "containers"]
    queue = kue.connect(server.url, queue=f"r-{uuid.uuid4().hex[:10]}")
    keys = {f"r{i}" for i in range(jobs)}
    with queue.batch():
        for key in sorted(keys):
            queue.push(fault_jobs.work.message(key, 0.01))
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        pool = subprocess.Popen(
            [sys.executable, "-m", "kue.cli.worker", "--url", server.url, "-q", queue.name,
             "--import", "fault_jobs", "-c", str(children)],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)}, stdout=log,
            stderr=subprocess.STDOUT,
        )
    batch = DEFAULT_PREFETCH if queue.capabilities.reserve_many else 1
    try:
        deadline = time.monotonic() + 60
        while len(jepsen.read(ledger, keys).ended) < jobs // 2:
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
            pool.wait()
        queue.close()
    verdict = jepsen.read(ledger, keys)
    print(verdict.summary())
    assert not verdict.lost and not verdict.unexpected
    # A child's acks lost with the server: its job in hand, or with prefetch (backends that
    # reserve in batches) the finished jobs of its batch, whose acks go with the next reserve.
    assert len(verdict.duplicated) <= children * batch, verdict.summary()
    text = log_path.read_text(errors="replace")
    assert "died" not in text, text[-3000:]


def test_a_client_reconnects_after_the_server_is_stopped_and_started(server: Server) -> None:
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
