"""The hook kue_contract adds to kue's plugin manager: a backend's throwaway server, described.

kue never calls it, so core does not declare it: :func:`kue_contract.servers.spec_for` adds
this module with ``pm.add_hookspecs`` first, as pytest's ``pytest_addhooks`` lets plugins do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from kue_contract.servers import ServerSpec

__all__ = ["kue_contract_server"]

hookspec = pluggy.HookspecMarker("kue")


@hookspec(firstresult=True)
def kue_contract_server(name: str) -> ServerSpec | str | None:
    """Describe the throwaway server of the backend ``name``; kue_contract alone runs it.

    Fires when a contract or fault test, a benchmark or the image builder needs a server for
    ``name`` and no ``--kue-url`` was given.

    :param name: the backend under test (its entry-point name).
    :returns: a :class:`kue_contract.servers.ServerSpec`; or, for a backend with no server
        (memory, sqlite), just its URL as a template in which ``{scratch}`` is a fresh
        directory and ``{uid}`` a fresh token; or None if this plugin does not serve ``name``.
    """
