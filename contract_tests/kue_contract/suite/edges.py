"""Edges that every backend must treat alike: empty input, huge counts, the declared limits."""

from __future__ import annotations

import pytest

import kue
from kue_contract.helpers import drain

#: The most jobs the batch-order test puts (a backend's max_batch plus a few, up to this).
LARGEST_BATCH_TESTED = 20_000


class EdgesContract:
    """Empty bodies, an empty queue list, long batches and the longest ttr."""

    def test_reserve_from_no_queue_is_refused_before_anything_is_sent(
        self, queue: kue.Queue
    ) -> None:
        with pytest.raises(ValueError, match="at least one queue"):
            queue.reserve_from([], timeout=0)
        with pytest.raises(TypeError, match="list of queue names"):
            queue.reserve_from(queue.name, timeout=0)  # type: ignore[arg-type]

    def test_an_empty_body_round_trips(self, queue: kue.Queue) -> None:
        job_id = queue.put(b"")
        if queue.capabilities.peek:
            seen = queue.peek("ready")
            assert seen is not None and (seen.id, seen.body) == (job_id, b"")
        job = queue.reserve(timeout=5)
        assert job is not None and (job.id, job.body) == (job_id, b"")
        job.delete()

    @pytest.mark.requires("fifo")
    def test_put_many_over_max_batch_keeps_put_order_across_its_chunks(
        self, queue: kue.Queue
    ) -> None:
        n = min(queue.capabilities.max_batch + 3, LARGEST_BATCH_TESTED)
        bodies = [f"{i:05d}".encode() for i in range(n)]
        ids = queue.put_many([kue.PutItem(body) for body in bodies])
        assert len(ids) == len(set(ids)) == n
        assert drain(queue) == bodies

    def test_the_longest_declared_ttr_is_honoured(self, queue: kue.Queue) -> None:
        longest = queue.capabilities.max_ttr
        queue.put(b"slow", ttr=longest)
        job = queue.reserve(timeout=5)
        assert job is not None and job.reservation.ttr == longest
        assert queue.reserve(timeout=0) is None
        assert queue.stats() == kue.QueueStats(reserved=1)
        job.delete()
