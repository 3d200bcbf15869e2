"""Admin listing (:mod:`kue.listing`): list queues, browse buried jobs, kick one job by id.

Optional protocols: a backend without a method is skipped with the reason; a method the
backend declares unsupported (``listing_unsupported``) must raise Unsupported and change
nothing, and its behaviour tests are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import kue
from kue.listing import JobBrowser, QueueListing, declared_unsupported
from kue_contract.helpers import drain

BIG_DELAY = 3600

_PROTOCOLS: dict[str, type[Any]] = {
    "list_queues": QueueListing,
    "buried": JobBrowser,
    "kick_job": JobBrowser,
}


def _backend_for(queue: kue.Queue, method: str) -> Any:
    """The backend, if it implements ``method`` and does not declare it unsupported; else skip."""
    backend = queue.backend
    protocol = _PROTOCOLS[method]
    name = backend.capabilities.name
    if not isinstance(backend, protocol):
        pytest.skip(f"the {name} backend does not implement kue.listing.{protocol.__name__}")
    reason = declared_unsupported(backend).get(method)
    if reason is not None:
        pytest.skip(f"the {name} backend declares {method} unsupported: {reason}")
    return backend


def _bury_all(queue: kue.Queue, bodies: list[str], priority: int = 10) -> list[str]:
    """Put and bury one job per body; returns their ids in the order they were buried.

    Where several jobs can be reserved at once they are buried in an order other than put
    order (the last put first), so newest-buried is not confused with newest-put.
    """
    for body in bodies:
        queue.put(body, priority=priority)
    order: list[str] = []
    if queue.capabilities.parallel:
        held = [queue.reserve(timeout=5) for _ in bodies]
        rest = held[-1:] + held[:-1]  # the last put is buried first
        for job in rest:
            assert job is not None
            job.bury()
            order.append(job.id)
    else:
        for _ in bodies:
            job = queue.reserve(timeout=5)
            assert job is not None
            job.bury()
            order.append(job.id)
    return order


class ListingContract:
    """``list_queues``, ``buried`` and ``kick_job`` where a backend offers them."""

    # -- list_queues ------------------------------------------------------------------------

    def test_list_queues_names_every_queue_that_holds_a_job(
        self, make_queue: Callable[[], kue.Queue], kue_caps: kue.Capabilities
    ) -> None:
        ready, reserved, unused = make_queue(), make_queue(), make_queue()
        backend = _backend_for(ready, "list_queues")
        ready.put("waiting")
        reserved.put("taken")
        held = reserved.reserve(timeout=5)
        assert held is not None
        expected = [ready.name, reserved.name]
        if kue_caps.delay:
            delayed = make_queue()
            delayed.put("later", delay=BIG_DELAY)
            expected.append(delayed.name)
        if kue_caps.bury:
            buried = make_queue()
            buried.put("poison")
            job = buried.reserve(timeout=5)
            assert job is not None
            job.bury()
            expected.append(buried.name)
        names = backend.list_queues()
        assert all(isinstance(n, str) for n in names)
        assert names == sorted(set(names)), "sorted, each name once"
        assert set(expected) <= set(names)
        assert unused.name not in names, "a queue never used is not listed"
        held.delete()

    # -- buried -----------------------------------------------------------------------------

    @pytest.mark.requires("bury")
    def test_buried_lists_the_most_recently_buried_first_and_reserves_nothing(
        self, queue: kue.Queue
    ) -> None:
        backend = _backend_for(queue, "buried")
        order = _bury_all(queue, ["a", "b", "c"])
        listed = backend.buried(queue.name, 10, 0)
        assert [info.id for info in listed] == order[::-1]
        bodies = {info.id: info.body for info in listed}
        for info in listed:
            assert info.queue == queue.name
            assert info.state is kue.JobState.BURIED
            assert info.attempts == 1
            assert info.priority == 10
        assert sorted(bodies.values()) == [b"a", b"b", b"c"]
        assert queue.stats() == kue.QueueStats(buried=3)

    @pytest.mark.requires("bury")
    def test_buried_pages_with_limit_and_offset(self, queue: kue.Queue) -> None:
        backend = _backend_for(queue, "buried")
        newest_first = _bury_all(queue, ["a", "b", "c"])[::-1]

        def ids(limit: int, offset: int) -> list[str]:
            return [info.id for info in backend.buried(queue.name, limit, offset)]

        assert ids(2, 0) == newest_first[:2]
        assert ids(2, 2) == newest_first[2:]
        assert ids(1, 1) == newest_first[1:2]
        assert ids(5, 3) == []

    def test_buried_of_a_queue_without_buried_jobs_is_empty(self, queue: kue.Queue) -> None:
        backend = _backend_for(queue, "buried")
        assert backend.buried(queue.name, 10, 0) == []
        queue.put("ready")
        assert backend.buried(queue.name, 10, 0) == []

    @pytest.mark.requires("bury")
    def test_buried_shows_only_its_own_queue(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        mine, other = make_queue(), make_queue()
        backend = _backend_for(mine, "buried")
        (theirs,) = _bury_all(other, ["theirs"])
        (own,) = _bury_all(mine, ["mine"])
        assert [info.id for info in backend.buried(mine.name, 10, 0)] == [own]
        assert [info.id for info in backend.buried(other.name, 10, 0)] == [theirs]

    # -- kick_job ---------------------------------------------------------------------------

    @pytest.mark.requires("bury")
    def test_kick_job_moves_one_buried_job_to_ready_by_id(self, queue: kue.Queue) -> None:
        backend = _backend_for(queue, "kick_job")
        queue.put("first", priority=5)
        queue.put("second", priority=5)
        if queue.capabilities.parallel:
            first, second = queue.reserve(timeout=5), queue.reserve(timeout=5)
            assert first is not None and second is not None
            first.bury()
            second.bury()
        else:
            first = queue.reserve(timeout=5)
            assert first is not None
            first.bury()
            second = queue.reserve(timeout=5)
            assert second is not None
            second.bury()
        # The one buried last, so a kick of the oldest would not pick it.
        assert backend.kick_job(queue.name, second.id) is True
        assert queue.stats() == kue.QueueStats(ready=1, buried=1)
        again = queue.reserve(timeout=5)
        assert again is not None
        assert (again.id, again.body, again.priority, again.attempts) == (
            second.id, b"second", 5, 2)
        # No longer buried: a second kick finds nothing.
        assert backend.kick_job(queue.name, second.id) is False
        again.delete()
        assert backend.kick_job(queue.name, second.id) is False
        assert queue.stats() == kue.QueueStats(buried=1)

    def test_kick_job_leaves_a_ready_job_alone(self, queue: kue.Queue) -> None:
        backend = _backend_for(queue, "kick_job")
        job_id = queue.put("ready")
        assert backend.kick_job(queue.name, job_id) is False
        assert queue.stats() == kue.QueueStats(ready=1)
        assert drain(queue) == [b"ready"]

    @pytest.mark.requires("delay")
    def test_kick_job_leaves_a_delayed_job_delayed(self, queue: kue.Queue) -> None:
        backend = _backend_for(queue, "kick_job")
        job_id = queue.put("later", delay=BIG_DELAY)
        assert backend.kick_job(queue.name, job_id) is False
        assert queue.stats() == kue.QueueStats(delayed=1)

    @pytest.mark.requires("bury")
    def test_kick_job_finds_nothing_in_another_queue_or_under_a_foreign_id(
        self, make_queue: Callable[[], kue.Queue]
    ) -> None:
        mine, other = make_queue(), make_queue()
        backend = _backend_for(mine, "kick_job")
        (theirs,) = _bury_all(other, ["theirs"])
        assert backend.kick_job(mine.name, theirs) is False
        assert backend.kick_job(mine.name, "no-such-id") is False
        assert other.stats() == kue.QueueStats(buried=1)
        assert mine.stats() == kue.QueueStats()

    # -- declared unsupported ---------------------------------------------------------------

    @pytest.mark.parametrize("method", ["list_queues", "buried", "kick_job"])
    def test_a_method_declared_unsupported_raises_unsupported_and_changes_nothing(
        self, queue: kue.Queue, method: str
    ) -> None:
        backend: Any = queue.backend
        name = backend.capabilities.name
        reason = declared_unsupported(backend).get(method)
        if reason is None:
            pytest.skip(f"the {name} backend does not declare {method} unsupported")
        assert callable(getattr(backend, method, None)), (
            f"{method} is declared unsupported, so it must exist and raise Unsupported")
        buried_id = None
        if queue.capabilities.bury:
            (buried_id,) = _bury_all(queue, ["poison"])
        queue.put("kept")
        before = queue.stats()
        with pytest.raises(kue.Unsupported) as raised:
            if method == "list_queues":
                backend.list_queues()
            elif method == "buried":
                backend.buried(queue.name, 10, 0)
            else:
                backend.kick_job(queue.name, buried_id or "1")
        assert raised.value.backend == name
        assert queue.stats() == before
        assert drain(queue) == [b"kept"]
