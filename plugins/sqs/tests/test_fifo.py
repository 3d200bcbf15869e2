"""FIFO queues (``fifo=1``) against a real moto_server: names, dedup, order, groups, refusals."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import kue
from kue.backend import MAX_PRIORITY, PutItem, QueueStats, Reservation
from kue.errors import ConfigError, Unsupported
from kue_sqs.backend import MAX_VISIBILITY, SqsBackend, capabilities_for, resent_dedup_id
from kue_sqs.settings import parse_settings

OpenBackend = Callable[..., SqsBackend]


def _with(url: str, **params: str) -> str:
    return url + "".join(f"&{k}={v}" for k, v in params.items())


@pytest.fixture
def fifo(moto_url: str, open_backend: OpenBackend) -> SqsBackend:
    """A backend whose every queue is an SQS FIFO queue, one message group per kue queue."""
    return open_backend(_with(moto_url, fifo="1"))


def _calls(backend: SqsBackend, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` request the backend makes from now on."""
    calls: list[dict[str, Any]] = []
    backend._client.meta.events.register(
        f"provide-client-params.sqs.{operation}", lambda params, **_: calls.append(dict(params))
    )
    return calls


def _sqs_url(backend: SqsBackend, sqs_name: str) -> str:
    return backend._client.get_queue_url(QueueName=sqs_name)["QueueUrl"]


def _drain(backend: SqsBackend, name: str) -> list[bytes]:
    bodies = []
    while (job := backend.reserve([name], 0)) is not None:
        bodies.append(job.body)
        backend.delete(job)
    return bodies


