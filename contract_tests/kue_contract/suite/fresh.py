"""A backend opened on a store of its own: what it sets up when opened works from the first call.

The rest of the suite shares one backend per session, so a backend's constructor runs once,
before the first test. Here each test opens its own: a new store where the store is a file or
this process's memory (a plugin whose test server spec has no binary: memory, sqlite), and a
new connection to the session's server otherwise. The first put, reserve, record, unique key
and claim on it must behave as on a store that has seen thousands.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import kue
from kue.backend import Ack, Backend, BatchBackend, UniqueBackend
from kue.listing import QueueListing
from kue.plugins import open_backend
from kue.records import ClaimStore, RecordingBackend, RecordStore
from kue_contract.helpers import SCHEDULING
from kue_contract.plugin import fresh_name
from kue_contract.servers import ServerUnavailable, serve, spec_for
from kue_contract.suite.details import MOST_SPURIOUS, QUIET, _recording

#: Set on a test's node when its ``fresh_backend`` has a store no other test has used.
NEW_STORE = pytest.StashKey[bool]()
#: Key writes that certainly include a periodic sweep of expired keys (every 1000 here).
MANY_KEYS = 1000
#: Completions that certainly include a periodic sweep of expired records (every 100 here).
MANY_COMPLETIONS = 250
#: Seconds between writes to the other store while a record waiter watches its own.
WRITE_EVERY = 0.005


class FreshStoreContract:
    """Each test opens a backend of its own and checks its very first calls."""

    @pytest.fixture
    def fresh_backend(self, request: pytest.FixtureRequest, kue_backend_name: str,
                      kue_url: str) -> Iterator[Backend]:
        """A backend opened for this test alone, on a new store where the store is local."""
        try:
            spec = spec_for(kue_backend_name)
        except ServerUnavailable:  # a plugin that describes no server, run with --kue-url
            spec = None
        if spec is None or spec.binary is not None or request.config.getoption("--kue-url"):
            backend = open_backend(kue_backend_name, kue_url)
            yield backend
            backend.close()
            return
        mode = str(request.config.getoption("--kue-servers"))
        with serve(spec, mode) as server:
            backend = open_backend(kue_backend_name, server.url)
            request.node.stash[NEW_STORE] = True
            yield backend
            backend.close()

    def test_a_new_store_holds_no_queue_of_another(self, request: pytest.FixtureRequest,
                                                   fresh_backend: Backend,
                                                   queue: kue.Queue) -> None:
        """Two stores of one process (two ``memory://`` names, two files) are apart."""
        if not request.node.stash.get(NEW_STORE, False):
            pytest.skip("the backend's store is its server's, shared with the session")
        if not isinstance(fresh_backend, QueueListing):
            pytest.skip(f"the {fresh_backend.capabilities.name} backend lists no queues "
                        "(kue.listing.QueueListing)")
        queue.put(b"in the session's store")
        assert fresh_backend.list_queues() == []
        name = fresh_name()
        kue.Queue(fresh_backend, name).put(b"x")
        assert fresh_backend.list_queues() == [name]
        assert queue.stats() == kue.QueueStats(ready=1)
        job = queue.reserve(timeout=5)
        assert job is not None
        job.delete()

    def test_a_record_wait_is_not_woken_by_writes_to_another_store(
        self, request: pytest.FixtureRequest, fresh_backend: Backend, queue: kue.Queue
    ) -> None:
        """A waiter on one store may return spuriously, but not once per write to another.

        Else a waiting ``result()`` would spin as fast as an unrelated store is written to.
        """
        if not request.node.stash.get(NEW_STORE, False):
            pytest.skip("the backend's store is its server's, shared with the session")
        waited_on = queue.records.store
        if waited_on is None or not isinstance(fresh_backend, RecordStore) \
                or not fresh_backend.capabilities.records:
            pytest.skip(f"the {fresh_backend.capabilities.name} backend keeps no job records "
                        "(capability records=False)")
        waited_on.update_record(queue.name, "1", {"progress": 0.1}, 600.0)
        returns: list[int] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def read_and_wait() -> None:
            try:
                deadline = time.monotonic() + QUIET
                while (left := deadline - time.monotonic()) > 0:
                    waited_on.read_record(queue.name, "1")
                    waited_on.wait_record(queue.name, "1", left)
                    returns.append(1)
            except BaseException as exc:  # reported on the test's thread
                errors.append(exc)
            finally:
                done.set()

        threading.Thread(target=read_and_wait, daemon=True).start()
        other, written = fresh_name(), 0
        give_up = time.monotonic() + QUIET + 5 + SCHEDULING
        while not done.wait(WRITE_EVERY) and time.monotonic() < give_up:
            fresh_backend.update_record(other, "1", {"progress": written}, 600.0)
            written += 1
        assert done.is_set(), f"a record wait of {QUIET} s did not return"
        assert errors == []
        assert len(returns) <= MOST_SPURIOUS, \
            f"{len(returns)} returns in {QUIET} s, with {written} writes to another store"

    def test_the_first_jobs_keep_order_and_are_counted(self, fresh_backend: Backend) -> None:
        queue = kue.Queue(fresh_backend, fresh_name())
        ids = [queue.put(b"%d" % n, priority=5) for n in range(3)]
        assert len(set(ids)) == 3
        assert queue.stats().ready == 3
        got = []
        if fresh_backend.capabilities.reserve_many and isinstance(fresh_backend, BatchBackend):
            batch = fresh_backend.reserve_many([queue.name], 2, 5)
            got += [(job.id, job.body, job.attempts) for job in batch]
            fresh_backend.settle_many([Ack(job) for job in batch], (), [queue.name], 0, 0)
        while (job := queue.reserve(timeout=0)) is not None:
            got.append((job.id, job.body, job.attempts))
            job.delete()
        assert got == [(ids[0], b"0", 1), (ids[1], b"1", 1), (ids[2], b"2", 1)]
        assert queue.stats().total == 0

    def test_close_may_come_from_a_thread_that_never_used_the_backend_and_again(
        self, fresh_backend: Backend
    ) -> None:
        """Shutdown code closes from whatever thread it runs on, and cleanup may repeat it."""
        kue.Queue(fresh_backend, fresh_name()).put(b"x")
        errors: list[BaseException] = []

        def close() -> None:
            try:
                fresh_backend.close()
            except BaseException as exc:  # reported on the test's thread
                errors.append(exc)

        thread = threading.Thread(target=close)
        thread.start()
        thread.join()
        assert errors == []
        fresh_backend.close()
        fresh_backend.close()  # and the fixture closes it once more

    def test_the_first_completion_is_recorded(self, fresh_backend: Backend) -> None:
        store = _recording(fresh_backend)
        queue = kue.Queue(fresh_backend, fresh_name())
        job_id = queue.put(b"x")
        held = queue.reserve(timeout=5)
        assert held is not None
        store.complete(held.reservation, {"state": "done", "result": 1}, 600.0)
        record = store.read_record(queue.name, job_id)
        assert record is not None and record["result"] == 1
        assert queue.stats().total == 0

    def test_the_first_record_is_kept_and_wakes_a_waiter(self, fresh_backend: Backend) -> None:
        if not isinstance(fresh_backend, RecordStore) or not fresh_backend.capabilities.records:
            pytest.skip(f"the {fresh_backend.capabilities.name} backend keeps no job records "
                        "(capability records=False)")
        store: RecordStore = fresh_backend
        name = fresh_name()
        have_read, returned = threading.Event(), threading.Event()

        def read_and_wait() -> None:
            assert store.read_record(name, "1") is None
            have_read.set()
            store.wait_record(name, "1", 30.0)
            returned.set()

        waiter = threading.Thread(target=read_and_wait, daemon=True)
        waiter.start()
        assert have_read.wait(5 + SCHEDULING)
        store.update_record(name, "1", {"progress": 0.5}, 600.0)
        assert returned.wait(5 + SCHEDULING), "wait_record missed the first record written"
        waiter.join(5)
        assert store.read_record(name, "1") == {"progress": 0.5}

    def test_a_completion_wakes_a_waiter_that_read_the_record_before_it(
        self, fresh_backend: Backend
    ) -> None:
        """Every record write wakes a waiter, not only the first: here the store's second."""
        store = _recording(fresh_backend)
        queue = kue.Queue(fresh_backend, fresh_name())
        job_id = queue.put(b"x")
        held = queue.reserve(timeout=5)
        assert held is not None
        store.update_record(queue.name, job_id, {"progress": 0.5}, 600.0)
        have_read, returned = threading.Event(), threading.Event()
        seen: list[object] = []

        def read_and_wait() -> None:
            seen.append(store.read_record(queue.name, job_id))
            have_read.set()
            store.wait_record(queue.name, job_id, 30.0)
            returned.set()

        waiter = threading.Thread(target=read_and_wait, daemon=True)
        waiter.start()
        assert have_read.wait(5 + SCHEDULING)
        store.complete(held.reservation, {"state": "done", "result": 1}, 600.0)
        assert returned.wait(5 + SCHEDULING), "wait_record missed the completion"
        waiter.join(5)
        assert seen == [{"progress": 0.5}]

    def test_the_first_record_wait_with_no_write_returns_by_its_timeout(
        self, fresh_backend: Backend
    ) -> None:
        """The first waiter on a new store, with nothing written, times out without error."""
        if not isinstance(fresh_backend, RecordStore) or not fresh_backend.capabilities.records:
            pytest.skip(f"the {fresh_backend.capabilities.name} backend keeps no job records "
                        "(capability records=False)")
        store: RecordStore = fresh_backend
        name = fresh_name()
        errors: list[BaseException] = []
        returned = threading.Event()

        def read_and_wait() -> None:
            try:
                assert store.read_record(name, "1") is None
                store.wait_record(name, "1", 0.3)
            except BaseException as exc:
                errors.append(exc)
            returned.set()

        threading.Thread(target=read_and_wait, daemon=True).start()
        assert returned.wait(5 + SCHEDULING), "wait_record(timeout=0.3) did not return"
        assert errors == []

    def test_the_first_unique_key_is_held(self, fresh_backend: Backend) -> None:
        caps = fresh_backend.capabilities
        if not (caps.unique_put and isinstance(fresh_backend, UniqueBackend)):
            pytest.skip(f"the {caps.name} backend declares unique_put=False")
        name = fresh_name()
        first, stored = fresh_backend.put_unique(name, b"a", 5, 0.0, 60.0, "k", 600.0, True)
        assert stored
        again, stored = fresh_backend.put_unique(name, b"b", 5, 0.0, 60.0, "k", 600.0, True)
        assert (again, stored) == (first, False)

    def test_the_first_claim_is_held(self, fresh_backend: Backend) -> None:
        if not isinstance(fresh_backend, ClaimStore):
            pytest.skip(f"the {fresh_backend.capabilities.name} backend keeps no claims "
                        "(kue.records.ClaimStore)")
        name = fresh_name()
        assert fresh_backend.claim(name, "k", "a", 600.0, None) is None
        assert fresh_backend.claim(name, "k", "b", 600.0, None) == "a"

    def test_a_thousand_claims_in_a_row_all_hold(self, fresh_backend: Backend) -> None:
        """Expired keys are swept out now and then; live ones never are."""
        if not isinstance(fresh_backend, ClaimStore):
            pytest.skip(f"the {fresh_backend.capabilities.name} backend keeps no claims "
                        "(kue.records.ClaimStore)")
        name = fresh_name()
        assert fresh_backend.claim(name, "first", "a", 600.0, None) is None
        for n in range(MANY_KEYS):
            assert fresh_backend.claim(name, f"k{n}", "v", 600.0, None) is None
        assert fresh_backend.claim(name, "first", "b", 600.0, None) == "a"
        assert fresh_backend.claim(name, f"k{MANY_KEYS - 1}", "w", 600.0, None) == "v"

    def test_a_thousand_unique_puts_in_a_row_all_hold(self, fresh_backend: Backend) -> None:
        caps = fresh_backend.capabilities
        if not (caps.unique_put and isinstance(fresh_backend, UniqueBackend)):
            pytest.skip(f"the {caps.name} backend declares unique_put=False")
        name = fresh_name()
        first, _ = fresh_backend.put_unique(name, b"a", 5, 0.0, 60.0, "first", 600.0, True)
        for n in range(MANY_KEYS):
            _, stored = fresh_backend.put_unique(name, b"n", 5, 0.0, 60.0, f"k{n}", 600.0, True)
            assert stored
        again, stored = fresh_backend.put_unique(name, b"b", 5, 0.0, 60.0, "first", 600.0, True)
        assert (again, stored) == (first, False)

    def test_some_hundred_completions_in_a_row_are_all_recorded(
        self, fresh_backend: Backend
    ) -> None:
        """Expired records are swept out now and then; live ones never are."""
        store = _recording(fresh_backend)
        queue = kue.Queue(fresh_backend, fresh_name())
        ids = []
        for n in range(MANY_COMPLETIONS):
            job_id = queue.put(b"x")
            held = queue.reserve(timeout=5)
            assert held is not None and held.id == job_id
            store.complete(held.reservation, {"state": "done", "result": n}, 600.0)
            ids.append(job_id)
        for n, job_id in enumerate(ids):
            record = store.read_record(queue.name, job_id)
            assert record is not None and record["result"] == n

    def test_some_hundred_batch_completions_of_one_job_each_are_all_recorded(
        self, fresh_backend: Backend
    ) -> None:
        """As above, each job finished by a ``settle_many`` of its own."""
        caps = fresh_backend.capabilities
        if not (caps.records and caps.reserve_many and isinstance(fresh_backend, BatchBackend)
                and isinstance(fresh_backend, RecordingBackend)):
            pytest.skip(f"the {caps.name} backend does not record jobs a batch acks "
                        "(capabilities records and reserve_many)")
        name = fresh_name()
        ids = []
        for n in range(MANY_COMPLETIONS):
            fresh_backend.put(name, b"x", 5, 0.0, 60.0)
            held = fresh_backend.reserve_many([name], 1, 5)
            assert len(held) == 1
            fields = {"state": "done", "result": n}
            reply = fresh_backend.settle_many([Ack(held[0], fields, 600.0)], (), [name], 0, 0)
            assert reply.lost == []
            ids.append(held[0].id)
        for n, job_id in enumerate(ids):
            record = fresh_backend.read_record(name, job_id)
            assert record is not None and record["result"] == n
