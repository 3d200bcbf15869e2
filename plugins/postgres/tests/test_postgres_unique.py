"""Unique keys (``put_unique``) and claims (``ClaimStore.claim``) on PostgreSQL.

The contract suite checks ``put_unique`` through one backend object; here several objects (each
its own pool, so its own connections, as separate processes would have) race for one key, the
claims that beanstalkd and SQS take unique jobs through are checked call by call, and expired
keys are seen to go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from postgres_support import raw

from kue.backend import Reservation
from kue.records import ClaimStore
from kue_postgres.backend import KEY_SWEEP_EVERY, PostgresBackend
from kue_postgres.schema import MIGRATIONS, Names, migration_sql

T = TypeVar("T")
RACERS = 8


def poll(probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Call ``probe`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"condition not met within {timeout:g} s: {probe}"
        time.sleep(0.02)


def race(backends: list[PostgresBackend], call: Callable[[PostgresBackend], T]) -> list[T]:
    """``call`` on every backend at once, each from a thread of its own."""
    start = threading.Barrier(len(backends))

    def one(backend: PostgresBackend) -> T:
        start.wait(timeout=10)
        return call(backend)

    with ThreadPoolExecutor(len(backends)) as pool:
        return list(pool.map(one, backends))


@pytest.fixture
def racers(make_backend: Callable[..., PostgresBackend]) -> list[PostgresBackend]:
    """Backend objects that share nothing but the database."""
    return [make_backend() for _ in range(RACERS)]


def test_the_backend_is_a_claim_store(backend: PostgresBackend) -> None:
    assert isinstance(backend, ClaimStore)
    assert backend.capabilities.unique_put and backend.capabilities.delete_by_id


def test_a_claim_sets_a_free_key_and_reports_the_live_value_that_stops_another(
    backend: PostgresBackend,
) -> None:
    assert backend.claim("ns", "k", "first", 60, None) is None
    assert backend.claim("ns", "k", "second", 60, None) == "first"
    assert backend.claim("other-ns", "k", "mine", 60, None) is None  # namespaces are apart
    # Compare and set: only the value it holds now replaces it.
    assert backend.claim("ns", "k", "third", 60, "not it") == "first"
    assert backend.claim("ns", "k", "third", 60, "first") is None
    assert backend.claim("ns", "k", "fourth", 60, None) == "third"
    # A free key stops a compare-and-set, reported as "".
    assert backend.claim("ns", "never-set", "x", 60, "anything") == ""
    assert backend.claim("ns", "never-set", "x", 60, None) is None


def test_an_expired_claim_frees_its_key(backend: PostgresBackend) -> None:
    assert backend.claim("ns", "k", "short", 0.2, None) is None
    assert backend.claim("ns", "k", "other", 60, None) == "short"
    assert poll(lambda: backend.claim("ns", "k", "other", 60, None) is None)
    assert backend.claim("ns", "k", "late", 60, "short") == "other"
    assert backend.claim("ns", "gone", "brief", 0.2, None) is None
    # A compare-and-set that fails reports the live value, then "" once it expired.
    seen: list[str | None] = []
    poll(lambda: seen.append(backend.claim("ns", "gone", "x", 60, "other")) or
         seen[-1] != "brief")
    assert seen[-1] == ""


def test_of_eight_backends_claiming_one_key_at_once_one_sets_it(
    racers: list[PostgresBackend],
) -> None:
    for n in range(10):
        results = race(racers, lambda b, n=n: b.claim("ns", f"k{n}", f"{id(b)}", 60, None))
        assert results.count(None) == 1, results
        winner = f"{id(racers[results.index(None)])}"
        assert all(r in (None, winner) for r in results), results
        swapped = race(racers, lambda b, n=n, w=winner: b.claim("ns", f"k{n}", f"{id(b)}!", 60,
                                                                 w))
        assert swapped.count(None) == 1, swapped


def test_of_eight_backends_putting_one_key_at_once_one_stores_a_job(
    racers: list[PostgresBackend],
) -> None:
    for n in range(10):
        results = race(racers, lambda b, n=n: b.put_unique(
            "q", b"%d" % n, 5, 0.0, 60.0, f"key-{n}", 600.0, True))
        assert [stored for _, stored in results].count(True) == 1, results
        assert len({job_id for job_id, _ in results}) == 1, results
    assert racers[0].stats("q").ready == 10


def test_a_key_put_again_at_once_as_its_job_finishes_stores_at_most_one_job(
    racers: list[PostgresBackend],
) -> None:
    """Puts racing with the holder's delete: each sees it held, or free and only one stores."""
    for n in range(10):
        first, stored = racers[0].put_unique("q", b"a", 5, 0.0, 60.0, "k", 600.0, True)
        assert stored
        job = racers[0].reserve(["q"], 5)
        assert job is not None and job.id == first

        def put_or_finish(b: PostgresBackend, job: Reservation = job) -> tuple[str, bool]:
            if b is racers[0]:
                b.delete(job)
                return "", False
            return b.put_unique("q", b"b", 5, 0.0, 60.0, "k", 600.0, True)

        results = race(racers, put_or_finish)[1:]
        new = {job_id for job_id, stored in results if stored}
        assert len(new) <= 1, (n, results)
        assert all(job_id in {first, *new} for job_id, _ in results), (n, results)
        assert racers[0].stats("q").total == len(new)
        while (left := racers[0].reserve(["q"], 0)) is not None:
            racers[0].delete(left)


