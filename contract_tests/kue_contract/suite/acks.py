"""Stale acks, and the declared extras that act on held jobs: delete_and_reserve, delete_by_id."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import kue
from kue.backend import DeletableBackend, FusedBackend
from kue_contract.helpers import SCHEDULING, whole

STALE_PRIORITY = 7


def _outlive_ttr(caps: kue.Capabilities) -> None:
    """Let a reservation of ``min_ttr`` run out with nobody looking at its queue.

    A sleep, not a poll: any look (stats, reserve) would let the backend notice the lapse
    first, and the ack alone must notice it.
    """
    time.sleep(whole(caps.min_ttr, caps) + caps.timing_tolerance + SCHEDULING)


class StaleAckContract:
    """An ack by a holder whose ttr ran out raises ReservationLost; the job stays for others."""

    def test_acks_after_the_ttr_ran_out_raise_reservation_lost_and_keep_the_job(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        queues = [make_queue() for _ in range(4)]  # one job each: parallel=False backends too
        caps = queues[0].capabilities
        held = []
        for q in queues:
            q.put(f"job of {q.name}", priority=STALE_PRIORITY, ttr=caps.min_ttr)
            job = q.reserve(timeout=5)
            assert job is not None
            held.append(job)
        _outlive_ttr(caps)  # nobody re-reserves them
        acks: list[tuple[str, Callable[[kue.ReservedJob], None]]] = [
            ("delete", lambda j: j.delete()),
            ("release", lambda j: j.release(priority=STALE_PRIORITY + 1)),
            ("bury", (lambda j: j.bury(priority=STALE_PRIORITY + 1)) if caps.bury
             else (lambda j: j.delete())),
            ("touch", lambda j: j.touch()),
        ]
        for (name, ack), job in zip(acks, held, strict=True):
            with pytest.raises(kue.ReservationLost):
                ack(job)
                pytest.fail(f"a {name} after the ttr ran out was accepted")
        for q, job in zip(queues, held, strict=True):
            again = q.reserve(timeout=5)
            assert again is not None, f"the job of a stale ack is gone from {q.name}"
            assert (again.id, again.body, again.attempts) == (job.id, job.body, 2)
            if caps.priority:
                assert again.priority == STALE_PRIORITY, "a stale ack changed the priority"
            again.delete()
            assert q.stats().total == 0

    @pytest.mark.requires("delete_and_reserve")
    def test_delete_and_reserve_deletes_the_job_and_reserves_the_next(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        a, b = make_queue(), make_queue()
        backend = a.backend
        assert isinstance(backend, FusedBackend), "declares delete_and_reserve, is no FusedBackend"
        ids = {a.put(b"first"), a.put(b"second")}
        b_id = b.put(b"in b")
        job = a.reserve(timeout=5)
        assert job is not None
        nxt = backend.delete_and_reserve(job.reservation, [a.name], 5)
        assert nxt is not None and {job.id, nxt.id} == ids and nxt.attempts == 1
        assert a.stats() == kue.QueueStats(reserved=1)
        other = backend.delete_and_reserve(nxt, [b.name], 5)  # the next may come from elsewhere
        assert other is not None and (other.queue, other.id) == (b.name, b_id)
        assert a.stats().total == 0
        started = time.monotonic()
        assert backend.delete_and_reserve(other, [a.name, b.name], 0.5) is None
        assert time.monotonic() - started >= 0.5 - 0.01
        assert b.stats().total == 0
        with pytest.raises(kue.ReservationLost):  # deleted already
            backend.delete_and_reserve(other, [a.name, b.name], 0)

    @pytest.mark.requires("delete_and_reserve")
    def test_delete_and_reserve_with_a_stale_job_raises_and_reserves_nothing(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        a, b = make_queue(), make_queue()
        backend = a.backend
        assert isinstance(backend, FusedBackend)
        caps = a.capabilities
        a.put(b"stale", ttr=caps.min_ttr)
        b.put(b"waiting")
        job = a.reserve(timeout=5)
        assert job is not None
        _outlive_ttr(caps)
        with pytest.raises(kue.ReservationLost):
            backend.delete_and_reserve(job.reservation, [b.name], 0)
        assert b.stats() == kue.QueueStats(ready=1), "a failed delete_and_reserve reserved"
        again = a.reserve(timeout=5)
        assert again is not None and (again.id, again.attempts) == (job.id, 2)
        again.delete()

    @pytest.mark.requires("delete_by_id")
    def test_delete_by_id_deletes_a_job_nobody_holds_and_refuses_a_held_one(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        q, other = make_queue(), make_queue()
        backend = q.backend
        assert isinstance(backend, DeletableBackend), "declares delete_by_id, is no Deletable"
        caps = q.capabilities
        held_id = q.put(b"held")
        job = q.reserve(timeout=5)
        assert job is not None and job.id == held_id
        with pytest.raises(ValueError, match=held_id):
            backend.delete_by_id(q.name, held_id)
        assert q.stats() == kue.QueueStats(reserved=1)
        waiting = q.put(b"waiting")
        assert backend.delete_by_id(other.name, waiting) is False, "deleted from another queue"
        assert backend.delete_by_id(q.name, waiting) is True
        assert backend.delete_by_id(q.name, waiting) is False, "deleted twice"
        assert backend.delete_by_id(q.name, "no-such-job") is False
        if caps.delay:
            assert backend.delete_by_id(q.name, q.put(b"later", delay=3600)) is True
        if caps.bury:
            job.bury()
            assert backend.delete_by_id(q.name, held_id) is True
        else:
            job.delete()
        assert q.stats().total == 0
