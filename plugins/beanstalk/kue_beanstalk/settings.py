"""Where the server is and how long to wait for it, from ``beanstalk://host:port`` and options.

``beanstalk://HOST:PORT?socket_timeout=10&connect_timeout=5``: both options are seconds, also
accepted in configuration (``[tool.kue.options]``); the URL wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kue.spi import ConfigError, Option, mask_url, read_options

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "OPTIONS", "SCHEME", "BeanstalkSettings"]

#: The URL scheme and entry-point name.
SCHEME = "beanstalk"
#: beanstalkd's own default port.
DEFAULT_PORT = 11300
#: The host when the URL names none.
DEFAULT_HOST = "127.0.0.1"

#: The options a beanstalk URL or configuration may set.
OPTIONS = (
    Option("socket_timeout", "seconds", 10.0,
           "seconds to wait for a reply (added to a reserve's own wait)"),
    Option("connect_timeout", "seconds", 5.0, "seconds to wait for a connection to open"),
)


@dataclass(frozen=True)
class BeanstalkSettings:
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
    socket_timeout: float = OPTIONS[0].default
    connect_timeout: float = OPTIONS[1].default

    @property
    def masked_url(self) -> str:
        """The URL fit for messages: any password replaced by ``***``."""
        return mask_url(self.url)

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any] | None = None) -> BeanstalkSettings:
        """Parse ``beanstalk://host:port``; the query or ``options`` may set the two timeouts."""
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
        if parts.path not in ("", "/"):
            raise ConfigError(
                f"a beanstalkd URL has no path (tubes are queue names), got {masked!r}; "
                "write it as beanstalk://HOST:PORT"
            )
        values = read_options(SCHEME, OPTIONS, url, options)
        return cls(
            url=url,
            host=parts.hostname or DEFAULT_HOST,
            port=DEFAULT_PORT if port is None else port,
            socket_timeout=values["socket_timeout"],
            connect_timeout=values["connect_timeout"],
        )

