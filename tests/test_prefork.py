"""kue-worker -c N under faults: kills, crashes, hangs, signals and poison (FAULTS.md)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kue
from kue.worker.worker import DEFAULT_PREFETCH
from kue_contract.servers import spec_for

import fault_jobs
import jepsen
from support import wait_until

TESTS = Path(__file__).parent
CHILDREN = 4


class Pool:
    """A `kue-worker -c 4` process tree and its log."""

    def __init__(self, url: str, queue: str, tmp: Path, *extra: str) -> None:
        self.log_path = tmp / "worker.log"
        env = {**os.environ, "PYTHONPATH": str(TESTS)}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kue.cli.worker", "--url", url, "-q", queue,
                 "--import", "fault_jobs", "-c", str(CHILDREN), *extra],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except FileNotFoundError:
            return []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in [self.proc.pid, *self.children()]:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


@pytest.fixture
def queue(shared_backend_url: str) -> Iterator[kue.Queue]:
    q = kue.connect(shared_backend_url, queue=f"f-{uuid.uuid4().hex[:12]}")
    yield q
    q.close()


@pytest.fixture
def pool_factory(queue: kue.Queue, tmp_path: Path, ledger: Path) -> Iterator[Callable[..., Pool]]:
    pools: list[Pool] = []

    def start(*extra: str) -> Pool:
        pool = Pool(queue.url, queue.name, tmp_path, *extra)
        pools.append(pool)
        wait_until(lambda: len(pool.children()) == CHILDREN, 20, "pool up")
        wait_until(lambda: pool.log().count(" started on queues ") >= CHILDREN, 20,
                   "children ready")
        return pool

    yield start
    for pool in pools:
        if pool.proc.poll() is None:
            pool.proc.kill()
            pool.proc.wait()


def _push(queue: kue.Queue, messages: list[kue.Job]) -> None:
    with queue.batch():
        for m in messages:
            queue.push(m)


def _job_count(queue: kue.Queue) -> int:
    """Jobs through the backend's throwaway server: fewer on a slow emulator (its spec says)."""
    return spec_for(queue.capabilities.name).contract_jobs


def test_sigkilled_children_lose_no_job(
    queue: kue.Queue, pool_factory: Callable[..., Pool], ledger: Path
) -> None:
    n = _job_count(queue)
    keys = {f"k{i}" for i in range(n)}
    _push(queue, [fault_jobs.work.message(k, 0.004) for k in sorted(keys)])
    pool = pool_factory()
    killed: set[int] = set()
    rng = random.Random(7)
    deadline = time.monotonic() + 60
    while len(killed) < 10:
        assert time.monotonic() < deadline, f"only {len(killed)} kills; log:\n{pool.log()[-2000:]}"
        time.sleep(rng.uniform(0.05, 0.2))
        candidates = [p for p in pool.children() if p not in killed]
        if candidates:
            victim = rng.choice(candidates)
            os.kill(victim, signal.SIGKILL)
            killed.add(victim)
    wait_until(lambda: not jepsen.read(ledger, keys).lost, 120, "all jobs done")
    # A killed child may have run jobs of its batch and died before acking them: they are
    # done in the ledger but still reserved until their ttr (5 s) runs out, then run again.
    wait_until(lambda: queue.stats().total == 0, 60, "the killed children's jobs came back")
    assert pool.stop() == 0
    verdict = jepsen.read(ledger, keys)
    print(verdict.summary(), f"killed={len(killed)}")
    assert not verdict.lost and not verdict.unexpected
    # With prefetch (backends that reserve in batches) a killed child's finished jobs of
    # the batch in hand were not acked yet: they run again, tied to the kill all the same.
    batch = DEFAULT_PREFETCH if queue.capabilities.reserve_many else 1
    assert verdict.duplicated <= verdict.interrupted_by(killed, batch), verdict.summary()
    assert queue.stats().total == 0


def test_exiting_and_raising_jobs_are_retried_then_buried_and_the_pool_stays_full(
    queue: kue.Queue, pool_factory: Callable[..., Pool], ledger: Path
) -> None:
    keys = {f"ok{i}" for i in range(50)}
    _push(queue, [fault_jobs.exit_process.message("exit"), fault_jobs.always_raise.message("raise"),
                  *(fault_jobs.work.message(k) for k in sorted(keys))])
    pool = pool_factory()
    wait_until(lambda: queue.stats().buried == 2, 60, "both bad jobs buried")
    wait_until(lambda: not jepsen.read(ledger, keys | {"exit", "raise"}).lost - {"exit", "raise"},
               60, "good jobs done")
    verdict = jepsen.read(ledger, keys | {"exit", "raise"})
    assert verdict.started["exit"] == 3 and verdict.started["raise"] == 3
    wait_until(lambda: len(pool.children()) == CHILDREN, 5, "pool back to 4")
    assert pool.stop() == 0
    assert queue.stats() == kue.QueueStats(buried=2)
    assert pool.log().count("died (code 1) running job faults.exit") == 3


