"""The PostgreSQL backend's own promises: settings, schema versions, wake-ups, round trips."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from postgres_support import count_round_trips, raw

import kue
from kue.backend import Ack
from kue_postgres.backend import PostgresBackend
from kue_postgres.schema import MIGRATIONS


def test_unknown_options_and_bad_names_are_refused_before_connecting() -> None:
    with pytest.raises(kue.ConfigError, match="unknown postgres option 'pool'"):
        PostgresBackend("postgresql://u:secret@127.0.0.1:1/db?pool=3")
    with pytest.raises(kue.ConfigError, match="schema='bad-name'") as info:
        PostgresBackend("postgresql://u:secret@127.0.0.1:1/db?schema=bad-name")
    assert "secret" not in str(info.value)
    with pytest.raises(kue.ConfigError, match="pool_size=0"):
        PostgresBackend("postgres://127.0.0.1:1/db?pool_size=0")


def test_an_unreachable_server_names_the_url_without_its_password() -> None:
    with pytest.raises(kue.BackendUnavailable) as info:
        PostgresBackend("postgresql://u:secret@127.0.0.1:1/db?connect_timeout=2")
    assert "127.0.0.1:1" in str(info.value) and "secret" not in str(info.value)


def test_the_schema_is_made_on_first_use_and_its_version_recorded(
    url: str, schema: str, make_backend: Callable[..., PostgresBackend]
) -> None:
    openers = [threading.Thread(target=make_backend) for _ in range(4)]
    for thread in openers:
        thread.start()
    for thread in openers:
        thread.join()
    with raw(url) as conn:
        versions = conn.execute(f"SELECT version FROM {schema}.kue_schema").fetchall()
        assert versions == [(len(MIGRATIONS),)]
        conn.execute(f"UPDATE {schema}.kue_schema SET version = 99")
    with pytest.raises(kue.BackendUnavailable, match="version 99, newer than"):
        make_backend()


def test_a_prefix_keeps_two_kue_installations_apart(
    url: str, schema: str, make_backend: Callable[..., PostgresBackend]
) -> None:
    one, two = make_backend(), make_backend(f"{url}&prefix=other")
    one.put("q", b"a", 0, 0, 60)
    assert two.stats("q").total == 0 and one.stats("q").ready == 1
    with raw(url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}
    assert {"kue_jobs", "kue_records", "other_jobs", "other_records"} <= tables


def test_a_blocked_reserve_is_woken_by_a_put_from_another_backend_and_does_not_poll(
    backend: PostgresBackend, make_backend: Callable[..., PostgresBackend]
) -> None:
    producer = make_backend()
    backend.reserve(["warm"], 0.01)  # the listener is up before counting
    trips = count_round_trips(backend)
    got: list[tuple[float, bytes]] = []

    def consume() -> None:
        job = backend.reserve(["wake"], 30)
        assert job is not None
        got.append((time.monotonic(), job.body))

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(2.0)  # idle on purpose: what an idle consumer costs is what is measured
    # One look for a job, one more once its gate lock is held (puts notify only past it), one
    # for the next due time; then it sleeps until woken.
    assert trips[0] == 3, f"an idle reserve asked the database {trips[0]} times in 2 s"
    put_at = time.monotonic()
    producer.put("wake", b"now", 0, 0, 60)
    thread.join(10)
    assert got and got[0][1] == b"now"
    assert got[0][0] - put_at < 0.5


def test_a_blocked_reserve_wakes_when_the_next_delayed_job_is_due(
    backend: PostgresBackend,
) -> None:
    backend.put("later", b"soon", 0, 1.0, 60)
    trips = count_round_trips(backend)
    started = time.monotonic()
    job = backend.reserve(["later"], 10)
    took = time.monotonic() - started
    assert job is not None and job.body == b"soon"
    assert 0.8 <= took < 2.5
    assert trips[0] <= 4, "a wait bounded by the due time, not a polling loop"


def test_a_release_wakes_a_blocked_reserve(
    backend: PostgresBackend, make_backend: Callable[..., PostgresBackend]
) -> None:
    other = make_backend()
    backend.put("rel", b"x", 0, 0, 60)
    held = backend.reserve(["rel"], 0)
    assert held is not None
    got: list[float] = []
    thread = threading.Thread(target=lambda: got.append(
        time.monotonic() if other.reserve(["rel"], 30) else -1))
    thread.start()
    time.sleep(0.3)
    released_at = time.monotonic()
    backend.release(held, 5, 0)
    thread.join(10)
    assert got and 0 < got[0] - released_at < 0.5


def test_delete_and_reserve_is_one_round_trip(backend: PostgresBackend) -> None:
    backend.put_many("f", [kue.PutItem(b"1"), kue.PutItem(b"2")])
    first = backend.reserve(["f"], 0)
    assert first is not None
    trips = count_round_trips(backend)
    second = backend.delete_and_reserve(first, ["f"], 0)
    assert trips[0] == 1
    assert second is not None and second.body == b"2"
    assert backend.stats("f").total == 1
    with pytest.raises(kue.ReservationLost):
        backend.delete_and_reserve(first, ["f"], 0)
    assert backend.stats("f").reserved == 1, "a lost finish reserves nothing"


def test_settle_many_acks_with_records_gives_back_and_reserves_in_one_round_trip(
    backend: PostgresBackend,
) -> None:
    backend.put_many("s", [kue.PutItem(f"{i}".encode(), priority=i) for i in range(6)])
    held = backend.reserve_many(["s"], 4, 0)
    assert [j.body for j in held] == [b"0", b"1", b"2", b"3"]
    backend.update_record("s", held[1].id, {"progress": 0.5, "note": "kept"}, 60)
    trips = count_round_trips(backend)
    reply = backend.settle_many(
        [Ack(held[0]), Ack(held[1], {"state": "done", "progress": None}, 60)],
        held[2:], ["s"], 3, 0)
    assert trips[0] == 1, "settle_many took more than one round trip"
    assert reply.lost == []
    assert [(j.body, j.attempts) for j in reply.reserved] == [(b"2", 1), (b"3", 1), (b"4", 1)]
    assert backend.read_record("s", held[1].id) == {"state": "done", "note": "kept"}
    assert backend.stats("s") == kue.QueueStats(ready=1, reserved=3)
    # The given-back reservations are stale now: acking them changes nothing.
    reply = backend.settle_many([Ack(held[2])], (), ["s"], 0, 0)
    assert reply.lost == [held[2]]
    assert backend.stats("s") == kue.QueueStats(ready=1, reserved=3)


def test_a_done_record_is_written_in_the_same_transaction_as_the_delete(
    backend: PostgresBackend, url: str, schema: str
) -> None:
    backend.put("r", b"x", 0, 0, 60)
    job = backend.reserve(["r"], 0)
    assert job is not None
    nxt = backend.complete_and_reserve(job, {"state": "done", "result": [1, None]}, 60, ["r"], 0)
    assert nxt is None
    assert backend.read_record("r", job.id) == {"state": "done", "result": [1, None]}
    with raw(url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {schema}.kue_jobs").fetchone() == (0,)
    backend.update_record("r", job.id, {"result": None, "note": "n"}, 60)
    assert backend.read_record("r", job.id) == {"state": "done", "note": "n"}


def test_wait_record_is_woken_by_the_record_write(
    backend: PostgresBackend, make_backend: Callable[..., PostgresBackend]
) -> None:
    writer = make_backend()
    backend.wait_record("w", "1", 0.01)  # starts the listener
    assert backend.read_record("w", "1") is None
    woke: list[float] = []
    thread = threading.Thread(target=lambda: (backend.wait_record("w", "1", 10),
                                              woke.append(time.monotonic())))
    thread.start()
    time.sleep(0.3)
    wrote = time.monotonic()
    writer.update_record("w", "1", {"progress": 0.5}, 60)
    thread.join(10)
    assert woke and woke[0] - wrote < 0.5


def test_leases_count_on_the_servers_clock(backend: PostgresBackend, url: str,
                                           schema: str) -> None:
    backend.put("clock", b"x", 0, 0, 30)
    held = backend.reserve(["clock"], 0)
    assert held is not None
    with raw(url) as conn:
        left = conn.execute(f"SELECT extract(epoch FROM due - now()) FROM {schema}.kue_jobs"
                            ).fetchone()
    assert left is not None and 28 < float(left[0]) <= 30


def _notes_until_marker(conn: Any, channel: str) -> list[str]:
    """The payloads ``conn`` (LISTENing on ``channel``) got before a marker sent now.

    Notifications arrive in commit order, so whatever an earlier commit sent comes first.
    """
    conn.execute("SELECT pg_notify(%s, 'marker')", (channel,))
    got: list[str] = []
    for note in conn.notifies(timeout=10):
        if note.payload == "marker":
            return got
        got.append(note.payload)
    raise AssertionError("the marker notification never came")


def _gate_locks(conn: Any, gate: str, key: str) -> int:
    """How many sessions hold the gate's shared lock on ``key``."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND "
        "granted AND mode = 'ShareLock' AND classid = hashtext(%s)::oid AND "
        "objid = hashtext(%s)::oid", (gate, key)).fetchone()
    return int(row[0])


