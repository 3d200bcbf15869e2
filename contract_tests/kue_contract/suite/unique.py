"""Unique puts: one job per key while it is queued or running, however many push at once.

Runs natively where the backend declares ``unique_put`` (memory, sqlite, redis) and, through
``--kue-results=URL``, on a backend that takes them through its record store's claims
(beanstalk, sqs). The same step gives periodic jobs their one job per tick.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import kue
from kue.backend import UniqueBackend
from kue.plugins import new_plugin_manager
from kue.unique import supports_unique
from kue.worker import Worker
from kue_contract.helpers import drain, wait_for

THREADS = 8


@kue.job(name="kue_contract.unique.noop", max_attempts=1)
def noop(n: int) -> int:
    """Does nothing: its job exists to hold a key."""
    return n


@kue.job(name="kue_contract.unique.fail", max_attempts=1)
def fail() -> None:
    """Always raises, so its job is buried at its first attempt."""
    raise RuntimeError("buried on purpose")


def run_worker(queue: kue.Queue) -> kue.worker.WorkerStats:
    """Drain ``queue`` with an in-process worker that writes records where the queue reads."""
    worker = Worker(queue.backend, [queue.name], records=queue.records,
                    plugin_manager=new_plugin_manager(load_entry_points=False))
    return worker.run(burst=True)


class UniqueContract:
    """``push(unique_key=...)`` and ``Backend.put_unique``: one job per key."""

    @pytest.fixture
    def unique_queue(self, queue: kue.Queue) -> Iterator[kue.Queue]:
        """The test queue, if unique pushes work on its backend; else the test is skipped."""
        if not supports_unique(queue.backend, queue.records.store):
            pytest.skip(f"the {queue.capabilities.name} backend declares unique_put=False and "
                        "no --kue-results store that can hold claims was given")
        yield queue

    def test_eight_threads_pushing_one_key_at_once_make_one_job(
        self, unique_queue: kue.Queue
    ) -> None:
        q = unique_queue
        start = threading.Barrier(THREADS)

        def push(n: int) -> kue.JobHandle:
            start.wait(timeout=10)
            handle = q.push(noop.message(n), unique_key="report:42")
            assert handle is not None
            return handle

        with ThreadPoolExecutor(THREADS) as pool:
            handles = list(pool.map(push, range(THREADS)))
        assert len({str(h) for h in handles}) == 1, handles
        assert sum(h.created for h in handles) == 1
        assert q.stats().total == 1
        job = q.reserve(timeout=5)
        assert job is not None and job.id == handles[0]  # the id every pusher got is the job's
        job.delete()

    def test_the_key_is_held_while_the_job_waits_and_while_it_runs(
        self, unique_queue: kue.Queue
    ) -> None:
        q = unique_queue
        first = q.push(noop.message(1), unique_key="k")
        assert first is not None and first.created
        again = q.push(noop.message(2), unique_key="k")
        assert again == first and again is not None and not again.created
        job = q.reserve(timeout=5)
        assert job is not None and job.id == first
        while_running = q.push(noop.message(3), unique_key="k")
        assert while_running == first
        assert q.stats().total == 1
        job.delete()

    def test_the_key_is_free_once_the_job_is_done(self, unique_queue: kue.Queue) -> None:
        q = unique_queue
        first = q.push(noop.message(1), unique_key="k")
        assert run_worker(q).succeeded == 1
        second = q.push(noop.message(2), unique_key="k")
        assert second is not None and second.created and second != first
        assert q.stats().total == 1
        drain(q)

    def test_the_key_is_free_once_the_job_is_buried(self, unique_queue: kue.Queue) -> None:
        q = unique_queue
        if not q.capabilities.bury:
            pytest.skip(f"the {q.capabilities.name} backend declares bury=False")
        first = q.push(fail.message(), unique_key="k")
        assert run_worker(q).buried == 1
        second = q.push(noop.message(2), unique_key="k")
        assert second is not None and second.created and second != first

    def test_the_key_is_free_after_unique_for(self, unique_queue: kue.Queue) -> None:
        q = unique_queue
        first = q.push(noop.message(1), unique_key="k", unique_for=1)
        assert first is not None and first.created

        def pushed_again() -> kue.JobHandle | None:
            handle = q.push(noop.message(2), unique_key="k", unique_for=1)
            return handle if handle is not None and handle.created else None

        second = wait_for(pushed_again, timeout=10, interval=0.1)
        assert second != first
        assert q.stats().total == 2  # the first job is still queued: only its key expired
        drain(q)

    def test_keys_belong_to_their_queue(self, unique_queue: kue.Queue,
                                        make_queue: object) -> None:
        other = make_queue()  # type: ignore[operator]
        a = unique_queue.push(noop.message(1), unique_key="k")
        b = other.push(noop.message(1), unique_key="k")
        assert a is not None and b is not None and a.created and b.created
        drain(unique_queue)
        drain(other)

    def test_a_key_held_for_its_whole_ttl_outlives_its_job(
        self, unique_queue: kue.Queue
    ) -> None:
        q = unique_queue  # how periodic ticks are put: a tick that ran must not run again
        first = q.push_unique(noop.message(1), "tick@1000", 600, until_done=False)
        assert run_worker(q).succeeded == 1
        again = q.push_unique(noop.message(1), "tick@1000", 600, until_done=False)
        assert again == first and not again.created
        assert q.stats().total == 0

    def test_a_unique_push_inside_a_batch_is_refused(self, unique_queue: kue.Queue) -> None:
        with pytest.raises(ValueError, match="inside batch"), unique_queue.batch():
            unique_queue.push(noop.message(1), unique_key="k")
        assert unique_queue.stats().total == 0

    @pytest.mark.parametrize(("key", "ttl", "error"), [
        ("", 10, ValueError), ("x" * 251, 10, ValueError), (42, 10, TypeError),
        ("k", 0, ValueError), ("k", -1, ValueError), ("k", float("nan"), ValueError),
        ("k", True, TypeError),
    ])
    def test_bad_keys_and_ttls_are_refused_before_anything_is_sent(
        self, queue: kue.Queue, key: object, ttl: object, error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            queue.push(noop.message(1), unique_key=key, unique_for=ttl)  # type: ignore[arg-type]
        assert queue.stats().total == 0

    def test_without_a_way_to_hold_keys_a_unique_push_raises_unsupported(
        self, queue: kue.Queue
    ) -> None:
        if supports_unique(queue.backend, queue.records.store):
            pytest.skip(f"the {queue.capabilities.name} backend can hold unique keys here")
        with pytest.raises(kue.Unsupported, match=queue.capabilities.name):
            queue.push(noop.message(1), unique_key="k")
        assert queue.stats().total == 0


class UniqueBackendContract:
    """``Backend.put_unique`` itself, on backends that declare ``unique_put``."""

    @pytest.fixture
    def backend(self, queue: kue.Queue) -> UniqueBackend:
        """The backend under test, if it declares unique_put."""
        if not queue.capabilities.unique_put:
            pytest.skip(f"the {queue.capabilities.name} backend declares unique_put=False")
        assert isinstance(queue.backend, UniqueBackend), "unique_put=True without put_unique"
        return queue.backend

    def test_put_unique_from_eight_threads_stores_one_job(
        self, backend: UniqueBackend, queue: kue.Queue
    ) -> None:
        start = threading.Barrier(THREADS)

        def put(n: int) -> tuple[str, bool]:
            start.wait(timeout=10)
            return backend.put_unique(queue.name, b"%d" % n, 5, 0.0, 60.0, "key", 600.0, True)

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(put, range(THREADS)))
        assert len({job_id for job_id, _ in results}) == 1
        assert [stored for _, stored in results].count(True) == 1
        assert queue.stats().total == 1

    def test_deleting_the_job_frees_its_key(self, backend: UniqueBackend,
                                            queue: kue.Queue) -> None:
        first, _ = backend.put_unique(queue.name, b"a", 5, 0.0, 60.0, "key", 600.0, True)
        job = queue.reserve(timeout=5)
        assert job is not None and job.id == first
        job.delete()
        second, stored = backend.put_unique(queue.name, b"b", 5, 0.0, 60.0, "key", 600.0, True)
        assert stored and second != first

    def test_a_delayed_job_holds_its_key(self, backend: UniqueBackend,
                                         queue: kue.Queue) -> None:
        first, _ = backend.put_unique(queue.name, b"a", 5, 3600.0, 60.0, "key", 600.0, True)
        again, stored = backend.put_unique(queue.name, b"b", 5, 0.0, 60.0, "key", 600.0, True)
        assert (again, stored) == (first, False)
        assert queue.stats().delayed == 1 and queue.stats().total == 1
