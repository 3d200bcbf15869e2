"""Details a user reads back, alike on every backend that declares them.

Priorities of every kind of put, empty peeks, short due times, how soon a record wait
returns, and records JSON cannot hold.

Each closes a gap the mutation score (``nox -s mutants``, docs/contract.md) found: a change to
the memory or sqlite backend that every other test let through.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import kue
from kue.backend import (
    Ack,
    Backend,
    BatchBackend,
    BatchReply,
    JobInfo,
    JobState,
    PutItem,
    UniqueBackend,
)
from kue.codec import Envelope, encode
from kue.records import RecordingBackend, RecordStore
from kue.status import InspectableBackend
from kue_contract.helpers import SCHEDULING, by, wait_for

#: A record wait's own timeout in these tests: a waiter that misses a write returns this late.
LONG_WAIT = 30.0
#: How soon a waiter must return after a write it has not seen.
PROMPT = 5.0
#: Seconds a record wait is watched with nobody writing, and the most returns allowed then.
QUIET = 1.0
MOST_SPURIOUS = 20
#: The most CPU time a quiet record wait may spend, as a share of the time it waits. A thread
#: blocked on a condition, a socket or a poll every few milliseconds spends well under 1 %; a
#: busy loop spends what the scheduler gives it, most of a core.
MOST_CPU_SHARE = 0.1


def _recording(of: kue.Queue | Backend, batches: bool = False) -> RecordingBackend:
    """The backend (of a queue) if it records jobs as they complete, else the test is skipped.

    With ``batches``, the backend must also settle batches (:class:`BatchBackend`).
    """
    backend = of.backend if isinstance(of, kue.Queue) else of
    if not (backend.capabilities.records and isinstance(backend, RecordingBackend)
            and (not batches or isinstance(backend, BatchBackend))):
        pytest.skip(f"the {backend.capabilities.name} backend records no job as it "
                    "completes (capability records=False)")
    return backend


def _returns_promptly(wait: Callable[[], None]) -> Callable[[], float]:
    """Start ``wait`` in a thread; the returned function joins it and says how long it ran."""
    done: list[float] = []
    started = time.monotonic()

    def run() -> None:
        wait()
        done.append(time.monotonic())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def joined() -> float:
        thread.join(PROMPT + SCHEDULING)
        assert done, f"the record wait did not return within {PROMPT} s of the write"
        return done[0] - started

    return joined


def _waiting_after_a_read(store: RecordStore | RecordingBackend, queue: str,
                          job_id: str) -> Callable[[], float]:
    """A thread that reads ``job_id``'s record, then waits for a change to it.

    Returns once the read is done (so a write from now on is one the wait must see); the
    returned function joins the thread and says how long it ran.
    """
    have_read = threading.Event()

    def read_and_wait() -> None:
        store.read_record(queue, job_id)
        have_read.set()
        store.wait_record(queue, job_id, LONG_WAIT)

    joined = _returns_promptly(read_and_wait)
    assert have_read.wait(PROMPT)
    return joined


class DetailsContract:
    """Priorities, empty peeks, short due times, record waits and unkeepable records."""

    @pytest.fixture
    def store(self, queue: kue.Queue) -> Iterator[RecordStore]:
        """The record store of the test queue (the backend's own, or ``--kue-results``)."""
        if queue.records.store is None:
            pytest.skip(f"the {queue.capabilities.name} backend keeps no job records "
                        "(capability records=False) and no --kue-results store was given")
        yield queue.records.store

    @pytest.mark.requires("priority")
    def test_each_job_of_a_batch_keeps_its_own_priority(self, queue: kue.Queue) -> None:
        ids = queue.put_many([PutItem(b"low", priority=9), PutItem(b"high", priority=1),
                              PutItem(b"mid", priority=5)])
        got = []
        while (job := queue.reserve(timeout=0)) is not None:
            got.append((job.id, job.body, job.priority))
            job.delete()
        assert got == [(ids[1], b"high", 1), (ids[2], b"mid", 5), (ids[0], b"low", 9)]

    @pytest.mark.requires("priority", "unique_put")
    def test_a_unique_job_keeps_its_priority(self, queue: kue.Queue) -> None:
        backend = queue.backend
        assert isinstance(backend, UniqueBackend), "unique_put=True without put_unique"
        plain = queue.put(b"plain", priority=9)
        unique, stored = backend.put_unique(queue.name, b"unique", 1, 0.0, 60.0, "k", 600.0,
                                            True)
        assert stored
        first = queue.reserve(timeout=5)
        assert first is not None and (first.id, first.priority) == (unique, 1)
        second = queue.reserve(timeout=5)
        assert second is not None and (second.id, second.priority) == (plain, 9)
        first.delete()
        second.delete()

    @pytest.mark.requires("peek", "bury")
    def test_peek_at_buried_finds_none_while_only_other_states_hold_jobs(
        self, queue: kue.Queue
    ) -> None:
        queue.put(b"ready")
        assert queue.peek(JobState.BURIED) is None
        queue.put(b"to bury")
        job = queue.reserve(timeout=5)
        assert job is not None
        assert queue.peek(JobState.BURIED) is None  # one ready, one reserved, none buried
        job.bury()
        buried = queue.peek(JobState.BURIED)
        assert buried is not None and buried.id == job.id

    @pytest.mark.requires("delay")
    def test_job_info_counts_a_due_time_under_a_second(self, queue: kue.Queue) -> None:
        backend = queue.backend
        if not isinstance(backend, InspectableBackend):
            pytest.skip(f"the {backend.capabilities.name} backend reports no job by id "
                        "(kue.status.InspectableBackend)")
        caps = queue.capabilities
        if caps.whole_seconds:
            pytest.skip(f"the {caps.name} backend counts delays in whole seconds")
        job_id = queue.put(b"soon", delay=0.5)
        info = backend.job_info(queue.name, job_id)
        assert info is not None and info.state is JobState.DELAYED
        assert info.due_in is not None and 0 < info.due_in <= 0.5 + caps.timing_tolerance
        # Once due, it is ready and has no due time left.
        def ready() -> JobInfo | None:
            info = backend.job_info(queue.name, job_id)
            return info if info is not None and info.state is JobState.READY else None

        assert wait_for(ready, timeout=by(0.5, caps) + 5).due_in is None

    def test_a_record_merges_field_by_field_and_a_field_set_to_none_goes(
        self, store: RecordStore, queue: kue.Queue
    ) -> None:
        store.update_record(queue.name, "1", {"progress": 0.1, "note": "a"}, 600.0)
        store.update_record(queue.name, "1", {"progress": 0.2, "error": {"type": "E"}}, 600.0)
        assert store.read_record(queue.name, "1") == {
            "progress": 0.2, "note": "a", "error": {"type": "E"}}
        store.update_record(queue.name, "1", {"note": None}, 600.0)
        assert store.read_record(queue.name, "1") == {"progress": 0.2, "error": {"type": "E"}}
        assert store.read_record(queue.name, "2") is None

    def test_a_record_written_with_no_ttl_is_kept_and_merged(
        self, store: RecordStore, queue: kue.Queue
    ) -> None:
        """``ttl=None``: the record does not expire (it is not checked for ever, of course)."""
        store.update_record(queue.name, "1", {"progress": 0.1}, None)
        assert store.read_record(queue.name, "1") == {"progress": 0.1}
        store.update_record(queue.name, "1", {"note": "b"}, None)
        assert store.read_record(queue.name, "1") == {"progress": 0.1, "note": "b"}

    def test_a_record_wait_returns_for_a_write_made_since_the_last_read(
        self, store: RecordStore, queue: kue.Queue
    ) -> None:
        """A write by another thread between a read and the wait that follows is not missed."""
        store.update_record(queue.name, "1", {"progress": 0.1}, 600.0)
        have_read, written = threading.Event(), threading.Event()

        def read_then_wait() -> None:
            assert store.read_record(queue.name, "1") == {"progress": 0.1}
            have_read.set()
            assert written.wait(PROMPT)
            store.wait_record(queue.name, "1", LONG_WAIT)

        joined = _returns_promptly(read_then_wait)
        assert have_read.wait(PROMPT)
        store.update_record(queue.name, "1", {"progress": 0.2}, 600.0)
        written.set()
        assert joined() < PROMPT

    def test_a_record_wait_is_woken_by_a_write_from_another_thread(
        self, store: RecordStore, queue: kue.Queue
    ) -> None:
        store.update_record(queue.name, "1", {"progress": 0.1}, 600.0)
        joined = _waiting_after_a_read(store, queue.name, "1")
        store.update_record(queue.name, "1", {"progress": 0.2}, 600.0)
        assert joined() < PROMPT
        assert store.read_record(queue.name, "1") == {"progress": 0.2}

    def test_a_record_wait_is_woken_by_a_write_on_another_connection(
        self, store: RecordStore, queue: kue.Queue,
        connect_again: Callable[[str], kue.Queue],
    ) -> None:
        other = connect_again(queue.name).records.store
        assert other is not None
        store.update_record(queue.name, "1", {"progress": 0.1}, 600.0)
        joined = _waiting_after_a_read(store, queue.name, "1")
        other.update_record(queue.name, "1", {"progress": 0.2}, 600.0)
        assert joined() < PROMPT

    def test_a_record_wait_is_woken_when_the_job_completes(self, queue: kue.Queue) -> None:
        backend = _recording(queue)
        job_id = queue.put(b"x")
        held = queue.reserve(timeout=5)
        assert held is not None and held.id == job_id
        joined = _waiting_after_a_read(backend, queue.name, job_id)
        backend.complete(held.reservation, {"state": "done", "result": 7}, 600.0)
        assert joined() < PROMPT
        record = backend.read_record(queue.name, job_id)
        assert record is not None and record["result"] == 7

    def test_a_record_wait_with_no_write_waits_rather_than_spins(
        self, store: RecordStore, queue: kue.Queue
    ) -> None:
        """Spurious returns are allowed, a busy loop is not: ``result()`` would burn a core."""
        store.update_record(queue.name, "1", {"progress": 0.1}, 600.0)
        deadline = time.monotonic() + QUIET
        returns = 0
        while (left := deadline - time.monotonic()) > 0:
            store.read_record(queue.name, "1")
            store.wait_record(queue.name, "1", left)
            returns += 1
        assert returns <= MOST_SPURIOUS, f"{returns} returns in {QUIET} s with no write"

    def test_a_record_wait_with_no_write_spends_next_to_no_cpu(
        self, store: RecordStore, queue: kue.Queue
    ) -> None:
        """No busy loop inside one wait either, which counting returns cannot see.

        The calling thread's own CPU time is compared with the time it waited, not the wall
        clock with a bound: a loaded machine slows a blocked waiter down without making it
        spend more, while a loop that polls ever faster spends every slice it is given.
        """
        store.update_record(queue.name, "1", {"progress": 0.1}, 600.0)
        started, cpu = time.monotonic(), time.thread_time()
        deadline = started + QUIET
        while (left := deadline - time.monotonic()) > 0:
            store.read_record(queue.name, "1")
            store.wait_record(queue.name, "1", left)
        cpu, waited = time.thread_time() - cpu, time.monotonic() - started
        assert cpu <= MOST_CPU_SHARE * waited, f"{cpu:.3f} s of CPU in {waited:.3f} s of waiting"

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_a_record_json_cannot_hold_is_refused_and_nothing_is_written(
        self, store: RecordStore, queue: kue.Queue, bad: float
    ) -> None:
        store.update_record(queue.name, "1", {"progress": 0.1}, 600.0)
        with pytest.raises(ValueError):
            store.update_record(queue.name, "1", {"progress": bad}, 600.0)
        assert store.read_record(queue.name, "1") == {"progress": 0.1}

    @pytest.mark.parametrize("bad", [math.nan, math.inf])
    def test_a_completion_json_cannot_hold_is_refused_and_the_job_stays_held(
        self, queue: kue.Queue, bad: float
    ) -> None:
        backend = _recording(queue)
        job_id = queue.put(b"x")
        held = queue.reserve(timeout=5)
        assert held is not None
        with pytest.raises(ValueError):
            backend.complete(held.reservation, {"state": "done", "result": bad}, 600.0)
        assert queue.stats().reserved == 1
        held.delete()  # still held: the refused completion changed nothing
        assert backend.read_record(queue.name, job_id) is None

    def test_a_record_expires_after_the_ttl_it_was_written_with(
        self, store: RecordStore, queue: kue.Queue
    ) -> None:
        store.update_record(queue.name, "1", {"progress": 0.1}, 1.0)
        store.update_record(queue.name, "2", {"progress": 0.1}, 600.0)
        assert store.read_record(queue.name, "1") == {"progress": 0.1}
        wait_for(lambda: store.read_record(queue.name, "1") is None,
                 timeout=by(1.0, queue.capabilities) + 5)
        assert store.read_record(queue.name, "2") == {"progress": 0.1}

    def test_a_completion_record_expires_after_its_ttl(self, queue: kue.Queue) -> None:
        backend = _recording(queue)
        job_id = queue.put(b"x")
        held = queue.reserve(timeout=5)
        assert held is not None
        backend.complete(held.reservation, {"state": "done", "result": 1}, 1.0)
        record = backend.read_record(queue.name, job_id)
        assert record is not None and record["result"] == 1
        wait_for(lambda: backend.read_record(queue.name, job_id) is None,
                 timeout=by(1.0, queue.capabilities) + 5)

    def test_a_record_wait_by_a_thread_that_read_nothing_returns_by_its_timeout(
        self, store: RecordStore, queue: kue.Queue
    ) -> None:
        errors: list[BaseException] = []

        def wait() -> None:
            try:
                store.wait_record(queue.name, "1", 0.2)
            except BaseException as exc:
                errors.append(exc)

        assert _returns_promptly(wait)() < PROMPT
        assert errors == []

    @pytest.mark.requires("reserve_many")
    def test_a_record_wait_is_woken_by_a_batch_ack_that_records(
        self, queue: kue.Queue
    ) -> None:
        backend = _recording(queue, batches=True)
        assert isinstance(backend, BatchBackend)  # _recording skipped any other
        job_id = queue.put(b"x")
        held = backend.reserve_many([queue.name], 1, 5)
        assert [j.id for j in held] == [job_id]
        joined = _waiting_after_a_read(backend, queue.name, job_id)
        fields = {"state": "done", "result": 3}
        backend.settle_many([Ack(held[0], fields, 600.0)], (), [queue.name], 0, 0)
        assert joined() < PROMPT
        record = backend.read_record(queue.name, job_id)
        assert record is not None and record["result"] == 3

    def test_a_done_record_holds_what_the_ack_gave_and_nothing_read_from_the_body(
        self, queue: kue.Queue
    ) -> None:
        """A backend keeps bodies opaque: what the ack gives is all a done record holds.

        A job finished with no name or enqueue time in its fields has none in its record,
        whatever its body says (kue's worker gives both).
        """
        backend = _recording(queue)
        body = encode(Envelope(job="kue_contract.named", enqueued_at=1_700_000_000.5))
        ids = [queue.put(body), queue.put(body)]
        held = queue.reserve(timeout=5)
        assert held is not None and held.id == ids[0]
        backend.complete(held.reservation, {"state": "done", "attempts": 1, "result": 1}, 600.0)
        fields = {"state": "done", "attempts": 1, "result": 2}
        if queue.capabilities.reserve_many and isinstance(backend, BatchBackend):
            batch = backend.reserve_many([queue.name], 1, 5)
            assert [j.id for j in batch] == [ids[1]]
            backend.settle_many([Ack(batch[0], fields, 600.0)], (), [queue.name], 0, 0)
        else:
            held = queue.reserve(timeout=5)
            assert held is not None and held.id == ids[1]
            backend.complete(held.reservation, fields, 600.0)
        for result, job_id in enumerate(ids, 1):
            record = backend.read_record(queue.name, job_id)
            assert record is not None
            assert (record["state"], record["attempts"], record["result"]) == ("done", 1, result)
            assert "name" not in record and "enqueued_at" not in record, record

    @pytest.mark.requires("reserve_many")
    def test_a_batch_ack_of_several_jobs_records_each(
        self, queue: kue.Queue
    ) -> None:
        backend = _recording(queue, batches=True)
        assert isinstance(backend, BatchBackend)  # _recording skipped any other
        ids = queue.put_many([PutItem(b"a"), PutItem(b"b"), PutItem(b"c")])
        held = backend.reserve_many([queue.name], 3, 5)
        assert [j.id for j in held] == ids
        acks = [Ack(held[0], {"state": "done", "result": 0}, 600.0), Ack(held[1]),
                Ack(held[2], {"state": "done", "result": 2}, 600.0)]
        reply = backend.settle_many(acks, (), [queue.name], 0, 0)
        assert reply.lost == []
        assert queue.stats().total == 0
        for n in (0, 2):
            record = backend.read_record(queue.name, ids[n])
            assert record is not None and record["result"] == n
        assert backend.read_record(queue.name, ids[1]) is None

    @pytest.mark.requires("reserve_many")
    def test_giving_back_a_job_already_settled_changes_nothing(
        self, queue: kue.Queue
    ) -> None:
        backend = queue.backend
        assert isinstance(backend, BatchBackend), "declares reserve_many, is no BatchBackend"
        deleted_id, released_id = queue.put(b"deleted"), queue.put(b"released")
        first, second = backend.reserve_many([queue.name], 2, 5)
        assert (first.id, second.id) == (deleted_id, released_id)
        backend.delete(first)
        backend.release(second, second.priority, 0.0)
        reply = backend.settle_many((), [first, second], [queue.name], 0, 0)
        assert reply.reserved == []
        assert queue.stats() == kue.QueueStats(ready=1)
        again = queue.reserve(timeout=5)
        assert again is not None and (again.id, again.attempts) == (released_id, 2)
        again.delete()


#: More queues than one SQL statement may join on SQLite (its backend switches to a JSON list).
MANY_QUEUES = 600
#: The most queues one SQL statement joins there: the last count before that switch.
MOST_JOINED = 500


def _short_delay(caps: kue.Capabilities) -> float:
    """The shortest delay worth waiting for: a second where the backend counts whole seconds."""
    return 1.0 if caps.whole_seconds else 0.3


class DetailsOfTimeAndBatchesContract:
    """Due jobs seen by every call, batches that wait, stale completions, many queues."""

    @pytest.mark.requires("delay")
    def test_a_batch_put_may_hold_a_delayed_job(self, queue: kue.Queue) -> None:
        caps = queue.capabilities
        delay = _short_delay(caps)
        now_id, later_id = queue.put_many([PutItem(b"now"), PutItem(b"later", delay=delay)])
        assert queue.stats() == kue.QueueStats(ready=1, delayed=1)
        first = queue.reserve(timeout=5)
        assert first is not None and first.id == now_id
        first.delete()
        later = queue.reserve(timeout=by(delay, caps) + 5)
        assert later is not None and later.id == later_id
        later.delete()

    @pytest.mark.requires("delay", "peek", "bury", "kick_delayed")
    def test_peek_and_kick_see_a_delay_that_came_due_as_ready(self, queue: kue.Queue) -> None:
        caps = queue.capabilities
        delay = _short_delay(caps)
        job_id = queue.put(b"soon", delay=delay)
        time.sleep(by(delay, caps))
        assert queue.kick(1) == 0  # nothing buried, nothing delayed any more
        assert queue.stats() == kue.QueueStats(ready=1)
        other = queue.put(b"later", delay=delay)
        time.sleep(by(delay, caps))
        assert queue.peek(JobState.DELAYED) is None  # asked first, before anything else
        ready = queue.peek(JobState.READY)
        assert ready is not None and ready.id == job_id
        assert queue.stats() == kue.QueueStats(ready=2)
        assert other != job_id

    @pytest.mark.requires("peek")
    def test_the_backend_refuses_to_peek_at_reserved_jobs_naming_the_state(
        self, queue: kue.Queue
    ) -> None:
        with pytest.raises(ValueError, match="reserved"):
            queue.backend.peek(queue.name, JobState.RESERVED)

    def test_a_stale_completion_names_the_queue_and_the_job(self, queue: kue.Queue) -> None:
        backend = _recording(queue)
        caps = queue.capabilities
        job_id = queue.put(b"x", ttr=caps.min_ttr)
        held = queue.reserve(timeout=5)
        assert held is not None
        again = wait_for(lambda: queue.reserve(timeout=0.5), timeout=by(caps.min_ttr, caps) + 5)
        with pytest.raises(kue.ReservationLost) as lost:
            backend.complete(held.reservation, {"state": "done"}, 600.0)
        assert (lost.value.queue, lost.value.job_id) == (queue.name, job_id)
        again.delete()

    @pytest.mark.requires("priority")
    def test_a_done_jobs_status_keeps_its_priority(self, queue: kue.Queue) -> None:
        backend = _recording(queue)
        job_id = queue.put(b"x", priority=7)
        held = queue.reserve(timeout=5)
        assert held is not None
        backend.complete(held.reservation, {"state": "done", "priority": 7, "result": 1},
                         600.0)
        status = queue.status(job_id)
        assert status is not None and (status.priority, status.result) == (7, 1)

    @pytest.mark.requires("reserve_many")
    def test_a_batch_of_one_from_an_empty_queue_is_empty_and_does_not_block(
        self, queue: kue.Queue
    ) -> None:
        backend = queue.backend
        assert isinstance(backend, BatchBackend), "declares reserve_many, is no BatchBackend"
        started = time.monotonic()
        assert backend.reserve_many([queue.name], 1, 0.2) == []
        assert time.monotonic() - started < PROMPT

    @pytest.mark.requires("reserve_many", "priority")
    def test_a_batch_reports_each_jobs_priority(self, queue: kue.Queue) -> None:
        backend = queue.backend
        assert isinstance(backend, BatchBackend), "declares reserve_many, is no BatchBackend"
        low, high = queue.put(b"low", priority=9), queue.put(b"high", priority=1)
        got = backend.reserve_many([queue.name], 2, 5)
        assert [(j.id, j.priority) for j in got] == [(high, 1), (low, 9)]
        backend.settle_many([Ack(j) for j in got], (), [queue.name], 0, 0)

    @pytest.mark.requires("reserve_many", "delay")
    def test_a_batch_takes_a_delayed_job_once_it_is_due(self, queue: kue.Queue) -> None:
        backend = queue.backend
        assert isinstance(backend, BatchBackend), "declares reserve_many, is no BatchBackend"
        caps = queue.capabilities
        delay = _short_delay(caps)
        job_id = queue.put(b"soon", delay=delay)
        time.sleep(by(delay, caps))
        got = backend.reserve_many([queue.name], 2, 0)
        assert [j.id for j in got] == [job_id]
        backend.settle_many([Ack(got[0])], (), [queue.name], 0, 0)

    @pytest.mark.requires("reserve_many")
    def test_settle_many_waits_for_a_job_when_none_is_ready(self, queue: kue.Queue) -> None:
        backend = queue.backend
        assert isinstance(backend, BatchBackend), "declares reserve_many, is no BatchBackend"
        timer = threading.Timer(0.3, lambda: queue.put(b"late"))
        timer.start()
        try:
            reply = backend.settle_many((), (), [queue.name], 1, 30)
        finally:
            timer.join()
        assert [j.body for j in reply.reserved] == [b"late"]
        backend.settle_many([Ack(reply.reserved[0])], (), [queue.name], 0, 0)

    @pytest.mark.requires("reserve_many")
    def test_settle_many_with_nothing_to_reserve_returns_by_its_timeout(
        self, queue: kue.Queue
    ) -> None:
        """With nothing to reserve after its acks, it waits out its timeout, then returns."""
        backend = queue.backend
        assert isinstance(backend, BatchBackend), "declares reserve_many, is no BatchBackend"
        job_id = queue.put(b"only")
        held = backend.reserve_many([queue.name], 1, 5)
        assert [j.id for j in held] == [job_id]
        replies: list[BatchReply] = []

        def settle() -> None:
            replies.append(backend.settle_many([Ack(held[0])], (), [queue.name], 1, 1.0))

        started = time.monotonic()
        thread = threading.Thread(target=settle, daemon=True)
        thread.start()
        thread.join(1.0 + PROMPT + SCHEDULING)
        assert replies, f"settle_many(timeout=1) did not return within {1 + PROMPT} s"
        assert time.monotonic() - started >= 1.0 - 0.01, "gave up before its timeout"
        assert (replies[0].reserved, replies[0].lost) == ([], [])
        assert queue.stats().total == 0

    @pytest.mark.requires("priority")
    def test_reserve_from_many_queues_takes_the_most_urgent_of_all(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        """Over many queues, and over exactly as many as one SQL statement joins on SQLite."""
        queues = [make_queue() for _ in range(MANY_QUEUES)]
        names, joined = [q.name for q in queues], [q.name for q in queues[:MOST_JOINED]]
        low = queues[-1].put(b"low", priority=9)  # beyond the first MOST_JOINED queues
        first_ones = [queues[0].put(b"first", priority=6),
                      queues[MOST_JOINED - 1].put(b"edge", priority=5)]
        high = queues[MANY_QUEUES // 2].put(b"high", priority=1)
        first = queues[0].reserve_from(names, timeout=5)
        assert first is not None and (first.id, first.queue) == (high, names[MANY_QUEUES // 2])
        first.delete()
        backend = queues[0].backend
        if isinstance(backend, BatchBackend) and queues[0].capabilities.reserve_many:
            edge = queues[0].reserve_from(joined, timeout=5)
            assert edge is not None and (edge.id, edge.queue) == (first_ones[1], joined[-1])
            edge.release()
            got = backend.reserve_many(joined, 3, 5)
            assert [(j.id, j.queue) for j in got] == [(first_ones[1], joined[-1]),
                                                      (first_ones[0], joined[0])]
            backend.settle_many([Ack(j) for j in got], (), joined, 0, 0)
            got = backend.reserve_many(names, 2, 5)
            assert [(j.id, j.queue) for j in got] == [(low, names[-1])]
            backend.settle_many([Ack(got[0])], (), names, 0, 0)
        else:
            for job_id in reversed(first_ones):
                job = queues[0].reserve_from(joined, timeout=5)
                assert job is not None and job.id == job_id
                job.delete()
            assert queues[0].reserve_from(joined, timeout=0) is None
            last = queues[0].reserve_from(names, timeout=5)
            assert last is not None and last.id == low
            last.delete()
