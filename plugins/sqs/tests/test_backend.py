"""The SQS mapping against a real moto_server: bury/kick, long delays, bands, timeouts, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from kue.backend import JobState, PutItem, QueueStats
from kue.errors import BackendUnavailable, ConfigError, ReservationLost, Unsupported
from kue_contract.servers import free_port  # type: ignore[import-untyped, unused-ignore]
from kue_sqs.backend import SqsBackend

OpenBackend = Callable[..., SqsBackend]



def _with(url: str, **params: str) -> str:
    return url + "".join(f"&{k}={v}" for k, v in params.items())


def _count_received(backend: SqsBackend) -> list[int]:
    """How many messages each ReceiveMessage answered with."""
    counts: list[int] = []

    def seen(parsed: dict[str, Any], **_: object) -> None:
        counts.append(len(parsed.get("Messages", [])))

    backend._client.meta.events.register("after-call.sqs.ReceiveMessage", seen)
    return counts


def _raw_counts(backend: SqsBackend, sqs_name: str) -> int:
    url = backend._client.get_queue_url(QueueName=sqs_name)["QueueUrl"]
    attrs = backend._client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


# -- bury and kick -------------------------------------------------------------------------


def test_bury_moves_the_job_to_the_companion_queue_and_kick_brings_it_back(
    backend: SqsBackend, name: str
) -> None:
    job_id = backend.put(name, b"poison", 42, 0, 5)
    job = backend.reserve([name], 5)
    assert job is not None and job.attempts == 1
    backend.bury(job, None)
    assert backend.stats(name) == QueueStats(buried=1)
    assert _raw_counts(backend, f"kue-{name}-buried") == 1
    assert _raw_counts(backend, f"kue-{name}") == 0
    assert backend.reserve([name], 0) is None
    assert backend.kick(name, 5) == 1
    assert _raw_counts(backend, f"kue-{name}-buried") == 0
    again = backend.reserve([name], 5)
    assert again is not None
    assert (again.id, again.body, again.priority, again.attempts) == (job_id, b"poison", 42, 2)
    backend.delete(again)
    assert backend.stats(name).total == 0


def test_bury_with_a_priority_replaces_it(backend: SqsBackend, name: str) -> None:
    backend.put(name, b"x", 42, 0, 5)
    job = backend.reserve([name], 5)
    assert job is not None
    backend.bury(job, 7)
    assert backend.kick(name, 1) == 1
    again = backend.reserve([name], 5)
    assert again is not None and again.priority == 7


def test_kick_with_only_delayed_jobs_is_unsupported(backend: SqsBackend, name: str) -> None:
    assert backend.kick(name, 1) == 0
    backend.put(name, b"later", 0, 60, 5)
    with pytest.raises(Unsupported, match="kicking delayed jobs"):
        backend.kick(name, 1)


def test_peek_is_unsupported(backend: SqsBackend, name: str) -> None:
    with pytest.raises(Unsupported, match="peek"):
        backend.peek(name, JobState.READY)


# -- delays over SQS's native limit --------------------------------------------------------


def test_a_delay_over_the_native_limit_is_emulated_without_counting_an_attempt(
    moto_url: str, name: str, open_backend: OpenBackend
) -> None:
    backend = open_backend(moto_url, native_max_delay=1)
    received = _count_received(backend)
    started = time.monotonic()
    backend.put(name, b"three seconds", 0, 3, 5)
    assert backend.stats(name) == QueueStats(delayed=1)
    assert backend.reserve([name], 0) is None
    job = backend.reserve([name], 6)
    waited = time.monotonic() - started
    assert job is not None and job.body == b"three seconds"
    assert waited >= 2.95
    # With a native limit of 1 s: received early at 1 s and at 2 s, each time the rest of
    # the delay sent again as a new message, then when due.
    assert sum(received) == 3
    assert job.attempts == 1
    backend.delete(job)


class ShiftedClock:
    """The wall clock plus a jump, to pass minutes in an instant."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def test_a_20_minute_delay_with_a_fake_clock_and_shortened_limit(
    moto_url: str, name: str, open_backend: OpenBackend
) -> None:
    clock = ShiftedClock()
    backend = open_backend(moto_url, native_max_delay=1, wall_clock=clock)
    sent = []
    backend._client.meta.events.register(
        "provide-client-params.sqs.SendMessage",
        lambda params, **_: sent.append(params["DelaySeconds"]),
    )
    backend.put(name, b"twenty minutes", 0, 20 * 60, 5)
    clock.offset = 20 * 60 - 3  # 19 min 57 s pass at once; the job is due in about 3 s
    assert backend.reserve([name], 0) is None
    job = backend.reserve([name], 8)
    assert job is not None and job.body == b"twenty minutes"
    assert job.attempts == 1
    assert len(sent) >= 2 and max(sent) <= 1, "each early receive sent the rest again"
    assert backend.stats(name) == QueueStats(reserved=1)
    backend.delete(job)


