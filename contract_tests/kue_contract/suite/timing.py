"""Time is part of the contract: delays and ttrs are never early, nor late past a tolerance.

A backend declares how late it may be (``timing_tolerance``); the suite adds an allowance for
the test machine. Each test measures from just before the call that starts a timer, so "never
early" needs no allowance (the server starts counting after that moment), and waits in a
blocking ``reserve`` that outlasts the latest moment allowed, so "not late" is the job coming
by then (not merely a reserve that finds it as it times out).
"""

from __future__ import annotations

import time

import pytest

import kue
from kue_contract.helpers import EARLY, by, wait_for, whole

#: Seconds a blocking reserve waits past the latest allowed moment, so that a job that comes
#: late is measured as late rather than taken by a reserve's last look as it times out.
OVERRUN = 5.0


def _reserve_by(queue: kue.Queue, seconds: float, what: str,
                since: float | None = None) -> tuple[kue.ReservedJob, float]:
    """Reserve, waiting for a job due ``seconds`` after ``since`` (default: now).

    It must come by then plus the tolerance: the reserve blocks a little longer, and how late
    the job came is measured, so a backend that notices a due job only when a waiting
    reserve times out is caught.
    """
    start = time.monotonic() if since is None else since
    caps = queue.capabilities
    latest = by(seconds, caps)
    job = queue.reserve(timeout=max(0.0, start + latest + OVERRUN - time.monotonic()))
    came = time.monotonic()
    assert job is not None and came - start <= latest, (
        f"{what} was not back within {seconds:g} s + the {caps.name} backend's timing "
        f"tolerance of {caps.timing_tolerance:g} s (+ the suite's scheduling allowance): "
        + ("never" if job is None else f"after {came - start:.3f} s")
    )
    return job, came


class DelayContract:
    """Delayed jobs stay out of sight until due, and are ready by due + the tolerance."""

    @pytest.mark.requires("delay")
    def test_a_delayed_job_is_never_early_and_at_most_the_tolerance_late(
        self, queue: kue.Queue
    ) -> None:
        delay = 1.0
        started = time.monotonic()
        job_id = queue.put("later", delay=delay)
        assert queue.reserve(timeout=0) is None
        assert queue.stats() == kue.QueueStats(delayed=1)
        job, came = _reserve_by(queue, delay, "a job put with a delay of 1 s", started)
        assert (job.id, job.body, job.attempts) == (job_id, b"later", 1)
        assert came - started >= delay - EARLY, f"ready {came - started:.3f} s after a 1 s delay"
        job.delete()

    @pytest.mark.requires("delay")
    def test_a_job_released_with_a_delay_is_never_early_and_at_most_the_tolerance_late(
        self, queue: kue.Queue
    ) -> None:
        delay = 1.0
        queue.put("again")
        job = queue.reserve(timeout=5)
        assert job is not None
        released = time.monotonic()
        job.release(delay=delay)
        assert queue.reserve(timeout=0) is None
        assert queue.stats() == kue.QueueStats(delayed=1)
        again, came = _reserve_by(queue, delay, "a job released with a delay of 1 s",
                                  released)
        assert again.id == job.id and again.attempts == 2
        assert came - released >= delay - EARLY, f"ready {came - released:.3f} s after release"
        again.delete()

    @pytest.mark.requires("delay")
    def test_the_longest_declared_delay_is_accepted(self, queue: kue.Queue) -> None:
        queue.put("far away", delay=queue.capabilities.max_delay)
        assert queue.stats() == kue.QueueStats(delayed=1)


class TtrContract:
    """A reservation lasts ttr seconds, no less, and by ttr + the tolerance the job is back."""

    def test_a_reservation_never_comes_back_before_its_ttr_and_does_by_ttr_plus_tolerance(
        self, queue: kue.Queue
    ) -> None:
        ttr = whole(queue.capabilities.min_ttr, queue.capabilities)
        queue.put("slow", ttr=ttr)
        started = time.monotonic()
        first = queue.reserve(timeout=5)
        assert first is not None and first.attempts == 1
        again, came = _reserve_by(queue, ttr, f"a job whose ttr of {ttr:g} s ran out",
                                  started)
        assert came - started >= ttr - EARLY, (
            f"handed out again {came - started:.3f} s into a ttr of {ttr:g} s")
        assert (again.id, again.attempts) == (first.id, 2)
        again.delete()

    def test_touch_gives_a_full_new_ttr_and_the_job_expires_after_it(
        self, queue: kue.Queue
    ) -> None:
        ttr = whole(queue.capabilities.min_ttr, queue.capabilities)
        queue.put("long", ttr=ttr)
        job = queue.reserve(timeout=5)
        assert job is not None
        time.sleep(ttr / 2)  # half its ttr passes: the touch must give it a whole one again
        touched = time.monotonic()
        job.touch()
        again, came = _reserve_by(queue, ttr, "a touched job whose new ttr ran out", touched)
        assert came - touched >= ttr - EARLY, (
            f"handed out again {came - touched:.3f} s after a touch, with a ttr of {ttr:g} s")
        assert (again.id, again.attempts) == (job.id, 2)
        again.delete()

    def test_acting_on_a_reservation_another_consumer_took_raises_reservation_lost(
        self, queue: kue.Queue
    ) -> None:
        ttr = queue.capabilities.min_ttr
        queue.put("contested", ttr=ttr)
        stale = queue.reserve(timeout=5)
        assert stale is not None
        fresh, _ = _reserve_by(queue, whole(ttr, queue.capabilities), "an expired reservation")
        assert fresh.id == stale.id
        with pytest.raises(kue.ReservationLost):
            stale.touch()
        with pytest.raises(kue.ReservationLost):
            stale.release()
        with pytest.raises(kue.ReservationLost):
            stale.delete()
        if queue.capabilities.bury:
            with pytest.raises(kue.ReservationLost):
                stale.bury()
        assert queue.stats() == kue.QueueStats(reserved=1)
        fresh.delete()
        assert queue.stats().total == 0

    def test_a_job_released_before_its_ttr_is_not_redelivered_twice(
        self, queue: kue.Queue
    ) -> None:
        queue.put("quick", ttr=queue.capabilities.min_ttr)
        job = queue.reserve(timeout=5)
        assert job is not None
        job.release()
        again = wait_for(lambda: queue.reserve(timeout=0), timeout=3)
        assert again.attempts == 2
        again.delete()
        assert queue.reserve(timeout=whole(queue.capabilities.min_ttr, queue.capabilities) + 0.5
                             ) is None
