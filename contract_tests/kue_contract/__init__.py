"""The kue contract suite: the promises every backend keeps, as a pytest plugin.

Run it against any installed backend::

    pytest -p kue_contract --pyargs kue_contract --kue-backend=NAME [--kue-url=URL]

or subclass the mixins of :mod:`kue_contract.suite` in your own test module and override the
``kue_url`` fixture (see :mod:`kue_contract.test_contract` for the list).
"""

from kue_contract.plugin import (
    connect_again,
    kue_backend,
    kue_backend_name,
    kue_caps,
    kue_contract_jobs,
    kue_results,
    kue_url,
    make_queue,
    pytest_addoption,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
    queue,
    requires_capabilities,
    restartable_server,
)

__all__ = [
    "connect_again",
    "kue_backend",
    "kue_backend_name",
    "kue_caps",
    "kue_contract_jobs",
    "kue_results",
    "kue_url",
    "make_queue",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_testnodedown",
    "queue",
    "requires_capabilities",
    "restartable_server",
]
