"""put_many: chunks of 10 and 1 MiB, retries of failed entries only."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from kue.backend import PutItem
from kue_sqs.backend import SqsBackend
from kue_sqs.errors import PutManyFailed


def _count_calls(backend: SqsBackend, operation: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    backend._client.meta.events.register(
        f"provide-client-params.sqs.{operation}", lambda params, **_: calls.append(params)
    )
    return calls


def _drain(backend: SqsBackend, name: str) -> dict[str, bytes]:
    seen = {}
    while (job := backend.reserve([name], 0)) is not None:
        seen[job.id] = job.body
        backend.delete(job)
    return seen


def test_25_items_go_in_3_batches_and_every_id_comes_back(backend: SqsBackend, name: str) -> None:
    calls = _count_calls(backend, "SendMessageBatch")
    items = [PutItem(f'{{"n": {i}}}'.encode()) for i in range(25)]
    ids = backend.put_many(name, items)
    assert len(calls) == 3
    assert [len(c["Entries"]) for c in calls] == [10, 10, 5]
    assert len(ids) == len(set(ids)) == 25
    assert _drain(backend, name) == {i: item.body for i, item in zip(ids, items, strict=True)}


def test_a_batch_never_carries_more_than_1_mib(backend: SqsBackend, name: str) -> None:
    calls = _count_calls(backend, "SendMessageBatch")
    items = [PutItem(bytes([65 + i]) * 400_000) for i in range(4)]
    ids = backend.put_many(name, items)
    assert [len(c["Entries"]) for c in calls] == [2, 2]
    assert sorted(_drain(backend, name).values()) == sorted(i.body for i in items)
    assert len(ids) == 4


class FlakyBatches:
    """Wraps send_message_batch: entries whose Id is in ``fail`` are not sent, reported failed."""

    def __init__(self, backend: SqsBackend, fail: dict[str, int], sender_fault: bool = False):
        self.real = backend._client.send_message_batch
        self.fail = fail  # entry Id -> how many more times it fails
        self.sender_fault = sender_fault
        self.sent_ids: list[list[str]] = []

    def __call__(self, **kwargs: Any) -> Any:
        entries = kwargs["Entries"]
        self.sent_ids.append([e["Id"] for e in entries])
        failing = [e for e in entries if self.fail.get(e["Id"], 0) > 0]
        for e in failing:
            self.fail[e["Id"]] -= 1
        passing = [e for e in entries if e not in failing]
        response: Any = (
            self.real(**{**kwargs, "Entries": passing}) if passing else {"Successful": []}
        )
        response["Failed"] = [
            {"Id": e["Id"], "SenderFault": self.sender_fault, "Code": "InternalError",
             "Message": "injected by the test"} for e in failing
        ]
        return response


def test_only_the_failed_entries_are_sent_again(
    backend: SqsBackend, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = FlakyBatches(backend, {"3": 1, "7": 2})
    monkeypatch.setattr(backend._client, "send_message_batch", flaky)
    items = [PutItem(f"job {i}".encode()) for i in range(10)]
    ids = backend.put_many(name, items)
    assert flaky.sent_ids == [[str(i) for i in range(10)], ["3", "7"], ["7"]]
    monkeypatch.undo()
    bodies = _drain(backend, name)
    assert Counter(bodies.values()) == Counter(i.body for i in items)  # each exactly once
    assert set(bodies) == set(ids)


def test_entries_that_keep_failing_raise_with_the_ids_of_the_others(
    backend: SqsBackend, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = FlakyBatches(backend, {"2": 99})
    monkeypatch.setattr(backend._client, "send_message_batch", flaky)
    with pytest.raises(PutManyFailed, match="1 of 10 jobs") as info:
        backend.put_many(name, [PutItem(f"job {i}".encode()) for i in range(10)])
    assert len(flaky.sent_ids) == 3  # the batch, then two retries of entry 2 alone
    assert info.value.ids[2] is None and all(info.value.ids[i] for i in range(10) if i != 2)
    assert list(info.value.failures) == [2] and "InternalError" in info.value.failures[2]
    monkeypatch.undo()
    assert set(_drain(backend, name)) == {i for i in info.value.ids if i}


def test_a_sender_fault_is_not_retried(
    backend: SqsBackend, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = FlakyBatches(backend, {"0": 99}, sender_fault=True)
    monkeypatch.setattr(backend._client, "send_message_batch", flaky)
    with pytest.raises(PutManyFailed):
        backend.put_many(name, [PutItem(b"a"), PutItem(b"b")])
    assert flaky.sent_ids == [["0", "1"]]
