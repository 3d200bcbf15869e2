"""Every backend's throwaway server as one context manager yielding a kue URL (loopback only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from harness import scratch_dir

BACKENDS = ("memory", "sqlite", "redis", "beanstalk", "sqs")


@contextmanager
def backend_url(name: str) -> Iterator[str]:
    """Start what ``name`` needs (a server on a free 127.0.0.1 port, or a file); yield its URL."""
    if name == "memory":
        yield f"memory://bench-{uuid.uuid4().hex[:8]}"
    elif name == "sqlite":
        with scratch_dir("kue-bench-sqlite-") as tmp:
            yield f"sqlite:///{tmp / 'kue.sqlite3'}"
    elif name == "redis":
        from kue_redis.server import local_server

        with local_server() as url:
            yield url
    elif name == "beanstalk":
        from kue_beanstalk.server import LocalBeanstalkd

        with LocalBeanstalkd() as server:
            yield server.url
    elif name == "sqs":
        from kue_sqs.server import moto_server

        with moto_server("local") as url:
            yield url
    else:
        raise ValueError(f"unknown backend {name!r}: one of {', '.join(BACKENDS)}")
