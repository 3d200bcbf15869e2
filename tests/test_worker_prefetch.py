"""The worker's prefetch: batches while the queue is deep, urgency bound, leases, stop.

Time inside the worker's prefetch window is read from a clock the test drives: each job
advances it by its "run", so the bound on how long an urgent job waits is checked exactly,
with no timed assertion.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import kue
from kue.cli.worker import build_parser
from kue.plugins import new_plugin_manager
from kue.worker import Worker
from kue.worker.concurrent import ConcurrentWorker

#: The worker modes that prefetch: one job at a time, and ``--coroutines`` (one slot here, so
#: the order jobs start in and the fake clock stay exact; the slots only add jobs in flight).
KINDS = ["worker", "coroutines"]

#: What the jobs below saw: (name, fake time at start, attempts).
_SEEN: list[tuple[str, float, int]] = []
#: Called by a tick job with its index; the test sets it.
_ON_TICK: list[Callable[[int], None]] = []


@dataclass
class FakeClock:
    """A monotonic clock that moves only when a job says it ran."""

    now: float = 1000.0
    runs: dict[str, float] = field(default_factory=dict)

    def __call__(self) -> float:
        return self.now


_CLOCK = FakeClock()


@kue.job(name="tests.prefetch.tick", max_attempts=1)
def tick(i: int, run: float) -> None:
    """A job that takes ``run`` seconds of the fake clock."""
    job = kue.current_job()
    _SEEN.append((f"tick {i}", _CLOCK.now, job.attempts if job else -1))
    for hook in _ON_TICK:
        hook(i)
    _CLOCK.now += run


@kue.job(name="tests.prefetch.urgent")
def urgent() -> None:
    """The urgent job a tick puts."""
    _SEEN.append(("urgent", _CLOCK.now, 0))


@kue.job(name="tests.prefetch.slow", max_attempts=1)
def slow(i: int, seconds: float) -> None:
    """A job that takes real time (its held neighbours' leases must be renewed meanwhile)."""
    job = kue.current_job()
    _SEEN.append((f"slow {i}", time.monotonic(), job.attempts if job else -1))
    time.sleep(seconds)


@pytest.fixture(autouse=True)
def _clean() -> None:
    _SEEN.clear()
    _ON_TICK.clear()
    _CLOCK.now = 1000.0


def _queue(name: str) -> kue.Queue:
    return kue.connect(f"memory://prefetch-{name}", queue="jobs")


def _worker(kind: str, q: kue.Queue, prefetch: int, window: float,
            clock: Callable[[], float] = time.monotonic) -> Worker | ConcurrentWorker:
    if kind == "coroutines":
        return ConcurrentWorker(q.backend, ["jobs"], 1, plugin_manager=new_plugin_manager(),
                                prefetch=prefetch, prefetch_window=window, clock=clock)
    return Worker(q.backend, ["jobs"], plugin_manager=new_plugin_manager(), prefetch=prefetch,
                  prefetch_window=window, clock=clock)


def _urgent_wait(window: float, run: Callable[[int], float], puts_at: int,
                 ticks: int = 60, kind: str = "worker") -> float:
    """How long (fake time) an urgent job put by tick ``puts_at`` waits to start."""
    q = _queue(f"urgency-{kind}-{window}-{puts_at}-{ticks}-{run(0)}-{run(ticks - 1)}")
    for i in range(ticks):
        q.push(tick.message(i, run(i)), priority=100)
    put_at: list[float] = []

    def maybe_put(i: int) -> None:
        if i == puts_at:
            q.push(urgent.message(), priority=0)
            put_at.append(_CLOCK.now)

    _ON_TICK.append(maybe_put)
    stats = _worker(kind, q, 16, window, _CLOCK).run(burst=True)
    assert stats.succeeded == ticks + 1 and stats.lost == 0
    assert q.stats().total == 0
    # max_attempts is 1: a give-back counted as an attempt would have buried the job.
    assert {attempts for name, _, attempts in _SEEN if name != "urgent"} == {1}
    ran = [name for name, _, _ in _SEEN if name != "urgent"]
    assert ran == [f"tick {i}" for i in range(ticks)], "ticks out of order"
    (started,) = [t for name, t, _ in _SEEN if name == "urgent"]
    return started - put_at[0]


def _fast(i: int) -> float:
    return 0.001


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("puts_at", [3, 15, 31, 40])
def test_an_urgent_job_waits_at_most_the_window_plus_one_jobs_run(puts_at: int,
                                                                  kind: str) -> None:
    window = 0.01
    assert _urgent_wait(window, _fast, puts_at, kind=kind) <= window + _fast(puts_at)


@pytest.mark.parametrize("kind", KINDS)
def test_without_the_window_an_urgent_job_would_wait_for_the_whole_batch(kind: str) -> None:
    # The same run with an endless window: the bound above is the window's doing.
    window = 0.01
    # Tick 31 is the first of a batch of 16 (batches of 1, 2, 4, 8, 16, 16).
    assert _urgent_wait(float("inf"), _fast, puts_at=31, kind=kind) > window + _fast(31)


def _fast_then_slow(i: int) -> float:
    return 0.0001 if i < 31 else 0.02


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("window", [0.01, float("inf")])
def test_jobs_slower_than_the_mean_are_given_back_uncounted_when_the_window_ends(
    window: float, kind: str,
) -> None:
    """A batch sized for fast jobs meets slow ones: the jobs not started go back at once."""
    # Ticks 31 to 39 come in one batch sized for fast jobs; 31 puts the urgent job.
    waited = _urgent_wait(window, _fast_then_slow, puts_at=31, ticks=40, kind=kind)
    if window < float("inf"):
        assert waited <= window + _fast_then_slow(31)
    else:  # the check fails without the window: the whole batch runs first
        assert waited > 8 * _fast_then_slow(31)


@pytest.mark.parametrize("kind", KINDS)
def test_a_stop_gives_back_the_jobs_not_started_at_once(kind: str) -> None:
    q = _queue(f"stop-{kind}")
    for i in range(40):
        q.push(tick.message(i, 0.0), priority=100)
    worker = _worker(kind, q, 16, 600, _CLOCK)
    _ON_TICK.append(lambda i: worker.stop() if i == 9 else None)  # inside a batch of 8
    stats = worker.run()
    assert stats.succeeded == 10 and stats.lost == 0
    assert q.stats() == kue.QueueStats(ready=30), "prefetched jobs were not given back"
    again = q.reserve(timeout=0)
    assert again is not None and again.attempts == 1, "a given-back job counted an attempt"
    again.release()


@pytest.mark.parametrize("kind", KINDS)
def test_prefetched_jobs_keep_their_leases_while_they_wait(kind: str) -> None:
    """Jobs held longer than their ttr are renewed by the heartbeat: none is lost or rerun."""
    q = _queue(f"leases-{kind}")
    for i in range(7):
        q.push(slow.message(i, 0.4), priority=100, ttr=1)
    worker = _worker(kind, q, 4, 600)
    stats = worker.run(burst=True)
    assert stats.succeeded == 7 and stats.lost == 0
    assert [name for name, _, _ in _SEEN] == [f"slow {i}" for i in range(7)]
    assert {attempts for _, _, attempts in _SEEN} == {1}
    starts = [t for _, t, _ in _SEEN]
    assert starts[-1] - starts[3] > 1.0, "the last job did not wait past its ttr"
    assert worker.keeper.renewals > 0


def test_prefetch_needs_a_batching_backend_and_one_queue() -> None:
    q = _queue("modes")
    assert Worker(q.backend, ["jobs"], prefetch=8).prefetch == 8
    assert not Worker(q.backend, ["jobs", "other"], prefetch=8)._batched
    assert not Worker(q.backend, ["jobs"], prefetch=1)._batched
    assert ConcurrentWorker(q.backend, ["jobs"], 4, prefetch=8)._batched
    assert not ConcurrentWorker(q.backend, ["jobs", "other"], 4, prefetch=8)._batched
    assert not ConcurrentWorker(q.backend, ["jobs"], 4, prefetch=1)._batched
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="prefetch"):
            Worker(q.backend, ["jobs"], prefetch=bad)
        with pytest.raises(ValueError, match="prefetch"):
            ConcurrentWorker(q.backend, ["jobs"], 4, prefetch=bad)


