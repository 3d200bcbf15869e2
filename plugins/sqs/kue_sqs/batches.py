"""The acks and give-backs of a batch (``BatchBackend.settle_many``) in SQS's batch calls.

Acks are DeleteMessageBatch calls, one per SQS queue and 10 messages. A give-back must leave
the job ready at once with its attempt not counted, and SQS counts every receive of a message
(ApproximateReceiveCount), so a message made visible again would count it: the job is sent again
with its attempts less one (SendMessageBatch), then the received message is deleted
(DeleteMessageBatch). Sending first keeps the job should the delete not happen. A receipt this
process does not know (another process's reservation) cannot be told held or stale here, so its
message is made visible again instead (ChangeMessageVisibilityBatch to 0): SQS judges the
receipt, and the give-back counts as an attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from kue.spi import Ack, Reservation, ReservationLost
from kue_sqs.client import guarded
from kue_sqs.errors import refused_receipt
from kue_sqs.leases import Leases

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import (
        BatchResultErrorEntryTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

__all__ = ["SQS_BATCH", "Batches"]

#: The most entries one SQS batch call takes.
SQS_BATCH = 10

T = TypeVar("T")


def _tens(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), SQS_BATCH):
        yield items[start:start + SQS_BATCH]


def _failed(failed: Sequence[BatchResultErrorEntryTypeDef]
            ) -> dict[int, BatchResultErrorEntryTypeDef]:
    """The failed entries of a batch call's response, by the index their Id carries."""
    return {int(entry["Id"]): entry for entry in failed}


class Batches:
    """Batched deletes and give-backs of one SQS backend.

    :param client: the backend's boto3 client.
    :param url: the backend's URL, for error messages.
    :param leases: the backend's own reservations, to refuse stale receipts.
    :param where: the SQS queue URL of a held job's message (ReservationLost if not held).
    :param copy: the SQS queue URL and SendMessageBatch entry (with the Id given) of a copy of
        a job given back.
    """

    def __init__(
        self, client: SQSClient, url: str, leases: Leases,
        where: Callable[[Reservation], str],
        copy: Callable[[Reservation, int], tuple[str, SendMessageBatchRequestEntryTypeDef]],
    ) -> None:
        self._client = client
        self._url = url
        self._leases = leases
        self._where = where
        self._copy = copy

    def delete(self, acks: Sequence[Ack]) -> list[Reservation]:
        """Delete the messages of ``acks``; returns the jobs whose reservation was not held."""
        lost: list[Reservation] = []
        groups: dict[str, list[Reservation]] = {}
        seen: set[str] = set()
        for ack in acks:
            job = ack.job
            if job.receipt in seen:  # acked twice in one batch: the second is stale
                lost.append(job)
                continue
            try:
                url = self._where(job)
            except ReservationLost:
                lost.append(job)
                continue
            seen.add(job.receipt)
            groups.setdefault(url, []).append(job)
        for url, jobs in groups.items():
            for chunk in _tens(jobs):
                lost += self._delete_chunk(url, chunk)
        return lost

    def _delete_chunk(self, url: str, jobs: Sequence[Reservation]) -> list[Reservation]:
        with guarded(self._url, "DeleteMessageBatch"):
            response = self._client.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": job.receipt} for i, job in enumerate(jobs)])
        failed = _failed(response.get("Failed", []))
        lost: list[Reservation] = []
        for i, job in enumerate(jobs):
            entry = failed.get(i)
            if entry is not None and not refused_receipt(entry.get("Code", ""),
                                                         entry.get("Message", "")):
                # Not the receipt's fault (SQS had a problem): once more on its own, which
                # raises if SQS still cannot.
                with guarded(self._url, "DeleteMessage"):
                    self._client.delete_message(QueueUrl=url, ReceiptHandle=job.receipt)
                entry = None
            self._leases.finish(job.receipt)
            if entry is not None:
                lost.append(job)
        return lost

    def give_back(self, jobs: Sequence[Reservation]) -> None:
        """Make ``jobs`` ready again, unstarted; a job no longer held is skipped."""
        known: list[Reservation] = []
        unknown: dict[str, list[Reservation]] = {}
        for job in jobs:
            try:
                lease = self._leases.check(job)
            except ReservationLost:
                continue
            if lease is None:
                unknown.setdefault(self._where(job), []).append(job)
            else:
                known.append(job)
        for chunk in _tens(known):
            self._resend_chunk(chunk)
        for url, held in unknown.items():
            for part in _tens(held):
                self._visible_again(url, part)

    def _resend_chunk(self, jobs: Sequence[Reservation]) -> None:
        """Send copies of ``jobs`` (attempts less one), then delete what was received."""
        copies: dict[str, list[tuple[int, SendMessageBatchRequestEntryTypeDef]]] = {}
        for i, job in enumerate(jobs):
            dest, entry = self._copy(job, i)
            copies.setdefault(dest, []).append((i, entry))
        unsent: list[int] = []
        for dest, entries in copies.items():
            with guarded(self._url, "SendMessageBatch"):
                response = self._client.send_message_batch(
                    QueueUrl=dest, Entries=[entry for _, entry in entries])
            unsent += _failed(response.get("Failed", []))
        by_url: dict[str, list[Reservation]] = {}
        for i, job in enumerate(jobs):
            try:
                url = self._where(job)
            except ReservationLost:
                continue
            if i in unsent:  # not copied: visible again instead, the give-back counted
                self._visible_again(url, [job])
                continue
            by_url.setdefault(url, []).append(job)
        for url, sent in by_url.items():
            with guarded(self._url, "DeleteMessageBatch"):
                # A receipt refused here ran out meanwhile: the copy stands in for the job.
                self._client.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": job.receipt} for i, job in enumerate(sent)])
            for job in sent:
                self._leases.finish(job.receipt)

    def _visible_again(self, url: str, jobs: Sequence[Reservation]) -> None:
        """ChangeMessageVisibilityBatch to 0; a refused receipt is a job no longer held."""
        with guarded(self._url, "ChangeMessageVisibilityBatch"):
            self._client.change_message_visibility_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": job.receipt, "VisibilityTimeout": 0}
                for i, job in enumerate(jobs)])
        for job in jobs:
            self._leases.finish(job.receipt)
