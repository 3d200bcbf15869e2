from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kue
from kue.plugins import new_plugin_manager
from kue.worker import Worker

import sample_jobs
from support import wait_until, worker_process


@pytest.fixture
def memory_queue(request: pytest.FixtureRequest) -> kue.Queue:
    return kue.connect(f"memory://worker-{request.node.name}", queue="jobs")


@pytest.fixture
def running_worker(memory_queue: kue.Queue) -> Iterator[Worker]:
    worker = Worker(memory_queue.backend, ["jobs"], plugin_manager=new_plugin_manager(),
                    idle_timeout=0.2)
    thread = threading.Thread(target=worker.run)
    thread.start()
    yield worker
    worker.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_burst_runs_every_job_and_deletes_it(memory_queue: kue.Queue, ledger: Path) -> None:
    for i in range(3):
        memory_queue.push(sample_jobs.add.message(i, 10))
    memory_queue.push(sample_jobs.Greet("ada"))
    stats = Worker(memory_queue.backend, ["jobs"]).run(burst=True)
    assert stats.succeeded == 4
    assert sorted(ledger.read_text().split("\n")[:-1]) == [
        "add 10", "add 11", "add 12", "hello ada"]
    assert memory_queue.stats().total == 0


def test_a_failing_job_is_retried_with_backoff_then_buried(
    memory_queue: kue.Queue, ledger: Path, running_worker: Worker
) -> None:
    memory_queue.push(sample_jobs.always_fails.message("x"))
    wait_until(lambda: memory_queue.stats().buried == 1)
    assert ledger.read_text().count("fail x") == 3  # max_attempts
    assert running_worker.stats.failed == 3 and running_worker.stats.retried == 2
    buried = memory_queue.peek("buried")
    assert buried is not None and buried.attempts == 3


def test_undecodable_and_unknown_bodies_are_buried_at_once_and_the_worker_goes_on(
    memory_queue: kue.Queue, ledger: Path, running_worker: Worker
) -> None:
    memory_queue.put(b"\x00 not json")
    memory_queue.put({"job": "nobody.registered.this", "args": []})
    memory_queue.push(sample_jobs.add.message(1, 1))
    wait_until(lambda: "add 2" in ledger.read_text())
    wait_until(lambda: memory_queue.stats() == kue.QueueStats(buried=2))
    assert running_worker.stats.buried == 2 and running_worker.stats.failed == 0


def test_lifecycle_hooks_fire_around_each_job(memory_queue: kue.Queue, ledger: Path) -> None:
    events: list[str] = []

    class Spy:
        @kue.hookimpl
        def kue_worker_started(self, worker: kue.WorkerInfo) -> None:
            events.append("started")

        @kue.hookimpl
        def kue_job_started(self, job: kue.Reservation, envelope: kue.Envelope) -> None:
            events.append(f"run {envelope.job}")

        @kue.hookimpl
        def kue_job_succeeded(self, job: kue.Reservation, envelope: kue.Envelope,
                              duration: float) -> None:
            events.append("ok")

        @kue.hookimpl
        def kue_job_failed(self, job: kue.Reservation, envelope: kue.Envelope,
                           error: BaseException, will_retry: bool, duration: float) -> None:
            events.append(f"failed retry={will_retry}")

        @kue.hookimpl
        def kue_job_buried(self, job: kue.Reservation, reason: str) -> None:
            events.append("buried")

        @kue.hookimpl
        def kue_job_settled(self, job: kue.Reservation, outcome: str) -> None:
            events.append(f"settled {outcome}")

        @kue.hookimpl
        def kue_worker_stopping(self, worker: kue.WorkerInfo) -> None:
            events.append("stopping")

    pm = new_plugin_manager()
    pm.register(Spy())
    memory_queue.push(sample_jobs.add.message(2, 2))
    memory_queue.push(sample_jobs.always_fails.message("h"), priority=2**32 - 1)
    worker = Worker(memory_queue.backend, ["jobs"], plugin_manager=pm)
    worker.run(max_jobs=2)
    assert events == [
        "started", "run tests.add", "ok", "settled deleted",
        "run tests.always_fails", "failed retry=True", "settled released", "stopping",
    ]


def test_kue_worker_burst_runs_the_queue_and_exits_zero(sqlite_url: str, ledger: Path) -> None:
    q = kue.connect(sqlite_url, queue="jobs")
    for i in range(5):
        q.push(sample_jobs.add.message(i, 0))
    proc = worker_process(sqlite_url, "--burst")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert sorted(ledger.read_text().split()) == sorted(["add"] * 5 + [str(i) for i in range(5)])
    assert out.count("done job tests.add") == 5
    assert q.stats().total == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_lets_the_current_job_finish_then_exits_zero(
    sqlite_url: str, ledger: Path, sig: signal.Signals
) -> None:
    q = kue.connect(sqlite_url, queue="jobs")
    q.push(sample_jobs.slow.message(1.0, "s"))
    q.push(sample_jobs.add.message(1, 2))  # must not start after the signal
    proc = worker_process(sqlite_url)
    wait_until(lambda: "start s" in ledger.read_text(), timeout=20)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert ledger.read_text().split("\n")[:-1] == ["start s", "end s"]
    assert q.stats() == kue.QueueStats(ready=1)


def test_a_second_signal_stops_at_once_and_the_job_comes_back_later(
    sqlite_url: str, ledger: Path
) -> None:
    q = kue.connect(sqlite_url, queue="jobs")
    q.push(sample_jobs.slow.message(30.0, "long"), ttr=2)
    proc = worker_process(sqlite_url)
    wait_until(lambda: "start long" in ledger.read_text(), timeout=20)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert time.monotonic() - started < 5
    assert "end long" not in ledger.read_text()
    job = q.reserve(timeout=5)
    assert job is not None and job.attempts == 2


def test_bad_configuration_exits_two_with_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kue.cli.worker", "--url", "nosuch://x"],
        capture_output=True, text=True, cwd=tmp_path, timeout=30,
    )
    assert proc.returncode == 2
    assert "no kue backend named 'nosuch'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_queue_name_outside_the_rule_exits_two_before_connecting(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kue.cli.worker", "--url", "redis://127.0.0.1:1/0",
         "-q", "default", "-q", "{shop}mail"],
        capture_output=True, text=True, cwd=tmp_path, timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "kue-worker: queue name '{shop}mail' is not valid: a queue name is 1 to 48 ASCII "
        "letters, digits, '_' and '-', not starting with '-'"
    )


def test_several_queues_are_taken_in_the_order_given(ledger: Path) -> None:
    high = kue.connect("memory://order", queue="high")
    low = kue.connect("memory://order", queue="low")
    low.push(sample_jobs.Greet("low, urgent within its queue"), priority=0)
    high.push(sample_jobs.Greet("high"), priority=2**32 - 1)
    high.push(sample_jobs.Greet("high again"), priority=2**32 - 1)
    Worker(high.backend, ["high", "low"]).run(burst=True)
    assert ledger.read_text().splitlines() == [
        "hello high", "hello high again", "hello low, urgent within its queue"]
