"""kue-worker --threads N: several jobs at once in one process, each settled once."""

from __future__ import annotations

import signal
from pathlib import Path

import kue

import sample_jobs
from support import wait_until, worker_process


def _most_at_once(lines: list[str]) -> int:
    """The most jobs that had started and not yet ended at one point of the ledger."""
    running = most = 0
    for line in lines:
        running += 1 if line.startswith("start ") else -1 if line.startswith("end ") else 0
        most = max(most, running)
    return most


def test_threads_run_jobs_at_once_and_each_exactly_once(sqlite_url: str, ledger: Path) -> None:
    q = kue.connect(sqlite_url, queue="jobs")
    for i in range(12):
        q.push(sample_jobs.slow.message(0.3, f"j{i}"))
    for i in range(40):
        q.push(sample_jobs.add.message(i, 1000))
    proc = worker_process(sqlite_url, "--threads", "4", "--burst")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    lines = ledger.read_text().split("\n")[:-1]
    assert sorted(ln for ln in lines if ln.startswith("start ")) == sorted(
        f"start j{i}" for i in range(12))
    assert sorted(ln for ln in lines if ln.startswith("end ")) == sorted(
        f"end j{i}" for i in range(12))
    assert sorted(ln for ln in lines if ln.startswith("add ")) == sorted(
        f"add {i + 1000}" for i in range(40))
    assert 2 <= _most_at_once(lines) <= 4
    assert q.stats().total == 0


def test_a_signal_lets_every_running_job_finish_then_exits_zero(
    sqlite_url: str, ledger: Path
) -> None:
    q = kue.connect(sqlite_url, queue="jobs")
    for i in range(3):
        q.push(sample_jobs.slow.message(1.0, f"s{i}"))
    # Due long after the signal (a loaded machine took over 2 s to get there): must not run.
    q.push(sample_jobs.add.message(1, 2), delay=60)
    proc = worker_process(sqlite_url, "--threads", "3")
    wait_until(lambda: ledger.read_text().count("start ") == 3, timeout=20)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    lines = ledger.read_text().split("\n")[:-1]
    assert sorted(lines) == sorted([f"start s{i}" for i in range(3)]
                                   + [f"end s{i}" for i in range(3)])
    assert q.stats() == kue.QueueStats(delayed=1)


def test_threads_with_prefork_or_max_jobs_is_refused_in_one_line(sqlite_url: str) -> None:
    for extra in (["-c", "2"], ["--max-jobs", "5"]):
        proc = worker_process(sqlite_url, "--threads", "4", *extra)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 2
        assert out.strip() == ("kue-worker: --threads 4 runs in this process and counts no "
                               "jobs: it cannot be combined with -c or --max-jobs")
