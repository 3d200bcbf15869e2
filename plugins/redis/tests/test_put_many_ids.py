"""put_many's job ids, drawn in bulk: each one what ``uuid.uuid4().hex`` makes."""

from __future__ import annotations

import uuid

import pytest

from kue_redis.backend import _new_ids


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 1000])
def test_bulk_ids_are_distinct_version_4_uuids_in_hex(n: int) -> None:
    ids = _new_ids(n)
    assert len(ids) == n == len(set(ids))
    for job_id in ids:
        as_uuid = uuid.UUID(job_id)
        assert as_uuid.hex == job_id
        assert as_uuid.version == 4 and as_uuid.variant == uuid.RFC_4122
