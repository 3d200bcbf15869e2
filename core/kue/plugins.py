"""The plugin manager and lazy, entry-point based loading of backends and plugins."""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from kue import hookspecs
from kue.backend import Backend
from kue.errors import ConfigError, UnknownBackend

__all__ = [
    "BACKENDS_GROUP",
    "PLUGINS_GROUP",
    "backend_entry_points",
    "get_plugin_manager",
    "load_backend_plugin",
    "new_plugin_manager",
    "open_backend",
]

#: Entry-point group of backends; the entry point's name is the backend's name and URL scheme.
BACKENDS_GROUP = "kue.backends"
#: Entry-point group of plugins that are always loaded.
PLUGINS_GROUP = "kue.plugins"


def _load(ep: EntryPoint) -> object:
    """Import an entry point; an ImportError names the distribution that is broken."""
    try:
        return ep.load()
    except ImportError as exc:
        dist = ep.dist.name if ep.dist is not None else "unknown distribution"
        raise ConfigError(
            f"the kue plugin {ep.name!r} from {dist} ({ep.value}) failed to import: {exc}; "
            f"reinstall or remove {dist}"
        ) from exc


def new_plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    """Make a fresh plugin manager with kue's hookspecs and the ``kue.plugins`` entry points."""
    pm = pluggy.PluginManager("kue")
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        for ep in entry_points(group=PLUGINS_GROUP):
            if pm.get_plugin(ep.name) is None:
                pm.register(_load(ep), name=ep.name)
    return pm


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager, built on first use (never at import)."""
    return new_plugin_manager()


def backend_entry_points() -> dict[str, EntryPoint]:
    """Installed backends by name, without importing any of them."""
    return {ep.name: ep for ep in entry_points(group=BACKENDS_GROUP)}


def load_backend_plugin(name: str, pm: pluggy.PluginManager | None = None) -> object:
    """Import and register the plugin for backend ``name``; only that one is imported."""
    pm = pm or get_plugin_manager()
    key = f"{BACKENDS_GROUP}:{name}"
    plugin = pm.get_plugin(key)
    if plugin is not None:
        return plugin
    eps = backend_entry_points()
    if name not in eps:
        raise UnknownBackend(name, list(eps))
    plugin = _load(eps[name])
    if pm.is_registered(plugin):
        # One module may serve several names (redis and rediss): register it once.
        return plugin
    pm.register(plugin, name=key)
    return plugin


def open_backend(
    name: str, url: str, options: dict[str, Any] | None = None,
    pm: pluggy.PluginManager | None = None,
) -> Backend:
    """Load backend ``name`` and ask its plugin to open ``url``."""
    pm = pm or get_plugin_manager()
    load_backend_plugin(name, pm)
    backend = pm.hook.kue_backend(name=name, url=url, options=dict(options or {}))
    if backend is None:
        raise UnknownBackend(name, list(backend_entry_points()))
    return backend  # type: ignore[no-any-return]


def import_modules(modules: list[str]) -> None:
    """Import the modules that register jobs (``--import``), naming the one that fails."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"cannot import job module {module!r}: {exc}") from exc
