"""Transactional put: the job is committed with the caller's transaction, or not at all."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from postgres_support import Ledger, raw, record
from sqlalchemy.orm import Session

import kue
from kue.plugins import new_plugin_manager
from kue.worker import Worker


def _waiting_reserve(queue: kue.Queue) -> tuple[threading.Thread, list[Any]]:
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(queue.reserve(timeout=20)))
    thread.start()
    time.sleep(0.3)  # blocked by now
    return thread, got


def test_psycopg_rolled_back_leaves_no_job_and_committed_wakes_a_waiting_worker(
    queue: kue.Queue, url: str, make_backend: Any
) -> None:
    other = kue.Queue(make_backend(), queue.name)
    thread, got = _waiting_reserve(other)
    with raw(url) as conn:
        conn.autocommit = False
        queue.put({"order": 1}, connection=conn)
        assert other.stats().total == 0, "not visible before the commit"
        conn.rollback()
        assert other.stats().total == 0
        job_id = queue.put({"order": 2}, connection=conn)
        assert got == [], "an uncommitted put wakes no one"
        committed = time.monotonic()
        conn.commit()
    thread.join(10)
    assert got and got[0] is not None and got[0].json() == {"order": 2}
    assert got[0].id == job_id
    assert time.monotonic() - committed < 2
    assert other.stats().total == 1  # reserved, not yet deleted


def test_a_psycopg_transaction_block_commits_job_and_row_together(
    queue: kue.Queue, url: str, schema: str
) -> None:
    with raw(url) as conn:
        conn.execute(f"CREATE TABLE {schema}.orders (id int PRIMARY KEY)")
        with pytest.raises(ZeroDivisionError), conn.transaction():
            conn.execute(f"INSERT INTO {schema}.orders VALUES (1)")
            queue.put("ship 1", connection=conn)
            1 / 0  # noqa: B018
        with conn.transaction():
            conn.execute(f"INSERT INTO {schema}.orders VALUES (2)")
            with queue.using(conn):
                queue.put("ship 2")
                queue.push(record.message("two"))
                with queue.batch():
                    queue.push(record.message("three"))
                    queue.push(record.message("four"))
        rows = conn.execute(f"SELECT id FROM {schema}.orders").fetchall()
    assert rows == [(2,)]
    assert queue.stats().ready == 4
    assert queue.reserve(timeout=0).body == b"ship 2"  # type: ignore[union-attr]


def test_sqlalchemy_session_rolled_back_or_committed(
    queue: kue.Queue, url: str, schema: str, ledger: Ledger
) -> None:
    engine = sa.create_engine(url.split("?")[0].replace("postgresql://",
                                                        "postgresql+psycopg://"))
    meta = sa.MetaData(schema=schema)
    users = sa.Table("users", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("email", sa.Text))
    meta.create_all(engine)
    try:
        with Session(engine) as session:
            session.execute(users.insert().values(id=1, email="a@example.com"))
            queue.push(record.message("welcome a"), connection=session)
            session.rollback()
            session.execute(users.insert().values(id=2, email="b@example.com"))
            handle = queue.push(record.message("welcome b"), connection=session)
            assert queue.stats().total == 0
            session.commit()
        with engine.connect() as conn:  # a Connection works as well as a Session
            queue.put("plain", connection=conn)
            conn.commit()
        worker = Worker(queue.backend, [queue.name],
                        plugin_manager=new_plugin_manager(load_entry_points=False))
        assert worker.run(burst=True).succeeded == 1  # "plain" is no kue envelope: buried
        assert ledger.runs == {"welcome b": 1}
        assert handle is not None and handle.result(timeout=5) == "welcome b"
        with engine.connect() as conn:
            assert conn.execute(sa.select(users.c.id)).scalars().all() == [2]
    finally:
        engine.dispose()


def test_1000_puts_half_rolled_back_run_exactly_the_committed_half(
    queue: kue.Queue, url: str, ledger: Ledger
) -> None:
    """FAULTS F26."""
    committed = set()
    with raw(url) as conn:
        conn.autocommit = False
        for i in range(1000):
            queue.push(record.message(f"k{i}"), connection=conn)
            if i % 2:
                conn.commit()
                committed.add(f"k{i}")
            else:
                conn.rollback()
    worker = Worker(queue.backend, [queue.name],
                    plugin_manager=new_plugin_manager(load_entry_points=False))
    assert worker.run(burst=True).succeeded == 500
    assert ledger.runs == dict.fromkeys(committed, 1)


def test_a_connection_of_the_wrong_kind_is_refused_before_anything_is_sent(
    queue: kue.Queue,
) -> None:
    with pytest.raises(TypeError, match=r"not builtins\.object"):
        queue.put("x", connection=object())
    assert queue.stats().total == 0


def test_a_connection_to_another_database_says_so(queue: kue.Queue, url: str) -> None:
    name = f"other{uuid.uuid4().hex[:8]}"
    base = url.split("?")[0]
    with raw(url) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    with raw(base.rsplit("/", 1)[0] + f"/{name}") as conn, \
            pytest.raises(kue.BackendUnavailable, match="no database with kue's tables"):
        queue.put("y", connection=conn)


def test_backends_without_transactional_put_raise_unsupported_naming_themselves(
    tmp_path: Any,
) -> None:
    queue = kue.connect(f"sqlite:///{tmp_path}/q.sqlite3", queue="q")
    with pytest.raises(kue.Unsupported, match="sqlite backend does not support putting a job"):
        queue.put("x", connection=object())
    with pytest.raises(kue.Unsupported), queue.using(object()):
        pass
    assert queue.stats().total == 0
    queue.close()
