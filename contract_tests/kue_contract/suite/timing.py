"""Delay and time-to-run: the promises that take wall time, kept short."""

from __future__ import annotations

import time

import pytest

import kue
from kue_contract.helpers import wait_for, whole


class DelayContract:
    """Delayed jobs stay out of sight until due."""

    @pytest.mark.requires("delay")
    def test_a_delayed_job_is_invisible_until_due(self, queue: kue.Queue) -> None:
        queue.put("later", delay=1)
        started = time.monotonic()
        assert queue.reserve(timeout=0) is None
        assert queue.stats() == kue.QueueStats(delayed=1)
        job = queue.reserve(timeout=whole(1, queue.capabilities) + 3)
        waited = time.monotonic() - started
        assert job is not None and job.body == b"later"
        assert waited >= 0.95
        job.delete()

    @pytest.mark.requires("delay")
    def test_a_release_with_delay_hides_the_job_until_due(self, queue: kue.Queue) -> None:
        queue.put("again")
        job = queue.reserve(timeout=5)
        assert job is not None
        released = time.monotonic()
        job.release(delay=1)
        assert queue.reserve(timeout=0) is None
        assert queue.stats() == kue.QueueStats(delayed=1)
        again = queue.reserve(timeout=whole(1, queue.capabilities) + 3)
        assert again is not None and again.id == job.id
        assert time.monotonic() - released >= 0.95
        assert again.attempts == 2
        again.delete()

    @pytest.mark.requires("delay")
    def test_the_longest_declared_delay_is_accepted(self, queue: kue.Queue) -> None:
        queue.put("far away", delay=queue.capabilities.max_delay)
        assert queue.stats() == kue.QueueStats(delayed=1)


class TtrContract:
    """A reservation lasts ttr seconds; then the job is ready again with attempts + 1."""

    def test_an_expired_reservation_comes_back_with_one_more_attempt(
        self, queue: kue.Queue
    ) -> None:
        ttr = queue.capabilities.min_ttr
        queue.put("slow", ttr=ttr)
        first = queue.reserve(timeout=5)
        assert first is not None and first.attempts == 1
        again = queue.reserve(timeout=whole(ttr, queue.capabilities) + 3)
        assert again is not None
        assert again.id == first.id
        assert again.attempts == 2
        again.delete()

    def test_touch_postpones_expiry(self, queue: kue.Queue) -> None:
        ttr = whole(queue.capabilities.min_ttr, queue.capabilities)
        queue.put("long", ttr=ttr)
        job = queue.reserve(timeout=5)
        assert job is not None
        reserved_at = time.monotonic()
        time.sleep(ttr * 0.6)
        job.touch()
        # Past the first ttr, the touched job must still be ours.
        time.sleep(max(0.0, reserved_at + ttr * 1.2 - time.monotonic()))
        assert queue.reserve(timeout=0) is None
        assert queue.stats().reserved == 1
        job.delete()
        assert queue.stats().total == 0

    def test_acting_on_a_reservation_another_consumer_took_raises_reservation_lost(
        self, queue: kue.Queue
    ) -> None:
        ttr = queue.capabilities.min_ttr
        queue.put("contested", ttr=ttr)
        stale = queue.reserve(timeout=5)
        assert stale is not None
        fresh = queue.reserve(timeout=whole(ttr, queue.capabilities) + 3)
        assert fresh is not None and fresh.id == stale.id
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
