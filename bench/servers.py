"""Every backend's throwaway server as one context manager yielding a kue URL (loopback only).

The servers are the plugins' own specs (hook ``kue_contract_server``), run by kue_contract as
local processes on free 127.0.0.1 ports; sqlite gets a file in a fresh directory under /tmp.
"""

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