def test_a_job_blocked_past_its_time_limit_is_stopped_and_runs_again(
    queue: kue.Queue, pool_factory: Callable[..., Pool], ledger: Path
) -> None:
    """A 60 s blocking sleep with a 2 s limit: the child's alarm stops it at the limit."""
    queue.push(fault_jobs.hang_first_attempt.message("hang"))
    pool = pool_factory()
    wait_until(lambda: jepsen.read(ledger, {"hang"}).ended["hang"] == 1, 30, "second attempt")
    entries = jepsen.read(ledger, {"hang"}).entries
    assert [(e.event, e.attempt) for e in entries] == [("start", 1), ("start", 2), ("end", 2)]
    assert entries[1].t - entries[0].t < 2 + 2  # stopped at its limit, not after 60 s
    assert "failed (attempt 1 of 3, 2.0" in pool.log()
    assert "TimeLimitExceeded: time limit of 2 s exceeded; retry in" in pool.log()
    wait_until(lambda: len(pool.children()) == CHILDREN, 5, "pool back to 4")
    assert pool.stop() == 0
    assert queue.stats().total == 0


def test_a_job_deaf_to_its_time_limit_has_its_child_killed_and_is_buried(
    queue: kue.Queue, pool_factory: Callable[..., Pool], ledger: Path
) -> None:
    """The supervisor's kill is the backstop for a job the child's alarm cannot stop."""
    queue.push(fault_jobs.deaf_to_alarms.message("deaf"))
    pool = pool_factory("--ttr-grace", "0.5")
    beanstalk = queue.capabilities.name == "beanstalk"
    # The log line comes just after the burial (SQS counts the buried queue at once), so both
    # are waited for. On beanstalk the kill's closed socket gives the job back; the next
    # reservation finds it over max_attempts.
    reason = ("its worker died while running it" if beanstalk
              else "time limit of 1 s exceeded (attempt 1 of 1)")
    wait_until(lambda: queue.stats().buried == 1 and reason in pool.log(), 20, "deaf job buried")
    started = jepsen.read(ledger, {"deaf"}).entries[0].t
    assert time.monotonic() - started < 1 + 0.5 + 3
    assert "ran past its time limit of 1" in pool.log()
    wait_until(lambda: len(pool.children()) == CHILDREN, 5, "pool back to 4")
    assert pool.stop() == 0
    assert queue.stats() == kue.QueueStats(buried=1)


def test_sigterm_lets_running_jobs_finish_then_exits_zero(
    queue: kue.Queue, pool_factory: Callable[..., Pool], ledger: Path
) -> None:
    keys = {f"s{i}" for i in range(CHILDREN)}
    pool = pool_factory()
    _push(queue, [fault_jobs.work.message(k, 1.5) for k in sorted(keys)])
    wait_until(lambda: sum(jepsen.read(ledger, keys).started.values()) == CHILDREN, 20, "started")
    stopped_at = time.monotonic()
    assert pool.stop() == 0
    # The jobs' 1.5 s, and slack for a loaded machine (SQS's emulator took 3.7 s at a load of
    # 8): a stop that waited out a blocked reserve instead would take its 20 s.
    assert time.monotonic() - stopped_at < 1.5 + 5
    verdict = jepsen.read(ledger, keys)
    assert not verdict.lost and not verdict.duplicated
    assert queue.stats().total == 0


def test_shutdown_timeout_releases_unfinished_jobs(
    queue: kue.Queue, pool_factory: Callable[..., Pool], ledger: Path
) -> None:
    keys = {f"l{i}" for i in range(CHILDREN)}
    pool = pool_factory("--shutdown-timeout", "1")
    _push(queue, [fault_jobs.work.message(k, 60) for k in sorted(keys)])
    wait_until(lambda: sum(jepsen.read(ledger, keys).started.values()) == CHILDREN, 20, "started")
    stopped_at = time.monotonic()
    assert pool.stop() == 0
    # The jobs would run 60 s: the stop waits the 1 s timeout, then gives the jobs back, one
    # request each; on SQS (moto) under a loaded CI machine the whole stop once took 3.06 s.
    assert time.monotonic() - stopped_at < 10
    wait_until(lambda: queue.stats().ready == CHILDREN, 1.5, "jobs visible again")


def test_garbage_and_unknown_names_are_buried_and_the_pool_goes_on(
    queue: kue.Queue, pool_factory: Callable[..., Pool], ledger: Path
) -> None:
    keys = {f"g{i}" for i in range(20)}
    queue.put(b"\xff\x00 not json")
    queue.put({"job": "faults.nobody_registered_this", "args": []})
    _push(queue, [fault_jobs.work.message(k) for k in sorted(keys)])
    pool = pool_factory()
    wait_until(lambda: not jepsen.read(ledger, keys).lost, 30, "good jobs done")
    wait_until(lambda: queue.stats() == kue.QueueStats(buried=2), 10, "poison buried")
    assert pool.stop() == 0
    assert "died" not in pool.log()


