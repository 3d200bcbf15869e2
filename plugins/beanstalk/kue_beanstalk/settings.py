"""Where the server is and how long to wait for it, from ``beanstalk://host:port`` and options."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kue.config import mask_url
from kue.errors import ConfigError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "SCHEME", "Settings"]

#: The URL scheme and entry-point name.
SCHEME = "beanstalk"
#: beanstalkd's own default port.
DEFAULT_PORT = 11300
#: The host when the URL names none.
DEFAULT_HOST = "127.0.0.1"

_TIMEOUTS = {"socket_timeout": 10.0, "connect_timeout": 5.0}


@dataclass(frozen=True)
class Settings:
    """A beanstalkd address and the timeouts used with it.

    :param url: the URL as given (may hold credentials; show ``masked_url`` instead).
    :param host: the server's host name or address.
    :param port: the server's TCP port.
    :param socket_timeout: seconds to wait for a reply (added to a reserve's own wait).
    :param connect_timeout: seconds to wait for a connection to open.
    """

    url: str
    host: str
    port: int
    socket_timeout: float = _TIMEOUTS["socket_timeout"]
    connect_timeout: float = _TIMEOUTS["connect_timeout"]

    @property
    def masked_url(self) -> str:
        """The URL fit for messages: any password replaced by ``***``."""
        return mask_url(self.url)

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any] | None = None) -> Settings:
        """Parse ``beanstalk://host:port``; ``options`` may set the two timeouts (seconds)."""
        masked = mask_url(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"cannot read the beanstalkd URL {masked!r}: {exc}") from exc
        if parts.scheme.lower() != SCHEME:
            raise ConfigError(
                f"the beanstalk backend takes beanstalk://HOST:PORT URLs, got {masked!r}"
            )
        if parts.path not in ("", "/") or parts.query:
            raise ConfigError(
                f"a beanstalkd URL has no path or query (tubes are queue names), got {masked!r}; "
                "write it as beanstalk://HOST:PORT"
            )
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(_TIMEOUTS))
        if unknown:
            raise ConfigError(
                f"unknown beanstalk option(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(_TIMEOUTS))}"
            )
        timeouts = {name: _seconds(name, opts.get(name, default)) for name, default in
                    _TIMEOUTS.items()}
        return cls(
            url=url,
            host=parts.hostname or DEFAULT_HOST,
            port=DEFAULT_PORT if port is None else port,
            **timeouts,
        )


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"beanstalk option {name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"beanstalk option {name} must be a positive number of seconds, "
                          f"got {value!r}")
    return float(value)
