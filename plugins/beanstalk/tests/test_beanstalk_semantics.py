"""The promises whose beanstalkd mapping is not one command for one call."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import greenstalk
import pytest

import kue
from kue.errors import ReservationLost
from kue_beanstalk.backend import LATE_TTR, BeanstalkBackend
from kue_beanstalk.connection import Connection
from kue_contract.servers import LocalServer


def _wait_for(probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        time.sleep(0.02)


def test_capabilities_declare_beanstalkds_limits(backend: BeanstalkBackend) -> None:
    caps = backend.capabilities
    assert caps.name == "beanstalk"
    assert (caps.priority, caps.fifo, caps.delay, caps.bury, caps.peek) == (True,) * 5
    assert caps.durable is False and caps.shared is True
    assert caps.max_body == 65_535  # beanstalkd's default max-job-size
    assert caps.max_delay == caps.max_ttr == 2**32 - 1
    assert caps.min_ttr == 2 and caps.whole_seconds is True


def test_a_fractional_timeout_waits_whole_seconds_rounded_up(
    backend: BeanstalkBackend, tube: str
) -> None:
    started = time.monotonic()
    assert backend.reserve([tube], 0) is None
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    assert backend.reserve([tube], 0.3) is None
    waited = time.monotonic() - started
    assert 0.3 <= waited < 1.5, waited


def test_fractional_delays_and_ttrs_are_rounded_up(backend: BeanstalkBackend, tube: str) -> None:
    backend.put(tube, b"x", 0, 0.2, 2.5)
    with greenstalk.Client(("127.0.0.1", backend.settings.port), encoding=None, use=tube) as raw:
        job = raw.peek_delayed()
        stats = raw.stats_job(job)
    assert stats["ttr"] == 3 and stats["delay"] == 1


def test_put_many_sends_a_batch_in_one_pipeline(
    backend: BeanstalkBackend, tube: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []
    real = Connection.pipeline

    def counting(self: Connection, commands: list[object], what: str) -> object:
        writes.append(len(commands))
        return real(self, commands, what)  # type: ignore[arg-type]

    monkeypatch.setattr(Connection, "pipeline", counting)
    ids = backend.put_many(tube, [kue.PutItem(f"{i}".encode(), priority=i) for i in range(100)])
    assert writes == [101]  # the tube's `use` rides along with the 100 puts
    writes.clear()
    ids += backend.put_many(tube, [kue.PutItem(f"{i}".encode()) for i in range(100, 2500)])
    assert writes == [1000, 1000, 400]  # larger batches go in slices of max_batch
    assert len(set(ids)) == 2500 and [int(i) for i in ids] == sorted(int(i) for i in ids)
    assert backend.stats(tube).ready == 2500


def test_a_reserve_while_holding_a_job_near_its_deadline_does_not_blow_up(
    backend: BeanstalkBackend, tube: str
) -> None:
    backend.put(tube, b"slow", 0, 0, 2)
    first = backend.reserve([tube], 2)
    assert first is not None
    # beanstalkd answers DEADLINE_SOON here in the last second of the ttr; the reserve waits
    # on until the job comes back.
    again = backend.reserve([tube], 4)
    assert again is not None and again.id == first.id and again.attempts == 2
    backend.delete(again)


def test_a_ready_job_is_handed_out_even_in_the_last_second_of_another(
    backend: BeanstalkBackend, tube: str
) -> None:
    backend.put(tube, b"held", 0, 0, 2)
    held = backend.reserve([tube], 2)
    assert held is not None
    backend.put(tube, b"next", 0, 0, 60)
    with greenstalk.Client(("127.0.0.1", backend.settings.port), encoding=None) as raw:
        # time-left is rounded down: 0 means the held job is in its last second.
        _wait_for(lambda: raw.stats_job(int(held.id))["time-left"] == 0, timeout=3)
    nxt = backend.reserve([tube], 0)
    assert nxt is not None and nxt.body == b"next"
    assert backend.reserve([tube], 0) is None  # DEADLINE_SOON with nothing ready: None
    backend.delete(held)  # touched first, since it is near its deadline
    backend.delete(nxt)
    assert backend.stats(tube).total == 0


def test_deleting_an_expired_reservation_raises_and_keeps_the_job(
    backend: BeanstalkBackend, tube: str
) -> None:
    backend.put(tube, b"expires", 0, 0, 2)
    job = backend.reserve([tube], 2)
    assert job is not None
    _wait_for(lambda: backend.stats(tube).ready == 1, timeout=5)
    # beanstalkd itself would delete a ready job; kue must not.
    with pytest.raises(kue.ReservationLost):
        backend.delete(job)
    assert backend.stats(tube).ready == 1


def test_a_reservation_acted_on_from_a_second_backend_is_lost(
    server: LocalServer, backend: BeanstalkBackend, tube: str
) -> None:
    backend.put(tube, b"x", 0, 0, 60)
    job = backend.reserve([tube], 2)
    assert job is not None
    other = BeanstalkBackend(server.url)
    with pytest.raises(kue.ReservationLost):
        other.delete(job)
    other.close()
    backend.delete(job)


def test_bury_keeps_the_priority_and_peek_shows_it_with_attempts(
    backend: BeanstalkBackend, tube: str
) -> None:
    backend.put(tube, b"x", 123, 0, 60)
    job = backend.reserve([tube], 2)
    assert job is not None
    backend.bury(job, None)
    seen = backend.peek(tube, kue.JobState.BURIED)
    assert seen == kue.JobInfo(tube, job.id, b"x", 123, kue.JobState.BURIED, 1)
    assert backend.peek(tube, kue.JobState.READY) is None
    assert backend.kick(tube, 2**40) == 1  # a bound over uint32 is clamped, not refused


def test_the_watch_list_follows_the_queues_asked_for(
    backend: BeanstalkBackend, tube: str
) -> None:
    a, b = f"{tube}-a", f"{tube}-b"
    backend.put(a, b"in a", 0, 0, 60)
    backend.put(b, b"in b", 0, 0, 60)
    backend.put("default", b"in default", 0, 0, 60)
    first = backend.reserve([b], 0)
    assert first is not None and first.body == b"in b" and first.queue == b
    assert backend.reserve([b], 0) is None  # neither a nor default is watched
    second = backend.reserve([a, "default"], 0)
    third = backend.reserve([a, "default"], 0)
    assert second is not None and third is not None
    assert {second.body, third.body} == {b"in a", b"in default"}
    for job in (first, second, third):
        backend.delete(job)


def test_reserve_needs_a_queue(backend: BeanstalkBackend) -> None:
    with pytest.raises(ValueError, match="at least one queue"):
        backend.reserve([], 0)


def test_an_ack_past_ttr_and_tolerance_is_lost_even_while_beanstalkd_still_holds_the_job(
    server: LocalServer, backend: BeanstalkBackend, tube: str
) -> None:
    # A steady stream of short connections (here one stats-job each, every 0.1 s) can keep
    # beanstalkd 1.12 from timing the reservation out for seconds: the holder's acks must
    # still be lost after ttr + the tolerance, and the job ready for the next consumer.
    job_id = backend.put(tube, b"x", 5, 0, 2)
    held = backend.reserve([tube], 0)
    assert held is not None and held.id == job_id
    deadline = time.monotonic() + 2 + LATE_TTR + 0.5
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", server.port)) as busy:
            busy.sendall(b"stats-job %s\r\n" % job_id.encode())
            busy.recv(4096)
        time.sleep(0.1)
    with pytest.raises(ReservationLost, match="ttr ran out"):
        backend.release(held, 1, 0)
    again = backend.reserve([tube], 5)
    assert again is not None and (again.id, again.priority, again.attempts) == (job_id, 5, 2)
    backend.delete(again)
