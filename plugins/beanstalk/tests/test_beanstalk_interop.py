"""Jobs cross between kue and any other beanstalkd client unchanged, both ways."""

from __future__ import annotations

import json

import greenstalk

import kue
from kue_contract.servers import LocalServer


def test_a_body_put_by_kue_is_read_unchanged_by_greenstalk(
    server: LocalServer, tube: str
) -> None:
    queue = kue.connect(server.url, queue=tube)
    body = {"processVideo": 4871, "name": "ünï"}
    queue.put(body, priority=42)
    queue.put(b"\x00\xff raw bytes\r\n", priority=43)
    with greenstalk.Client(("127.0.0.1", server.port), encoding=None, watch=tube) as raw:
        first = raw.reserve(timeout=2)
        assert json.loads(first.body) == body
        assert raw.stats_job(first)["pri"] == 42
        raw.delete(first)
        second = raw.reserve(timeout=2)
        assert second.body == b"\x00\xff raw bytes\r\n"
        raw.delete(second)
    queue.close()


def test_a_job_put_by_greenstalk_is_reserved_by_kue_with_body_and_priority(
    server: LocalServer, tube: str
) -> None:
    with greenstalk.Client(("127.0.0.1", server.port), encoding=None, use=tube) as raw:
        job_id = raw.put(b'{"from": "elsewhere"}', priority=7, ttr=30)
    queue = kue.connect(server.url, queue=tube)
    job = queue.reserve(timeout=2)
    assert job is not None
    assert job.id == str(job_id)
    assert job.json() == {"from": "elsewhere"}
    assert job.priority == 7
    assert job.attempts == 1
    assert job.reservation.ttr == 30
    job.delete()
    assert queue.stats().total == 0
    queue.close()
