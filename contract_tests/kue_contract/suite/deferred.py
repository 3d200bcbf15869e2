"""Deferred acks (``capabilities.deferred_acks``): a round trip that does not wait for its acks.

A prefetching worker's round trip acks the jobs it finished and reserves the next ones. On a
:class:`kue.deferred_acks.DeferredAckBackend` it may return once the reserve is done, the server
doing the acks after it while the worker runs the new jobs; the acks' outcome is read later,
per thread. What must hold: the acks are done (records included) exactly as ``settle_many``
would do them, a stale one is listed, never a job acked is handed out again, and one thread's
outcome is never another's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import kue
from kue.backend import Ack
from kue.deferred_acks import DeferredAckBackend
from kue.records import RecordingBackend
from kue_contract.suite.batch import _outlive


def _deferring(queue: kue.Queue) -> DeferredAckBackend:
    backend = queue.backend
    assert isinstance(backend, DeferredAckBackend), "declares deferred_acks, is not one"
    return backend


@pytest.mark.requires("reserve_many", "deferred_acks")
class DeferredAckContract:
    """settle_many_deferred and acks_outcome: acks done after the reserve, outcome read later."""

    @pytest.mark.requires("priority", "fifo")
    def test_the_reserve_returns_first_and_the_acks_are_done_after_it(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q = make_queue()
        caps = q.capabilities
        backend = _deferring(q)
        ids = [q.put(f"job {i}", priority=i) for i in range(4)]
        done = backend.reserve_many([q.name], 2, 5)
        assert [j.id for j in done] == ids[:2]
        record = {"state": "done", "result": {"n": 1}} if caps.records else None
        got = backend.settle_many_deferred(
            [Ack(done[0], record, 600.0), Ack(done[1])], (), [q.name], 4)
        assert [j.id for j in got] == ids[2:], "the reserve handed out acked jobs or lost one"
        assert backend.acks_outcome() == [], "acks that were held are listed as lost"
        assert q.stats() == kue.QueueStats(reserved=2), "the deferred acks were not done"
        if caps.records:
            assert isinstance(backend, RecordingBackend)
            kept = backend.read_record(q.name, ids[0])
            assert kept is not None and kept.get("result") == {"n": 1}, kept
        assert backend.acks_outcome() == [], "an outcome was reported twice"
        for job in got:
            backend.delete(job)
        assert q.stats().total == 0

    def test_a_stale_ack_is_listed_by_the_outcome_and_the_others_are_done(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q, other = make_queue(), make_queue()
        caps = q.capabilities
        backend = _deferring(q)
        stale_id = q.put("stale", ttr=caps.min_ttr)
        (stale,) = backend.reserve_many([q.name], 1, 5)
        fresh_id = other.put("fresh", ttr=max(caps.min_ttr, 60.0))
        (fresh,) = backend.reserve_many([other.name], 1, 5)
        _outlive(caps)
        got = backend.settle_many_deferred([Ack(stale), Ack(fresh)], (), [q.name], 1)
        assert [(j.id, j.attempts) for j in got] == [(stale_id, 2)], (
            "the reserve did not hand out the job whose lease ran out")
        # Other calls of this thread in between do not take the outcome.
        assert other.stats().total == 0, "the fresh ack was not done"
        assert [j.id for j in backend.acks_outcome()] == [stale_id], "the stale ack not listed"
        backend.delete(got[0])
        assert q.stats().total == 0 and other.stats().total == 0
        assert fresh.id == fresh_id

    def test_a_job_given_back_is_reserved_again_before_the_acks_are_done(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q = make_queue()
        backend = _deferring(q)
        ids = [q.put(f"{i}", priority=1) for i in range(3)]
        first, second, third = backend.reserve_many([q.name], 3, 5)
        got = backend.settle_many_deferred([Ack(first)], [second, third], [q.name], 2)
        if q.capabilities.fifo:
            assert [j.id for j in got] == ids[1:], "given-back jobs lost their place"
        assert sorted(j.id for j in got) == sorted(ids[1:])
        assert all(j.attempts == 1 for j in got), "a give-back counted as an attempt"
        assert backend.acks_outcome() == []
        assert q.stats() == kue.QueueStats(reserved=2)
        for job in got:
            backend.delete(job)

    def test_each_thread_reads_only_the_outcome_of_its_own_acks(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q = make_queue()
        caps = q.capabilities
        backend = _deferring(q)
        stale_id = q.put("stale", ttr=caps.min_ttr)
        (stale,) = backend.reserve_many([q.name], 1, 5)
        _outlive(caps)
        got = backend.settle_many_deferred([Ack(stale)], (), [q.name], 1)
        assert [j.id for j in got] == [stale_id]
        seen: list[object] = []
        thread = threading.Thread(target=lambda: seen.append(backend.acks_outcome()))
        thread.start()
        thread.join(30)
        assert seen == [[]], "another thread read this thread's outcome"
        assert [j.id for j in backend.acks_outcome()] == [stale_id]
        backend.delete(got[0])
        assert q.stats().total == 0

    def test_bad_batch_sizes_are_refused_before_anything_is_sent(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q = make_queue()
        caps = q.capabilities
        backend = _deferring(q)
        q.put("held")
        (job,) = backend.reserve_many([q.name], 1, 5)
        with pytest.raises(ValueError, match=str(caps.max_reserve)):
            backend.settle_many_deferred([Ack(job)], (), [q.name], caps.max_reserve + 1)
        if caps.records:
            with pytest.raises((TypeError, ValueError)):
                backend.settle_many_deferred([Ack(job, {"result": object()}, 60)], (),
                                             [q.name], 1)
        assert q.stats() == kue.QueueStats(reserved=1), "a refused call changed the queue"
        assert backend.acks_outcome() == []
        backend.delete(job)
