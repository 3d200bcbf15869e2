"""What a ``redis://`` or ``rediss://`` URL (and configuration options) ask of the backend.

kue's own settings ride in the URL's query next to redis-py's (``socket_timeout``, ``ssl_*``
and the rest, which pass through to :meth:`redis.ConnectionPool.from_url`):

``max_body``   largest body in bytes (default 64 MiB; Redis itself stops at 512 MB)
``prefix``     prefix of every key (default ``kue``)
``retries``    how often a command is retried after a connection error (default 3)
``cluster``    ``true`` if the URL names a node of a Redis Cluster (default ``false``); the
               client then learns the other nodes from it

The same names are accepted in ``options`` (``[tool.kue.options]``); the URL wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kue.config import mask_url
from kue.errors import ConfigError
from kue_redis.keys import DEFAULT_PREFIX

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_RETRIES",
    "DEFAULT_SOCKET_TIMEOUT",
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

_OURS = ("max_body", "prefix", "retries", "cluster")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


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
    client_kwargs: dict[str, Any] = field(default_factory=dict)


def _int(name: str, raw: object, low: int, high: int, masked: str) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} in {masked} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} in {masked} is out of range: {low} to {high}")
    return value


def _bool(name: str, raw: object, masked: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} in {masked} must be one of {', '.join(_TRUE + _FALSE)}")


def parse_settings(url: str, options: Mapping[str, Any] | None = None) -> RedisSettings:
    """Split ``url`` into redis-py's URL and kue's settings; bad values raise ConfigError."""
    masked = mask_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"the redis backend takes redis:// or rediss:// URLs, not {masked}")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours: dict[str, object] = {k: v for k, v in (options or {}).items() if k in _OURS}
    ours.update({k: v for k, v in pairs if k in _OURS})
    theirs = [(k, v) for k, v in pairs if k not in _OURS]
    client_url = urlunsplit(parts._replace(query=urlencode(theirs)))

    socket_timeout = DEFAULT_SOCKET_TIMEOUT
    client_kwargs: dict[str, Any] = {}
    if not any(k == "socket_timeout" for k, _ in theirs):
        client_kwargs["socket_timeout"] = socket_timeout
    else:
        raw = dict(theirs)["socket_timeout"]
        try:
            socket_timeout = float(raw)
        except ValueError:
            raise ConfigError(f"socket_timeout={raw!r} in {masked} is not a number") from None
        if not socket_timeout > 0:
            raise ConfigError(f"socket_timeout={raw!r} in {masked} must be above 0 seconds")

    prefix = str(ours.get("prefix", DEFAULT_PREFIX))
    if not prefix or "{" in prefix or "}" in prefix:
        raise ConfigError(
            f"prefix={prefix!r} in {masked} must be non-empty and free of braces "
            "(braces would move the hash tag)"
        )
    cluster = _bool("cluster", ours.get("cluster", False), masked)
    if cluster and parts.path not in ("", "/", "/0"):
        raise ConfigError(
            f"database {parts.path.lstrip('/')!r} in {masked}: a Redis Cluster has only database 0"
        )
    return RedisSettings(
        url=url,
        client_url=client_url,
        masked_url=masked,
        max_body=_int("max_body", ours.get("max_body", DEFAULT_MAX_BODY), 1,
                      REDIS_PROTO_MAX_BULK, masked),
        prefix=prefix,
        retries=_int("retries", ours.get("retries", DEFAULT_RETRIES), 0, 100, masked),
        socket_timeout=socket_timeout,
        cluster=cluster,
        client_kwargs=client_kwargs,
    )
