"""``reserve_many`` and ``settle_many``: how many writes a batch costs, and its give-backs."""

from __future__ import annotations

import pytest

from kue.backend import Ack, PutItem
from kue_beanstalk.backend import BeanstalkBackend
from kue_contract.servers import LocalServer


def test_a_drain_in_batches_costs_one_write_per_batch(
    backend: BeanstalkBackend, tube: str, writes: list[str]
) -> None:
    ids = backend.put_many(tube, [PutItem(b"%d" % i) for i in range(30)])
    first = backend.reserve_many([tube], 10, 0)  # learns the ids to guess
    writes.clear()
    got = [*first]
    batch = first
    while batch:
        reply = backend.settle_many([Ack(j) for j in batch], (), [tube], 10, 0)
        assert reply.lost == []
        batch = reply.reserved
        got += batch
    assert [j.id for j in got] == ids
    assert all(j.attempts == 1 for j in got)
    # Two batches of 10 and the last acks with an empty reserve: the stats-job of every job
    # rode along with its reserve, so no write of its own.
    assert writes == ["settle", "settle", "settle"]
    assert backend.stats(tube).total == 0


def test_a_give_back_from_another_process_counts_as_an_attempt(
    server: LocalServer, tube: str
) -> None:
    """beanstalkd counts every reserve; only the process that gave a job back counts it off."""
    giver, other = BeanstalkBackend(server.url), BeanstalkBackend(server.url)
    try:
        giver.put(tube, b"x", 0, 0, 60)
        (job,) = giver.reserve_many([tube], 2, 5)
        giver.settle_many((), [job], [tube], 0, 0)
        again = other.reserve([tube], 5)
        assert again is not None and (again.id, again.attempts) == (job.id, 2)
        other.settle_many((), [again], [tube], 0, 0)
        mine = giver.reserve([tube], 5)
        assert mine is not None and mine.attempts == 2  # its own give-back counted off
        giver.delete(mine)
    finally:
        giver.close()
        other.close()


def test_an_ack_with_record_fields_is_refused_before_anything_is_sent(
    backend: BeanstalkBackend, tube: str
) -> None:
    backend.put(tube, b"x", 0, 0, 60)
    (job,) = backend.reserve_many([tube], 1, 5)
    with pytest.raises(ValueError, match="keeps no records"):
        backend.settle_many([Ack(job, {"state": "done"}, 60)], (), [tube], 1, 0)
    backend.delete(job)  # still held: nothing was sent
    assert backend.stats(tube).total == 0

