"""Every kue benchmark in one run: ``nox -s bench`` (or ``python bench/run.py``).

Options: ``--runs R`` (median of R, default 3),
``--quick`` (a tenth of the counts, to check the bench works), ``--only NAME`` (repeatable:
bench_memory, bench_sqlite, bench_redis, bench_postgres, bench_beanstalk, bench_sqs,
bench_peers, bench_latency, bench_scale, bench_rss, bench_push, bench_records,
bench_retention), ``--readme``
(write the results into bench/README.md).
Each part starts its own servers on free 127.0.0.1 ports and stops them after.
"""

from __future__ import annotations

import bench_beanstalk
import bench_latency
import bench_memory
import bench_peers
import bench_postgres
import bench_push
import bench_records
import bench_redis
import bench_retention
import bench_rss
import bench_scale
import bench_sqlite
import bench_sqs
from harness import main

RUNNERS = [
    bench_memory.run,
    bench_sqlite.run,
    bench_redis.run,
    bench_postgres.run,
    bench_beanstalk.run,
    bench_sqs.run,
    bench_peers.run,
    bench_latency.run,
    bench_scale.run,
    bench_rss.run,
    bench_push.run,
    bench_records.run,
    bench_retention.run,
]

if __name__ == "__main__":
    main(RUNNERS)
