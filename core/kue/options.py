"""One reader for a backend's options: the URL's query over configuration, checked by a table.

A backend declares its options once, as :class:`Option` rows (name, kind, default, range or
choices, help), and reads them with :func:`read_options`::

    TABLE = (
        Option("max_body", "int", 64 * 2**20, "largest body in bytes", low=1, high=2**31),
        Option("create", "bool", False, "create missing queues"),
    )
    values = read_options("sqs", TABLE, url, options)   # values["create"] is a bool

The same rules hold for every backend: a value in the URL's query wins over the same name in
configuration (``[tool.kue.options]``); a name given twice in one query, a name no row (and no
``passthrough``) knows, or a value of the wrong kind or out of range is a
:class:`~kue.errors.ConfigError` that names the value, the limit and where it came from (the URL
with its password masked), raised before any connection is opened.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from kue.config import mask_url
from kue.errors import ConfigError

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "Option", "OptionValues", "parse_bool", "read_options"]

#: Words read as true, and as false, wherever kue reads a yes/no setting.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

#: What an option holds: a whole number, a number (``seconds`` is a number above 0), a yes/no,
#: text, or one of a few words.
Kind = Literal["int", "float", "seconds", "bool", "str", "choice"]


def parse_bool(raw: object, name: str, where: str) -> bool:
    """A yes/no from ``raw`` (a bool, or one of :data:`TRUE_WORDS` / :data:`FALSE_WORDS`)."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ConfigError(
        f"{name}={raw!r} in {where} must be one of {', '.join(TRUE_WORDS + FALSE_WORDS)}"
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Option:
    """One option a backend reads: its name, kind, default, limits and a line of help.

    ``low`` and ``high`` bound ``int``, ``float`` and ``seconds`` values (inclusive); a
    ``seconds`` value must also be above 0. ``choices`` lists the words a ``choice`` takes.
    """

    name: str
    kind: Kind
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def parse(self, raw: object, where: str) -> Any:
        """The value ``raw`` read as this option's kind; ConfigError if it is not one."""
        if self.kind == "bool":
            return parse_bool(raw, self.name, where)
        if self.kind == "str":
            return str(raw)
        if self.kind == "choice":
            text = str(raw).strip().lower()
            if text not in self.choices:
                raise ConfigError(
                    f"{self.name}={raw!r} in {where} must be one of {', '.join(self.choices)}"
                )
            return text
        return self._number(raw, where)

    def _number(self, raw: object, where: str) -> int | float:
        what = "an integer" if self.kind == "int" else "a number"
        if isinstance(raw, bool):
            raise ConfigError(f"{self.name}={raw!r} in {where} is not {what}")
        try:
            value: int | float = int(str(raw)) if self.kind == "int" else float(str(raw))
        except ValueError:
            raise ConfigError(f"{self.name}={raw!r} in {where} is not {what}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{self.name}={raw!r} in {where} must be a finite number")
        if self.kind == "seconds" and value <= 0:
            raise ConfigError(f"{self.name}={raw!r} in {where} must be above 0 seconds")
        too_low = self.low is not None and value < self.low
        too_high = self.high is not None and value > self.high
        if too_low or too_high:
            raise ConfigError(
                f"{self.name}={_number(value)} in {where} is out of range: {self._limits()}"
            )
        return value

    def _limits(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{_number(self.low)} to {_number(self.high)}"
        if self.low is not None:
            return f"at least {_number(self.low)}"
        return f"at most {_number(self.high or 0)}"


@dataclass(frozen=True)
class OptionValues:
    """The options read from one URL and configuration: every row's value, defaults filled in.

    ``passed`` keeps, in order, the query pairs left to the client library (``passthrough``).
    """

    by_name: dict[str, Any]
    passed: list[tuple[str, str]] = field(default_factory=list)
    #: Names whose value came from the URL or configuration rather than the default.
    given: frozenset[str] = frozenset()

    def __getitem__(self, name: str) -> Any:
        return self.by_name[name]


def read_options(
    backend: str,
    table: Sequence[Option],
    url: str,
    options: Mapping[str, Any] | None = None,
    *,
    passthrough: Callable[[str], bool] | None = None,
    passthrough_name: str = "",
) -> OptionValues:
    """Read ``table``'s options from ``url``'s query, then ``options``, then the defaults.

    :param backend: the backend's name, for messages.
    :param passthrough: says which query names that no row knows belong to the client
        library; they are handed on in :attr:`OptionValues.passed` instead of refused.
    :param passthrough_name: what those names are, for the list of known names in a message
        (for example ``"redis-py's socket_timeout, ssl_*, ..."``).
    """
    rows = {row.name: row for row in table}
    masked = mask_url(url)

    def unknown(name: str, where: str) -> ConfigError:
        known = ", ".join(sorted(rows)) or "none"
        if passthrough_name:
            known += f"; and {passthrough_name}"
        return ConfigError(f"unknown {backend} option {name!r} in {where}; known: {known}")

    raw: dict[str, tuple[object, str]] = {}
    for name, value in (options or {}).items():
        if name not in rows:
            raise unknown(name, "the configuration's options")
        raw[name] = (value, "the configuration's options")
    passed: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name in seen:
            raise ConfigError(f"{name!r} is given twice in {masked}")
        seen.add(name)
        if name in rows:
            raw[name] = (value, masked)
        elif passthrough is not None and passthrough(name):
            passed.append((name, value))
        else:
            raise unknown(name, masked)
    values = {
        name: row.parse(*raw[name]) if name in raw else row.default
        for name, row in rows.items()
    }
    return OptionValues(values, passed, frozenset(raw))
