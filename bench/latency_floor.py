"""The raw client's own put -> receive latency on the same server: the floor kue stands on.

A thread blocks in the raw client's receive (redis-py BLPOP, greenstalk reserve, boto3
ReceiveMessage with WaitTimeSeconds=20) and notes when each message arrives; the producer
sleeps 10-50 ms, reads the time, and sends one message. Latency = arrival - before the send,
as kue's latency column counts it, without kue, a worker process or a job around it.
"""

from __future__ import annotations

import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import kue

#: Backends whose raw client this measures.
FLOOR_BACKENDS = ("redis", "beanstalk", "sqs")

Sender = Callable[[bytes], None]
Receiver = Callable[[], bytes | None]


def _redis(url: str) -> tuple[Sender, Receiver, Callable[[], None]]:
    import redis

    key = f"floor-{uuid.uuid4().hex[:8]}"
    producer, consumer = redis.Redis.from_url(url), redis.Redis.from_url(url)

    def receive() -> bytes | None:
        got = consumer.blpop([key], timeout=1)
        return None if got is None else bytes(got[1])  # type: ignore[arg-type]

    def close() -> None:
        producer.close()
        consumer.close()

    def send(body: bytes) -> None:
        producer.lpush(key, body)

    return send, receive, close


def _beanstalk(url: str) -> tuple[Sender, Receiver, Callable[[], None]]:
    import greenstalk

    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 11300)
    tube = f"floor-{uuid.uuid4().hex[:8]}"
    producer = greenstalk.Client(address, use=tube)
    consumer = greenstalk.Client(address, watch=tube)

    def receive() -> bytes | None:
        try:
            job = consumer.reserve(timeout=1)
        except greenstalk.TimedOutError:
            return None
        consumer.delete(job)
        return str(job.body).encode()

    def close() -> None:
        producer.close()
        consumer.close()

    def send(body: bytes) -> None:
        producer.put(body.decode())

    return send, receive, close


def _sqs(url: str) -> tuple[Sender, Receiver, Callable[[], None]]:
    backend: Any = kue.connect(url, queue="unused").backend
    client = backend._client
    queue_url = client.create_queue(QueueName=f"kue-floor-{uuid.uuid4().hex[:8]}")["QueueUrl"]

    def receive() -> bytes | None:
        msgs = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1,
                                      WaitTimeSeconds=1).get("Messages", [])
        if not msgs:
            return None
        client.delete_message(QueueUrl=queue_url, ReceiptHandle=msgs[0]["ReceiptHandle"])
        return str(msgs[0]["Body"]).encode()

    def send(body: bytes) -> None:
        client.send_message(QueueUrl=queue_url, MessageBody=body.decode())

    return send, receive, backend.close


_CLIENTS = {"redis": _redis, "beanstalk": _beanstalk, "sqs": _sqs}


def measure_floor(name: str, url: str, samples: int) -> list[float]:
    """Raw put -> receive latencies in seconds on the server at ``url``."""
    send, receive, close = _CLIENTS[name](url)
    arrivals: queue.Queue[tuple[bytes, float]] = queue.Queue()
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            body = receive()
            if body is not None:
                arrivals.put((body, time.time()))

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    out = []
    try:
        for i in range(samples + 1):  # the first one warms the connections up
            time.sleep(random.uniform(0.010, 0.050))
            token = f"t{i}".encode()
            sent_at = time.time()
            send(token)
            body, arrived = arrivals.get(timeout=30)
            if body != token:
                raise RuntimeError(f"raw {name} floor: got {body!r}, expected {token!r}")
            if i:
                out.append(arrived - sent_at)
    finally:
        stop.set()
        thread.join(timeout=30)
        close()
    return out