def _reserve_within(backend: SqsBackend, name: str, seconds: float) -> Reservation:
    """Poll (no sleeping past a deadline) until a job of ``name`` can be reserved."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = backend.reserve([name], min(0.5, max(0.0, deadline - time.monotonic())))
        if job is not None:
            return job
    raise AssertionError(f"no job of {name!r} within {seconds} s")


# -- settings and capabilities -------------------------------------------------------------


def test_capabilities_say_what_each_setting_guarantees() -> None:
    standard = capabilities_for(parse_settings("sqs://?region=x"))
    ordered = capabilities_for(parse_settings("sqs://?region=x&fifo=1"))
    parallel = capabilities_for(parse_settings("sqs://?region=x&fifo=1&fifo_group=job"))
    banded = capabilities_for(parse_settings("sqs://?region=x&fifo=1&bands=0,100"))
    fields = ("priority", "fifo", "parallel", "delay", "kick_delayed", "bury", "peek")
    assert [getattr(standard, f) for f in fields] == [False, False, True, True, False, True, False]
    assert [getattr(ordered, f) for f in fields] == [False, True, False, False, False, True, False]
    assert [getattr(parallel, f) for f in fields] == [False, False, True, False, False, True, False]
    assert [getattr(banded, f) for f in fields] == [True, True, False, False, False, True, False]
    assert ordered.extra["fifo_group"] == "queue" and "put order" in str(ordered.extra["order"])
    assert str(parallel.extra["order"]).startswith("none")


def test_fifo_settings_come_from_the_url_or_the_options() -> None:
    s = parse_settings("sqs://?region=x&fifo=1&fifo_group=job")
    assert (s.fifo, s.fifo_group) == (True, "job")
    s = parse_settings("sqs://?region=x", {"fifo": True, "fifo_group": "queue"})
    assert (s.fifo, s.fifo_group) == (True, "queue")
    assert parse_settings("sqs://?region=x").fifo is False


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqs://?fifo_group=job", "fifo_group=job applies to FIFO queues only: add fifo=1"),
        ("sqs://?fifo=1&fifo_group=message", "fifo_group='message' .* must be one of queue, job"),
        ("sqs://?fifo=maybe", "fifo='maybe'"),
    ],
)
def test_bad_fifo_settings_name_the_value(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings(url)


def test_a_fifo_name_on_a_standard_backend_says_how_to_enable_fifo(backend: SqsBackend) -> None:
    with pytest.raises(Unsupported, match=r"add fifo=1 to the URL .* call the queue 'jobs'"):
        backend.put("jobs.fifo", b"x", 0, 0, 5)


def test_a_fifo_name_on_a_fifo_backend_is_refused_as_kue_adds_the_suffix(
    fifo: SqsBackend,
) -> None:
    with pytest.raises(ValueError, match=r"adds '\.fifo' .* call the queue 'jobs'"):
        fifo.put("jobs.fifo", b"x", 0, 0, 5)


# -- names, ids, deduplication -------------------------------------------------------------


def test_queues_are_created_as_fifo_queues_named_dot_fifo(fifo: SqsBackend, name: str) -> None:
    fifo.put(name, b"x", 0, 0, 5)
    job = fifo.reserve([name], 5)
    assert job is not None
    fifo.bury(job, None)
    for sqs_name in (f"kue-{name}.fifo", f"kue-{name}-buried.fifo"):
        attrs = fifo._client.get_queue_attributes(
            QueueUrl=_sqs_url(fifo, sqs_name), AttributeNames=["All"])["Attributes"]
        assert attrs["FifoQueue"] == "true"
        assert attrs["ContentBasedDeduplication"] == "false"


def test_the_job_id_is_chosen_by_kue_and_sent_as_the_deduplication_id(
    fifo: SqsBackend, name: str
) -> None:
    sends = _calls(fifo, "SendMessage")
    job_id = fifo.put(name, b"x", 0, 0, 5)
    (sent,) = sends
    assert sent["MessageDeduplicationId"] == job_id
    assert sent["MessageGroupId"] == name  # fifo_group=queue
    assert "DelaySeconds" not in sent  # FIFO queues refuse a per-message delay
    job = fifo.reserve([name], 5)
    assert job is not None and job.id == job_id


def test_a_resent_send_message_with_the_same_id_is_stored_once(
    fifo: SqsBackend, name: str
) -> None:
    sends = _calls(fifo, "SendMessage")
    job_id = fifo.put(name, b"once", 0, 0, 5)
    # The request again, as botocore's retry sends it when the first answer was lost.
    fifo._client.send_message(**sends[0])
    assert fifo.stats(name) == QueueStats(ready=1)
    job = fifo.reserve([name], 5)
    assert job is not None and (job.id, job.body, job.attempts) == (job_id, b"once", 1)
    fifo.delete(job)
    assert fifo.reserve([name], 0) is None


def test_a_resent_batch_is_stored_once(fifo: SqsBackend, name: str) -> None:
    batches = _calls(fifo, "SendMessageBatch")
    ids = fifo.put_many(name, [PutItem(f"job {i}".encode()) for i in range(12)])
    assert len(batches) == 2
    for batch in list(batches):
        fifo._client.send_message_batch(**batch)
    assert fifo.stats(name) == QueueStats(ready=12)
    seen = []
    while (job := fifo.reserve([name], 0)) is not None:
        seen.append(job.id)
        fifo.delete(job)
    assert seen == ids  # each once, in put order


def test_retried_batch_entries_keep_their_deduplication_ids(
    fifo: SqsBackend, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fifo._client.send_message_batch
    sent: list[list[dict[str, Any]]] = []

    def fail_the_last_once(**kwargs: Any) -> Any:
        entries = kwargs["Entries"]
        sent.append(entries)
        if len(sent) > 1:
            return real(**kwargs)
        # SQS stored every entry, but its answer calls the last one failed.
        response: Any = real(**kwargs)
        last = response["Successful"].pop()
        response["Failed"] = [{"Id": last["Id"], "SenderFault": False, "Code": "InternalError",
                               "Message": "injected by the test"}]
        return response

    monkeypatch.setattr(fifo._client, "send_message_batch", fail_the_last_once)
    ids = fifo.put_many(name, [PutItem(f"job {i}".encode()) for i in range(3)])
    assert [len(batch) for batch in sent] == [3, 1]
    assert sent[1][0]["MessageDeduplicationId"] == sent[0][2]["MessageDeduplicationId"] == ids[2]
    monkeypatch.undo()
    assert _drain(fifo, name) == [b"job 0", b"job 1", b"job 2"]  # stored once, in order


@pytest.mark.moto_differs("real SQS keeps a deduplication id for 5 minutes after a delete")
def test_moto_forgets_a_deduplication_id_once_its_message_is_deleted(
    fifo: SqsBackend, name: str
) -> None:
    sends = _calls(fifo, "SendMessage")
    fifo.put(name, b"x", 0, 0, 5)
    job = fifo.reserve([name], 5)
    assert job is not None
    fifo.delete(job)
    fifo._client.send_message(**sends[0])
    assert fifo.stats(name) == QueueStats(ready=1)  # real SQS: 0, the resend is dropped


# -- order and message groups --------------------------------------------------------------


def test_jobs_come_out_in_put_order_within_a_queue(fifo: SqsBackend, name: str) -> None:
    fifo.put(name, b"0", MAX_PRIORITY, 0, 5)
    fifo.put_many(name, [PutItem(f"{i}".encode(), priority=i) for i in range(1, 25)])
    fifo.put(name, b"25", 0, 0, 5)
    assert _drain(fifo, name) == [f"{i}".encode() for i in range(26)]


def test_consumers_take_turns_and_the_order_holds(fifo: SqsBackend, name: str) -> None:
    fifo.put_many(name, [PutItem(f"{i}".encode()) for i in range(20)])
    taken: list[bytes] = []
    lock = threading.Lock()

    def consume() -> None:
        while (job := fifo.reserve([name], 1)) is not None:
            with lock:
                taken.append(job.body)
            fifo.delete(job)

    threads = [threading.Thread(target=consume) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert taken == [f"{i}".encode() for i in range(20)]


def test_a_reserved_job_holds_back_its_queue_but_no_other(fifo: SqsBackend, name: str) -> None:
    other = name + "-o"
    fifo.put(name, b"a", 0, 0, 5)
    fifo.put(name, b"b", 0, 0, 5)
    fifo.put(other, b"c", 0, 0, 5)
    a = fifo.reserve([name], 5)
    assert a is not None and a.body == b"a"
    assert fifo.reserve([name], 1) is None
    c = fifo.reserve([name, other], 5)
    assert c is not None and c.body == b"c"
    fifo.delete(a)
    b = fifo.reserve([name], 5)
    assert b is not None and b.body == b"b"


def test_a_released_job_keeps_its_place_at_the_head(fifo: SqsBackend, name: str) -> None:
    for body in (b"a", b"b"):
        fifo.put(name, body, 0, 0, 5)
    a = fifo.reserve([name], 5)
    assert a is not None
    fifo.release(a, a.priority, 0)
    again = fifo.reserve([name], 5)
    assert again is not None and (again.id, again.body, again.attempts) == (a.id, b"a", 2)


def test_a_release_with_a_delay_holds_the_job_and_its_queue_in_flight(
    fifo: SqsBackend, name: str
) -> None:
    for body in (b"failing", b"next"):
        fifo.put(name, body, 0, 0, 5)
    job = fifo.reserve([name], 5)
    assert job is not None
    released = time.monotonic()
    fifo.release(job, job.priority, 2)  # the worker's retry backoff
    assert fifo.stats(name) == QueueStats(ready=1, reserved=1)
    assert fifo.reserve([name], 0) is None  # "next" waits behind it: strict order
    again = _reserve_within(fifo, name, 6)
    assert time.monotonic() - released >= 1.9
    assert (again.id, again.body, again.attempts) == (job.id, b"failing", 2)
    fifo.delete(again)
    assert _drain(fifo, name) == [b"next"]


def test_a_queue_api_release_with_a_delay_is_honoured_as_the_worker_s_is(
    moto_url: str, name: str
) -> None:
    """``release_delay`` is True on FIFO queues though ``delay`` is not: kue's check agrees."""
    queue = kue.connect(_with(moto_url, fifo="1"), queue=name)
    try:
        assert (queue.capabilities.delay, queue.capabilities.release_delay) == (False, True)
        with pytest.raises(Unsupported, match="delayed jobs"):
            queue.put("later", delay=5)
        queue.put("failing")
        job = queue.reserve(timeout=5)
        assert job is not None
        released = time.monotonic()
        job.release(delay=1)
        assert queue.stats() == QueueStats(reserved=1)
        again = _reserve_within(queue.backend, name, 5)  # type: ignore[arg-type]
        assert time.monotonic() - released >= 0.9 and again.attempts == 2
        queue.backend.delete(again)
    finally:
        queue.close()


