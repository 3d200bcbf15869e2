"""Deferred acks on redis: two scripts in one write, the second's reply read later.

The contract suite (``DeferredAckContract``) checks what every deferring backend promises;
these check what is redis's own: a script cache emptied under the call, a connection that
drops with the outcome on its way, and the worker that sends such acks again.
"""

from __future__ import annotations

import pytest
import redis

import kue
from kue.backend import Ack
from kue.errors import BackendUnavailable
from kue.worker import Worker
from kue.worker.threads import ThreadedWorker
from kue_redis.backend import RedisBackend

_DONE: list[int] = []


@kue.job(queue="deferred")
def count(n: int) -> int:
    """Remember ``n``; return it (the record keeps it)."""
    _DONE.append(n)
    return n


def test_an_emptied_script_cache_is_refilled_and_the_acks_done(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    ids = [backend.put("q", f"{i}".encode(), 1, 0, 60) for i in range(2)]
    (first,) = backend.reserve_many(["q"], 1, 5)
    raw.script_flush()  # as a restart or SCRIPT FLUSH does: NOSCRIPT for both scripts
    got = backend.settle_many_deferred([Ack(first, {"result": 7}, 60.0)], (), ["q"], 1)
    assert [j.id for j in got] == ids[1:]
    assert backend.acks_outcome() == []
    assert (backend.read_record("q", ids[0]) or {}).get("result") == 7
    assert backend.stats("q") == kue.QueueStats(reserved=1)


def test_an_outcome_lost_with_the_connection_says_so_and_the_acks_can_be_sent_again(
    backend: RedisBackend,
) -> None:
    ids = [backend.put("q", f"{i}".encode(), 1, 0, 60) for i in range(2)]
    (first,) = backend.reserve_many(["q"], 1, 5)
    got = backend.settle_many_deferred([Ack(first)], (), ["q"], 1)
    assert [j.id for j in got] == ids[1:]
    lane = backend._lane
    assert lane is not None
    lane._held().conn.disconnect()  # the reply on its way is gone with the socket
    with pytest.raises(BackendUnavailable, match="outcome of 1 acks") as raised:
        backend.acks_outcome()
    assert "redis://" in str(raised.value)
    # The server did the ack before the connection went: sending it again finds it done.
    reply = backend.settle_many([Ack(first)], (), ["q"], 0, 0)
    assert [j.id for j in reply.lost] == [first.id]
    assert backend.stats("q") == kue.QueueStats(reserved=1)
    backend.delete(got[0])


@pytest.mark.parametrize(("threads", "n"), [(1, 300), (4, 600)],
                         ids=["one thread", "four threads"])
def test_a_prefetching_worker_defers_its_acks_and_does_every_job_once_recorded(
    url: str, threads: int, n: int
) -> None:
    """One worker, or worker threads sharing one backend (``--threads``)."""
    queue = kue.connect(url, queue="deferred")
    _DONE.clear()
    try:
        ids = [queue.push(count.message(i)) for i in range(n)]
        worker = (ThreadedWorker(queue.backend, ["deferred"], threads=threads, prefetch=16)
                  if threads > 1 else Worker(queue.backend, ["deferred"], prefetch=16))
        stats = worker.run(burst=True)
        assert sorted(_DONE) == list(range(n)), "a job ran twice or not at all"
        assert stats.succeeded == n and stats.lost == 0, stats
        assert queue.stats().total == 0, "the worker left jobs behind"
        assert all(queue.result(job_id, 5) == i for i, job_id in enumerate(ids))
    finally:
        queue.close()


def test_a_worker_sends_acks_again_when_their_outcome_is_lost(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = kue.connect(url, queue="deferred")
    backend = queue.backend
    assert isinstance(backend, RedisBackend)
    real = backend.acks_outcome
    failures: list[int] = []

    def lose_one() -> list[kue.Reservation]:
        real()  # read (and drop) the real outcome, as a dropped connection would lose it
        if not failures:
            failures.append(1)
            raise BackendUnavailable(backend.settings.masked_url, "connection reset")
        return []

    monkeypatch.setattr(backend, "acks_outcome", lose_one)
    _DONE.clear()
    try:
        for i in range(100):
            queue.push(count.message(i))
        worker = Worker(backend, ["deferred"], prefetch=16)
        worker.run(burst=True)
        assert failures == [1], "no outcome was lost: the test did not test anything"
        assert sorted(_DONE) == list(range(100)), "a job ran twice or not at all"
        assert queue.stats().total == 0, "acks sent again did not delete their jobs"
    finally:
        queue.close()
