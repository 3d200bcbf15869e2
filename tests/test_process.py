from __future__ import annotations

import os

from kue.process import current_pid


def test_current_pid_is_this_process_and_follows_a_fork() -> None:
    parent = current_pid()
    assert parent == os.getpid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        try:
            os.write(write, b"ok" if current_pid() == os.getpid() != parent else b"bad")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read() == b"ok"
    assert current_pid() == parent