def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_put_notifies_only_while_some_process_waits_on_its_queue(
    backend: PostgresBackend, make_backend: Callable[..., PostgresBackend], url: str
) -> None:
    channel, gate = backend.names.jobs_channel, backend.names.jobs_gate
    with raw(url) as conn:
        conn.execute(f'LISTEN "{channel}"')
        backend.put("g", b"1", 0, 0, 60)
        assert "g" not in _notes_until_marker(conn, channel), "nobody waits: no NOTIFY"
        assert backend.reserve(["g"], 0) is not None

        waiter = make_backend()
        got: list[bytes] = []
        thread = threading.Thread(target=lambda: got.append(
            getattr(waiter.reserve(["g"], 30), "body", b"")))
        thread.start()
        _until(lambda: _gate_locks(conn, gate, "g") == 1, "the waiter never took its gate")
        backend.put("g", b"2", 0, 0, 60)
        assert "g" in _notes_until_marker(conn, channel), "a waiter: the put notifies"
        thread.join(10)
        assert got == [b"2"]

        # Its gate is given back LINGER s after its last wait: puts stop notifying.
        _until(lambda: _gate_locks(conn, gate, "g") == 0, "the gate was never given back")
        backend.put("g", b"3", 0, 0, 60)
        assert "g" not in _notes_until_marker(conn, channel)


