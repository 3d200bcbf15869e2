"""What the memory backend (the reference model) promises beyond the contract: bounded memory."""

from __future__ import annotations

import threading
import time

from kue.backend import JobState
from kue.backends.memory import MemoryBackend


def _private() -> MemoryBackend:
    return MemoryBackend(clock=time.monotonic)


def test_asking_about_a_queue_keeps_nothing_for_it() -> None:
    backend = _private()
    for i in range(200):
        name = f"asked-{i}"
        assert backend.reserve([name, f"{name}-b"], 0) is None
        assert backend.stats(name).total == 0
        assert backend.peek(name, JobState.READY) is None
        assert backend.kick(name, 5) == 0
    assert backend._store.queues == {}


def test_a_queue_whose_last_job_is_deleted_is_forgotten() -> None:
    backend = _private()
    backend.put("brief", b"x", 0, 0, 60)
    job = backend.reserve(["brief"], 0)
    assert job is not None
    backend.delete(job)
    assert backend._store.queues == {}
    backend.put("brief", b"y", 0, 0, 60)  # and it comes back to life when used again
    again = backend.reserve(["brief"], 0)
    assert again is not None and again.body == b"y"


def test_touching_a_job_often_keeps_one_lease_entry() -> None:
    backend = _private()
    backend.put("touchy", b"x", 0, 0, 60)
    job = backend.reserve(["touchy"], 0)
    assert job is not None
    for _ in range(1000):
        backend.touch(job)
    assert len(backend._store.queues["touchy"].leases) == 1
    backend.delete(job)


def test_a_touched_lease_still_runs_out_a_full_ttr_after_the_touch() -> None:
    now = [0.0]
    backend = MemoryBackend(clock=lambda: now[0])
    backend.put("q", b"x", 0, 0, 10)
    job = backend.reserve(["q"], 0)
    assert job is not None
    now[0] = 8.0
    backend.touch(job)
    now[0] = 17.9  # past the first lease, inside the touched one
    assert backend.reserve(["q"], 0) is None
    now[0] = 18.0
    again = backend.reserve(["q"], 0)
    assert again is not None and again.attempts == 2


def test_a_reserve_with_a_huge_timeout_blocks_until_a_put() -> None:
    backend = _private()
    got = []
    waiter = threading.Thread(target=lambda: got.append(backend.reserve(["far"], 1e10)))
    waiter.start()
    time.sleep(0.1)  # let it block (it would raise OverflowError at once)
    backend.put("far", b"woken", 0, 0, 60)
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert got and got[0] is not None and got[0].body == b"woken"


def test_kick_with_a_count_over_any_index_moves_what_there_is() -> None:
    backend = _private()
    for body in (b"a", b"b"):
        backend.put("k", body, 0, 0, 60)
        job = backend.reserve(["k"], 0)
        assert job is not None
        backend.bury(job, None)
    assert backend.kick("k", 2**64) == 2