def test_fifo_group_job_runs_jobs_of_one_queue_in_parallel(
    moto_url: str, name: str, open_backend: OpenBackend
) -> None:
    backend = open_backend(_with(moto_url, fifo="1", fifo_group="job"))
    sends = _calls(backend, "SendMessage")
    ids = [backend.put(name, body, 0, 0, 5) for body in (b"a", b"b")]
    assert [s["MessageGroupId"] for s in sends] == ids
    first, second = backend.reserve([name], 5), backend.reserve([name], 5)
    assert first is not None and second is not None
    assert {first.id, second.id} == set(ids)
    assert backend.stats(name) == QueueStats(reserved=2)


def test_bands_on_fifo_are_fifo_queues_most_urgent_first_in_order_within(
    moto_url: str, name: str, open_backend: OpenBackend
) -> None:
    backend = open_backend(_with(moto_url, fifo="1", bands="0,100"))
    for body, priority in ((b"low1", 500), (b"high1", 50), (b"low2", 100), (b"high2", 0)):
        backend.put(name, body, priority, 0, 5)
    assert _sqs_url(backend, f"kue-{name}-b100.fifo").endswith(f"kue-{name}-b100.fifo")
    assert _drain(backend, name) == [b"high1", b"high2", b"low1", b"low2"]


