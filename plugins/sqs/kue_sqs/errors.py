"""Errors only the SQS backend raises; both derive from :class:`kue.KueError`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kue.spi import KueError

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

__all__ = ["LOST_CODES", "PutManyFailed", "SqsError", "refused_receipt"]

#: SQS error codes that mean a receipt handle no longer names a message in flight.
LOST_CODES = ("ReceiptHandleIsInvalid", "MessageNotInflight",
              "AWS.SimpleQueueService.MessageNotInflight")


def refused_receipt(code: str, message: str) -> bool:
    """True if SQS refused a receipt handle: expired, unknown, or its message not in flight."""
    if code in LOST_CODES:
        return True
    return code == "InvalidParameterValue" and "receipt" in message.lower()


class SqsError(KueError):
    """SQS refused a request for a reason kue has no better error for."""

    def __init__(self, operation: str, error: ClientError) -> None:
        detail = error.response.get("Error", {})
        self.operation = operation
        self.code = str(detail.get("Code", ""))
        super().__init__(f"SQS {operation} failed: {self.code}: {detail.get('Message', error)}")


class PutManyFailed(KueError):
    """Some jobs of a ``put_many`` were not stored even after retries; the others were.

    :param ids: the id of each item in order, None for those that were not stored.
    :param failures: the reason of each item that failed, by its index in the batch.
    """

    def __init__(self, queue: str, ids: list[str | None], failures: dict[int, str]) -> None:
        self.queue = queue
        self.ids = ids
        self.failures = failures
        shown = "; ".join(f"item {i}: {why}" for i, why in sorted(failures.items())[:5])
        sent = len(ids) - len(failures)
        super().__init__(
            f"{len(failures)} of {len(ids)} jobs were not stored on SQS queue {queue!r} after "
            f"retries ({shown}); the other {sent} were stored and their ids are in .ids, "
            "so put only the failed items again"
        )