def test_a_job_that_segfaults_every_time_is_buried_after_max_attempts(
    queue: kue.Queue, pool_factory: Callable[..., Pool], ledger: Path
) -> None:
    keys = {f"n{i}" for i in range(100)}
    _push(queue, [fault_jobs.segfault.message("segv"),
                  *(fault_jobs.work.message(k) for k in sorted(keys))])
    pool = pool_factory()
    wait_until(lambda: queue.stats().buried == 1, 60, "segfaulting job buried")
    wait_until(lambda: not jepsen.read(ledger, keys).lost, 60, "other jobs done")
    assert jepsen.read(ledger, keys | {"segv"}).started["segv"] == 3
    assert pool.log().count("died (signal 11)") == 3
    wait_until(lambda: len(pool.children()) == CHILDREN, 5, "pool back to 4")
    assert pool.stop() == 0
    assert queue.stats() == kue.QueueStats(buried=1)


def test_an_idle_pool_uses_almost_no_cpu(
    queue: kue.Queue, pool_factory: Callable[..., Pool]
) -> None:
    pool = pool_factory()
    time.sleep(0.5)  # every child has connected; let them settle into a blocking reserve
    before, t0 = pool.cpu_seconds(), time.monotonic()
    time.sleep(3)
    used = (pool.cpu_seconds() - before) / (time.monotonic() - t0)
    print(f"idle pool of {CHILDREN}: {used:.1%} of one core")
    assert used < 0.05
    assert pool.stop() == 0


def test_a_hung_child_loses_its_job_to_another_and_its_late_ack_fails_cleanly(
    queue: kue.Queue, pool_factory: Callable[..., Pool], ledger: Path
) -> None:
    """FAULTS F2: a child stopped (SIGSTOP) mid-job, its socket open.

    beanstalkd may not time out a reservation while the connection holding it stays idle
    (beanstalkd issues #174, #262: seen here about once in eight runs under load), so on
    beanstalk the job comes back when the supervisor kills the hung child after ttr + grace
    and its connection closes; elsewhere the ttr alone brings it back, and the resumed
    child's late delete is refused cleanly.
    """
    beanstalk = queue.capabilities.name == "beanstalk"
    queue.push(fault_jobs.short_ttr.message("hung", 1.0))
    # Elsewhere the supervisor must not kill it first: the late ack is part of the test.
    pool = pool_factory("--ttr-grace", "1" if beanstalk else "60")
    wait_until(lambda: jepsen.read(ledger, {"hung"}).started["hung"] == 1, 20, "job started")
    hung_pid = jepsen.read(ledger, {"hung"}).entries[0].pid
    os.kill(hung_pid, signal.SIGSTOP)
    try:
        try:
            wait_until(lambda: jepsen.read(ledger, {"hung"}).ended["hung"] == 1, 30,
                       "redelivered")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {queue.stats()}; ledger {ledger.read_text()!r}; "
                                 f"log:\n{pool.log()[-3000:]}") from None
        again = next(e for e in jepsen.read(ledger, {"hung"}).entries if e.event == "end")
        assert again.pid != hung_pid and again.attempt == 2
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung_pid, signal.SIGCONT)
    if beanstalk:
        wait_until(lambda: "renewed no lease" in pool.log(), 10, "hung child killed")
        wait_until(lambda: len(pool.children()) == CHILDREN, 5, "pool back to 4")
    else:
        wait_until(lambda: "is no longer reserved by this consumer" in pool.log(), 10,
                   "late ack")
        assert hung_pid in pool.children()  # it lives on after the refused ack
        assert "died" not in pool.log()
    assert pool.stop() == 0
    assert queue.stats().total == 0


def test_jobs_that_finish_just_inside_their_ttr_are_never_redelivered(
    queue: kue.Queue, pool_factory: Callable[..., Pool], ledger: Path
) -> None:
    """FAULTS F16: ttr 2 s, jobs of 1.5 s (inside beanstalkd's DEADLINE_SOON second)."""
    keys = {f"d{i}" for i in range(2 * CHILDREN)}
    pool = pool_factory()
    _push(queue, [fault_jobs.short_ttr.message(k, 1.5) for k in sorted(keys)])
    wait_until(lambda: not jepsen.read(ledger, keys).lost, 30, "all done")
    assert pool.stop() == 0
    verdict = jepsen.read(ledger, keys)
    assert not verdict.duplicated and sum(verdict.started.values()) == len(keys)
    assert {e.attempt for e in verdict.entries} == {1}
    assert queue.stats().total == 0
