"""Bad input: a clear error before anything is sent, and the queue as it was."""

from __future__ import annotations

import math

import pytest

import kue
from kue_contract.helpers import drain

MAX = 2**32 - 1

BAD_PRIORITIES = [-1, MAX + 1, 1.5, True, "1", None, math.nan]
BAD_DELAYS = [-1, -0.001, math.nan, math.inf, True, "1", None]
BAD_TTRS = [0, -1, math.nan, math.inf, False, "60", None]
#: Bodies larger than this are not built in memory just to test the limit.
LARGEST_TESTED_BODY = 256 * 2**20


def _assert_untouched(queue: kue.Queue, witness: bytes) -> None:
    assert queue.stats() == kue.QueueStats(ready=1)
    assert drain(queue) == [witness]


class ValidationContract:
    """Every invalid value raises TypeError or ValueError, naming it, before any I/O."""

    @pytest.mark.parametrize("priority", BAD_PRIORITIES, ids=repr)
    def test_an_invalid_priority_is_refused(self, queue: kue.Queue, priority: object) -> None:
        queue.put(b"witness")
        with pytest.raises((TypeError, ValueError), match="priority"):
            queue.put(b"bad", priority=priority)  # type: ignore[arg-type]
        _assert_untouched(queue, b"witness")

    @pytest.mark.parametrize("delay", BAD_DELAYS, ids=repr)
    def test_an_invalid_delay_is_refused(self, queue: kue.Queue, delay: object) -> None:
        queue.put(b"witness")
        with pytest.raises((TypeError, ValueError), match="delay"):
            queue.put(b"bad", delay=delay)  # type: ignore[arg-type]
        _assert_untouched(queue, b"witness")

    @pytest.mark.parametrize("ttr", BAD_TTRS, ids=repr)
    def test_an_invalid_ttr_is_refused(self, queue: kue.Queue, ttr: object) -> None:
        queue.put(b"witness")
        with pytest.raises((TypeError, ValueError), match="ttr"):
            queue.put(b"bad", ttr=ttr)  # type: ignore[arg-type]
        _assert_untouched(queue, b"witness")

    def test_limits_the_backend_declares_are_enforced(self, queue: kue.Queue) -> None:
        caps = queue.capabilities
        queue.put(b"witness")
        with pytest.raises(ValueError, match="delay"):
            queue.put(b"bad", delay=caps.max_delay + 1)
        with pytest.raises(ValueError, match="ttr"):
            queue.put(b"bad", ttr=caps.min_ttr - 0.5)
        with pytest.raises(ValueError, match="ttr"):
            queue.put(b"bad", ttr=caps.max_ttr + 1)
        _assert_untouched(queue, b"witness")

    def test_a_body_over_the_limit_raises_job_too_big_and_the_queue_still_works(
        self, queue: kue.Queue
    ) -> None:
        limit = queue.capabilities.max_body
        if limit > LARGEST_TESTED_BODY:
            pytest.skip(f"capability max_body={limit} is too large to build a body over it")
        with pytest.raises(kue.JobTooBig) as info:
            queue.put(b"x" * (limit + 1))
        assert info.value.limit == limit and str(limit) in str(info.value)
        for size in (limit - 1, limit):
            queue.put(b"y" * size)
        sizes = sorted(len(body) for body in drain(queue))
        assert sizes == [limit - 1, limit]

    def test_invalid_items_in_a_batch_send_none_of_it(self, queue: kue.Queue) -> None:
        items = [kue.PutItem(b"fine"), kue.PutItem(b"bad", priority=-1)]
        with pytest.raises(ValueError, match="priority"):
            queue.put_many(items)
        assert queue.stats().total == 0

    def test_release_and_kick_check_their_arguments(self, queue: kue.Queue) -> None:
        queue.put(b"witness")
        job = queue.reserve(timeout=5)
        assert job is not None
        with pytest.raises(ValueError, match="priority"):
            job.release(priority=-5)
        with pytest.raises(ValueError, match="delay"):
            job.release(delay=-1)
        with pytest.raises(ValueError, match="count"):
            queue.kick(0)
        job.release()
        _assert_untouched(queue, b"witness")

    def test_a_job_that_is_not_json_able_is_refused_before_sending(
        self, queue: kue.Queue
    ) -> None:
        from kue_contract.suite.basics import ContractEcho

        with pytest.raises(TypeError, match="JSON"):
            queue.push(ContractEcho({1, 2}))  # type: ignore[arg-type]
        assert queue.stats().total == 0
