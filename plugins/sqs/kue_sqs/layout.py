"""Which SQS queues one kue queue uses: its band queues and its ``-buried`` companion.

Without bands a kue queue ``emails`` under prefix ``kue-`` is the SQS queue ``kue-emails``. With
bands ``0,100,1000`` it is three SQS queues: ``kue-emails`` (priorities 0..99), ``kue-emails-b100``
(100..999) and ``kue-emails-b1000`` (1000 and above); reserve asks the most urgent first. Buried
jobs of every band wait in ``kue-emails-buried``. Producers and consumers must agree on the bands.

On a FIFO backend (``fifo=1``) every one of these names ends in ``.fifo``, as SQS requires of FIFO
queues: ``kue-emails.fifo``, ``kue-emails-b100.fifo``, ``kue-emails-buried.fifo``. The kue queue
is still called ``emails``; a kue name that itself ends in ``.fifo`` is refused.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from kue.spi import MAX_PRIORITY, Unsupported

__all__ = ["BURIED_SUFFIX", "FIFO_SUFFIX", "MAX_NAME", "Layout"]

#: SQS queue names: 1..80 characters of letters, digits, hyphen and underscore.
MAX_NAME = 80
BURIED_SUFFIX = "-buried"
#: SQS requires the name of every FIFO queue to end in this; it counts against the 80.
FIFO_SUFFIX = ".fifo"
_VALID = re.compile(r"[A-Za-z0-9_-]+")
_LONGEST_SUFFIX = max(len(BURIED_SUFFIX), len(f"-b{MAX_PRIORITY}"))


@dataclass(frozen=True)
class Layout:
    """The naming rule of one backend: a prefix, optional band boundaries, FIFO or standard."""

    prefix: str = ""
    bands: tuple[int, ...] = ()
    fifo: bool = False

    @property
    def suffix(self) -> str:
        """What ends every SQS name of this backend: ``.fifo`` on a FIFO backend, else nothing."""
        return FIFO_SUFFIX if self.fifo else ""

    def check(self, queue: str) -> str:
        """Return ``queue`` if every SQS name derived from it is valid, else ValueError.

        A name ending in ``.fifo`` asks for a FIFO queue: on a standard backend that is
        Unsupported (the message says how to turn FIFO on); on a FIFO backend it is a ValueError,
        because kue adds the suffix itself.
        """
        if isinstance(queue, str) and queue.endswith(FIFO_SUFFIX):
            bare = queue[: -len(FIFO_SUFFIX)]
            if not self.fifo:
                # Declared in the capabilities (fifo=False): say how to get FIFO rather than
                # "bad characters".
                raise Unsupported(
                    "sqs",
                    f"FIFO queues ({queue!r}) on a standard sqs:// URL; add fifo=1 to the URL "
                    f"(or fifo = true in [tool.kue.options]) and call the queue {bare!r}: every "
                    f"queue of that backend is then an SQS FIFO queue, {bare!r} becomes "
                    f"{self.prefix + bare + FIFO_SUFFIX!r}",
                )
            raise ValueError(
                f"queue name {queue!r}: this backend has fifo=1 and adds {FIFO_SUFFIX!r} to every "
                f"SQS name itself; call the queue {bare!r}"
            )
        if not isinstance(queue, str) or not queue or not _VALID.fullmatch(self.prefix + queue):
            raise ValueError(
                f"queue name {queue!r} (with prefix {self.prefix!r}) must be letters, digits, "
                "hyphens and underscores only, as SQS queue names are"
            )
        room = MAX_NAME - _LONGEST_SUFFIX - len(self.suffix) - len(self.prefix)
        if len(queue) > room:
            raise ValueError(
                f"queue name {queue!r} is {len(queue)} characters; with prefix "
                f"{self.prefix!r} and kue's suffixes the limit is {room} (SQS allows {MAX_NAME})"
            )
        return queue

    def band_of(self, priority: int) -> int:
        """The index of the band ``priority`` falls in (0 without bands)."""
        if not self.bands:
            return 0
        return bisect.bisect_right(self.bands, priority) - 1

    def band_name(self, queue: str, band: int) -> str:
        """The SQS name of ``queue``'s band ``band``."""
        if band == 0:
            return self.prefix + queue + self.suffix
        return f"{self.prefix}{queue}-b{self.bands[band]}{self.suffix}"

    def name_for(self, queue: str, priority: int) -> str:
        """The SQS queue a job of ``priority`` goes to."""
        return self.band_name(queue, self.band_of(priority))

    def band_names(self, queue: str) -> list[str]:
        """Every band queue of ``queue``, most urgent first."""
        return [self.band_name(queue, b) for b in range(max(1, len(self.bands)))]

    def buried_name(self, queue: str) -> str:
        """The companion queue where ``queue``'s buried jobs wait."""
        return f"{self.prefix}{queue}{BURIED_SUFFIX}{self.suffix}"

    def targets(self, queues: list[str]) -> list[tuple[str, str]]:
        """``(kue queue, SQS name)`` to poll for ``queues``: band by band, most urgent first."""
        bands = max(1, len(self.bands))
        return [(q, self.band_name(q, b)) for b in range(bands) for q in queues]
