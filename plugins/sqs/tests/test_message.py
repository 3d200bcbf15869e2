import os

import pytest

from kue_sqs.message import (
    MAX_BODY,
    META_ROOM,
    SQS_MAX_MESSAGE,
    Meta,
    body_to_text,
    decode_meta,
    encode_meta,
    max_body_for,
    message_size,
    text_to_body,
)


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (b"plain text {}", ""),
        ("ünïcødé ✓ \U0001f600".encode(), ""),
        (b"nul \x00 inside", "b"),
        (b"\xff\xfe not utf-8", "b"),
        ("\ufffe".encode(), "b"),  # valid UTF-8 but a character SQS refuses
        (b"", "z"),
        (bytes(range(256)), "b"),
    ],
)
def test_bodies_round_trip_and_only_non_sqs_text_is_base64(body: bytes, encoding: str) -> None:
    text, enc = body_to_text(body)
    assert enc == encoding
    assert text  # SQS refuses empty bodies
    assert text_to_body(text, enc) == body


def test_meta_round_trips_and_stays_within_its_room() -> None:
    worst = Meta(priority=2**32 - 1, ttr=43_200, base=2**32 - 1, due=99_999_999_999.999,
                 job_id="f" * 36 + "-" + "0" * 27, encoding="b")
    value = encode_meta(worst)
    assert decode_meta(value) == worst
    assert message_size("", value) <= META_ROOM
    assert decode_meta(None) == Meta()


def test_max_body_is_the_largest_any_bytes_that_fit_a_1_mib_message() -> None:
    assert MAX_BODY == max_body_for(SQS_MAX_MESSAGE) == 786_231
    worst_meta = "x" * (META_ROOM - 9)  # an attribute value as long as allowed
    fits, _ = body_to_text(os.urandom(MAX_BODY))
    assert message_size(fits, worst_meta) <= SQS_MAX_MESSAGE
    too_big, _ = body_to_text(os.urandom(MAX_BODY + 1))
    assert message_size(too_big, worst_meta) > SQS_MAX_MESSAGE


def test_a_malformed_attribute_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="malformed kue attribute"):
        decode_meta("p=high")
