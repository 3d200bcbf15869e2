"""Put and reserve + delete rates as the queue gets deep, on redis and sqlite.

Run: ``python bench/bench_scale.py [--quick]``.

The queue is filled with put_many (untimed) to each depth in turn; at each depth K single
puts are timed (depth d -> d + K), then K reserve + delete (back to d), median of the runs.
The depths are 1,000, 10,000, 100,000 and 1,000,000 (filling to a million takes about a
minute per backend on a 2-core machine); ``--full`` adds 10,000,000 (about ten minutes per
backend to fill, and some 4 GB of memory on redis); ``--quick`` divides them by ten.
"""

from __future__ import annotations

import uuid

from harness import Bench, Table, bodies, median, rate_of, timed
from ops import KueClient
from servers import backend_url

DEPTHS = (1_000, 10_000, 100_000, 1_000_000)
#: Depths added with ``--full``.
FULL_DEPTHS = (10_000_000,)


def rates(bench: Bench, client: KueClient, template: list[bytes], k: int) -> tuple[float, float]:
    """Median rates of ``k`` single puts, then ``k`` reserve + deletes."""
    items = template * (k // len(template)) + template[:k % len(template)]
    puts = [rate_of(k, timed(lambda: client.put(items))) for _ in range(bench.runs)]
    drains = [rate_of(k, timed(lambda: client.drain(k))) for _ in range(bench.runs)]
    return median(puts), median(drains)


def run(bench: Bench) -> None:
    """The scale table."""
    depths: tuple[int, ...] = DEPTHS + FULL_DEPTHS if bench.full else DEPTHS
    if bench.quick:
        depths = tuple(d // 10 for d in depths)
    k = bench.count(2000)
    table = Table(f"Scale: rates at queue depth (jobs/s, {k:,} operations, median of "
                  f"{bench.runs})",
                  ["backend", "depth", "put", "µs/put", "reserve+delete", "µs/job",
                   "put vs first", "r+d vs first"])
    template = bodies(1000)
    for name in ("redis", "sqlite"):
        with backend_url(name) as url:
            client = KueClient(url, f"scale-{uuid.uuid4().hex[:8]}")
            depth = 0
            first: tuple[float, float] | None = None
            for target in depths:
                bench.log(f"scale: {name} filling to {target:,}")
                while depth < target:
                    step = min(len(template), target - depth)
                    client.put_many(template[:step], 1000)
                    depth += step
                p, d = rates(bench, client, template, k)
                first = first or (p, d)
                table.add(name, f"{target:,}", f"{p:,.0f}", f"{1e6 / p:.0f}", f"{d:,.0f}",
                          f"{1e6 / d:.0f}", f"{p / first[0]:.2f}x", f"{d / first[1]:.2f}x")
            client.close()
    table.notes.append("filled with put_many in batches of 1,000 (untimed); at each depth the "
                       "puts take it up by the operation count and the reserve+deletes back")
    bench.table(table)


if __name__ == "__main__":
    from harness import main

    main([run])
