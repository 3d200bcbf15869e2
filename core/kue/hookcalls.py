"""Firing observation hooks so that a plugin that raises cannot change a job's outcome.

Hooks observe; they never decide (DESIGN.md). Each implementation is called on its own, and an
exception in one is logged with the plugin's name, then the next one is called.
"""

from __future__ import annotations

import logging
from typing import Any

import pluggy

__all__ = ["notify"]

log = logging.getLogger("kue.plugins")


def notify(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> None:
    """Call every implementation of ``hook_name`` with ``kwargs``, logging any that raises.

    Implementations run in pluggy's order (last registered first, ``tryfirst`` / ``trylast``
    respected). A wrapper implementation runs through pluggy, alone with its own plugin.
    """
    caller: pluggy.HookCaller = getattr(pm.hook, hook_name)
    impls = caller.get_hookimpls()
    if not impls:
        return
    for impl in reversed(impls):
        try:
            if impl.hookwrapper or impl.wrapper:
                others = [p for p in pm.get_plugins() if p is not impl.plugin]
                pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)
            else:
                impl.function(*(kwargs[name] for name in impl.argnames))
        except Exception:
            log.exception("plugin %r raised in %s; ignored: hooks cannot change a job's outcome",
                          impl.plugin_name, hook_name)
