"""Delays checked against what a backend declares: put's ``delay``, release's ``release_delay``."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from kue.backend import Capabilities, PutItem, Reservation
from kue.errors import JobTooBig, Unsupported
from kue.validation import check_delay, check_put_items, retry_delay_within

#: A backend like SQS FIFO queues: no delay at put, a release can still hold a job back.
HOLD_ONLY = Capabilities(name="hold-only", delay=False, release_delay=True, max_delay=43_200)


def test_a_put_delay_is_refused_where_only_releases_can_wait() -> None:
    with pytest.raises(Unsupported, match=r"hold-only.*delayed jobs"):
        check_delay(5, HOLD_ONLY)
    assert check_delay(0, HOLD_ONLY) == 0


def test_a_release_delay_is_accepted_where_releases_can_wait() -> None:
    assert check_delay(5, HOLD_ONLY, release=True) == 5
    with pytest.raises(ValueError, match="43200"):
        check_delay(50_000, HOLD_ONLY, release=True)


def test_a_release_delay_is_refused_where_releases_cannot_wait() -> None:
    neither = dataclasses.replace(HOLD_ONLY, name="neither", release_delay=False)
    with pytest.raises(Unsupported, match=r"neither.*releasing with a delay"):
        check_delay(5, neither, release=True)


def test_the_workers_backoff_fits_what_the_backend_can_honour() -> None:
    assert retry_delay_within(30, HOLD_ONLY) == 30
    assert retry_delay_within(99_999, HOLD_ONLY) == 43_200
    assert retry_delay_within(30, dataclasses.replace(HOLD_ONLY, release_delay=False)) == 0


def test_a_batch_checks_each_item_even_when_its_values_equal_an_earlier_ones() -> None:
    caps = Capabilities(name="batch", max_body=10)
    with pytest.raises(TypeError, match=r"priority must be an int.*got True"):
        check_put_items([PutItem(b"a", 1), PutItem(b"b", True)], caps)  # True == 1
    with pytest.raises(TypeError, match=r"priority must be an int.*got 1\.0"):
        check_put_items([PutItem(b"a", 1), PutItem(b"b", 1.0)], caps)  # type: ignore[arg-type]
    with pytest.raises(JobTooBig):
        check_put_items([PutItem(b"small"), PutItem(b"x" * 11)], caps)
    got = check_put_items([PutItem(b"a", 5, 0, 30),
                           PutItem(bytearray(b"b"), 5, 0.0, 30.0),  # type: ignore[arg-type]
                           PutItem(b"c", 7)], caps)
    assert got == [PutItem(b"a", 5, 0.0, 30.0), PutItem(b"b", 5, 0.0, 30.0), PutItem(b"c", 7)]
    assert all(type(i.body) is bytes and type(i.delay) is float and type(i.ttr) is float
               for i in got)


def test_a_batch_sharing_one_bad_value_is_refused_with_that_value() -> None:
    caps = Capabilities(name="batch", max_body=10, max_delay=100)
    with pytest.raises(TypeError, match=r"priority must be an int.*got True"):
        check_put_items([PutItem(b"a", True), PutItem(b"b", True)], caps)  # one object, shared
    with pytest.raises(ValueError, match=r"delay 101 s is over the batch backend's limit of 100"):
        check_put_items([PutItem(b"a", 1, 101)] * 3, caps)
    with pytest.raises(ValueError, match=r"ttr -1 s is under"):
        check_put_items([PutItem(b"a", ttr=-1)] * 2, caps)
    with pytest.raises(TypeError, match="must be bytes, got str"):
        check_put_items([PutItem(b"a"), PutItem("b")], caps)  # type: ignore[arg-type]


def test_a_batch_in_normal_form_keeps_its_items_and_others_are_normalised() -> None:
    caps = Capabilities(name="batch", max_body=10)
    items = [PutItem(b"a"), PutItem(b"b")]
    got = check_put_items(items, caps)
    assert got is not items and all(g is i for g, i in zip(got, items, strict=True))
    got = check_put_items((PutItem(b"a", 5, 0, 30), PutItem(b"b", 5, 0, 30)), caps)
    assert got == [PutItem(b"a", 5, 0.0, 30.0), PutItem(b"b", 5, 0.0, 30.0)]
    assert all(type(i.delay) is float and type(i.ttr) is float for i in got)
    assert check_put_items([], caps) == []


def test_a_put_item_is_a_frozen_dataclass_whose_defaults_are_its_fields() -> None:
    item = PutItem(b"a")
    assert item == PutItem(b"a", 2**31, 0.0, 60.0) == PutItem(body=b"a")
    assert {f.name: f.default for f in dataclasses.fields(PutItem)} == {
        "body": dataclasses.MISSING, "priority": 2**31, "delay": 0.0, "ttr": 60.0}
    assert hash(item) == hash(PutItem(b"a")) and repr(item) == (
        "PutItem(body=b'a', priority=2147483648, delay=0.0, ttr=60.0)")
    assert dataclasses.replace(item, ttr=5.0) == PutItem(b"a", ttr=5.0)
    assert pickle.loads(pickle.dumps(item)) == item
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.priority = 1  # type: ignore[misc]


def test_a_reservation_is_a_frozen_dataclass_built_by_position_or_name() -> None:
    job = Reservation("q", "7", b"x", 3, 1, 60.0)
    assert job == Reservation(queue="q", id="7", body=b"x", priority=3, attempts=1, ttr=60.0,
                              receipt="")
    assert [f.name for f in dataclasses.fields(Reservation)] == [
        "queue", "id", "body", "priority", "attempts", "ttr", "receipt"]
    assert hash(job) == hash(Reservation("q", "7", b"x", 3, 1, 60.0)) and repr(job) == (
        "Reservation(queue='q', id='7', body=b'x', priority=3, attempts=1, ttr=60.0, "
        "receipt='')")
    assert dataclasses.replace(job, receipt="r") == Reservation("q", "7", b"x", 3, 1, 60.0, "r")
    assert pickle.loads(pickle.dumps(job)) == job
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.attempts = 2  # type: ignore[misc]
