"""kue's PostgreSQL backend, ``postgres://`` and ``postgresql://``.

The plugin module is :mod:`kue_postgres.plugin`; the backend is
:class:`kue_postgres.backend.PostgresBackend`, its tables and migrations are in
:mod:`kue_postgres.schema`. Importing this package does not import psycopg: that happens only
when a queue is opened.
"""

from __future__ import annotations

__all__: list[str] = []