def test_finishing_a_job_notes_its_record_only_while_someone_waits_for_records(
    backend: PostgresBackend, make_backend: Callable[..., PostgresBackend], url: str
) -> None:
    channel = backend.names.records_channel
    with raw(url) as conn:
        conn.execute(f'LISTEN "{channel}"')
        backend.put("f", b"1", 0, 0, 60)
        job = backend.reserve(["f"], 0)
        assert job is not None
        backend.delete(job)
        assert not _notes_until_marker(conn, channel), "nobody waits: no NOTIFY"

        waiter = make_backend()
        waiter.read_record("f", "0")
        waiter.wait_record("f", "0", 0.01)  # starts its listener
        waiter.read_record("f", "0")
        waiter.wait_record("f", "0", 0.01)  # takes its gate on queue f, then returns
        _until(lambda: _gate_locks(conn, backend.names.records_gate, "f") == 1,
               "the records gate was never taken")
        backend.put("f", b"2", 0, 0, 60)
        job = backend.reserve(["f"], 0)
        assert job is not None
        backend.delete(job)
        assert _notes_until_marker(conn, channel) == [f"f/{job.id}"]


def test_gated_puts_wake_every_blocked_reserve_when_gates_come_and_go(
    backend: PostgresBackend, make_backend: Callable[..., PostgresBackend],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each reserve takes its gate anew (no linger): a put racing that never goes unseen."""
    monkeypatch.setattr("kue_postgres.listener.LINGER", 0.0)
    consumer = make_backend()
    total = 150
    waits: list[float] = []

    def consume() -> None:
        for _ in range(total):
            started = time.monotonic()
            job = consumer.reserve(["race"], 5)
            assert job is not None
            waits.append(time.monotonic() - started)
            consumer.delete(job)

    thread = threading.Thread(target=consume)
    thread.start()
    for i in range(total):
        backend.put("race", b"%d" % i, 0, 0, 60)
        time.sleep(0.001 * (i % 7))  # puts land before, during and after each gate's taking
    thread.join(60)
    assert len(waits) == total
    assert max(waits) < 2.0, f"a put went unseen by a waiting reserve ({max(waits):.2f} s)"


def test_a_waiter_whose_listen_connection_dies_is_still_woken_by_the_next_put(
    backend: PostgresBackend, make_backend: Callable[..., PostgresBackend], url: str
) -> None:
    """The gate's lock dies with the LISTEN connection; the reconnection takes it again."""
    producer = make_backend()
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.append(
        getattr(backend.reserve(["lost"], 30), "body", b"")))
    thread.start()
    with raw(url) as conn:
        _until(lambda: _gate_locks(conn, backend.names.jobs_gate, "lost") == 1,
               "the waiter never took its gate")
        listener = backend._state().listeners[backend.names.jobs_channel]
        pid = listener.conn.info.backend_pid
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        _until(lambda: conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                    (pid,)).fetchone() is None, "the backend never ended")
        _until(lambda: _gate_locks(conn, backend.names.jobs_gate, "lost") == 1,
               "the gate was not taken again after the reconnection")
    put_at = time.monotonic()
    producer.put("lost", b"after", 0, 0, 60)
    thread.join(10)
    assert got == [b"after"]
    assert time.monotonic() - put_at < 2.0
