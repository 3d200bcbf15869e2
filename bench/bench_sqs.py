"""kue's SQS backend against raw boto3 on a throwaway moto_server (loopback only).

Run: ``python bench/bench_sqs.py [--runs R] [--quick]``.

moto is slow and slows down as queues grow, so the counts are small; the numbers compare the
two clients on the same server, not SQS itself. Batches are of 10, SQS's limit. The worker
runs with prefetch off (one ReceiveMessage and one DeleteMessage per job) and on (one
ReceiveMessage of up to 10 messages and one DeleteMessageBatch per batch); both rows are
measured against boto3's one-message receive + delete loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from harness import Bench
from ops import Spec, measure
from servers import backend_url

import kue

BATCH = 10


class RawBoto:
    """boto3's SQS client (kue's own configured one, used raw) on a queue of its own."""

    label = "boto3"

    def __init__(self, url: str) -> None:
        backend: Any = kue.connect(url, queue="unused").backend
        self.backend = backend
        self.client = backend._client
        name = f"kue-raw-{uuid.uuid4().hex[:8]}"
        self.queue_url = self.client.create_queue(QueueName=name)["QueueUrl"]

    def put(self, items: Sequence[bytes]) -> None:
        """One SendMessage per job."""
        for b in items:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=b.decode())

    def put_many(self, items: Sequence[bytes], batch: int) -> None:
        """SendMessageBatch, ``batch`` entries each."""
        for start in range(0, len(items), batch):
            entries = [{"Id": str(i), "MessageBody": b.decode()}
                       for i, b in enumerate(items[start:start + batch])]
            self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)

    def drain(self, n: int) -> None:
        """ReceiveMessage (one message, no wait) then DeleteMessage, per job."""
        for _ in range(n):
            msgs = self.client.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=0,
                VisibilityTimeout=60, MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )["Messages"]
            self.client.delete_message(QueueUrl=self.queue_url,
                                       ReceiptHandle=msgs[0]["ReceiptHandle"])

    def close(self) -> None:
        """Close kue's backend whose client this borrowed."""
        self.backend.close()


def run(bench: Bench) -> None:
    """The SQS table."""
    with backend_url("sqs") as url:
        raw = RawBoto(url)
        spec = Spec("sqs (moto_server)", url, raw, ops=bench.count(150), batch=BATCH,
                    workers=bench.count(150), fill_batch=BATCH, prefetch=(1, None))
        res = measure(bench, spec)
        raw.close()
    on, off = res.kue["worker, 1 process"], res.kue["worker, 1 process, prefetch off"]
    r = res.raw["reserve+delete"]
    bench.target("sqs worker 1 process (prefetch on) >= 5x boto3 one-message receive+delete",
                 f"{on / r:.2f}x ({on:,.0f} vs {r:,.0f}; prefetch off {off / r:.2f}x)",
                 on / r >= 5)
    bench.results["sqs.worker"] = on


if __name__ == "__main__":
    from harness import main

    main([run])
