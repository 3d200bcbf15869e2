"""Delays checked against what a backend declares: put's ``delay``, release's ``release_delay``."""

from __future__ import annotations

import dataclasses

import pytest

from kue.backend import Capabilities
from kue.errors import Unsupported
from kue.validation import check_delay, retry_delay_within

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
