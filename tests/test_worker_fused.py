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
    stats = Worker(backend, [queue.name], result_ttl=result_ttl).run(burst=True)
    assert stats.succeeded == 50
    assert queue.stats().total == 0
    # A plain reserve to start, then every finished job deletes-and-reserves in one call; the
    # last of those finds the queue empty, and one more plain reserve confirms it.
    assert calls == Counter({"reserve": 2, fused: 50})
