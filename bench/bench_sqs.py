"""kue's SQS backend against raw boto3 on a throwaway moto_server (loopback only).

    uv run python bench/bench_sqs.py [--jobs 200] [--runs 3]

Prints put, put_many (batches of 10) and reserve+delete rates in jobs per second for kue and
for the same calls made with boto3 directly, on ~110-byte JSON bodies: the median of the runs,
and kue's rate as a fraction of boto3's. moto is slow and slows down as queues grow, so the
counts are small; the numbers compare the two clients, not SQS itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import kue
from kue_sqs.server import moto_server

BODY = json.dumps(
    {"job": "emails.send", "args": ["someone@example.com", "Your weekly digest"],
     "kwargs": {"template": "digest-v2"}, "attempt": 1},
    separators=(",", ":"),
).encode()


def _rate(n: int, fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def _kue_run(url: str, n: int) -> dict[str, float]:
    queue = kue.connect(url, queue=f"bench-{uuid.uuid4().hex[:8]}")
    queue.put(b"warm up")  # creates the queue and caches its URL outside the timing
    job = queue.reserve(timeout=1)
    assert job is not None
    job.delete()

    def put() -> None:
        for _ in range(n):
            queue.put(BODY)

    def put_many() -> None:
        for start in range(0, n, 10):
            queue.put_many([kue.PutItem(BODY) for _ in range(min(10, n - start))])

    def reserve_delete() -> None:
        for _ in range(2 * n):
            job = queue.reserve(timeout=0)
            assert job is not None
            job.delete()

    rates = {"put": _rate(n, put), "put_many": _rate(n, put_many),
             "reserve+delete": _rate(2 * n, reserve_delete)}
    queue.close()
    return rates


def _boto_run(url: str, n: int) -> dict[str, float]:
    backend: Any = kue.connect(url, queue="unused").backend
    client = backend._client  # the same configured boto3 client, used raw
    queue_url = client.create_queue(QueueName=f"kue-raw-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    text = BODY.decode()

    def put() -> None:
        for _ in range(n):
            client.send_message(QueueUrl=queue_url, MessageBody=text)

    def put_many() -> None:
        for start in range(0, n, 10):
            entries = [{"Id": str(i), "MessageBody": text} for i in range(min(10, n - start))]
            client.send_message_batch(QueueUrl=queue_url, Entries=entries)

    def reserve_delete() -> None:
        for _ in range(2 * n):
            msgs = client.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=0,
                VisibilityTimeout=60, MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )["Messages"]
            client.delete_message(QueueUrl=queue_url, ReceiptHandle=msgs[0]["ReceiptHandle"])

    rates = {"put": _rate(n, put), "put_many": _rate(n, put_many),
             "reserve+delete": _rate(2 * n, reserve_delete)}
    backend.close()
    return rates


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs per operation and run")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is shown")
    args = parser.parse_args()
    with moto_server("local") as url:
        results: dict[str, dict[str, list[float]]] = {"kue": {}, "boto3": {}}
        for _ in range(args.runs):
            for name, run in (("kue", _kue_run), ("boto3", _boto_run)):
                for op, rate in run(url, args.jobs).items():
                    results[name].setdefault(op, []).append(rate)
    print(f"SQS on moto_server, {len(BODY)}-byte JSON bodies, {args.jobs} jobs per operation "
          f"(reserve+delete: {2 * args.jobs}), median of {args.runs} runs, jobs/s")
    print(f"{'operation':<16}{'kue':>10}{'boto3':>10}{'kue/boto3':>11}")
    for op in ("put", "put_many", "reserve+delete"):
        k = statistics.median(results["kue"][op])
        b = statistics.median(results["boto3"][op])
        print(f"{op:<16}{k:>10.0f}{b:>10.0f}{k / b:>11.2f}")


if __name__ == "__main__":
    main()
