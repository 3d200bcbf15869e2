"""kue's beanstalk backend against raw greenstalk on a throwaway beanstalkd.

Run: ``python bench/bench_beanstalk.py [--runs R] [--quick]``.

greenstalk has no pipelining, so its "put_many" is as many single puts; kue's put_many sends
a batch in one write and reads the replies together.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

import greenstalk
from harness import Bench
from ops import Spec, measure

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

    def close(self) -> None:
        """Close the connection."""
        self.client.close()


def run(bench: Bench) -> None:
    """The beanstalk table and the beanstalk targets."""
    from kue_beanstalk.server import LocalBeanstalkd

    with LocalBeanstalkd() as server:
        raw = RawGreenstalk(server.url)
        spec = Spec("beanstalk", server.url, raw, ops=bench.count(5000), batch=BATCH,
                    workers=bench.count(20000))
        res = measure(bench, spec)
        raw.close()
    many = f"put_many ({BATCH}/batch)"
    for case, goal in (("put (single)", 0.9), ("reserve+delete", 0.9)):
        k, r = res.kue[case], res.raw[case]
        bench.target(f"beanstalk {case} >= {goal}x raw greenstalk",
                     f"{k / r:.2f}x ({k:,.0f} vs {r:,.0f})", k / r >= goal)
    m, p = res.kue[many], res.kue["put (single)"]
    bench.target("beanstalk put_many >= 3x kue single put", f"{m / p:.2f}x ({m:,.0f} vs {p:,.0f})",
                 m / p >= 3)


if __name__ == "__main__":
    from harness import main

    main([run])
