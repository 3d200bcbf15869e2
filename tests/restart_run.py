"""The shared body of the server-restart fault tests (FAULTS F3), local process or container.

Fill a queue, run `kue-worker -c N` on it, restart the server once half the jobs are done,
wait until every job ran and the queue is empty, stop the pool, and check the ledger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import kue
from kue.worker.worker import DEFAULT_PREFETCH

import fault_jobs
import jepsen

TESTS = Path(__file__).parent


def run_through_a_restart(
    url: str, restart: Callable[[], None], *, jobs: int, children: int, ledger: Path,
    log_path: Path,
) -> None:
    """Run ``jobs`` jobs on ``children`` workers, calling ``restart`` at half; assert the bar.

    Bar: nothing lost or unexpected, at most one duplicate per child (the jobs in flight when
    the server died), no worker process died, and the queue ends empty.
    """
    queue = kue.connect(url, queue=f"r-{uuid.uuid4().hex[:10]}")
    keys = {f"r{i}" for i in range(jobs)}
    with queue.batch():
        for key in sorted(keys):
            queue.push(fault_jobs.work.message(key, 0.01))
    with log_path.open("wb") as log:
        pool = subprocess.Popen(
            [sys.executable, "-m", "kue.cli.worker", "--url", url, "-q", queue.name,
             "--import", "fault_jobs", "-c", str(children)],
            env={**os.environ, "PYTHONPATH": str(TESTS)}, stdout=log, stderr=subprocess.STDOUT,
        )
    batch = DEFAULT_PREFETCH if queue.capabilities.reserve_many else 1
    try:
        deadline = time.monotonic() + 60
        while len(jepsen.read(ledger, keys).ended) < jobs // 2:
            assert time.monotonic() < deadline, "half the jobs did not finish"
            time.sleep(0.01)
        restart()
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