def test_deleting_a_queued_job_by_id_frees_its_key(backend: PostgresBackend) -> None:
    first, _ = backend.put_unique("q", b"a", 5, 0.0, 60.0, "k", 600.0, True)
    assert backend.put_unique("q", b"b", 5, 0.0, 60.0, "k", 600.0, True) == (first, False)
    assert backend.delete_by_id("q", first)
    second, stored = backend.put_unique("q", b"c", 5, 0.0, 60.0, "k", 600.0, True)
    assert stored and second != first


def test_a_key_held_for_its_ttl_is_held_after_its_job_is_deleted(
    backend: PostgresBackend,
) -> None:
    first, _ = backend.put_unique("q", b"tick", 5, 0.0, 60.0, "tick@1", 600.0, False)
    assert backend.delete_by_id("q", first)
    assert backend.put_unique("q", b"tick", 5, 0.0, 60.0, "tick@1", 600.0, False) == (
        first, False)
    assert backend.stats("q").total == 0


def test_expired_keys_and_claims_are_swept_by_later_writes(
    backend: PostgresBackend, url: str, schema: str,
) -> None:
    for n in range(KEY_SWEEP_EVERY // 2):
        backend.put_unique("q", b"x", 5, 0.0, 60.0, f"k{n}", 1.0, False)
        backend.claim("ns", f"c{n}", "v", 1.0, None)
    assert backend._key_writes == KEY_SWEEP_EVERY  # the last of these swept: nothing was due
    with raw(url) as conn:
        def rows() -> tuple[int, int]:
            row = conn.execute(f"SELECT (SELECT count(*) FROM {schema}.kue_unique), "
                               f"(SELECT count(*) FROM {schema}.kue_claims)").fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        assert rows() == (KEY_SWEEP_EVERY // 2, KEY_SWEEP_EVERY // 2)
        poll(lambda: conn.execute(
            f"SELECT NOT EXISTS (SELECT 1 FROM {schema}.kue_unique WHERE expires > "
            f"statement_timestamp()) AND NOT EXISTS (SELECT 1 FROM {schema}.kue_claims WHERE "
            "expires > statement_timestamp())").fetchone() == (True,))
        for n in range(KEY_SWEEP_EVERY - 1):
            backend.claim("ns", f"live{n}", "v", 600, None)
        assert rows() == (KEY_SWEEP_EVERY // 2, KEY_SWEEP_EVERY // 2 + KEY_SWEEP_EVERY - 1)
        backend.claim("ns", "last", "v", 600, None)  # the next sweep
        assert rows() == (0, KEY_SWEEP_EVERY)


def test_a_database_of_the_first_layout_is_migrated_and_keeps_its_jobs(
    url: str, schema: str, make_backend: Callable[..., PostgresBackend],
) -> None:
    names = Names(schema, "kue")
    with raw(url) as conn:
        conn.execute(migration_sql(names, 0))
        conn.execute(f"CREATE TABLE {names.t}schema (version integer NOT NULL)")
        conn.execute(f"INSERT INTO {names.t}schema (version) VALUES (1)")
        conn.execute(f"INSERT INTO {names.t}jobs (queue, state, priority, ttr, body) "
                     "VALUES ('q', 0, 5, 60, 'old')")
    backend = make_backend()
    with raw(url) as conn:
        assert conn.execute(f"SELECT version FROM {names.t}schema").fetchall() == [
            (len(MIGRATIONS),)]
    assert backend.put_unique("q", b"new", 5, 0.0, 60.0, "k", 600.0, True)[1]
    got = [backend.reserve(["q"], 0) for _ in range(2)]
    assert [j.body if j else None for j in got] == [b"old", b"new"]


def test_close_stops_the_listener_threads_at_once(backend: PostgresBackend) -> None:
    assert backend.reserve(["q"], 0.01) is None  # starts this process's listener
    listeners = list(backend._state().listeners.values())
    assert listeners
    backend.close()  # wakes them and waits a second at most for each
    assert not any(listener.thread.is_alive() for listener in listeners)
