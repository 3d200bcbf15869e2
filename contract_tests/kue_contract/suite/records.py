"""Job records: a job's status, result, error and progress by the id put returned.

Run on every backend that keeps records (``capabilities.records``) and, through
``--kue-results=URL``, on one that points at another backend's store (beanstalk, sqs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import kue
from kue.backend import JobInfo, JobState
from kue.plugins import new_plugin_manager
from kue.records import ClaimStore, RecordState
from kue.status import InspectableBackend
from kue.worker import Worker
from kue_contract.helpers import SCHEDULING, wait_for

#: Records of these tests' jobs expire quickly unless a test says otherwise.
SHORT_TTL = 600.0


@kue.job(name="kue_contract.records.echo", max_attempts=1)
def echo(value: Any) -> Any:
    """Returns what it was given: the result round-trips through the record."""
    return value


@kue.job(name="kue_contract.records.unkeepable")
def unkeepable() -> object:
    """Succeeds, but returns what JSON cannot hold."""
    return {"when": object()}


@kue.job(name="kue_contract.records.fail", max_attempts=1)
def fail(message: str) -> None:
    """Always raises, so its job is buried with this error."""
    raise RuntimeError(message)


_progress_seen = threading.Event()
_release_progress = threading.Event()


@kue.job(name="kue_contract.records.report")
def report() -> str:
    """Reports progress, then waits until the test has seen it."""
    job = kue.current_job()
    assert job is not None
    job.progress(0.4, "resized 4 of 10")
    _progress_seen.set()
    _release_progress.wait(30)
    return "reported"


def run_worker(queue: kue.Queue, **options: Any) -> kue.worker.WorkerStats:
    """Drain ``queue`` with an in-process worker that writes records where the queue reads."""
    worker = Worker(queue.backend, [queue.name], records=queue.records,
                    plugin_manager=new_plugin_manager(load_entry_points=False), **options)
    return worker.run(burst=True)


class RecordsContract:
    """Status and results by id, on backends that keep records or through a results store."""

    @pytest.fixture
    def records_queue(self, queue: kue.Queue) -> Iterator[kue.Queue]:
        """The test queue, if records can be kept for its backend; else the test is skipped."""
        if queue.records.store is None:
            pytest.skip(f"the {queue.capabilities.name} backend keeps no job records "
                        "(capability records=False) and no --kue-results store was given")
        yield queue

    def test_status_follows_a_job_from_put_to_done(self, records_queue: kue.Queue) -> None:
        q = records_queue
        before = time.time()
        job_id = q.push(echo.message({"answer": 42}), priority=7)
        assert job_id is not None
        waiting = q.status(job_id)
        assert waiting is not None and waiting.state is RecordState.READY
        assert (waiting.name, waiting.priority) == ("kue_contract.records.echo", 7)
        assert waiting.enqueued_at is not None and before - 1 <= waiting.enqueued_at
        assert run_worker(q, result_ttl=SHORT_TTL).succeeded == 1
        done = q.status(job_id)
        assert done is not None and done.state is RecordState.DONE, done
        assert done.result == {"answer": 42}
        assert done.attempts == 1 and done.name == "kue_contract.records.echo"
        assert done.started_at is not None and done.finished_at is not None
        assert before - 1 <= done.started_at <= done.finished_at <= time.time() + 1
        assert q.stats().total == 0  # done means gone from the queue: the record remains

    @pytest.mark.parametrize("value", [None, 0, "text", [1, "two", {"3": [4.5]}],
                                       {"nested": {"list": [True, False, None]}}])
    def test_results_round_trip_as_json(self, records_queue: kue.Queue, value: Any) -> None:
        job_id = records_queue.push(echo.message(value))
        assert job_id is not None
        run_worker(records_queue, result_ttl=SHORT_TTL)
        assert records_queue.result(job_id, timeout=5) == value

    def test_a_result_json_cannot_hold_is_kept_as_none_with_the_reason(
        self, records_queue: kue.Queue
    ) -> None:
        job_id = records_queue.push(unkeepable.message())
        assert job_id is not None
        assert run_worker(records_queue, result_ttl=SHORT_TTL).succeeded == 1
        status = records_queue.status(job_id)
        assert status is not None and status.state is RecordState.DONE
        assert status.result is None
        assert str(status.extra.get("result_error", "")).startswith("not JSON-able: ")
        assert records_queue.stats().total == 0

    def test_a_delayed_job_says_when_it_is_due(self, records_queue: kue.Queue) -> None:
        if not records_queue.capabilities.delay:
            pytest.skip(f"the {records_queue.capabilities.name} backend declares delay=False")
        job_id = records_queue.push(echo.message(1), delay=3600)
        assert job_id is not None
        status = records_queue.status(job_id)
        assert status is not None and status.state is RecordState.DELAYED
        if status.due_at is not None:  # a results store alone cannot know the due time
            assert time.time() + 3500 < status.due_at < time.time() + 3700

    def test_a_buried_job_keeps_its_error_and_result_raises_it(
        self, records_queue: kue.Queue
    ) -> None:
        if not records_queue.capabilities.bury:
            pytest.skip(f"the {records_queue.capabilities.name} backend declares bury=False")
        job_id = records_queue.push(fail.message("disk full"))
        assert job_id is not None
        assert run_worker(records_queue).buried == 1
        status = records_queue.status(job_id)
        assert status is not None and status.state is RecordState.BURIED
        assert status.error is not None
        assert status.error["type"] == "builtins.RuntimeError"
        assert status.error["message"] == "disk full"
        assert "Traceback (most recent call last)" in status.error["traceback"]
        with pytest.raises(kue.JobFailed) as failed:
            records_queue.result(job_id, timeout=5)
        assert failed.value.error is not None and failed.value.error["message"] == "disk full"

    def test_progress_is_visible_while_the_job_runs(self, records_queue: kue.Queue) -> None:
        _progress_seen.clear()
        _release_progress.clear()
        job_id = records_queue.push(report.message())
        assert job_id is not None
        thread = threading.Thread(target=run_worker, args=(records_queue,),
                                  kwargs={"result_ttl": SHORT_TTL})
        thread.start()
        try:
            assert _progress_seen.wait(30)
            status = records_queue.status(job_id)
            assert status is not None and status.state is RecordState.RESERVED
            assert (status.progress, status.progress_note) == (0.4, "resized 4 of 10")
        finally:
            _release_progress.set()
            thread.join(30)
        assert records_queue.result(job_id, timeout=5) == "reported"

    def test_result_is_woken_by_the_worker(self, records_queue: kue.Queue) -> None:
        job_id = records_queue.push(echo.message("woken"))
        assert job_id is not None
        got: list[Any] = []
        waiter = threading.Thread(target=lambda: got.append(
            (records_queue.result(job_id, timeout=30), time.monotonic())))
        waiter.start()
        run_worker(records_queue, result_ttl=SHORT_TTL)
        finished = time.monotonic()
        waiter.join(30)
        assert got and got[0][0] == "woken"
        # Woken, not polled for: well within one wait_record slice.
        assert got[0][1] - finished < 1.0

    def test_result_times_out_with_the_state_it_saw(self, records_queue: kue.Queue) -> None:
        job_id = records_queue.push(echo.message(1))
        assert job_id is not None
        started = time.monotonic()
        with pytest.raises(kue.ResultTimeout) as timed_out:
            records_queue.result(job_id, timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 3
        assert timed_out.value.state == "ready"

    def test_a_done_record_expires_after_its_retention(self, records_queue: kue.Queue) -> None:
        job_id = records_queue.push(echo.message("short-lived"))
        assert job_id is not None
        run_worker(records_queue, result_ttl=1)
        assert records_queue.status(job_id) is not None
        wait_for(lambda: records_queue.status(job_id) is None or None, timeout=5)

    def test_no_done_record_for_a_job_whose_lease_was_lost(
        self, records_queue: kue.Queue
    ) -> None:
        """The record is written with the ack: a stale holder writes neither."""
        if not records_queue.records.native:
            pytest.skip("a results store is written after the ack, not with it")
        caps = records_queue.capabilities
        records_queue.put("x", ttr=caps.min_ttr)
        held = records_queue.reserve(timeout=5)
        assert held is not None
        # Once the lease runs out the job is handed on.
        again = wait_for(lambda: records_queue.reserve(timeout=0.5), timeout=caps.min_ttr + 5)
        assert again.id == held.id
        complete = records_queue.backend.complete  # type: ignore[attr-defined]
        with pytest.raises(kue.ReservationLost):
            complete(held.reservation, {"state": "done", "result": "stale"}, SHORT_TTL)
        status = records_queue.status(held.id)
        assert status is not None and status.state is RecordState.RESERVED
        assert status.result is None
        again.delete()

    def test_an_unknown_id_has_no_status(self, records_queue: kue.Queue) -> None:
        assert records_queue.status("999999999") is None

    def test_job_info_reports_every_field_of_a_live_job(self, queue: kue.Queue) -> None:
        backend = queue.backend
        if not isinstance(backend, InspectableBackend):
            pytest.skip(f"the {backend.capabilities.name} backend reports no job by id "
                        "(kue.status.InspectableBackend)")
        caps = queue.capabilities
        ready = queue.put(b"ready", priority=7, ttr=3600)
        info = backend.job_info(queue.name, ready)
        assert info == JobInfo(queue.name, ready, b"ready", 7, JobState.READY, 0, due_in=None)
        job = queue.reserve(timeout=5)
        assert job is not None and job.id == ready
        info = backend.job_info(queue.name, ready)
        assert info is not None and (info.queue, info.id, info.state, info.attempts) == (
            queue.name, ready, JobState.RESERVED, 1)
        assert info.due_in is not None and 3500 < info.due_in <= 3600 + caps.timing_tolerance
        job.delete()
        assert backend.job_info(queue.name, ready) is None
        if caps.delay:
            later = queue.put(b"later", priority=3, delay=3600)
            info = backend.job_info(queue.name, later)
            assert info is not None and (info.id, info.state, info.attempts) == (
                later, JobState.DELAYED, 0)
            assert info.due_in is not None and 3500 < info.due_in <= 3600 + caps.timing_tolerance
            assert backend.job_info(queue.name + "x", later) is None  # another queue's id

    def test_claims_set_a_free_key_once_compare_and_set_and_expire(
        self, records_queue: kue.Queue
    ) -> None:
        store = records_queue.records.store
        if not isinstance(store, ClaimStore):
            pytest.skip("the record store keeps no claims (kue.records.ClaimStore)")
        ns = records_queue.name
        assert store.claim(ns, "k", "a", 600, None) is None
        assert store.claim(ns, "k", "b", 600, None) == "a"  # held: the live value says by whom
        assert store.claim(ns, "k", "b", 600, "x") == "a"  # compare and set: wrong value
        assert store.claim(ns, "k", "b", 600, "a") is None
        assert store.claim(ns, "k", "c", 600, None) == "b"
        assert store.claim(ns, "free", "v", 600, "a") == ""  # expecting a value of a free key
        assert store.claim(ns + "x", "k", "other", 600, None) is None  # namespaces are apart
        assert store.claim(ns, "k", "c", 600, None) == "b"
        # A claim lasts its ttl, then the key is free again.
        assert store.claim(ns, "short", "v", 1.0, None) is None
        assert store.claim(ns, "short", "w", 600, None) == "v"
        tolerance = records_queue.capabilities.timing_tolerance + SCHEDULING
        wait_for(lambda: store.claim(ns, "short", "w", 600, None) is None,
                 timeout=1.0 + tolerance + 5)
        assert store.claim(ns, "short", "x", 600, None) == "w"
        # Of many callers racing for one free key, exactly one sets it.
        outcomes: list[str | None] = []
        lock = threading.Lock()

        def race(value: str) -> None:
            got = store.claim(ns, "raced", value, 600, None)
            with lock:
                outcomes.append(got)

        threads = [threading.Thread(target=race, args=(f"v{i}",)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(outcomes) == 8 and outcomes.count(None) == 1
        winner = store.claim(ns, "raced", "late", 600, None)
        assert winner is not None and all(o in (None, winner) for o in outcomes)
