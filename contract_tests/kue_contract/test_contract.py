"""The contract suite as collected by ``pytest -p kue_contract --pyargs kue_contract``."""

from __future__ import annotations

from kue_contract.suite import (
    BasicsContract,
    BatchContract,
    BlockingContract,
    BuryContract,
    ConcurrencyContract,
    DeferredAckContract,
    DelayContract,
    DetailsContract,
    DetailsOfTimeAndBatchesContract,
    DurabilityContract,
    EdgesContract,
    FreshStoreContract,
    ListingContract,
    ModelContract,
    OrderContract,
    PeekContract,
    RecordsContract,
    StaleAckContract,
    TtrContract,
    UniqueBackendContract,
    UniqueContract,
    UnorderedModelContract,
    UnsupportedContract,
    ValidationContract,
)


class TestBasics(BasicsContract):
    """Put, reserve, delete, put_many, stats, batches."""


class TestOrder(OrderContract):
    """Priority and first-put-first order."""


class TestDelay(DelayContract):
    """Delayed jobs."""


class TestTtr(TtrContract):
    """Time-to-run, touch and lost reservations."""


class TestBatch(BatchContract):
    """reserve_many and settle_many: batched reservations, where declared."""


class TestDeferredAcks(DeferredAckContract):
    """settle_many_deferred and acks_outcome: acks done after the reserve, where declared."""


class TestStaleAcks(StaleAckContract):
    """Acks after the ttr ran out; delete_and_reserve and delete_by_id."""


class TestBlocking(BlockingContract):
    """A put wakes a blocked reserve; producers and consumers at once."""


class TestBury(BuryContract):
    """Bury and kick."""


class TestPeek(PeekContract):
    """Peek at each state."""


class TestUnsupported(UnsupportedContract):
    """Absent capabilities raise Unsupported."""


class TestValidation(ValidationContract):
    """Bad input is refused before anything is sent."""


class TestEdges(EdgesContract):
    """Empty input, long batches and the declared limits, alike everywhere."""


class TestDurability(DurabilityContract):
    """A durable backend keeps its jobs across a server restart."""


class TestConcurrency(ConcurrencyContract):
    """Eight consumers, threads and processes."""


class TestModel(ModelContract):
    """Random operations agree with the memory model."""


class TestUnorderedModel(UnorderedModelContract):
    """Random operations agree with a model that asks for no order (SQS included)."""


class TestRecords(RecordsContract):
    """Job records: status, result, error and progress by id."""


class TestListing(ListingContract):
    """Admin listing: list queues, browse buried jobs, kick one by id (kue.listing)."""


class TestUnique(UniqueContract):
    """Unique pushes: one job per key while it is queued or running."""


class TestUniqueBackend(UniqueBackendContract):
    """Backend.put_unique, where the backend declares unique_put."""


class TestDetails(DetailsContract):
    """Priorities of every put, empty peeks, short due times, record waits, unkeepable records."""


class TestFreshStore(FreshStoreContract):
    """A backend opened on a store of its own works from its first call."""


class TestDetailsOfTimeAndBatches(DetailsOfTimeAndBatchesContract):
    """Due jobs seen by every call, batches that wait, stale completions, many queues."""
