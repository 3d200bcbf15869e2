"""Bury, kick and peek: setting jobs aside, bringing them back, and looking without taking."""

from __future__ import annotations

import pytest

import kue
from kue_contract.helpers import drain

BIG_DELAY = 3600


class BuryContract:
    """Buried jobs wait for a kick; kick takes the longest buried first."""

    @pytest.mark.requires("bury")
    def test_a_buried_job_stays_until_kicked(self, queue: kue.Queue) -> None:
        queue.put("poison")
        job = queue.reserve(timeout=5)
        assert job is not None
        job.bury()
        assert queue.stats() == kue.QueueStats(buried=1)
        assert queue.reserve(timeout=0) is None
        assert queue.kick(10) == 1
        again = queue.reserve(timeout=5)
        assert again is not None and again.id == job.id and again.body == b"poison"
        assert again.attempts == 2
        again.delete()

    @pytest.mark.requires("bury", "priority")
    def test_bury_keeps_the_priority_unless_given_one(self, queue: kue.Queue) -> None:
        queue.put("keeps", priority=7)
        queue.put("changes", priority=8)
        for expected_body, new_priority in ((b"keeps", None), (b"changes", 3)):
            job = queue.reserve(timeout=5)
            assert job is not None and job.body == expected_body
            job.bury(priority=new_priority)
        assert queue.kick(2) == 2
        got = []
        while (job := queue.reserve(timeout=0)) is not None:
            got.append((job.body, job.priority))
            job.delete()
        assert got == [(b"changes", 3), (b"keeps", 7)]

    @pytest.mark.requires("bury", "fifo")
    def test_kick_moves_the_jobs_buried_longest_ago_first(self, queue: kue.Queue) -> None:
        for name in ("a", "b", "c"):
            queue.put(name, priority=10)
        if queue.capabilities.parallel:
            reserved = [queue.reserve(timeout=5) for _ in range(3)]
            for job in reversed(reserved):  # bury c, then b, then a
                assert job is not None
                job.bury()
            first_buried = b"c"
        else:
            # parallel=False: one job at a time, so they are buried in put order.
            for _ in range(3):
                job = queue.reserve(timeout=5)
                assert job is not None
                job.bury()
            first_buried = b"a"
        assert queue.kick(1) == 1
        assert drain(queue) == [first_buried]
        assert queue.kick(5) == 2
        assert queue.stats() == kue.QueueStats(ready=2)

    @pytest.mark.requires("bury", "delay", "kick_delayed")
    def test_with_nothing_buried_kick_moves_the_delayed_jobs_due_soonest(
        self, queue: kue.Queue
    ) -> None:
        queue.put("due last", delay=BIG_DELAY * 3)
        queue.put("due first", delay=BIG_DELAY)
        queue.put("due second", delay=BIG_DELAY * 2)
        assert queue.kick(2) == 2
        assert sorted(drain(queue)) == [b"due first", b"due second"]
        assert queue.stats() == kue.QueueStats(delayed=1)

    @pytest.mark.requires("bury")
    def test_kick_on_an_empty_queue_moves_nothing(self, queue: kue.Queue) -> None:
        assert queue.kick(3) == 0
        assert queue.kick(2**64) == 0

    @pytest.mark.requires("bury")
    @pytest.mark.parametrize("n", [2**31, 10**17, 2**64], ids=["2**31", "10**17", "2**64"])
    def test_kick_with_a_count_beyond_any_queue_moves_every_buried_job(
        self, queue: kue.Queue, n: int
    ) -> None:
        for body in ("a", "b"):
            queue.put(body)
        jobs = [queue.reserve(timeout=5) for _ in range(2 if queue.capabilities.parallel else 1)]
        for job in jobs:
            assert job is not None
            job.bury()
        if not queue.capabilities.parallel:
            last = queue.reserve(timeout=5)
            assert last is not None
            last.bury()
        assert queue.kick(n) == 2
        assert queue.stats() == kue.QueueStats(ready=2)


