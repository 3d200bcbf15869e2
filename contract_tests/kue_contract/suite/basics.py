"""Put, reserve, delete, put_many, stats: what every backend does."""

from __future__ import annotations

import time

import kue
from kue_contract.helpers import drain


class BasicsContract:
    """The operations no backend may lack."""

    def test_put_then_reserve_returns_the_body_and_id(self, queue: kue.Queue) -> None:
        job_id = queue.put({"processVideo": 4871})
        job = queue.reserve(timeout=5)
        assert job is not None
        assert job.id == job_id
        assert job.json() == {"processVideo": 4871}
        assert job.attempts == 1
        assert job.queue == queue.name
        job.delete()
        assert queue.stats().total == 0

    def test_bodies_round_trip_byte_for_byte(self, queue: kue.Queue) -> None:
        bodies = [b"\x00\x01\xfe\xff binary", "ünïcødé ✓".encode(), b"x" * 5000, b"{}"]
        for body in bodies:
            queue.put(body)
        assert sorted(drain(queue)) == sorted(bodies)

    def test_reserve_on_an_empty_queue_returns_none_without_waiting_past_its_timeout(
        self, queue: kue.Queue
    ) -> None:
        assert queue.reserve(timeout=0) is None
        started = time.monotonic()
        assert queue.reserve(timeout=1) is None
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 2.5

    def test_a_reserved_job_is_invisible_to_others(self, queue: kue.Queue) -> None:
        queue.put(b"only one")
        first = queue.reserve(timeout=5)
        assert first is not None
        assert queue.reserve(timeout=0) is None
        assert queue.stats().reserved == 1
        queue.put(b"next")
        if queue.capabilities.parallel:
            second = queue.reserve(timeout=5)  # another consumer gets the next job meanwhile
            assert second is not None and second.body == b"next"
            second.delete()
            first.delete()
        else:
            # parallel=False: the held job holds back the rest of its queue, however long asked.
            assert queue.reserve(timeout=1) is None
            assert queue.stats() == kue.QueueStats(ready=1, reserved=1)
            first.delete()
            second = queue.reserve(timeout=5)
            assert second is not None and second.body == b"next"
            second.delete()
        assert queue.stats().total == 0

    def test_put_many_returns_ids_in_order_and_every_job_arrives(self, queue: kue.Queue) -> None:
        items = [kue.PutItem(f"job {i}".encode()) for i in range(25)]
        ids = queue.put_many(items)
        assert len(ids) == len(set(ids)) == 25
        seen = {}
        while (job := queue.reserve(timeout=0)) is not None:
            seen[job.id] = job.body
            job.delete()
        assert seen == {job_id: item.body for job_id, item in zip(ids, items, strict=True)}

    def test_stats_count_ready_reserved_and_deleted_jobs(self, queue: kue.Queue) -> None:
        for i in range(3):
            queue.put(f"{i}")
        assert queue.stats() == kue.QueueStats(ready=3)
        job = queue.reserve(timeout=5)
        assert job is not None
        assert queue.stats() == kue.QueueStats(ready=2, reserved=1)
        job.delete()
        assert queue.stats() == kue.QueueStats(ready=2)

    def test_queues_are_independent(self, make_queue: object) -> None:
        assert callable(make_queue)
        a, b = make_queue(), make_queue()
        a.put(b"for a")
        assert b.reserve(timeout=0) is None
        assert b.stats().total == 0
        job = a.reserve(timeout=5)
        assert job is not None and job.body == b"for a"
        job.delete()

    def test_reserve_from_several_queues_takes_from_each(self, make_queue: object) -> None:
        assert callable(make_queue)
        a, b = make_queue(), make_queue()
        a.put(b"in a")
        b.put(b"in b")
        got = []
        for _ in range(2):
            job = a.reserve_from([a.name, b.name], timeout=5)
            assert job is not None
            got.append((job.queue, job.body))
            job.delete()
        assert sorted(got) == sorted([(a.name, b"in a"), (b.name, b"in b")])
        assert a.reserve_from([a.name, b.name], timeout=0) is None

    def test_jobs_push_and_pop_as_job_objects(self, queue: kue.Queue) -> None:
        job_id = queue.push(ContractEcho("hello", times=2))
        popped = queue.pop(timeout=5)
        assert popped is not None and popped.id == job_id
        rebuilt = popped.job()
        assert isinstance(rebuilt, ContractEcho)
        assert rebuilt.run() == "hellohello"
        popped.delete()

    def test_a_batch_is_sent_by_one_put_many_and_the_buffer_empties(
        self, queue: kue.Queue
    ) -> None:
        with queue.batch():
            for i in range(12):
                assert queue.push(ContractEcho(str(i))) is None
            assert queue.pending == 12
            assert queue.stats().total == 0
        assert queue.pending == 0
        assert queue.stats().ready == 12
        assert queue.flush() == []


class ContractEcho(kue.Job):
    """A job the contract suite pushes and rebuilds."""

    name = "kue_contract.echo"

    def __init__(self, text: str, times: int = 1) -> None:
        self.text = text
        self.times = times

    def run(self) -> str:
        """Repeat the text."""
        return self.text * self.times
