"""Batched reservations (``capabilities.reserve_many``): reserve_many and settle_many.

Each job of a batch is a reservation of its own: the order across the batch is the order
single reserves would give, each lease runs and is renewed on its own, an ack of one job never
touches another, and a job given back unstarted is ready again at once, its attempt not
counted (what a stopping worker does with the jobs it prefetched).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import kue
from kue.backend import Ack, BatchBackend, BatchReply, Reservation
from kue.records import RecordingBackend
from kue_contract.helpers import SCHEDULING, whole


def _batch(queue: kue.Queue) -> BatchBackend:
    backend = queue.backend
    assert isinstance(backend, BatchBackend), "declares reserve_many, is no BatchBackend"
    return backend


def _outlive(caps: kue.Capabilities) -> None:
    """Let reservations of ``min_ttr`` run out with nobody looking (see acks._outlive_ttr)."""
    time.sleep(whole(caps.min_ttr, caps) + caps.timing_tolerance + SCHEDULING)


@pytest.mark.requires("reserve_many")
class BatchContract:
    """reserve_many and settle_many hand out, ack and give back jobs one by one, in one call."""

    @pytest.mark.requires("priority", "fifo", "parallel")
    def test_a_batch_comes_in_the_order_single_reserves_would_give(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        a, b = make_queue(), make_queue()
        backend = _batch(a)
        puts = [(a, "a1", 5), (b, "b1", 3), (a, "a2", 3), (b, "b2", 5), (a, "a3", 0),
                (b, "b3", 3)]
        ids = {name: q.put(name, priority=pri) for q, name, pri in puts}
        expected = ["a3", "b1", "a2", "b3", "a1", "b2"]  # priority, then put order
        got = backend.reserve_many([a.name, b.name], 4, 5)
        assert [j.body.decode() for j in got] == expected[:4]
        assert [j.id for j in got] == [ids[name] for name in expected[:4]]
        assert [j.queue for j in got] == [a.name, b.name, a.name, b.name]
        assert all(j.attempts == 1 for j in got), "a batch counted attempts wrongly"
        assert len({j.id for j in got}) == 4
        assert a.stats() == kue.QueueStats(ready=1, reserved=2)
        rest = backend.reserve_many([a.name, b.name], 4, 5)
        assert [j.body.decode() for j in rest] == expected[4:]
        reply = backend.settle_many([Ack(j) for j in got + rest], (), [a.name], 1, 0)
        assert reply == BatchReply(reserved=[], lost=[])
        assert a.stats().total == 0 and b.stats().total == 0

    @pytest.mark.requires("parallel")
    def test_n_larger_than_what_is_ready_returns_what_is_ready_at_once(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q = make_queue()
        backend = _batch(q)
        n = q.capabilities.max_reserve
        ids = [q.put(f"{i}") for i in range(min(3, n - 1))]
        started = time.monotonic()
        got = backend.reserve_many([q.name], n, 30)
        assert time.monotonic() - started < 5, "waited for more jobs than were ready"
        assert sorted(j.id for j in got) == sorted(ids)
        assert q.stats() == kue.QueueStats(reserved=len(ids))
        for job in got:
            backend.delete(job)

    def test_an_empty_queue_gives_an_empty_batch_and_a_put_wakes_a_waiting_one(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q = make_queue()
        backend = _batch(q)
        assert backend.reserve_many([q.name], 3, 0) == []
        started = time.monotonic()
        assert backend.reserve_many([q.name], 3, 0.5) == []
        assert time.monotonic() - started >= 0.5 - 0.01, "gave up before its timeout"
        assert backend.settle_many((), (), [q.name], 3, 0) == BatchReply([], [])
        timer = threading.Timer(0.3, lambda: q.put("late"))
        timer.start()
        try:
            got = backend.reserve_many([q.name], 3, 30)
        finally:
            timer.join()
        assert [j.body for j in got] == [b"late"]
        backend.delete(got[0])

    @pytest.mark.requires("parallel")
    def test_each_job_of_a_batch_keeps_its_own_lease(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q = make_queue()
        caps = q.capabilities
        backend = _batch(q)
        for name in ("kept", "dropped"):
            q.put(name, priority=1 if name == "kept" else 2, ttr=caps.min_ttr)
        got = backend.reserve_many([q.name], 2, 5)
        assert len(got) == 2
        kept, dropped = sorted(got, key=lambda j: j.body != b"kept")
        ttr = whole(caps.min_ttr, caps)
        deadline = time.monotonic() + ttr + caps.timing_tolerance + SCHEDULING
        while time.monotonic() < deadline:  # touch one job only, as the heartbeat would
            backend.touch(kept)
            time.sleep(ttr / 4)
        again = q.reserve(timeout=5)
        assert again is not None, "the untouched job of the batch did not come back"
        assert (again.id, again.attempts) == (dropped.id, 2)
        backend.touch(kept)  # still held: the other job's lapse did not touch it
        with pytest.raises(kue.ReservationLost):
            backend.delete(dropped)
        backend.delete(kept)
        again.delete()
        assert q.stats().total == 0

    def test_stale_acks_in_a_batch_are_listed_and_change_nothing_else(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q, other = make_queue(), make_queue()
        caps = q.capabilities
        backend = _batch(q)
        stale_id = q.put("stale", ttr=caps.min_ttr)
        stale = backend.reserve_many([q.name], 1, 5)[0]
        fresh_id = other.put("fresh", ttr=max(caps.min_ttr, 60.0))
        fresh = backend.reserve_many([other.name], 1, 5)[0]
        assert (stale.id, fresh.id) == (stale_id, fresh_id)
        _outlive(caps)
        record = {"state": "done", "result": [1, 2]} if caps.records else None
        reply = backend.settle_many(
            [Ack(stale, record, 60), Ack(fresh, record, 60), Ack(fresh)], (), [q.name], 1, 5)
        assert [j.id for j in reply.lost] == [stale_id, fresh_id], "stale acks not listed"
        assert other.stats().total == 0, "the fresh ack of the batch was not done"
        assert [(j.id, j.attempts) for j in reply.reserved] == [(stale_id, 2)], (
            "the reserve after a stale ack did not go ahead or lost the job")
        if caps.records:
            assert isinstance(backend, RecordingBackend)
            recording = backend
            done = recording.read_record(other.name, fresh_id)
            assert done is not None and done.get("result") == [1, 2]
            assert (recording.read_record(q.name, stale_id) or {}).get("result") is None, (
                "a stale ack wrote its record")
        backend.delete(reply.reserved[0])
        assert q.stats().total == 0

    @pytest.mark.requires("parallel")
    def test_jobs_given_back_unstarted_are_ready_at_once_in_place_uncounted(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q = make_queue()
        caps = q.capabilities
        backend = _batch(q)
        ids = [q.put(f"{i}", priority=4) for i in range(4)]
        got = backend.reserve_many([q.name], 4, 5)
        assert len(got) == 4
        first, unstarted = got[0], got[1:]
        reply = backend.settle_many([Ack(first)], unstarted, [q.name], 0, 0)
        assert reply == BatchReply([], [])
        assert q.stats() == kue.QueueStats(ready=3), "given-back jobs are not ready at once"
        again = [q.reserve(timeout=0) for _ in range(3)]  # another consumer, no wait
        assert all(j is not None for j in again)
        held = [j for j in again if j is not None]
        if caps.fifo:
            assert [j.id for j in held] == ids[1:], "given-back jobs lost their place"
        else:
            assert sorted(j.id for j in held) == sorted(ids[1:])
        assert all(j.attempts == 1 for j in held), "a give-back counted as an attempt"
        # A give-back of a reservation no longer held is skipped: the new holder keeps it.
        backend.settle_many((), unstarted, [q.name], 0, 0)
        assert q.stats() == kue.QueueStats(reserved=3)
        for j in held:
            j.delete()
        assert q.stats().total == 0

    def test_settle_many_acks_and_gives_back_before_it_reserves(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q = make_queue()
        backend = _batch(q)
        job_id = q.put("only")
        (job,) = backend.reserve_many([q.name], 1, 5)
        reply = backend.settle_many((), [job], [q.name], 1, 5)
        assert [(j.id, j.attempts) for j in reply.reserved] == [(job_id, 1)]
        reply = backend.settle_many([Ack(reply.reserved[0])], (), [q.name], 1, 0)
        assert reply == BatchReply([], [])
        assert q.stats().total == 0

    def test_bad_batch_sizes_and_records_are_refused_before_anything_is_done(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q = make_queue()
        caps = q.capabilities
        backend = _batch(q)
        q.put("waiting")
        for n in (0, -1, caps.max_reserve + 1, True, 2.0):
            with pytest.raises(ValueError, match=str(caps.max_reserve)):
                backend.reserve_many([q.name], n, 0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=str(caps.max_reserve)):
            backend.settle_many((), (), [q.name], caps.max_reserve + 1, 0)
        assert q.stats() == kue.QueueStats(ready=1)
        if caps.records:
            (job,) = backend.reserve_many([q.name], 1, 5)
            with pytest.raises((TypeError, ValueError)):
                backend.settle_many([Ack(job, {"result": object()}, 60)], (), [q.name], 1, 0)
            assert q.stats() == kue.QueueStats(reserved=1), "a refused ack changed the queue"
            backend.delete(job)
        else:
            drained: list[Reservation] = backend.reserve_many([q.name], 1, 5)
            backend.delete(drained[0])
        assert q.stats().total == 0
