"""Bad input: a clear error before anything is sent, and the queue as it was."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import kue
from kue.backend import Backend
from kue.validation import MAX_QUEUE_NAME
from kue_contract.helpers import drain

MAX = 2**32 - 1

BAD_PRIORITIES = [-1, MAX + 1, 1.5, True, "1", None, math.nan]
BAD_DELAYS = [-1, -0.001, math.nan, math.inf, True, "1", None]
BAD_TTRS = [0, -1, math.nan, math.inf, False, "60", None]
#: Bodies larger than this are not built in memory just to test the limit.
LARGEST_TESTED_BODY = 256 * 2**20
#: Names outside kue's portable rule, each accepted by some backend but not all (or by none):
#: a brace moves a Redis Cluster hash tag ("}x" spread one queue over eight slots), SQS refuses
#: dots, plus and slashes, beanstalkd a leading hyphen, SQS more than 80 characters in all.
BAD_QUEUE_NAMES = ["", "}x", "{shop}mail", "a.b", "a+b", "a/b", "x;y", "(x)", "$x", "-x",
                   "a b", "a:b", "\u00e9t\u00e9", "tab\t", "x" * (MAX_QUEUE_NAME + 1)]
#: Names inside it, the longest included.
GOOD_QUEUE_NAMES = ["_", "a-b_C9", "0", "x-" + "y" * (MAX_QUEUE_NAME - 2)]


class _NoIO:
    """A backend stand-in that fails the test on any call: proof that nothing was sent."""

    def __init__(self, real: Backend) -> None:
        self.capabilities = real.capabilities

    def __getattr__(self, name: str) -> Any:
        def called(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"backend.{name}{args} was called for a refused queue name")

        return called


def _assert_untouched(queue: kue.Queue, witness: bytes) -> None:
    assert queue.stats() == kue.QueueStats(ready=1)
    assert drain(queue) == [witness]


class ValidationContract:
    """Every invalid value raises TypeError or ValueError, naming it, before any I/O."""

    @pytest.mark.parametrize("name", BAD_QUEUE_NAMES, ids=repr)
    def test_a_queue_name_outside_the_portable_rule_is_refused_before_any_io(
        self, queue: kue.Queue, kue_backend: Backend, kue_url: str, name: str
    ) -> None:
        queue.put(b"witness")
        spy: Any = _NoIO(kue_backend)
        refusals: list[Callable[[], object]] = [
            lambda: kue.Queue(spy, name),
            lambda: kue.Queue(spy, queue.name).reserve_from([queue.name, name], timeout=0),
            lambda: kue.connect(f"{kue_backend.capabilities.name}://not-opened", queue=name),
        ]
        for refused in refusals:
            with pytest.raises(ValueError, match="queue name") as info:
                refused()
            message = str(info.value)
            assert repr(name[:60]) in message and f"1 to {MAX_QUEUE_NAME} ASCII" in message
        _assert_untouched(queue, b"witness")

    @pytest.mark.parametrize("name", GOOD_QUEUE_NAMES, ids=lambda n: f"{n[:8]}..{len(n)}")
    def test_every_name_inside_the_rule_works(self, kue_backend: Backend, kue_url: str,
                                              name: str) -> None:
        queue = kue.Queue(kue_backend, name, url=kue_url)
        drain(queue)  # a name is not fresh: leave nothing of an earlier run behind
        queue.put(b"one")
        job = queue.reserve(timeout=5)
        assert job is not None and job.body == b"one" and job.queue == name
        job.delete()
        assert queue.stats().total == 0

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
