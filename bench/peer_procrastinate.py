"""procrastinate as a peer on the same PostgreSQL server: its defer and its worker, timed.

Used by :mod:`bench_postgres`; procrastinate runs in this process (its worker is asyncio), on
its own schema in the same database, with a no-op async task, one job at a time
(``concurrency=1``), until its queue is empty (``wait=False``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import procrastinate

__all__ = ["ProcrastinatePeer"]


class ProcrastinatePeer:
    """procrastinate's App on ``conninfo``, its tables in a schema of their own."""

    label = "procrastinate"

    def __init__(self, conninfo: str) -> None:
        import psycopg

        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS procrastinate CASCADE")
            conn.execute("CREATE SCHEMA procrastinate")
        self.conninfo = conninfo
        self.options = {"options": "-c search_path=procrastinate"}
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=conninfo, kwargs=self.options))

        @self.app.task(name="noop", queue="bench")
        async def noop(n: int) -> None:
            """Do nothing."""

        self.task: Any = noop
        asyncio.run(self._schema())

    async def _schema(self) -> None:
        async with self.app.open_async():
            await self.app.schema_manager.apply_schema_async()

    def defer(self, n: int) -> float:
        """Seconds to defer ``n`` jobs one by one (each its own transaction)."""
        async def go() -> float:
            async with self.app.open_async():
                started = time.perf_counter()
                for i in range(n):
                    await self.task.defer_async(n=i)
                return time.perf_counter() - started
        return asyncio.run(go())

    def fill(self, n: int) -> None:
        """Defer ``n`` jobs in batches (untimed set-up)."""
        async def go() -> None:
            async with self.app.open_async():
                for start in range(0, n, 1000):
                    await self.task.batch_defer_async(
                        *({"n": i} for i in range(start, min(n, start + 1000))))
        asyncio.run(go())

    def work(self) -> float:
        """Seconds for one worker (concurrency 1) to run every job and stop."""
        async def go() -> float:
            async with self.app.open_async():
                started = time.perf_counter()
                await self.app.run_worker_async(queues=["bench"], wait=False, concurrency=1,
                                                delete_jobs="always")
                return time.perf_counter() - started
        return asyncio.run(go())
