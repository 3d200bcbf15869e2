"""moto's server with every SQS request atomic, as real SQS's are: kue's throwaway test server.

moto's SQS backend changes its message lists without a lock, while its server answers requests
on many threads. Under the load the contract suite makes (eight consumers at once) that loses
and duplicates work in ways real SQS never does:

- two DeleteMessage calls at once each rebuild the queue's message list from the same copy, so
  one of the two deleted messages comes back (in flight, then delivered again);
- two ReceiveMessage calls at once can both take the same message, and on a FIFO queue both
  can take a message of the same group, so two of one group are in flight at once.

This module runs moto's own server (``moto.server.main``, same arguments as ``moto_server``)
with each SQS backend operation under one lock. A long poll does not hold the lock while it
waits: it asks again when a message is sent, and at pauses growing from :data:`POLL` to
:data:`LONGEST_POLL`, until its WaitTimeSeconds are over, so one consumer's wait never stalls
another's request. It also
keeps moto's list of its own service packages, which moto's request router otherwise reads
from the disk for every request (a directory listing and a stat per package: about 0.5 ms of
each request's ~3 ms here). Nothing else of moto changes.

``python -m kue_sqs.moto_serial -H 127.0.0.1 -p PORT``; imported only in that process, never
by kue or the backend.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LONGEST_POLL", "POLL", "SERIALIZED", "keep_module_list", "main", "serialize_sqs"]

#: How soon a waiting long poll first asks the queue again (real SQS answers as soon as it
#: can); the pause then doubles up to :data:`LONGEST_POLL`.
POLL = 0.02
#: The longest pause between two looks of a waiting long poll. Each look takes the lock: with
#: sixteen idle workers polling every 20 ms, moto on a loaded machine spent its time on looks
#: and answered heartbeats too late (a 1 s visibility timeout lapsed under a running job).
LONGEST_POLL = 0.2
#: The SQS backend operations that read or change queues and messages, run one at a time.
SERIALIZED = (
    "create_queue", "get_queue_url", "list_queues", "delete_queue", "get_queue_attributes",
    "set_queue_attributes", "send_message", "send_message_batch", "delete_message",
    "delete_message_batch", "change_message_visibility", "change_message_visibility_batch",
    "purge_queue",
)

# Re-entrant: send_message_batch calls send_message, delete_message_batch delete_message.
_LOCK = threading.RLock()


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return run


def _polling(receive: Callable[..., Any]) -> Callable[..., Any]:
    """ReceiveMessage as repeated non-waiting receives under the lock, waiting outside it."""

    @functools.wraps(receive)
    def run(self: Any, queue_name: str, count: int, wait_seconds_timeout: int,
            visibility_timeout: int, message_attribute_names: list[str] | None = None) -> Any:
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        pause = POLL
        while True:
            with _LOCK:
                got = receive(self, queue_name, count, 0, visibility_timeout,
                              message_attribute_names)
            left = deadline - time.monotonic()
            if got or left <= 0:
                return got
            # moto notifies this condition when a message is sent: a waiting poll answers at
            # once then, and within LONGEST_POLL when a message becomes visible or a group
            # frees.
            arrived = self.get_queue(queue_name)._messages_lock
            with arrived:
                arrived.wait(timeout=min(pause, left))
            pause = min(pause * 2, LONGEST_POLL)

    return run


def serialize_sqs() -> None:
    """Patch moto's SQS backend class so each operation runs alone (idempotent)."""
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, "_kue_serialized", False):
        return
    for name in SERIALIZED:
        setattr(SQSBackend, name, _locked(getattr(SQSBackend, name)))
    SQSBackend.receive_message = _polling(SQSBackend.receive_message)  # type: ignore[method-assign]
    SQSBackend._kue_serialized = True  # type: ignore[attr-defined]


def keep_module_list() -> None:
    """Read moto's list of service packages once; the router asks for it on every request."""
    import moto.backends

    names = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: names


def main() -> None:
    """Serialize moto's SQS backend, then run moto's server with the command-line arguments."""
    serialize_sqs()
    keep_module_list()
    from moto.server import main as moto_main

    moto_main()


if __name__ == "__main__":
    main()
