"""How a kue job travels as an SQS message: the body as text, kue's fields in one attribute.

Body. SQS message bodies must be text of the characters #x9, #xA, #xD, #x20-#xD7FF,
#xE000-#xFFFD and #x10000-#x10FFFF, at least one character long. A body that is UTF-8 of only
those characters travels as it is; any other bytes (binary, NUL, lone surrogates) travel as
base64 and the attribute says so; an empty body travels as ``-`` flagged empty. So every byte
string round-trips.

Attribute. One String message attribute ``kue`` holds ``key=value`` pairs separated by ``;``:
``p`` priority, ``t`` ttr (whole seconds), ``a`` attempts before this message was sent (kept
across bury, kick and re-sent releases), ``d`` due time (epoch seconds, only for a delay longer
than SQS's native 900 s), ``i`` the job id (on a re-sent message, and on every message of a FIFO
queue, where kue chooses the id; otherwise the first message's id is its SQS MessageId), ``e``
the body encoding (``b`` base64, ``z`` empty). Its value is never longer than
:data:`MAX_META_VALUE` characters.

Size. SQS counts the body plus every attribute's name, type and value against the queue's
MaximumMessageSize (1 MiB at most). :data:`META_ROOM` is what the attribute can take, so the
body text may use the rest; a body that needs base64 grows by 4/3, so the largest body that
always fits, whatever its bytes, is :func:`max_body_for` of the message limit:
``(1,048,576 - 265) // 4 * 3 = 786,231`` bytes for a 1 MiB queue.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from kue.spi import DEFAULT_PRIORITY, DEFAULT_TTR

__all__ = [
    "ATTRIBUTE",
    "ATTRIBUTE_TYPE",
    "MAX_BODY",
    "MAX_META_VALUE",
    "META_ROOM",
    "SQS_MAX_MESSAGE",
    "Meta",
    "body_to_text",
    "decode_meta",
    "encode_meta",
    "max_body_for",
    "message_size",
    "text_to_body",
]

#: The largest message SQS takes (body + attributes), in bytes.
SQS_MAX_MESSAGE = 1_048_576
#: The message attribute that carries kue's fields, and its SQS data type.
ATTRIBUTE = "kue"
ATTRIBUTE_TYPE = "String"
#: The longest value of the ``kue`` attribute; see the module docs.
MAX_META_VALUE = 256
#: Bytes the attribute may take of a message: name + data type + value.
META_ROOM = len(ATTRIBUTE) + len(ATTRIBUTE_TYPE) + MAX_META_VALUE

_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_EMPTY_TEXT = "-"


def max_body_for(message_limit: int) -> int:
    """The largest body (any bytes) that fits a queue whose MaximumMessageSize is this."""
    return max(0, (message_limit - META_ROOM) // 4 * 3)


#: The largest body kue accepts for SQS: 786,231 bytes (see the module docs).
MAX_BODY = max_body_for(SQS_MAX_MESSAGE)


@dataclass(frozen=True)
class Meta:
    """kue's fields of one message."""

    priority: int = DEFAULT_PRIORITY
    ttr: int = int(DEFAULT_TTR)
    base: int = 0
    due: float | None = None
    job_id: str | None = None
    encoding: str = ""


def encode_meta(meta: Meta) -> str:
    """The attribute value for ``meta``."""
    parts = [f"p={meta.priority}", f"t={meta.ttr}"]
    if meta.base:
        parts.append(f"a={meta.base}")
    if meta.due is not None:
        parts.append(f"d={meta.due:.3f}")
    if meta.job_id is not None:
        parts.append(f"i={meta.job_id}")
    if meta.encoding:
        parts.append(f"e={meta.encoding}")
    value = ";".join(parts)
    if len(value) > MAX_META_VALUE:
        raise ValueError(
            f"kue's SQS attribute would be {len(value)} characters, over {MAX_META_VALUE}; "
            f"job id {meta.job_id!r} is too long"
        )
    return value


def decode_meta(value: str | None) -> Meta:
    """The fields of an attribute value; a message without one (sent by others) gets defaults."""
    if not value:
        return Meta()
    fields = dict(part.partition("=")[::2] for part in value.split(";") if part)
    try:
        return Meta(
            priority=int(fields.get("p", DEFAULT_PRIORITY)),
            ttr=int(fields.get("t", int(DEFAULT_TTR))),
            base=int(fields.get("a", 0)),
            due=float(fields["d"]) if "d" in fields else None,
            job_id=fields.get("i") or None,
            encoding=fields.get("e", ""),
        )
    except ValueError as exc:
        raise ValueError(f"malformed kue attribute on an SQS message: {value!r}") from exc


def body_to_text(body: bytes) -> tuple[str, str]:
    """``(text, encoding)``: the body as SQS-safe text and the flag that says how."""
    if not body:
        return _EMPTY_TEXT, "z"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and _NOT_SQS_TEXT.search(text) is None:
        return text, ""
    return base64.b64encode(body).decode("ascii"), "b"


def text_to_body(text: str, encoding: str) -> bytes:
    """The bytes that were put, from a message's body text and encoding flag."""
    if encoding == "z":
        return b""
    if encoding == "b":
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"an SQS message flagged base64 has a bad body: {exc}") from exc
    return text.encode("utf-8")


def message_size(text: str, meta_value: str) -> int:
    """Bytes SQS counts for a message of this body text and ``kue`` attribute value."""
    return len(text.encode("utf-8")) + len(ATTRIBUTE) + len(ATTRIBUTE_TYPE) + len(meta_value)
