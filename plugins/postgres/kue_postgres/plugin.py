"""The pluggy plugin behind the ``postgres`` and ``postgresql`` entry points of ``kue.backends``.

psycopg is imported only when a backend is opened, so installing kue-postgres costs nothing to
programs that use another backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kue.spi import hookimpl

if TYPE_CHECKING:
    from kue_contract.servers import ServerSpec
    from kue_postgres.backend import PostgresBackend

__all__ = ["SCHEMES", "kue_backend", "kue_contract_server"]

#: The backend names (URL schemes) this plugin serves.
SCHEMES = ("postgres", "postgresql")


@hookimpl
def kue_backend(name: str, url: str, options: dict[str, Any]) -> PostgresBackend | None:
    """Open a PostgreSQL backend for ``postgres://`` and ``postgresql://`` URLs."""
    if name not in SCHEMES:
        return None
    from kue_postgres.backend import PostgresBackend

    return PostgresBackend(url, options)


@hookimpl
def kue_contract_server(name: str) -> ServerSpec | None:
    """The throwaway PostgreSQL cluster of the contract suite, described (kue_contract runs it)."""
    if name not in SCHEMES:
        return None
    from kue_postgres.server import SERVER

    return SERVER
