"""A durable backend keeps every job, in every state, across a restart of its server."""

from __future__ import annotations

import multiprocessing

import pytest

import kue
from kue.backend import Backend, Capabilities
from kue.plugins import open_backend
from kue.queue import ReservedJob
from kue_contract.plugin import RestartableServer, fresh_name

#: Long enough that nothing comes due or runs out while the test runs.
LONG = 3600


def _snapshot(queue: kue.Queue, caps: Capabilities) -> dict[str, object]:
    """What a restart must not change: counts, and the next job of each state that peeks."""
    seen: dict[str, object] = {"stats": queue.stats()}
    if caps.peek:
        for state in ("ready", "delayed", "buried"):
            info = queue.peek(state)
            seen[state] = None if info is None else (info.id, info.body, info.priority,
                                                     info.attempts)
    return seen


def _snapshot_in_a_new_process(backend_name: str, url: str, queue: str,
                               caps: Capabilities) -> dict[str, object]:
    """:func:`_snapshot` as a process started afresh sees it: nothing this process keeps helps."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_child_snapshot, (backend_name, url, queue, caps))


def _child_snapshot(backend_name: str, url: str, queue: str,
                    caps: Capabilities) -> dict[str, object]:
    backend = open_backend(backend_name, url)
    try:
        return _snapshot(kue.Queue(backend, queue), caps)
    finally:
        backend.close()


class DurabilityContract:
    """Jobs survive a restart of the server (``durable``), on a server the suite owns."""

    @pytest.mark.requires("durable")
    def test_every_job_survives_a_server_restart_in_its_state(
        self, kue_backend_name: str, kue_caps: Capabilities,
        restartable_server: RestartableServer,
    ) -> None:
        caps, name = kue_caps, fresh_name()
        ttr = max(float(LONG), caps.min_ttr) if caps.max_ttr >= LONG else caps.max_ttr
        opened: list[Backend] = [open_backend(kue_backend_name, restartable_server.url)]
        queue = kue.Queue(opened[0], name)
        try:
            held_id = queue.put(b"held", priority=7, ttr=ttr)
            held = queue.reserve(timeout=5)
            assert held is not None and held.id == held_id
            buried = None
            if caps.bury:
                buried = queue.put(b"buried", priority=2**31)
                job = queue.reserve(timeout=5)
                assert job is not None and job.id == buried
                job.bury()
            ready = [queue.put(b"a", priority=5), queue.put(b"b", priority=1),
                     queue.put(b"c", priority=5)]
            delayed = queue.put(b"later", delay=min(LONG, caps.max_delay)) if caps.delay \
                else None
            before = _snapshot(queue, caps)

            opened[0].close()
            restartable_server.restart()
            url = restartable_server.url
            assert _snapshot_in_a_new_process(kue_backend_name, url, name, caps) == before
            opened.append(open_backend(kue_backend_name, url))
            queue = kue.Queue(opened[-1], name)
            assert _snapshot(queue, caps) == before
            # The holder's lease outlives the restart: it finishes the job over a new connection.
            ReservedJob(queue, held.reservation).delete()
            got = []
            for _ in range(3):
                job = queue.reserve(timeout=5)
                assert job is not None and job.attempts == 1
                got.append((job.id, job.body))
                job.delete()
            assert got == [(ready[1], b"b"), (ready[0], b"a"), (ready[2], b"c")]
            if buried is not None:
                assert queue.kick(1) == 1
                job = queue.reserve(timeout=5)
                assert job is not None and (job.id, job.body, job.attempts) == (buried, b"buried",
                                                                                2)
                job.delete()
            expected = kue.QueueStats(delayed=1) if delayed is not None else kue.QueueStats()
            assert queue.stats() == expected
            if delayed is not None:
                assert queue.kick(1) == 1
                job = queue.reserve(timeout=5)
                assert job is not None and (job.id, job.body) == (delayed, b"later")
                job.delete()
            assert queue.stats().total == 0
        finally:
            for backend in opened[1:]:
                backend.close()