def test_an_emulated_delay_first_received_after_it_came_due_counts_every_attempt(
    moto_url: str, name: str, open_backend: OpenBackend
) -> None:
    """Nobody received it early: its receive count is all attempts (once, one was lost)."""
    clock = ShiftedClock()
    backend = open_backend(moto_url, native_max_delay=1, wall_clock=clock)
    backend.put(name, b"twenty minutes", 0, 20 * 60, 1)
    clock.offset = 20 * 60 + 1  # due already when its native second is up
    first = backend.reserve([name], 5)
    assert first is not None and first.attempts == 1
    again = backend.reserve([name], 5)  # its ttr of 1 s runs out: a second delivery
    assert again is not None and again.id == first.id
    assert again.attempts == 2
    backend.delete(again)


def test_a_release_with_a_long_delay_is_emulated_too(
    moto_url: str, name: str, open_backend: OpenBackend
) -> None:
    backend = open_backend(moto_url, native_max_delay=1)
    backend.put(name, b"again", 0, 0, 5)
    job = backend.reserve([name], 5)
    assert job is not None
    backend.release(job, 3, 2)
    assert backend.stats(name) == QueueStats(delayed=1)
    started = time.monotonic()
    again = backend.reserve([name], 6)
    assert again is not None and time.monotonic() - started >= 1.9
    assert (again.id, again.priority, again.attempts) == (job.id, 3, 2)
    backend.delete(again)


# -- priority bands ------------------------------------------------------------------------


def test_bands_hand_out_the_most_urgent_band_first(
    moto_url: str, name: str, open_backend: OpenBackend
) -> None:
    backend = open_backend(_with(moto_url, bands="0,100,1000"))
    assert backend.capabilities.priority is True
    assert "band" in str(backend.capabilities.extra["order"])
    for body, priority in ((b"low", 5000), (b"mid", 150), (b"high", 5), (b"mid2", 999)):
        backend.put(name, body, priority, 0, 5)
    assert _raw_counts(backend, f"kue-{name}-b100") == 2
    got = []
    while (job := backend.reserve([name], 0)) is not None:
        got.append(job.body)
        backend.delete(job)
    assert got[0] == b"high" and sorted(got[1:3]) == [b"mid", b"mid2"] and got[3] == b"low"


def test_without_bands_priority_is_not_claimed(backend: SqsBackend) -> None:
    caps = backend.capabilities
    assert (caps.priority, caps.fifo, caps.peek, caps.bury, caps.delay, caps.parallel) == (
        False, False, False, True, True, True)
    assert caps.max_delay >= 12 * 3600 and "contract_jobs" not in caps.extra


# -- timeouts, lost reservations, errors ---------------------------------------------------


@pytest.mark.parametrize("timeout", [0.4, 1.3, 2.6])
def test_reserve_never_returns_after_its_timeout(
    backend: SqsBackend, name: str, timeout: float
) -> None:
    backend.put(name, b"arrives just after the timeout", 0, int(timeout) + 1, 5)
    started = time.monotonic()
    assert backend.reserve([name], timeout) is None
    elapsed = time.monotonic() - started
    assert timeout <= elapsed < timeout + 0.3
    job = backend.reserve([name], 3)
    assert job is not None and job.attempts == 1


def test_reserve_from_several_queues_keeps_its_timeout(backend: SqsBackend, name: str) -> None:
    started = time.monotonic()
    assert backend.reserve([name, name + "-2", name + "-3"], 2.5) is None
    assert 2.5 <= time.monotonic() - started < 2.8


def test_a_long_poll_hands_out_a_job_put_while_waiting(backend: SqsBackend, name: str) -> None:
    backend.put(name, b"soon", 0, 1, 5)
    started = time.monotonic()
    job = backend.reserve([name], 10)
    assert job is not None and time.monotonic() - started < 3
    backend.touch(job)
    backend.delete(job)


