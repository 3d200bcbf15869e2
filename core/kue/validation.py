"""Checks on what users pass, made before anything reaches a backend.

Each error names the value and the limit it broke, so a caller can fix it without reading code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from kue.backend import MAX_PRIORITY, Capabilities, PutItem
from kue.errors import JobTooBig, Unsupported

__all__ = [
    "check_body",
    "check_count",
    "check_delay",
    "check_priority",
    "check_put",
    "check_put_items",
    "check_queue_name",
    "check_queues",
    "check_reserve_n",
    "check_timeout",
    "check_ttr",
    "check_unique",
]


def check_priority(priority: object) -> int:
    """Return ``priority`` if it is an int in 0..2**32-1, else raise TypeError or ValueError."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(
            f"priority must be an int from 0 (most urgent) to {MAX_PRIORITY}, "
            f"got {priority!r} of type {type(priority).__name__}"
        )
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(
            f"priority {priority} is out of range: 0 (most urgent) to {MAX_PRIORITY} (least)"
        )
    return priority


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{name} must be a number of seconds, got {value!r} of type {type(value).__name__}"
        )
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def check_delay(delay: object, caps: Capabilities, *, release: bool = False) -> float:
    """Return ``delay`` as seconds if 0 <= delay <= the backend's max_delay.

    :param release: the delay is a release's (``caps.release_delay``), not a put's
        (``caps.delay``).
    """
    seconds = _seconds("delay", delay)
    if seconds < 0:
        raise ValueError(f"delay {delay!r} is negative; use 0 for a job that is ready at once")
    if seconds > caps.max_delay:
        raise ValueError(
            f"delay {delay!r} s is over the {caps.name} backend's limit of {caps.max_delay:g} s"
        )
    if seconds > 0 and not (caps.release_delay if release else caps.delay):
        raise Unsupported(caps.name, "releasing with a delay" if release else "delayed jobs")
    return seconds


def retry_delay_within(seconds: float, caps: Capabilities) -> float:
    """A worker's retry backoff as the backend can honour it.

    At most ``max_delay``, and 0 on a backend that cannot delay a release (the job is then
    ready again at once).
    """
    return min(seconds, caps.max_delay) if caps.release_delay else 0.0


def check_ttr(ttr: object, caps: Capabilities) -> float:
    """Return ``ttr`` as seconds if min_ttr <= ttr <= max_ttr for the backend."""
    seconds = _seconds("ttr", ttr)
    if seconds < caps.min_ttr:
        raise ValueError(
            f"ttr {ttr!r} s is under the {caps.name} backend's minimum of {caps.min_ttr:g} s"
        )
    if seconds > caps.max_ttr:
        raise ValueError(
            f"ttr {ttr!r} s is over the {caps.name} backend's limit of {caps.max_ttr:g} s"
        )
    return seconds


def check_body(body: object, caps: Capabilities) -> bytes:
    """Return ``body`` if it is bytes within the backend's max_body, else raise."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"a raw job body must be bytes, got {type(body).__name__}")
    data = bytes(body)
    if len(data) > caps.max_body:
        raise JobTooBig(len(data), caps.max_body, caps.name)
    return data


def check_timeout(timeout: object) -> float:
    """Return ``timeout`` as seconds if it is a finite number >= 0 (for reserve)."""
    seconds = _seconds("timeout", timeout)
    if seconds < 0:
        raise ValueError(f"timeout {timeout!r} is negative; use 0 to return at once")
    return seconds


def check_count(n: object) -> int:
    """Return ``n`` if it is a positive int (for kick)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"count must be an int, got {n!r} of type {type(n).__name__}")
    if n < 1:
        raise ValueError(f"count {n} must be at least 1")
    return n


#: Longest queue name, in characters. SQS allows 80 for a whole queue name, of which kue's
#: longest suffix takes 12 (``-b4294967295``, a priority band's companion; ``-buried`` is 7) and
#: a FIFO backend's ``.fifo`` 5 more: 63 left, of which 48 for the name leaves 15 for the SQS
#: URL's ``prefix=``. beanstalkd (200 bytes) and Redis allow more.
MAX_QUEUE_NAME = 48

#: ASCII letters, digits, ``_`` and ``-``, not starting with ``-``: what beanstalkd tube names
#: (which also allow ``+/;.$()``), SQS queue names (no other punctuation) and Redis Cluster keys
#: (braces would move a key's hash tag, see docs/concepts.md) all accept.
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")

QUEUE_NAME_RULE = (
    f"1 to {MAX_QUEUE_NAME} ASCII letters, digits, '_' and '-', not starting with '-'"
)


