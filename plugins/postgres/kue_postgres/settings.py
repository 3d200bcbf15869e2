"""What a ``postgres://`` or ``postgresql://`` URL (and configuration options) ask of the backend.

The URL is libpq's (``postgresql://user:password@host:port/dbname``); kue's own settings ride
in its query next to libpq's parameters (``sslmode``, ``connect_timeout``, ``application_name``
and the rest of :data:`LIBPQ_OPTIONS`, which pass through to psycopg), read by
:func:`kue.spi.read_options`:

``schema``     the PostgreSQL schema that holds kue's tables (default ``public``; created if
               missing)
``prefix``     prefix of kue's table, function and channel names (default ``kue``: tables
               ``kue_jobs``, ``kue_records``, ``kue_schema``)
``pool_size``  most connections one backend object opens (default 10); a blocked reserve
               holds none while it waits
``max_body``   largest body in bytes (default 64 MiB; a bytea holds up to 1 GB)
``retries``    how often an operation is retried after a lost connection (default 3)

The same names are accepted in ``options`` (``[tool.kue.options]``); the URL wins. Any other
name is refused unless libpq knows it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from kue.spi import ConfigError, Option, mask_url, read_options

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_RETRIES",
    "LIBPQ_OPTIONS",
    "OPTIONS",
    "SCHEMES",
    "PostgresSettings",
    "parse_settings",
]

#: The URL schemes (and entry-point names) of this backend.
SCHEMES = ("postgres", "postgresql")
#: Default body limit: large enough for any sane job, small enough not to stall a server.
DEFAULT_MAX_BODY = 64 * 2**20
#: PostgreSQL's own ceiling on one bytea value.
BYTEA_MAX = 2**30 - 1
#: Connections one backend object may open by default.
DEFAULT_POOL_SIZE = 10
#: Retries after a lost connection before BackendUnavailable.
DEFAULT_RETRIES = 3
#: What a schema name or prefix may be: a plain lower-case identifier, never quoted.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}")

#: kue's own options of a postgres URL; every other query name must be libpq's.
OPTIONS = (
    Option("schema", "str", "public", "the PostgreSQL schema of kue's tables"),
    Option("prefix", "str", "kue", "prefix of kue's tables, functions and channels"),
    Option("pool_size", "int", DEFAULT_POOL_SIZE, "most connections the backend opens",
           low=1, high=1000),
    Option("max_body", "int", DEFAULT_MAX_BODY, "largest body in bytes", low=1, high=BYTEA_MAX),
    Option("retries", "int", DEFAULT_RETRIES, "retries after a lost connection", low=0,
           high=100),
)
#: Query names libpq reads from a URL (its connection parameters), handed on to psycopg.
LIBPQ_OPTIONS = frozenset({
    "application_name", "channel_binding", "client_encoding", "connect_timeout",
    "gssencmode", "keepalives", "keepalives_count", "keepalives_idle", "keepalives_interval",
    "krbsrvname", "load_balance_hosts", "options", "passfile", "requirepeer", "service",
    "sslcert", "sslcompression", "sslcrl", "sslkey", "sslmode", "sslpassword", "sslrootcert",
    "sslsni", "target_session_attrs", "tcp_user_timeout", "host", "hostaddr", "port",
    "dbname", "user", "password",
})


@dataclass(frozen=True)
class PostgresSettings:
    """The parsed URL: what psycopg gets, and kue's own settings."""

    url: str
    conninfo: str
    masked_url: str
    schema: str = "public"
    prefix: str = "kue"
    pool_size: int = DEFAULT_POOL_SIZE
    max_body: int = DEFAULT_MAX_BODY
    retries: int = DEFAULT_RETRIES


def parse_settings(url: str, options: Mapping[str, Any] | None = None) -> PostgresSettings:
    """Split ``url`` into psycopg's conninfo and kue's settings; bad values raise ConfigError."""
    masked = mask_url(url)
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"the postgres backend takes postgres:// or postgresql:// URLs, "
                          f"not {masked}")
    values = read_options("postgres", OPTIONS, url, options,
                          passthrough=lambda name: name in LIBPQ_OPTIONS,
                          passthrough_name="libpq's " + ", ".join(sorted(LIBPQ_OPTIONS)))
    for name in ("schema", "prefix"):
        if not IDENTIFIER.fullmatch(values[name]):
            raise ConfigError(f"{name}={values[name]!r} in {masked} must be a lower-case SQL "
                              "identifier: a letter or _, then letters, digits or _, at most "
                              "40 characters")
    conninfo = urlunsplit(parts._replace(scheme="postgresql",
                                         query=urlencode(values.passed)))
    return PostgresSettings(url=url, conninfo=conninfo, masked_url=masked,
                            schema=values["schema"], prefix=values["prefix"],
                            pool_size=values["pool_size"], max_body=values["max_body"],
                            retries=values["retries"])
