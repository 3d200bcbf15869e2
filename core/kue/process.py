"""The id of the running process without a system call, for backends that must notice ``fork()``.

A connection inherited through ``fork()`` shares its socket with the parent, so a backend
asks, before every command, whether the connection was opened in this process.
``os.getpid()`` is a system call each time; this id is kept up to date by a fork hook.
"""

from __future__ import annotations

import os

__all__ = ["current_pid"]

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """The id of this process, as ``os.getpid()`` would say, without a system call."""
    return _pid