# -- refusals: nothing is sent, nothing is lost --------------------------------------------


def test_a_delay_is_unsupported_before_anything_is_sent(fifo: SqsBackend, name: str) -> None:
    fifo.put(name, b"kept", 0, 0, 5)
    sends, batches = _calls(fifo, "SendMessage"), _calls(fifo, "SendMessageBatch")
    with pytest.raises(Unsupported, match=r"a delay \(5 s\) on a FIFO queue"):
        fifo.put(name, b"later", 0, 5, 5)
    with pytest.raises(Unsupported, match="FIFO"):
        fifo.put_many(name, [PutItem(b"now"), PutItem(b"later", delay=1)])
    assert sends == [] and batches == []
    queue = kue.Queue(fifo, name)
    with pytest.raises(kue.Unsupported):  # kue's own check, from delay=False
        queue.put(b"later", delay=5)
    assert _drain(fifo, name) == [b"kept"]


def test_release_refuses_what_fifo_cannot_do_and_keeps_the_job(
    fifo: SqsBackend, name: str
) -> None:
    fifo.put(name, b"job", 5, 0, 30)
    job = fifo.reserve([name], 5)
    assert job is not None
    sends = _calls(fifo, "SendMessage")
    with pytest.raises(Unsupported, match="new priority and a delay"):
        fifo.release(job, 9, 3)
    with pytest.raises(ValueError, match=f"over SQS's longest visibility timeout of "
                                         f"{MAX_VISIBILITY}"):
        fifo.release(job, job.priority, MAX_VISIBILITY + 1)
    assert sends == []
    assert fifo.stats(name) == QueueStats(reserved=1)
    fifo.release(job, 9, 0)  # a new priority alone is a re-send, to the back
    again = fifo.reserve([name], 5)
    assert again is not None and (again.id, again.priority, again.attempts) == (job.id, 9, 2)


# -- bury and kick -------------------------------------------------------------------------


def test_bury_and_kick_on_fifo_keep_bury_order_and_rejoin_at_the_back(
    fifo: SqsBackend, name: str
) -> None:
    ids = [fifo.put(name, body, 0, 0, 5) for body in (b"a", b"b", b"c")]
    for _ in range(2):  # bury a, then b (one at a time: the queue holds one in flight)
        job = fifo.reserve([name], 5)
        assert job is not None
        fifo.bury(job, None)
    assert fifo.stats(name) == QueueStats(ready=1, buried=2)
    assert fifo.kick(name, 1) == 1  # the one buried longest ago: a, behind c
    got = []
    while (job := fifo.reserve([name], 0)) is not None:
        got.append((job.body, job.attempts))
        fifo.delete(job)
    assert got == [(b"c", 1), (b"a", 2)]
    assert fifo.kick(name, 5) == 1
    again = fifo.reserve([name], 5)
    assert again is not None and (again.id, again.body) == (ids[1], b"b")


def test_every_resent_copy_gets_a_deduplication_id_of_its_own(
    fifo: SqsBackend, name: str
) -> None:
    # SQS would silently drop a copy whose id it saw in the last 5 minutes, even deleted.
    job_id = fifo.put(name, b"x", 0, 0, 5)
    sends = _calls(fifo, "SendMessage")
    for _ in range(2):  # bury, kick, bury, kick within seconds
        job = fifo.reserve([name], 5)
        assert job is not None
        fifo.bury(job, None)
        assert sends[-1]["MessageDeduplicationId"] == resent_dedup_id(job_id, job.receipt)
        assert fifo.kick(name, 1) == 1
    dedups = [s["MessageDeduplicationId"] for s in sends]
    assert len(dedups) == 4 and len(set(dedups)) == 4 and job_id not in dedups
    assert all(len(d) <= 128 and d.startswith(job_id) for d in dedups)
    again = fifo.reserve([name], 5)
    assert again is not None and again.id == job_id and again.attempts == 3