def check_queue_name(name: object) -> str:
    """Return ``name`` if it is a portable queue name, else raise TypeError or ValueError.

    One rule on every backend (:data:`QUEUE_NAME_RULE`), so a queue that works on one works
    on all: a name that one backend would refuse or mangle (a brace on Redis Cluster, a dot on
    SQS, a ``+`` on SQS, a name SQS's 80 characters cannot hold) is refused before any I/O.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"a queue name must be a str, got {name!r} of type {type(name).__name__}"
        )
    if len(name) > MAX_QUEUE_NAME:
        raise ValueError(
            f"queue name {name[:60]!r}{'...' if len(name) > 60 else ''} is {len(name)} "
            f"characters, over the limit of {MAX_QUEUE_NAME}; a queue name is {QUEUE_NAME_RULE}"
        )
    if not _QUEUE_NAME.fullmatch(name):
        raise ValueError(f"queue name {name!r} is not valid: a queue name is {QUEUE_NAME_RULE}")
    return name


def check_queues(queues: object) -> list[str]:
    """Return ``queues`` as a list if it is a non-empty list or tuple of valid queue names."""
    if isinstance(queues, str) or not isinstance(queues, list | tuple):
        raise TypeError(
            f"queues must be a list of queue names, got {queues!r} of type "
            f"{type(queues).__name__}"
        )
    if not queues:
        raise ValueError("reserve_from needs at least one queue name, got an empty list")
    for name in queues:
        check_queue_name(name)
    return list(queues)


def check_put(
    body: object, priority: object, delay: object, ttr: object, caps: Capabilities
) -> tuple[bytes, int, float, float]:
    """Check every argument of a put; returns them normalised."""
    return (
        check_body(body, caps),
        check_priority(priority),
        check_delay(delay, caps),
        check_ttr(ttr, caps),
    )


def check_put_items(items: Sequence[PutItem], caps: Capabilities) -> list[PutItem]:
    """Check each item of a batch as :func:`check_put` does; returns them normalised.

    A batch's items usually share one priority, delay and ttr: each distinct combination
    (with its types, so ``True`` is not taken for ``1``) is checked once. An item whose fields
    come back as they were is kept as it is, not copied.
    """
    out = list(items)
    if not out:
        return out
    first = out[0]
    p, d, t = first.priority, first.delay, first.ttr
    max_body = caps.max_body
    # The usual batch: bytes bodies within the limit and the very same priority, delay and ttr
    # objects on every item (identity, so True is not taken for 1): one check of the three
    # covers them all. Anything else goes item by item, which raises the first bad item's error.
    for item in out:
        body = item.body
        if type(body) is not bytes or len(body) > max_body or item.priority is not p or \
                item.delay is not d or item.ttr is not t:
            return _check_each(out, caps)
    got = (check_priority(p), check_delay(d, caps), check_ttr(t, caps))
    if got[0] is p and got[1] is d and got[2] is t:
        return out
    return [PutItem(item.body, *got) for item in out]


def _check_each(items: list[PutItem], caps: Capabilities) -> list[PutItem]:
    """:func:`check_put_items` item by item, in order: the first bad item's error is raised."""
    seen: dict[tuple[object, ...], tuple[int, float, float]] = {}
    out: list[PutItem] = []
    p0: object = None
    d0: object = None
    t0: object = None
    got: tuple[int, float, float] | None = None
    max_body = caps.max_body
    for item in items:
        body = item.body
        if type(body) is not bytes or len(body) > max_body:
            body = check_body(body, caps)
        p, d, t = item.priority, item.delay, item.ttr
        # The same objects as the last item's: checked already.
        if got is None or p is not p0 or d is not d0 or t is not t0:
            key = (type(p), p, type(d), d, type(t), t)
            got = seen.get(key)
            if got is None:
                got = seen[key] = (check_priority(p), check_delay(d, caps), check_ttr(t, caps))
            p0, d0, t0 = p, d, t
        if body is item.body and got[0] is p and got[1] is d and got[2] is t:
            out.append(item)
        else:
            out.append(PutItem(body, *got))
    return out


#: Longest unique key, in characters: short enough for every store's key (Redis, SQLite).
MAX_UNIQUE_KEY = 250


def check_unique(key: object, ttl: object) -> tuple[str, float]:
    """Return ``(key, ttl)`` if key is a non-empty str of at most 250 characters and ttl > 0 s."""
    if not isinstance(key, str):
        raise TypeError(f"unique_key must be a str, got {key!r} of type {type(key).__name__}")
    if not key or len(key) > MAX_UNIQUE_KEY:
        raise ValueError(
            f"unique_key must be 1 to {MAX_UNIQUE_KEY} characters, got {len(key)}: {key[:40]!r}"
        )
    seconds = _seconds("unique_for", ttl)
    if seconds <= 0:
        raise ValueError(f"unique_for must be more than 0 s, got {ttl!r}")
    return key, seconds


def check_reserve_n(n: int, capabilities: Capabilities, *, zero: bool = False) -> None:
    """Refuse a batch size outside 1 (0 with ``zero``) to ``capabilities.max_reserve``.

    Raises ValueError naming the value and the limit, before anything is sent.
    """
    low = 0 if zero else 1
    if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= capabilities.max_reserve:
        raise ValueError(f"n={n!r}: a batch reserve takes {low} to "
                         f"{capabilities.max_reserve} jobs on {capabilities.name}")
