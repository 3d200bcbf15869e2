"""Every backend's throwaway server (its plugin's spec, a local process) as a context manager."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kue_contract.servers import throwaway

#: The backends the cross-backend benchmarks compare.
BACKENDS = ("memory", "sqlite", "redis", "beanstalk", "sqs")


@contextmanager
def backend_url(name: str) -> Iterator[str]:
    """Start what ``name`` needs (a server on a free 127.0.0.1 port, or a file); yield its URL.

    An unknown name raises :class:`kue.errors.UnknownBackend`, which lists the installed ones.
    """
    with throwaway(name, "local") as server:
        yield server.url
