"""What goes on the wire: tube names, whole seconds, and commands whose replies are read later.

beanstalkd answers commands in the order they arrive, so several commands can be written at once
and their replies read afterwards (a pipeline). That is how ``put_many`` costs one round trip,
and how a ``use`` or ``watch`` rides along with the command that needs it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = [
    "MAX_TUBE_NAME",
    "MAX_UINT32",
    "Command",
    "Reply",
    "check_tube",
    "ignore_command",
    "put_command",
    "simple",
    "use_command",
    "watch_command",
    "whole_seconds",
]

#: beanstalkd's limit on a tube name, in bytes.
MAX_TUBE_NAME = 200
#: Largest priority, delay, ttr and kick bound the protocol carries.
MAX_UINT32 = 2**32 - 1

# protocol.txt: letters, digits, - + / ; . $ _ ( ), not starting with a hyphen.
_TUBE_NAME = re.compile(r"[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]*")


def check_tube(name: object) -> str:
    """Return ``name`` if beanstalkd accepts it as a tube name, else raise ValueError.

    Checked before sending: beanstalkd answers a bad name with BAD_FORMAT, which would cost
    the connection.
    """
    if not isinstance(name, str):
        raise TypeError(f"a queue name must be a str, got {name!r} of type {type(name).__name__}")
    if not _TUBE_NAME.fullmatch(name):
        raise ValueError(
            f"queue name {name!r} is not a valid beanstalkd tube name: use letters, digits and "
            "- + / ; . $ _ ( ), not starting with a hyphen"
        )
    if len(name) > MAX_TUBE_NAME:
        raise ValueError(
            f"queue name {name[:40]!r}... is {len(name)} bytes, over beanstalkd's limit of "
            f"{MAX_TUBE_NAME} bytes for a tube name"
        )
    return name


def whole_seconds(seconds: float) -> int:
    """Seconds rounded up to the whole seconds beanstalkd counts in (0.3 s becomes 1 s)."""
    return min(math.ceil(seconds), MAX_UINT32)


@dataclass(frozen=True)
class Command:
    """One command of a pipeline and the reply that means success.

    :param data: the bytes to send, ending with CRLF (and the body with its CRLF, for put).
    :param expected: the reply word of success, such as ``b"INSERTED"``.
    :param has_body: a successful reply is followed by a body of the size its last value gives.
    """

    data: bytes
    expected: bytes
    has_body: bool = False


@dataclass(frozen=True)
class Reply:
    """A reply read off the wire: its word, its values and any body."""

    word: bytes
    values: list[bytes] = field(default_factory=list)
    body: bytes = b""


def put_command(body: bytes, priority: int, delay: int, ttr: int) -> Command:
    """The ``put`` command for one job (values already validated and in whole seconds)."""
    head = b"put %d %d %d %d\r\n" % (priority, delay, ttr, len(body))
    return Command(b"".join((head, body, b"\r\n")), b"INSERTED")


def simple(line: bytes, expected: bytes, *, has_body: bool = False) -> Command:
    """A command of one line (no job body sent)."""
    return Command(line + b"\r\n", expected, has_body)


def use_command(tube: str) -> Command:
    """Make ``tube`` the one puts, peeks and kicks of this connection act on."""
    return simple(b"use " + tube.encode("ascii"), b"USING")


def watch_command(tube: str) -> Command:
    """Add ``tube`` to the tubes this connection reserves from."""
    return simple(b"watch " + tube.encode("ascii"), b"WATCHING")


def ignore_command(tube: str) -> Command:
    """Remove ``tube`` from the tubes this connection reserves from."""
    return simple(b"ignore " + tube.encode("ascii"), b"WATCHING")
