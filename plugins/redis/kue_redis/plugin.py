"""The pluggy plugin behind the ``redis`` and ``rediss`` entry points of ``kue.backends``.

redis-py is imported only when a backend is opened, so installing kue-redis costs nothing to
programs that use another backend.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from kue.spi import hookimpl

if TYPE_CHECKING:
    from kue_redis.backend import RedisBackend

__all__ = ["SCHEMES", "kue_backend", "kue_contract_server"]

#: The backend names (URL schemes) this plugin serves.
SCHEMES = ("redis", "rediss")


@hookimpl
def kue_backend(name: str, url: str, options: dict[str, Any]) -> RedisBackend | None:
    """Open a Redis backend for ``redis://`` and ``rediss://`` URLs."""
    if name not in SCHEMES:
        return None
    from kue_redis.backend import RedisBackend

    return RedisBackend(url, options)


@hookimpl
def kue_contract_server(name: str, mode: str) -> AbstractContextManager[str] | None:
    """A throwaway redis-server for the contract suite: a local process or a container."""
    if name not in SCHEMES:
        return None
    from kue_redis.server import contract_server

    return contract_server(mode)
