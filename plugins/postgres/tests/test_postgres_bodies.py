"""put_many's bodies packed as one binary bytea[] (kue_postgres.bodies), as psycopg sends one."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.adapt import PyFormat, Transformer

import kue
from kue_postgres.bodies import BYTEA_ARRAY_OID, Bodies, pack, register

CASES = [[b"x" * 100] * 3, [b"", b"\x00\xff", bytes(range(256)), b"y" * 70_000], [b"one"]]


@pytest.mark.parametrize("bodies", CASES)
def test_a_packed_batch_is_the_array_psycopg_would_send(bodies: list[bytes]) -> None:
    plain = Transformer().get_dumper(bodies, PyFormat.BINARY)
    assert plain.oid == BYTEA_ARRAY_OID
    assert pack(bodies) == bytes(plain.dump(bodies) or b"")


def test_an_empty_batch_packs_as_an_empty_array(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        register(conn.adapters)
        row = conn.execute("SELECT cardinality(%b::bytea[])", (Bodies(),)).fetchone()
    assert row == (0,)


@pytest.mark.parametrize("registered", [True, False], ids=["packed", "psycopg's list dumper"])
def test_bodies_reach_the_server_whole_with_or_without_the_packing(
    pg_url: str, registered: bool
) -> None:
    bodies = Bodies(CASES[1])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        if registered:
            register(conn.adapters)
        row = conn.execute("SELECT %b::bytea[]", (bodies,)).fetchone()
    assert row is not None and row[0] == bodies


def test_put_many_stores_each_body_whole_in_order(queue: kue.Queue) -> None:
    bodies = CASES[1]
    ids = queue.put_many([kue.PutItem(b) for b in bodies])
    got = []
    for job_id in ids:
        job = queue.reserve(timeout=0)
        assert job is not None and job.id == job_id
        got.append(job.body)
        job.delete()
    assert got == bodies
