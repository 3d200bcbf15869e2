"""``reserve_many`` and ``settle_many`` on SQS: its batch calls, and give-backs that count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kue.backend import Ack, PutItem
from kue_sqs.backend import SqsBackend

OpenBackend = Callable[..., SqsBackend]


def _calls(backend: SqsBackend, *operations: str) -> list[str]:
    """The names of the SQS calls ``backend`` makes from now on, of ``operations``."""
    seen: list[str] = []
    for operation in operations:
        backend._client.meta.events.register(
            f"provide-client-params.sqs.{operation}",
            lambda params, _op=operation, **_: seen.append(_op),
        )
    return seen


def test_a_drain_in_batches_costs_one_delete_batch_and_one_receive_per_batch(
    backend: SqsBackend, name: str
) -> None:
    ids = backend.put_many(name, [PutItem(b"%d" % i) for i in range(20)])
    calls = _calls(backend, "ReceiveMessage", "DeleteMessageBatch", "DeleteMessage",
                   "ChangeMessageVisibility")
    got = backend.reserve_many([name], 10, 5)
    batch = got
    while batch:
        reply = backend.settle_many([Ack(j) for j in batch], (), [name], 10, 0)
        assert reply.lost == []
        batch = reply.reserved
        got += batch
    assert sorted(j.id for j in got) == sorted(ids)
    assert all(j.attempts == 1 for j in got)
    # moto hands out up to 10 per receive; every ack went in a DeleteMessageBatch.
    assert "DeleteMessage" not in calls and "ChangeMessageVisibility" not in calls
    assert calls.count("DeleteMessageBatch") == calls.count("ReceiveMessage") - 1
    assert calls.count("ReceiveMessage") <= 4
    assert backend.stats(name).total == 0


def test_a_give_back_of_another_process_reservation_counts_as_an_attempt(
    moto_url: str, name: str, open_backend: OpenBackend
) -> None:
    """Its receipt is not this process's to judge: made visible again, the receive counted."""
    holder, other = open_backend(moto_url), open_backend(moto_url)
    holder.put(name, b"x", 0, 0, 60)
    (job,) = holder.reserve_many([name], 10, 5)
    other.settle_many((), [job], [name], 0, 0)
    again = holder.reserve([name], 5)
    assert again is not None and (again.id, again.attempts) == (job.id, 2)
    holder.settle_many((), [again], [name], 0, 0)  # its own: re-sent, not counted
    last = other.reserve([name], 5)
    assert last is not None and (last.id, last.attempts) == (job.id, 2)
    other.delete(last)
    assert holder.stats(name).total == 0


def test_an_ack_with_record_fields_is_refused_before_anything_is_sent(
    backend: SqsBackend, name: str
) -> None:
    backend.put(name, b"x", 0, 0, 60)
    (job,) = backend.reserve_many([name], 1, 5)
    calls: list[Any] = _calls(backend, "DeleteMessageBatch", "ReceiveMessage")
    with pytest.raises(ValueError, match="keeps no records"):
        backend.settle_many([Ack(job, {"state": "done"}, 60)], (), [name], 1, 0)
    assert calls == []
    backend.delete(job)
