"""Priority means one thing: 0 first; among equals, the job put first goes first."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import kue
from kue_contract.helpers import drain, wait_for, whole


class OrderContract:
    """Strict priority order and first-put-first among equal priority."""

    @pytest.mark.requires("priority")
    def test_lower_priority_number_comes_out_first(self, queue: kue.Queue) -> None:
        for pri in (5, 2**32 - 1, 0, 3, 1000):
            queue.put(f"p{pri}", priority=pri)
        assert drain(queue) == [b"p0", b"p3", b"p5", b"p1000", f"p{2**32 - 1}".encode()]

    @pytest.mark.requires("fifo")
    def test_equal_priority_comes_out_in_put_order(self, queue: kue.Queue) -> None:
        for i in range(20):
            queue.put(f"{i}", priority=7)
        assert drain(queue) == [f"{i}".encode() for i in range(20)]

    @pytest.mark.requires("priority", "fifo")
    def test_a_released_job_keeps_its_place_among_its_priority(self, queue: kue.Queue) -> None:
        for name in ("a", "b", "c"):
            queue.put(name, priority=10)
        first = queue.reserve(timeout=5)
        assert first is not None and first.body == b"a"
        if queue.capabilities.parallel:  # else "b" waits until "a" is released
            second = queue.reserve(timeout=5)
            assert second is not None and second.body == b"b"
            second.release()
        first.release()
        assert drain(queue) == [b"a", b"b", b"c"]

    @pytest.mark.requires("priority", "fifo")
    def test_release_with_a_priority_replaces_the_jobs_priority(self, queue: kue.Queue) -> None:
        queue.put("urgent later", priority=50)
        queue.put("other", priority=10)
        job = queue.reserve(timeout=5)
        assert job is not None and job.body == b"other"
        job.release(priority=100)
        assert drain(queue) == [b"urgent later", b"other"]

    @pytest.mark.requires("priority", "fifo", "bury")
    def test_a_kicked_job_keeps_its_place_and_its_priority(self, queue: kue.Queue) -> None:
        for name in ("a", "b", "c"):
            queue.put(name, priority=10)
        job = queue.reserve(timeout=5)
        assert job is not None and job.body == b"a"
        job.bury()
        assert queue.kick(1) == 1
        assert drain(queue) == [b"a", b"b", b"c"]

    @pytest.mark.requires("priority", "fifo", "delay")
    def test_a_delayed_job_takes_its_put_place_once_due(self, queue: kue.Queue) -> None:
        queue.put("first, delayed", priority=10, delay=1)
        queue.put("second", priority=10)
        queue.put("more urgent", priority=5)
        wait_for(lambda: queue.stats().ready == 3, timeout=whole(1, queue.capabilities) + 3)
        assert drain(queue) == [b"more urgent", b"first, delayed", b"second"]

    @pytest.mark.requires("priority", "fifo")
    def test_reserve_from_several_queues_takes_the_most_urgent_of_all(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        a, b = make_queue(), make_queue()
        a.put("a-late", priority=20)
        b.put("b-urgent", priority=1)
        a.put("a-mid", priority=10)
        b.put("b-mid", priority=10)
        got = []
        while (job := a.reserve_from([a.name, b.name], timeout=0)) is not None:
            got.append(job.body)
            job.delete()
        assert got == [b"b-urgent", b"a-mid", b"b-mid", b"a-late"]
