"""The Dramatiq side of the peer comparison: a RedisBroker, the no-op actor, and a worker.

``python -c "import peer_dramatiq; peer_dramatiq.serve()"`` runs one process with 8 worker
threads (Dramatiq's default) until SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import dramatiq
from bench_jobs import bump
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"])  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench")
def incr() -> None:
    """One INCR on the benchmark's counter key."""
    bump()


def serve(threads: int = 8) -> None:
    """Run a Dramatiq worker in this process until SIGTERM or SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker = dramatiq.Worker(broker, worker_threads=threads)
    worker.start()
    stop.wait()
    worker.stop()
    worker.join()
