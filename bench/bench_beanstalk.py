"""kue's beanstalk backend against raw greenstalk on a throwaway beanstalkd.

Run: ``python bench/bench_beanstalk.py [--runs R] [--quick]``.

greenstalk has no pipelining, so its "put_many" is as many single puts; kue's put_many sends
a batch in one write and reads the replies together.

The "reserve+delete" row is ``Queue.reserve`` then ``delete()``: two calls, as a consumer
that holds a job between them does. The worker with prefetch off uses ``delete_and_reserve``
(one write of delete, reserve and stats-job per job); the fused table measures that drain
against greenstalk's two-call loop and against the same pipeline sent raw, without the
stats-job. With prefetch on (the default) the worker acks a batch and reserves the next in one
write (``settle_many``); its row is measured against greenstalk's reserve + delete loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

import greenstalk
from harness import Bench, Table, fmt_rate, fmt_ratio, median, rate_of, timed
from ops import KueClient, Spec, measure
from servers import backend_url

BATCH = 100


class RawGreenstalk:
    """greenstalk on its own tube of the same server."""

    label = "greenstalk"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        tube = f"raw-{uuid.uuid4().hex[:8]}"
        self.client = greenstalk.Client((parts.hostname or "127.0.0.1", parts.port or 11300),
                                        encoding=None, use=tube, watch=tube)

    def put(self, items: Sequence[bytes]) -> None:
        """One put per job."""
        put = self.client.put
        for b in items:
            put(b, priority=2**31, ttr=60)

    def put_many(self, items: Sequence[bytes], batch: int) -> None:
        """No pipelining in greenstalk: as many single puts."""
        self.put(items)

    def drain(self, n: int) -> None:
        """reserve then delete, two round trips per job."""
        reserve, delete = self.client.reserve, self.client.delete
        for _ in range(n):
            delete(reserve(timeout=0))

    def drain_fused(self, n: int) -> None:
        """``delete`` of one job and ``reserve`` of the next in one write: one round trip each.

        greenstalk cannot pipeline, so this writes on its socket and reads through its reader.
        """
        sock, reader = self.client._sock, self.client._reader
        job = self.client.reserve(timeout=0)
        for _ in range(n - 1):
            sock.sendall(b"delete %d\r\nreserve-with-timeout 0\r\n" % job.id)
            if reader.readline() != b"DELETED\r\n":
                raise RuntimeError("raw fused drain: delete failed")
            word, job_id, size = reader.readline().split()
            if word != b"RESERVED":
                raise RuntimeError("the queue ran dry before the drain ended")
            job = greenstalk.Job(int(job_id), reader.read(int(size) + 2)[:-2])
        self.client.delete(job)

    def close(self) -> None:
        """Close the connection."""
        self.client.close()


def fused_table(bench: Bench, url: str, raw: RawGreenstalk, n: int) -> tuple[float, float]:
    """kue's ``delete_and_reserve`` drain against greenstalk's two-call loop; adds a table."""
    client = KueClient(url, f"bench-{uuid.uuid4().hex[:8]}")
    kue_rates: list[float] = []
    two_call: list[float] = []
    raw_fused: list[float] = []
    items = [b"x" * 110] * n

    for _ in range(bench.runs):
        # Back to back, so a busy moment of the machine hits all three alike.
        client.fill(n, 1000)
        kue_rates.append(rate_of(n, timed(lambda: client.drain_fused(n))))
        raw.put(items)
        two_call.append(rate_of(n, timed(lambda: raw.drain(n))))
        raw.put(items)
        raw_fused.append(rate_of(n, timed(lambda: raw.drain_fused(n))))
    k, r, f = median(kue_rates), median(two_call), median(raw_fused)
    table = Table(f"beanstalk: the worker's fused call (jobs/s, median of {bench.runs})",
                  ["operation", "kue", "greenstalk", "kue/raw"])
    table.add("delete_and_reserve drain vs reserve+delete loop", fmt_rate(k), fmt_rate(r),
              fmt_ratio(k, r))
    table.add("delete_and_reserve drain vs raw pipelined delete+reserve", fmt_rate(k),
              fmt_rate(f), fmt_ratio(k, f))
    table.notes.append(
        f"{n:,} jobs; kue writes delete, reserve and a stats-job (for attempts) per job in "
        "one round trip; the raw pipeline writes delete and reserve only"
    )
    bench.table(table)
    client.close()
    return k, r


def run(bench: Bench) -> None:
    """The beanstalk table and the beanstalk targets."""
    with backend_url("beanstalk") as url:
        raw = RawGreenstalk(url)
        spec = Spec("beanstalk", url, raw, ops=bench.count(5000), batch=BATCH,
                    workers=bench.count(20000), prefetch=(1, None))
        res = measure(bench, spec)
        fused, _ = fused_table(bench, url, raw, bench.count(5000))
        raw.close()
    bench.results["beanstalk.fused"] = fused
    many = f"put_many ({BATCH}/batch)"
    for case, goal in (("put (single)", 0.9), ("reserve+delete", 0.9)):
        k, r = res.kue[case], res.raw[case]
        bench.target(f"beanstalk {case} >= {goal}x raw greenstalk",
                     f"{k / r:.2f}x ({k:,.0f} vs {r:,.0f})", k / r >= goal)
    on, off = res.kue["worker, 1 process"], res.kue["worker, 1 process, prefetch off"]
    r = res.raw["reserve+delete"]
    bench.target("beanstalkd worker 1 process (prefetch on) >= 2x greenstalk reserve+delete",
                 f"{on / r:.2f}x ({on:,.0f} vs {r:,.0f}; prefetch off {off / r:.2f}x)",
                 on / r >= 2)
    bench.results["beanstalk.worker"] = on
    m, p = res.kue[many], res.kue["put (single)"]
    bench.target("beanstalk put_many >= 3x kue single put", f"{m / p:.2f}x ({m:,.0f} vs {p:,.0f})",
                 m / p >= 3)


if __name__ == "__main__":
    from harness import main

    main([run])
