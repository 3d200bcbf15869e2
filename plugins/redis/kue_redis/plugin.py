"""The pluggy plugin behind the ``redis`` and ``rediss`` entry points of ``kue.backends``.

redis-py is imported only when a backend is opened, so installing kue-redis costs nothing to
programs that use another backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kue.spi import hookimpl

if TYPE_CHECKING:
    from kue_contract.servers import ServerSpec
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
def kue_contract_server(name: str) -> ServerSpec | None:
    """The throwaway redis-server of the contract suite, described (kue_contract runs it)."""
    if name not in SCHEMES:
        return None
    from kue_redis.server import SERVER

    return SERVER
