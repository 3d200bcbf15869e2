"""The job layer in every worker mode on every backend shared between processes (issue 14).

Each test runs real ``kue-worker`` processes against a throwaway server and reads the ledger
the jobs write (:mod:`layer_jobs`): how often each job started and ended, and on which attempt.
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

import jepsen
import layer_jobs
from support import wait_until

TESTS = Path(__file__).parent

#: kue-worker's flags for each way it runs jobs.
MODES = {
    "process": [],
    "threads": ["--threads", "2"],
    "prefork": ["-c", "2"],
    "coroutines": ["--coroutines", "4"],
}


class Worker:
    """A ``kue-worker`` process on one queue, its output in a file."""

    def __init__(self, url: str, queue: str, log_path: Path, *extra: str) -> None:
        self.log_path = log_path
        env = {**os.environ, "PYTHONPATH": str(TESTS)}
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kue.cli.worker", "--url", url, "-q", queue,
                 "--import", "layer_jobs", *extra],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except FileNotFoundError:
            return []

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(
                f"worker still running after {timeout} s:\n{self.log()}") from None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait()


def _queue(url: str) -> kue.Queue:
    return kue.connect(url, queue=f"l-{uuid.uuid4().hex[:12]}")


def test_a_job_ten_times_its_ttr_runs_once_in_every_mode(
    shared_backend_url: str, ledger: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    """FAULTS F20: the heartbeat renews the lease; nobody else gets the job."""
    queues: dict[str, kue.Queue] = {}
    for mode in MODES:
        for form, job in (("sync", layer_jobs.long), ("async", layer_jobs.async_long)):
            q = queues[f"{mode}-{form}"] = _queue(shared_backend_url)
            # Not the 1 s minimum: a renewal may land up to two thirds of the ttr late, and
            # sixteen workers starting at once on two cores (other tests running) once delayed
            # one by more than 0.67 s, on sqlite and on SQS.
            ttr = max(q.capabilities.min_ttr, 3.0)
            q.push(job.message(f"{mode}-{form}", 10 * ttr), ttr=ttr)
    # A second worker on each queue would take the job the moment its lease lapsed.
    for key, q in queues.items():
        mode = key.split("-")[0]
        for n in range(2):
            workers.append(Worker(shared_backend_url, q.name, tmp_path / f"{key}-{n}.log",
                                  *MODES[mode], "--burst"))
    for worker in workers:
        assert worker.wait(120) == 0, worker.log()
    verdict = jepsen.read(ledger, set(queues))
    assert not verdict.lost, verdict.summary()
    for key in queues:
        assert [(e.event, e.attempt) for e in verdict.entries if e.key == key] == [
            ("start", 1), ("end", 1)], f"{key}: {verdict.summary()}"
    for key, q in queues.items():
        assert q.stats().total == 0, key
        q.close()
    summaries = [w.log() for w in workers]
    assert sum("burst done: 1 succeeded, 0 retried, 0 buried, 0 leases lost" in s
               for s in summaries) == len(queues), "\n".join(summaries)


def test_a_job_past_its_time_limit_is_stopped_retried_then_buried_in_every_mode(
    shared_backend_url: str, ledger: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    """FAULTS F22: limit 1 s, a 30 s job, max_attempts 2: 2 attempts, buried, pool full.

    Every mode runs at once, each on its own queue, with a sync and a coroutine job.
    """
    limit_reason = "time limit of 1 s exceeded (attempt 2 of 2)"
    runs: dict[str, tuple[kue.Queue, Worker]] = {}
    for mode, flags in MODES.items():
        q = _queue(shared_backend_url)
        q.push(layer_jobs.over_limit.message(f"{mode}-sync"))
        q.push(layer_jobs.async_over_limit.message(f"{mode}-async"))
        worker = Worker(shared_backend_url, q.name, tmp_path / f"{mode}.log", *flags,
                        "--ttr-grace", "0.5")
        workers.append(worker)
        runs[mode] = (q, worker)
    buried_at: dict[str, float] = {}

    def all_buried() -> bool:
        for mode, (q, worker) in runs.items():
            # The log lines, written after the burials, come first: the test SQS server answers
            # one request at a time, and a stats call every 10 ms per queue starves the workers.
            if mode not in buried_at and worker.log().count(limit_reason) == 2 and (
                    q.stats().buried == 2):
                buried_at[mode] = time.monotonic()
        return len(buried_at) == len(runs)

    try:
        wait_until(all_buried, 40)
    except AssertionError:
        late = [m for m in runs if m not in buried_at]
        raise AssertionError(f"not both buried within 40 s in mode(s) {late}:\n" + "\n".join(
            f"{m}: {runs[m][0].stats()}\n{runs[m][1].log()}" for m in late)) from None
    keys = {f"{mode}-{form}" for mode in MODES for form in ("sync", "async")}
    verdict = jepsen.read(ledger, keys)
    for key in sorted(keys):
        entries = [e for e in verdict.entries if e.key == key]
        assert [(e.event, e.attempt) for e in entries] == [("start", 1), ("start", 2)], key
        # Buried within 5 s of the second start (the ledger's clock is the same monotonic).
        assert buried_at[key.split("-")[0]] - entries[1].t < 5, key
    wait_until(lambda: len(runs["prefork"][1].children()) == 2, 5)
    for q, worker in runs.values():
        assert worker.stop() == 0
        assert q.stats() == kue.QueueStats(buried=2)
        q.close()


def test_a_thousand_coroutine_jobs_run_at_once_in_one_process(
    shared_backend_url: str, ledger: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    """FAULTS F24: 1,000 jobs awaiting 0.5 s each, one process: every side effect, in < 5 s.

    The test SQS server (moto) answers one request at a time, about 45 a second here, so on it
    100 jobs show the same without the bar: the run is bounded by the server, not the worker.
    """
    q = _queue(shared_backend_url)
    sqs = q.capabilities.name == "sqs"
    n = 100 if sqs else 1000
    keys = {f"n{i}" for i in range(n)}
    with q.batch():
        for key in sorted(keys):
            q.push(layer_jobs.nap.message(key))
    started = time.monotonic()
    worker = Worker(shared_backend_url, q.name, tmp_path / "worker.log",
                    "--coroutines", str(n), "--burst")
    workers.append(worker)
    assert worker.wait(60) == 0, worker.log()
    verdict = jepsen.read(ledger, keys)
    assert not verdict.lost and not verdict.duplicated, verdict.summary()
    first = min(e.t for e in verdict.entries)
    last = max(e.t for e in verdict.entries)
    print(f"{q.capabilities.name}: {n} coroutine jobs of 0.5 s ran in {last - first:.2f} s, "
          f"done {last - started:.2f} s after the worker process was started")
    assert f"burst done: {n} succeeded, 0 retried, 0 buried, 0 leases lost" in worker.log()
    if not sqs:
        # The bar is on running the jobs (one at a time they take 500 s), not on starting a
        # Python process: on a loaded machine that alone took over 2 s of the 5 s.
        assert last - first < 5
    q.close()


@pytest.mark.parametrize("mode", ["process", "threads", "coroutines"])
def test_a_frozen_worker_loses_its_job_after_ttr_and_its_late_ack_is_refused(
    shared_backend_url: str, ledger: Path, tmp_path: Path, workers: list[Worker], mode: str
) -> None:
    """FAULTS F21: SIGSTOP mid-job stops the heartbeat; the job comes back after its ttr."""
    q = _queue(shared_backend_url)
    if q.capabilities.name == "beanstalk":
        pytest.skip("beanstalkd may not time out a reservation while its connection stays "
                    "idle (beanstalkd #174, #262): the prefork test covers it with the kill")
    ttr = q.capabilities.min_ttr
    q.push(layer_jobs.long.message("frozen", 3 * ttr), ttr=ttr)
    first = Worker(shared_backend_url, q.name, tmp_path / "first.log", *MODES[mode])
    workers.append(first)
    wait_until(lambda: jepsen.read(ledger, {"frozen"}).started["frozen"] == 1, 20)
    os.kill(first.proc.pid, signal.SIGSTOP)
    try:
        second = Worker(shared_backend_url, q.name, tmp_path / "second.log", *MODES[mode])
        workers.append(second)
        try:
            # The second worker's start counts: on a loaded machine, 35 s once on SQS.
            wait_until(lambda: jepsen.read(ledger, {"frozen"}).ended["frozen"] == 1, 60)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: {q.stats()}\n{ledger.read_text()}\n{second.log()}") from None
        again = next(e for e in jepsen.read(ledger, {"frozen"}).entries if e.event == "end")
        assert again.attempt == 2 and again.pid == second.proc.pid
    finally:
        os.kill(first.proc.pid, signal.SIGCONT)
    wait_until(lambda: "is no longer reserved by this consumer" in first.log(), 3 * ttr + 10)
    assert first.proc.poll() is None, first.log()  # it lives on after the refused ack
    assert first.stop() == 0 and second.stop() == 0
    assert "Traceback" not in first.log() + second.log()
    assert q.stats().total == 0
    q.close()
