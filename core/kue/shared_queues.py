"""One open Queue per configured URL and queue name in each process, for ``fn.push()``."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import NamedTuple

from kue.config import load_settings
from kue.queue import Queue, connect

__all__ = ["close_all", "shared_queue"]

log = logging.getLogger(__name__)

#: The files :func:`kue.config.load_settings` reads from the working directory.
_CONFIG_FILES = ("kue.toml", "pyproject.toml")
#: Seconds between looks at those files for changes: two stats on every push would cost about
#: 20 µs, a quarter of a SQLite push.
FILE_RECHECK = 1.0

# (url, options key, queue name) -> Queue; written under _lock, read without it.
_queues: dict[tuple[str, str, str], Queue] = {}
_lock = threading.Lock()
# What a forked child inherited from its parent: kept referenced, never closed or collected
# (the connections are the parent's; finalizers could shut down its sockets or files).
_inherited: list[dict[tuple[str, str, str], Queue]] = []


class _Resolved(NamedTuple):
    inputs: tuple[str | None, str | None, str]  # KUE_URL, KUE_BACKEND, working directory
    files: tuple[tuple[int, int, int, int] | None, ...]  # stamps of _CONFIG_FILES
    checked: float  # time.monotonic() of the last look at the files
    value: tuple[str, str]  # the URL and a key of the backend options


_resolved: _Resolved | None = None


def _stamp(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _configured() -> tuple[str, str]:
    """The configured URL and a key of its backend options, as ``kue.connect()`` resolves them.

    Resolving reads and parses kue.toml or pyproject.toml (about 0.3 ms on a large
    pyproject), so the result is kept while its inputs stay the same: ``KUE_URL`` and
    ``KUE_BACKEND`` and the working directory, compared on every call, and the two files
    (inode, size, mtime, ctime), looked at again once :data:`FILE_RECHECK` seconds passed.
    """
    global _resolved
    env = os.environ
    inputs = (env.get("KUE_URL"), env.get("KUE_BACKEND"), os.getcwd())
    now = time.monotonic()
    resolved = _resolved
    if resolved is not None and resolved.inputs == inputs:
        if now - resolved.checked < FILE_RECHECK:
            return resolved.value
        files = tuple(_stamp(os.path.join(inputs[2], name)) for name in _CONFIG_FILES)
        if files == resolved.files:
            _resolved = resolved._replace(checked=now)
            return resolved.value
    else:
        files = tuple(_stamp(os.path.join(inputs[2], name)) for name in _CONFIG_FILES)
    settings = load_settings({"url": None})
    value = (settings.url, repr(settings.options))
    _resolved = _Resolved(inputs, files, now, value)
    return value


def shared_queue(name: str) -> Queue:
    """The open queue ``name`` of this process on the configured backend, opened on first use.

    One Queue per (URL, backend options, queue name), shared by every thread; a forked child
    opens its own, and :func:`close_all` closes them at interpreter exit.
    """
    url, options = _configured()
    key = (url, options, name)
    queue = _queues.get(key)
    if queue is not None:
        return queue
    with _lock:
        queue = _queues.get(key)
        if queue is None:
            queue = _queues[key] = connect(url, queue=name)
    return queue


def close_all() -> None:
    """Close every queue this process opened here (it runs at interpreter exit)."""
    with _lock:
        queues = list(_queues.values())
        _queues.clear()
    for queue in queues:
        try:
            queue.close()
        except Exception:
            log.warning("closing %r failed", queue, exc_info=True)


def _after_fork_in_child() -> None:
    global _queues, _lock
    _inherited.append(_queues)  # the parent's: never closed here
    _queues = {}
    _lock = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(close_all)