class PeekContract:
    """peek shows the next job of a state and reserves nothing."""

    @pytest.mark.requires("peek", "priority")
    def test_peek_ready_shows_the_next_job_without_reserving_it(self, queue: kue.Queue) -> None:
        queue.put("second", priority=9)
        first_id = queue.put("first", priority=1)
        seen = queue.peek("ready")
        assert seen is not None
        assert (seen.queue, seen.id, seen.body, seen.priority, seen.state) == (
            queue.name, first_id, b"first", 1, kue.JobState.READY)
        assert queue.stats() == kue.QueueStats(ready=2)
        job = queue.reserve(timeout=5)
        assert job is not None and job.id == first_id

    @pytest.mark.requires("peek", "delay")
    def test_peek_delayed_shows_the_job_due_soonest(self, queue: kue.Queue) -> None:
        queue.put("later", delay=BIG_DELAY * 2)
        soon = queue.put("sooner", delay=BIG_DELAY)
        seen = queue.peek("delayed")
        assert seen is not None and seen.id == soon and seen.state is kue.JobState.DELAYED
        assert seen.queue == queue.name
        assert queue.stats() == kue.QueueStats(delayed=2)

    @pytest.mark.requires("peek", "bury", "parallel")
    def test_peek_buried_shows_the_job_buried_longest_ago(self, queue: kue.Queue) -> None:
        queue.put("x")
        queue.put("y")
        x, y = queue.reserve(timeout=5), queue.reserve(timeout=5)
        assert x is not None and y is not None
        y.bury()
        x.bury()
        seen = queue.peek("buried")
        assert seen is not None and seen.id == y.id and seen.body == b"y"
        assert seen.state is kue.JobState.BURIED and seen.queue == queue.name
        assert queue.stats() == kue.QueueStats(buried=2)

    @pytest.mark.requires("peek")
    def test_peek_shows_the_id_and_the_attempts_so_far(self, queue: kue.Queue) -> None:
        fresh = queue.put("fresh")
        seen = queue.peek("ready")
        assert seen is not None and (seen.id, seen.attempts) == (fresh, 0)
        job = queue.reserve(timeout=5)
        assert job is not None
        job.release()
        seen = queue.peek("ready")
        assert seen is not None and (seen.id, seen.attempts) == (fresh, 1)
        job = queue.reserve(timeout=5)
        assert job is not None and job.attempts == 2
        if queue.capabilities.bury:
            job.bury()
            seen = queue.peek("buried")
            assert seen is not None and (seen.id, seen.attempts) == (fresh, 2)
        else:
            job.delete()

    @pytest.mark.requires("peek")
    def test_peek_on_an_empty_state_returns_none(self, queue: kue.Queue) -> None:
        assert queue.peek("ready") is None
        assert queue.peek("delayed") is None
        assert queue.peek("buried") is None

    def test_peek_refuses_the_reserved_state(self, queue: kue.Queue) -> None:
        with pytest.raises(ValueError, match="reserved"):
            queue.peek("reserved")


class UnsupportedContract:
    """A capability a backend declares absent raises Unsupported, and loses nothing."""

    @pytest.mark.parametrize("capability", ["bury", "peek", "delay", "kick_delayed"])
    def test_an_absent_capability_raises_unsupported(
        self, queue: kue.Queue, capability: str
    ) -> None:
        caps = queue.capabilities
        if getattr(caps, capability):
            pytest.skip(f"the {caps.name} backend declares capability {capability}=True")
        if capability == "kick_delayed" and not caps.delay:
            pytest.skip(f"the {caps.name} backend declares capability delay=False: no job is "
                        "ever delayed, so there is nothing for kick to reach")
        queue.put("kept")
        with pytest.raises(kue.Unsupported):
            if capability == "bury":
                job = queue.reserve(timeout=5)
                assert job is not None
                try:
                    job.bury()
                finally:
                    job.release()
            elif capability == "peek":
                queue.peek("ready")
            elif capability == "kick_delayed":
                queue.put("later", delay=60)
                queue.kick(1)
            else:
                queue.put("later", delay=5)
        if capability == "bury":
            with pytest.raises(kue.Unsupported):
                queue.kick(1)
        assert drain(queue) == [b"kept"]
        if capability == "kick_delayed":
            assert queue.stats().delayed == 1
