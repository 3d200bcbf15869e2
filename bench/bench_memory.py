"""kue's memory backend against a bare heapq + dict: the cost of kue's layers on no I/O at all.

Run: ``python bench/bench_memory.py [--runs R] [--quick]``.

A ``memory://`` store lives in one process, so the worker rows run :class:`kue.worker.Worker`
in this process (burst) rather than ``kue-worker``, and there is no ``-c 2`` row.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence

from harness import Bench
from ops import Spec, measure


class RawHeap:
    """The least an in-process priority queue with leases does: a heap and a dict of leases."""

    label = "heapq + dict"

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, bytes]] = []
        self.leased: dict[int, bytes] = {}
        self.seq = itertools.count()

    def put(self, items: Sequence[bytes]) -> None:
        """One heappush per job."""
        for b in items:
            heapq.heappush(self.heap, (2**31, next(self.seq), b))

    def put_many(self, items: Sequence[bytes], batch: int) -> None:
        """The same pushes: there is no round trip to save."""
        self.put(items)

    def drain(self, n: int) -> None:
        """Pop into the lease dict, then delete from it."""
        for _ in range(n):
            _, seq, b = heapq.heappop(self.heap)
            self.leased[seq] = b
            del self.leased[seq]

    def close(self) -> None:
        """Nothing to close."""


def run(bench: Bench) -> None:
    """The memory table."""
    spec = Spec("memory", "memory://bench", RawHeap(), ops=bench.count(20000), batch=100,
                workers=bench.count(20000), concurrency=(None,), in_process_worker=True,
                prefetch=(1, None),
                notes=["the worker runs in the bench's own process (memory:// is per-process)"])
    measure(bench, spec)


if __name__ == "__main__":
    from harness import main

    main([run])