@kue.job(name="tests.prefetch.nap")
async def nap(i: int) -> int:
    """An async job that waits a little, so many are in flight at once."""
    await asyncio.sleep(0.05)
    return i


def test_the_coroutines_worker_takes_batches_for_its_free_slots_and_acks_them_together() -> None:
    q = _queue("coroutines-batches")
    ids = [q.push(nap.message(i)) for i in range(300)]
    worker = ConcurrentWorker(q.backend, ["jobs"], 50, plugin_manager=new_plugin_manager(),
                              prefetch=16)
    calls: list[tuple[int, int]] = []  # (acks, asked) per round trip
    settle_many = q.backend.settle_many  # type: ignore[attr-defined]

    def counting(acks: Any, give_back: Any, queues: Any, n: int, timeout: Any) -> Any:
        calls.append((len(acks), n))
        return settle_many(acks, give_back, queues, n, timeout)

    q.backend.settle_many = counting  # type: ignore[attr-defined]
    stats = worker.run(burst=True)
    assert stats.succeeded == 300 and stats.lost == 0
    assert q.stats().total == 0
    assert [handle.result(timeout=1) for handle in ids if handle] == list(range(300))
    assert max(asked for _, asked in calls) == 16, "never asked for a full batch"
    assert max(acked for acked, _ in calls) > 1, "every job was acked on its own"
    assert len(calls) < 150, f"{len(calls)} round trips for 300 jobs"


def test_the_cli_refuses_a_prefetch_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_parser().parse_args(["--prefetch", "32"]).prefetch == 32
    assert build_parser().parse_args([]).prefetch == 16
    for bad in ("0", "1001"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--prefetch", bad])
        assert "must be from 1 to 1000 jobs" in capsys.readouterr().err
