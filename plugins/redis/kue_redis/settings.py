"""What a ``redis://`` or ``rediss://`` URL (and configuration options) ask of the backend.

kue's own settings ride in the URL's query next to redis-py's (``ssl_*`` and the rest, which
pass through to :meth:`redis.ConnectionPool.from_url`), read by :func:`kue.options.read_options`:

``max_body``   largest body in bytes (default 64 MiB; Redis itself stops at 512 MB)
``prefix``     prefix of every key (default ``kue``)
``retries``    how often a command is retried after a connection error (default 3)
``cluster``    ``true`` if the URL names a node of a Redis Cluster (default ``false``); the
               client then learns the other nodes from it
``socket_timeout``  seconds a socket read may take (default 30; handed to redis-py)
``slot``       a name (kue's queue-name rule) that puts every queue of this backend in one
               Redis Cluster slot (default: none, each queue in its own name's slot)

The same names are accepted in ``options`` (``[tool.kue.options]``); the URL wins. Any other
name is refused unless redis-py reads it from a URL (:data:`CLIENT_OPTIONS`, ``ssl_*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from kue.spi import QUEUE_NAME_RULE, ConfigError, Option, check_queue_name, mask_url, read_options
from kue_redis.keys import DEFAULT_PREFIX

__all__ = [
    "CLIENT_OPTIONS",
    "DEFAULT_MAX_BODY",
    "DEFAULT_RETRIES",
    "DEFAULT_SOCKET_TIMEOUT",
    "OPTIONS",
    "REDIS_PROTO_MAX_BULK",
    "RedisSettings",
    "parse_settings",
]

#: Default body limit: large enough for any sane job, small enough not to stall a server.
DEFAULT_MAX_BODY = 64 * 2**20
#: Redis's own ceiling on one string (proto-max-bulk-len).
REDIS_PROTO_MAX_BULK = 512 * 2**20
#: Seconds a socket read may take; must outlast the longest blocking wait (see backend).
DEFAULT_SOCKET_TIMEOUT = 30.0
#: Retries after a connection error before BackendUnavailable; redis-py's own default is 10.
DEFAULT_RETRIES = 3

#: kue's own options of a redis URL; every other query name must be one of redis-py's.
OPTIONS = (
    Option("max_body", "int", DEFAULT_MAX_BODY, "largest body in bytes", low=1,
           high=REDIS_PROTO_MAX_BULK),
    Option("prefix", "str", DEFAULT_PREFIX, "prefix of every key"),
    Option("retries", "int", DEFAULT_RETRIES, "retries after a connection error", low=0,
           high=100),
    Option("cluster", "bool", False, "the URL names a node of a Redis Cluster"),
    Option("socket_timeout", "seconds", DEFAULT_SOCKET_TIMEOUT,
           "seconds a socket read may take (passed to redis-py)"),
    Option("slot", "str", "", "put every queue of this backend in one cluster slot named so"),
)
#: Query names redis-py reads from a URL (redis.connection.parse_url), besides ``ssl_*``.
CLIENT_OPTIONS = frozenset({
    "db", "socket_connect_timeout", "socket_read_size", "socket_keepalive", "retry_on_timeout",
    "retry_on_error", "max_connections", "health_check_interval", "timeout", "protocol",
    "client_name", "legacy_responses",
})


def _for_redis_py(name: str) -> bool:
    return name in CLIENT_OPTIONS or name.startswith("ssl_")


@dataclass(frozen=True)
class RedisSettings:
    """The parsed URL: what redis-py gets, and kue's own settings."""

    url: str
    client_url: str
    masked_url: str
    max_body: int = DEFAULT_MAX_BODY
    prefix: str = DEFAULT_PREFIX
    retries: int = DEFAULT_RETRIES
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    cluster: bool = False
    #: Every queue's keys carry the hash tag ``{slot`` (one cluster slot); "" for none.
    slot: str = ""
    client_kwargs: dict[str, Any] = field(default_factory=dict)


def parse_settings(url: str, options: Mapping[str, Any] | None = None) -> RedisSettings:
    """Split ``url`` into redis-py's URL and kue's settings; bad values raise ConfigError."""
    masked = mask_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"the redis backend takes redis:// or rediss:// URLs, not {masked}")
    values = read_options("redis", OPTIONS, url, options, passthrough=_for_redis_py,
                          passthrough_name="redis-py's " + ", ".join(sorted(CLIENT_OPTIONS))
                          + ", ssl_*")
    client_url = urlunsplit(parts._replace(query=urlencode(values.passed)))
    prefix = values["prefix"]
    if not prefix or "{" in prefix or "}" in prefix:
        raise ConfigError(
            f"prefix={prefix!r} in {masked} must be non-empty and free of braces "
            "(braces would move the hash tag)"
        )
    slot = values["slot"]
    if slot:
        try:
            check_queue_name(slot)
        except ValueError:
            raise ConfigError(
                f"slot={slot!r} in {masked}: a slot name follows the queue-name rule, "
                f"{QUEUE_NAME_RULE}"
            ) from None
    if values["cluster"] and parts.path not in ("", "/", "/0"):
        raise ConfigError(
            f"database {parts.path.lstrip('/')!r} in {masked}: a Redis Cluster has only database 0"
        )
    return RedisSettings(
        url=url,
        client_url=client_url,
        masked_url=masked,
        max_body=values["max_body"],
        prefix=prefix,
        retries=values["retries"],
        socket_timeout=values["socket_timeout"],
        cluster=values["cluster"],
        slot=slot,
        client_kwargs={"socket_timeout": values["socket_timeout"]},
    )
