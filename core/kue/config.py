"""Where kue's settings come from, in order: flags, environment, kue.toml, pyproject, default.

Keys (the same in ``kue.toml`` at top level and in ``[tool.kue]`` of ``pyproject.toml``):
``url``, ``backend``, ``queues`` (list), ``import`` (list of modules that define jobs),
``options`` (table passed to the backend plugin), ``results`` (URL of the backend that keeps job
records for a backend that keeps none: beanstalkd, SQS). Environment: ``KUE_URL``,
``KUE_BACKEND``, ``KUE_QUEUES`` (comma separated), ``KUE_IMPORT`` (comma separated),
``KUE_RESULTS``. ``schedules`` (a list of tables, ``[[schedules]]`` in kue.toml or
``[[tool.kue.schedules]]``): periodic jobs, read by :mod:`kue.schedules`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kue.errors import ConfigError

__all__ = ["DEFAULT_SQLITE_FILE", "Settings", "backend_name", "load_settings", "mask_url"]

#: The database file of the default backend, under the working directory.
DEFAULT_SQLITE_FILE = "kue.sqlite3"


@dataclass(frozen=True)
class Settings:
    """Resolved settings, with where each came from for error messages."""

    url: str
    queues: list[str] = field(default_factory=lambda: ["default"])
    imports: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    #: URL of the record store for a backend that keeps no records itself (None: none).
    results: str | None = None
    #: Seconds the records of done jobs are kept, by queue (``[tool.kue.result_ttl]``).
    result_ttls: dict[str, float] = field(default_factory=dict)
    source: str = "default"
    #: The ``[[schedules]]`` tables as written (checked by :func:`kue.schedules.from_config`).
    schedules: list[dict[str, Any]] = field(default_factory=list)
    #: Where ``schedules`` came from, for messages.
    schedules_source: str = ""

    @property
    def backend(self) -> str:
        """The backend name the URL's scheme names."""
        return backend_name(self.url)


def backend_name(url: str) -> str:
    """The backend an URL names: its scheme (``redis://...`` -> ``redis``)."""
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ConfigError(
            f"URL {mask_url(url)!r} has no scheme; write it as NAME://..., "
            "for example sqlite:///kue.sqlite3 or redis://localhost:6379/0"
        )
    return scheme.lower()


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def _file_settings(cwd: Path) -> tuple[dict[str, Any], str]:
    kue_toml = cwd / "kue.toml"
    if kue_toml.is_file():
        return _read_toml(kue_toml), str(kue_toml)
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("kue")
        if isinstance(table, dict):
            return table, f"{pyproject} [tool.kue]"
    return {}, ""


def _as_list(value: Any, key: str, source: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{key} in {source} must be a list of strings, got {value!r}")


def _url_for_backend(name: str, cwd: Path) -> str:
    if name == "sqlite":
        return f"sqlite:///{cwd / DEFAULT_SQLITE_FILE}"
    return f"{name}://"


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve settings. ``flags`` holds command-line values (None means not given)."""
    flags = {k: v for k, v in (flags or {}).items() if v not in (None, [], "")}
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    file_values, file_source = _file_settings(cwd)

    layers: list[tuple[str, dict[str, Any]]] = [("command line", dict(flags))]
    env_values: dict[str, Any] = {}
    for key, var in (("url", "KUE_URL"), ("backend", "KUE_BACKEND"),
                     ("queues", "KUE_QUEUES"), ("import", "KUE_IMPORT"),
                     ("results", "KUE_RESULTS")):
        if env.get(var):
            env_values[key] = env[var]
    layers.append(("environment", env_values))
    if file_source:
        layers.append((file_source, file_values))

    def pick(key: str) -> tuple[Any, str] | None:
        for source, values in layers:
            if key in values:
                return values[key], source
        return None

    # A URL and a backend name at the same level: the URL wins; a higher level wins overall.
    url: str | None = None
    source = "default"
    for layer_source, values in layers:
        if "url" in values:
            url, source = str(values["url"]), layer_source
            break
        if "backend" in values:
            url, source = _url_for_backend(str(values["backend"]), cwd), layer_source
            break
    if url is None:
        url = _url_for_backend("sqlite", cwd)
    backend_name(url)  # fail early on a URL without a scheme

    queues_pick = pick("queues")
    queues = (
        _as_list(queues_pick[0], "queues", queues_pick[1]) if queues_pick else ["default"]
    )
    imports_pick = pick("import")
    imports = _as_list(imports_pick[0], "import", imports_pick[1]) if imports_pick else []
    options = file_values.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"options in {file_source} must be a table, got {options!r}")
    results_pick = pick("results")
    results = str(results_pick[0]) if results_pick else None
    if results is not None:
        backend_name(results)  # fail early on a URL without a scheme
    schedules = file_values.get("schedules", [])
    if not isinstance(schedules, list) or not all(isinstance(s, dict) for s in schedules):
        raise ConfigError(f"schedules in {file_source} must be a list of tables "
                          f"([[schedules]] in kue.toml), got {schedules!r}")
    return Settings(url=url, queues=queues, imports=imports, options=options, source=source,
                    results=results, result_ttls=_result_ttls(file_values, file_source),
                    schedules=schedules, schedules_source=file_source)


def _result_ttls(values: Mapping[str, Any], source: str) -> dict[str, float]:
    """The ``result_ttl`` table: queue name to seconds >= 0."""
    table = values.get("result_ttl", {})
    if not isinstance(table, dict):
        raise ConfigError(f"result_ttl in {source} must be a table of queue = seconds, "
                          f"got {table!r}")
    ttls: dict[str, float] = {}
    for queue, seconds in table.items():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
                0 <= seconds < float("inf")):
            raise ConfigError(f"result_ttl.{queue} in {source} must be a number of seconds "
                              f">= 0, got {seconds!r}")
        ttls[str(queue)] = float(seconds)
    return ttls