def test_a_stale_receipt_raises_reservation_lost_across_backends(
    moto_url: str, name: str, open_backend: OpenBackend
) -> None:
    a, b = open_backend(moto_url), open_backend(moto_url)
    a.put(name, b"contested", 0, 0, 1)
    stale = a.reserve([name], 5)
    assert stale is not None
    fresh = b.reserve([name], 4)
    assert fresh is not None and fresh.id == stale.id and fresh.attempts == 2
    with pytest.raises(ReservationLost, match="ttr ran out"):
        a.delete(stale)
    b.delete(fresh)
    with pytest.raises(ReservationLost, match="already deleted"):
        b.delete(fresh)


def test_a_refused_endpoint_raises_backend_unavailable_naming_the_url(
    name: str, open_backend: OpenBackend
) -> None:
    port = free_port()
    url = (f"sqs://testing:secret@/?region=us-east-1&endpoint=http://127.0.0.1:{port}"
           "&create=1")
    backend = open_backend(url)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        backend.put(name, b"x", 0, 0, 5)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "secret" not in str(info.value) and "***" in str(info.value)
    assert time.monotonic() - started < 10


def test_a_missing_queue_without_create_is_a_clear_error(
    moto_url: str, name: str, open_backend: OpenBackend
) -> None:
    backend = open_backend(moto_url.replace("create=1", "create=0"))
    with pytest.raises(ConfigError, match=f"kue-{name}.*create=1"):
        backend.put(name, b"x", 0, 0, 5)


def test_a_bad_queue_name_is_refused_before_sending(backend: SqsBackend) -> None:
    with pytest.raises(ValueError, match=r"queue name 'a\.b'"):
        backend.put("a.b", b"x", 0, 0, 5)


def test_the_largest_binary_body_round_trips(backend: SqsBackend, name: str) -> None:
    body = bytes(range(256)) * (backend.capabilities.max_body // 256)
    body += b"\x00" * (backend.capabilities.max_body - len(body))
    backend.put(name, body, 0, 0, 5)
    job = backend.reserve([name], 5)
    assert job is not None and job.body == body
    backend.delete(job)


def test_concurrent_consumers_lose_and_duplicate_nothing(backend: SqsBackend, name: str) -> None:
    """The throwaway server makes each request atomic (kue_sqs.moto_serial), as SQS does.

    Plain moto answers requests on threads without a lock: two deletes at once can bring one
    deleted message back, two receives at once can hand out one message twice.
    """
    ids = set()
    for _ in range(12):
        ids.update(backend.put_many(name, [PutItem(b"x") for _i in range(10)]))
    taken: list[str] = []

    def consume() -> None:
        while (job := backend.reserve([name], 0.5)) is not None:
            taken.append(job.id)
            backend.delete(job)

    threads = [threading.Thread(target=consume) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(taken) == sorted(ids)
    assert backend.stats(name).total == 0


# -- where moto is not SQS -----------------------------------------------------------------


@pytest.mark.moto_differs("real SQS refuses a body with NUL; moto stores it")
def test_moto_accepts_a_body_real_sqs_refuses(backend: SqsBackend, name: str) -> None:
    backend.put(name, b"warm up", 0, 0, 5)  # creates the queue
    url = backend._client.get_queue_url(QueueName=f"kue-{name}")["QueueUrl"]
    backend._client.send_message(QueueUrl=url, MessageBody="nul \x00 here")


@pytest.mark.moto_differs("moto deletes with any receipt handle the message ever had")
def test_moto_deletes_with_a_stale_receipt_handle(backend: SqsBackend, name: str) -> None:
    backend.put(name, b"x", 0, 0, 1)
    first = backend.reserve([name], 5)
    second = backend.reserve([name], 4)
    assert first is not None and second is not None and first.receipt != second.receipt
    url = backend._client.get_queue_url(QueueName=f"kue-{name}")["QueueUrl"]
    backend._client.delete_message(QueueUrl=url, ReceiptHandle=first.receipt)
    assert backend.stats(name).total == 0  # kue itself raises ReservationLost instead


def test_the_test_server_keeps_the_same_module_list_moto_reads_per_request() -> None:
    import moto.backends

    from kue_sqs.moto_serial import keep_module_list

    read = list(moto.backends.list_of_moto_modules())
    keep_module_list()
    assert "sqs" in read
    assert list(moto.backends.list_of_moto_modules()) == read
