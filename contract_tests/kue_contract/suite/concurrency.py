"""Many consumers at once: every job is taken by exactly one of them."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter

import pytest

import kue
from kue_contract.consumers import consume_together, consume_until_empty

CONSUMERS = 8
def _fill(queue: kue.Queue, n: int) -> set[str]:
    ids: list[str] = []
    step = max(1, min(queue.capabilities.max_batch, 500))
    for start in range(0, n, step):
        ids += queue.put_many(
            [kue.PutItem(f"job {i}".encode(), ttr=120) for i in range(start, min(n, start + step))]
        )
    return set(ids)


def _check(taken: list[list[str]], expected: set[str]) -> None:
    counts = Counter(job_id for ids in taken for job_id in ids)
    twice = sorted(job_id for job_id, c in counts.items() if c > 1)
    missing = expected - set(counts)
    assert not twice, f"{len(twice)} jobs were reserved by two consumers, e.g. {twice[:5]}"
    assert not missing, f"{len(missing)} jobs were never reserved, e.g. {sorted(missing)[:5]}"
    assert set(counts) == expected


class ConcurrencyContract:
    """Eight consumers drain one queue; nobody gets a job another holds."""

    def test_threads_sharing_one_backend_each_get_distinct_jobs(
        self, queue: kue.Queue, kue_contract_jobs: int
    ) -> None:
        expected = _fill(queue, kue_contract_jobs)
        results: list[list[str]] = [[] for _ in range(CONSUMERS)]

        def run(slot: int) -> None:
            results[slot] = consume_until_empty(queue)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(CONSUMERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        _check(results, expected)
        assert queue.stats().total == 0

    @pytest.mark.requires("shared")
    def test_separate_processes_each_get_distinct_jobs(
        self, queue: kue.Queue, kue_contract_jobs: int
    ) -> None:
        expected = _fill(queue, kue_contract_jobs)
        ctx = multiprocessing.get_context("spawn")
        start, out = ctx.Barrier(CONSUMERS), ctx.Queue()
        procs = [ctx.Process(target=consume_together, args=(queue.url, queue.name, start, out))
                 for _ in range(CONSUMERS)]
        for proc in procs:
            proc.start()
        results = [out.get(timeout=300) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        _check(results, expected)
        if queue.capabilities.parallel:  # else consumers take turns, and one may take them all
            assert sum(1 for ids in results if ids) >= 2, "only one process got any job"
        assert queue.stats().total == 0
