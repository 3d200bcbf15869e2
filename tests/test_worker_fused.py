"""A backend that offers the fused call gets one round trip per job from the worker."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import kue
from kue.plugins import backend_entry_points
from kue.worker import Worker
from kue_contract.servers import throwaway

import sample_jobs


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if "redis" not in backend_entry_points():
        pytest.fail("the kue-redis plugin is not installed; run `uv sync --all-packages`")
    with throwaway("redis", "local") as server:
        yield server.url


@pytest.mark.parametrize(("result_ttl", "fused"), [
    (0.0, "delete_and_reserve"),  # no records: the plain fused call
    (60.0, "complete_and_reserve"),  # records on: the fused call writes the record too
])
def test_the_worker_deletes_and_reserves_in_one_call_when_the_backend_offers_it(
    redis_url: str, ledger: object, result_ttl: float, fused: str
) -> None:
    queue = kue.connect(redis_url, queue=f"fused-{fused}")
    assert queue.capabilities.delete_and_reserve
    with queue.batch():
        for i in range(50):
            queue.push(sample_jobs.add.message(i, 1))
    calls: Counter[str] = Counter()
    backend: Any = queue.backend
    for name in ("reserve", "delete", "delete_and_reserve", "complete",
                 "complete_and_reserve"):
        original = getattr(backend, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls[_name] += 1
            return _original(*args, **kw)

        setattr(backend, name, spy)
    stats = Worker(backend, [queue.name], result_ttl=result_ttl, prefetch=1).run(burst=True)
    assert stats.succeeded == 50
    assert queue.stats().total == 0
    # Without prefetch (prefetch=1): a plain reserve to start, then every finished job
    # deletes-and-reserves in one call; the last of those finds the queue empty, and one
    # more plain reserve confirms it.
    assert calls == Counter({"reserve": 2, fused: 50})


@pytest.mark.parametrize("result_ttl", [0.0, 60.0])
def test_with_prefetch_the_worker_takes_batches_that_grow_while_the_queue_is_deep(
    redis_url: str, ledger: object, result_ttl: float
) -> None:
    queue = kue.connect(redis_url, queue=f"batched-{result_ttl:g}")
    assert queue.capabilities.reserve_many
    ids = [queue.push(sample_jobs.add.message(i, 1)) for i in range(50)]
    calls: Counter[str] = Counter()
    batches: list[int] = []
    asked: list[int] = []
    backend: Any = queue.backend
    for name in ("reserve", "delete", "delete_and_reserve", "complete", "complete_and_reserve",
                 "reserve_many", "settle_many", "settle_many_deferred"):
        original = getattr(backend, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls[_name] += 1
            found = _original(*args, **kw)
            if _name.startswith("settle_many"):
                asked.append(args[3])
                batches.append(len(found if isinstance(found, list) else found.reserved))
            return found

        setattr(backend, name, spy)
    # A window long enough that no job waits past it: the batch sizes follow the queue alone.
    worker = Worker(backend, [queue.name], result_ttl=result_ttl, prefetch=16,
                    prefetch_window=600)
    stats = worker.run(burst=True)
    assert stats.succeeded == 50 and stats.lost == 0
    assert queue.stats().total == 0
    # One job, then doubling while batches come back full, capped at 16; the short batch
    # (the queue ran dry) starts again at one, which finds the queue empty.
    assert asked == [1, 2, 4, 8, 16, 16, 16, 1]
    assert batches == [1, 2, 4, 8, 16, 16, 3, 0]
    # The first round trip has no acks; every later one sends its acks after its reserve
    # (redis declares deferred_acks) and returns with the reserve's reply.
    assert calls == Counter({"settle_many": 1, "settle_many_deferred": 7})
    if result_ttl:  # each job's record went with its ack in the batched call
        results = [queue.result(job_id, timeout=5) for job_id in ids if job_id is not None]
        assert sorted(results) == sorted(i + 1 for i in range(50))
