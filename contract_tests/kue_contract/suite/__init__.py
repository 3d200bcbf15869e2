"""The contract as mixin classes: subclass them in a ``test_*.py`` module to run them.

Override the ``kue_url`` fixture (or ``kue_backend``) to point them at your backend, as
:mod:`kue_contract.test_contract` does through command-line options.
"""

from kue_contract.suite.acks import StaleAckContract
from kue_contract.suite.basics import BasicsContract
from kue_contract.suite.batch import BatchContract
from kue_contract.suite.blocking import BlockingContract
from kue_contract.suite.bury import BuryContract, PeekContract, UnsupportedContract
from kue_contract.suite.concurrency import ConcurrencyContract
from kue_contract.suite.deferred import DeferredAckContract
from kue_contract.suite.details import DetailsContract, DetailsOfTimeAndBatchesContract
from kue_contract.suite.durability import DurabilityContract
from kue_contract.suite.edges import EdgesContract
from kue_contract.suite.fresh import FreshStoreContract
from kue_contract.suite.listing import ListingContract
from kue_contract.suite.model import ModelContract
from kue_contract.suite.order import OrderContract
from kue_contract.suite.records import RecordsContract
from kue_contract.suite.timing import DelayContract, TtrContract
from kue_contract.suite.unique import UniqueBackendContract, UniqueContract
from kue_contract.suite.unordered_model import UnorderedModelContract
from kue_contract.suite.validation import ValidationContract

__all__ = [
    "BasicsContract",
    "BatchContract",
    "BlockingContract",
    "BuryContract",
    "ConcurrencyContract",
    "DeferredAckContract",
    "DelayContract",
    "DetailsContract",
    "DetailsOfTimeAndBatchesContract",
    "DurabilityContract",
    "EdgesContract",
    "FreshStoreContract",
    "ListingContract",
    "ModelContract",
    "OrderContract",
    "PeekContract",
    "RecordsContract",
    "StaleAckContract",
    "TtrContract",
    "UniqueBackendContract",
    "UniqueContract",
    "UnorderedModelContract",
    "UnsupportedContract",
    "ValidationContract",
]
