"""Blocking is part of the contract: a put wakes a blocked reserve within the tolerance."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

import kue
from kue_contract.consumers import reserve_once
from kue_contract.helpers import SCHEDULING, by

#: Seconds a consumer gets to block in reserve before the put that must wake it. A consumer
#: that had not blocked yet would find the job without being woken, so this errs long.
BLOCK_FIRST = 0.3
#: Producers and consumers of the ledger test.
PRODUCERS = CONSUMERS = 8


class _Blocked:
    """A reserve running in a thread of its own, and when it returned."""

    def __init__(self, reserve: Callable[[], kue.ReservedJob | None]) -> None:
        self.job: kue.ReservedJob | None = None
        self.returned = 0.0
        self.thread = threading.Thread(target=self._run, args=(reserve,), daemon=True)
        self.thread.start()
        time.sleep(BLOCK_FIRST)
        assert self.thread.is_alive(), "reserve returned with nothing to reserve"

    def _run(self, reserve: Callable[[], kue.ReservedJob | None]) -> None:
        self.job = reserve()
        self.returned = time.monotonic()

    def woken_by(
        self, put: Callable[[], str], caps: kue.Capabilities, what: str
    ) -> kue.ReservedJob:
        """Run ``put``; the job the blocked reserve got within the tolerance of it."""
        started = time.monotonic()
        job_id = put()
        self.thread.join(timeout=by(0, caps) + 5)  # a late wake-up is measured, not hung on
        assert not self.thread.is_alive(), f"a put did not wake {what} at all"
        late = self.returned - started
        assert late <= by(0, caps), (
            f"a put woke {what} after {late:.3f} s, over the {caps.name} backend's timing "
            f"tolerance of {caps.timing_tolerance:g} s (+ {SCHEDULING:g} s scheduling)")
        assert self.job is not None and self.job.id == job_id
        return self.job


class BlockingContract:
    """A reserve blocked in one consumer is woken by a put from another."""

    def test_a_put_wakes_a_reserve_that_waits_for_ever(
        self, queue: kue.Queue, connect_again: Callable[[str], kue.Queue]
    ) -> None:
        consumer = connect_again(queue.name)
        blocked = _Blocked(lambda: consumer.reserve(timeout=None))
        blocked.woken_by(lambda: queue.put(b"wake up"), queue.capabilities,
                         "reserve(timeout=None)").delete()

    def test_a_put_wakes_a_reserve_with_a_timeout(
        self, queue: kue.Queue, connect_again: Callable[[str], kue.Queue]
    ) -> None:
        consumer = connect_again(queue.name)
        blocked = _Blocked(lambda: consumer.reserve(timeout=60))
        blocked.woken_by(lambda: queue.put(b"wake up"), queue.capabilities,
                         "reserve(timeout=60)").delete()

    def test_a_put_to_any_of_several_queues_wakes_a_reserve_from_them(
        self, make_queue: Callable[[], kue.Queue], connect_again: Callable[[str], kue.Queue]
    ) -> None:
        a, b = make_queue(), make_queue()
        consumer = connect_again(a.name)
        blocked = _Blocked(lambda: consumer.reserve_from([a.name, b.name], timeout=60))
        job = blocked.woken_by(lambda: b.put(b"to the second"), b.capabilities,
                               "reserve_from over two queues")
        assert job.queue == b.name
        job.delete()

    def test_a_reserve_with_a_timeout_beyond_any_clock_is_woken_too(
        self, queue: kue.Queue, connect_again: Callable[[str], kue.Queue]
    ) -> None:
        consumer = connect_again(queue.name)
        blocked = _Blocked(lambda: consumer.reserve(timeout=1e10))
        blocked.woken_by(lambda: queue.put(b"wake up"), queue.capabilities,
                         "reserve(timeout=1e10)").delete()

    @pytest.mark.requires("shared")
    def test_a_put_wakes_a_reserve_blocked_in_another_process(self, queue: kue.Queue) -> None:
        ctx = multiprocessing.get_context("spawn")
        ready, results = ctx.Event(), ctx.Queue()
        child = ctx.Process(target=reserve_once, args=(queue.url, queue.name, 60, ready, results))
        child.start()
        try:
            assert ready.wait(60), "the consumer process did not start"
            time.sleep(BLOCK_FIRST)
            put_at = time.time()
            job_id = queue.put(b"across processes")
            got_id, got_at = results.get(timeout=by(0, queue.capabilities) + 10)
        finally:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
        caps = queue.capabilities
        assert got_id == job_id
        assert got_at - put_at <= by(0, caps), (
            f"a put woke a reserve in another process after {got_at - put_at:.3f} s, over the "
            f"{caps.name} backend's tolerance of {caps.timing_tolerance:g} s (+ {SCHEDULING:g})")
        assert queue.stats().total == 0

    def test_producers_and_consumers_at_once_lose_nothing_and_take_nothing_twice(
        self, queue: kue.Queue, kue_contract_jobs: int
    ) -> None:
        per = max(1, min(kue_contract_jobs, 800) // PRODUCERS)
        put: list[list[tuple[str, bytes]]] = [[] for _ in range(PRODUCERS)]
        taken: list[list[tuple[str, bytes]]] = [[] for _ in range(CONSUMERS)]
        producing = threading.Event()
        producing.set()
        errors: list[BaseException] = []

        def produce(slot: int) -> None:
            try:
                for i in range(per):
                    body = f"{slot}-{i}".encode()
                    put[slot].append((queue.put(body, ttr=120), body))
            except BaseException as exc:
                errors.append(exc)

        def consume(slot: int) -> None:
            try:
                while True:
                    was_producing = producing.is_set()
                    job = queue.reserve(timeout=0.2)
                    if job is None:
                        if not was_producing:
                            return  # every put was done before this empty reserve began
                        continue
                    taken[slot].append((job.id, job.body))
                    job.delete()
            except BaseException as exc:
                errors.append(exc)

        consumers = [threading.Thread(target=consume, args=(i,)) for i in range(CONSUMERS)]
        producers = [threading.Thread(target=produce, args=(i,)) for i in range(PRODUCERS)]
        for t in consumers + producers:
            t.start()
        for t in producers:
            t.join(timeout=300)
        producing.clear()
        for t in consumers:
            t.join(timeout=300)
        assert not errors, errors
        ledger = Counter(entry for entries in taken for entry in entries)
        expected = {entry for entries in put for entry in entries}
        assert len(expected) == per * PRODUCERS, "two puts got one id"
        twice = sorted(entry for entry, n in ledger.items() if n > 1)
        lost = expected - set(ledger)
        stray = set(ledger) - expected
        assert not twice, f"{len(twice)} jobs were taken twice, e.g. {twice[:3]}"
        assert not lost, f"{len(lost)} jobs were never taken, e.g. {sorted(lost)[:3]}"
        assert not stray, f"{len(stray)} jobs taken that nobody put, e.g. {sorted(stray)[:3]}"
        assert queue.stats().total == 0
