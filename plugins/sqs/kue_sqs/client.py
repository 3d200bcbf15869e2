"""The boto3 client, its errors in kue's terms, and queue URLs looked up once.

Imported only when an ``sqs://`` queue is opened, so ``import kue`` never imports boto3.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
import botocore.exceptions as bex
from botocore.config import Config

from kue.spi import BackendUnavailable, ConfigError, mask_url
from kue_sqs.errors import SqsError
from kue_sqs.message import SQS_MAX_MESSAGE
from kue_sqs.settings import SqsSettings

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

__all__ = ["QueueDirectory", "QueueInfo", "error_code", "guarded", "make_client"]

#: Attributes of queues kue creates: the largest messages, and 14 days for buried jobs.
CREATE_ATTRIBUTES = {
    "MaximumMessageSize": str(SQS_MAX_MESSAGE),
    "MessageRetentionPeriod": "1209600",
}
#: Added for FIFO queues. Deduplication is by the id kue sends (the job id), never by content:
#: two jobs with the same body are two jobs.
FIFO_ATTRIBUTES = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
_UNAVAILABLE = ("ServiceUnavailable", "InternalError", "InternalFailure", "RequestThrottled",
                "ThrottlingException")


def make_client(settings: SqsSettings, url: str) -> SQSClient:
    """A boto3 SQS client for ``settings``; a missing region is a ConfigError naming the URL."""
    session = boto3.session.Session(
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        region_name=settings.region,
    )
    config = Config(
        connect_timeout=5,
        read_timeout=settings.wait + 10,
        retries={"mode": "standard", "total_max_attempts": 3},
        max_pool_connections=32,
    )
    try:
        return session.client("sqs", endpoint_url=settings.endpoint, config=config)
    except bex.NoRegionError as exc:
        raise ConfigError(
            f"{mask_url(url)} names no AWS region: add ?region=us-east-1 (for example) to the "
            "URL or set AWS_DEFAULT_REGION"
        ) from exc


def error_code(exc: bex.ClientError) -> str:
    """The SQS error code of a ClientError."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def guarded(url: str, operation: str) -> Iterator[None]:
    """Turn botocore's connection and server errors into kue's errors, naming ``url``."""
    try:
        yield
    except (bex.ConnectionError, bex.HTTPClientError) as exc:
        raise BackendUnavailable(mask_url(url), f"{operation} failed: {exc}") from exc
    except bex.NoCredentialsError as exc:
        raise ConfigError(
            f"no AWS credentials for {mask_url(url)}: configure boto3's usual chain "
            "(environment, ~/.aws, instance role) or put ACCESS_KEY:SECRET@ in the URL"
        ) from exc
    except bex.ClientError as exc:
        if error_code(exc) in _UNAVAILABLE:
            raise BackendUnavailable(mask_url(url), f"{operation} failed: {exc}") from exc
        raise SqsError(operation, exc) from exc


@dataclass(frozen=True)
class QueueInfo:
    """An SQS queue's URL and the largest message it takes."""

    url: str
    max_message: int


class QueueDirectory:
    """SQS queue URLs by name, looked up (and created, if allowed) once and cached."""

    def __init__(self, client: SQSClient, settings: SqsSettings, url: str) -> None:
        self._client = client
        self._create = settings.create
        self._attributes = dict(CREATE_ATTRIBUTES)
        if settings.fifo:
            self._attributes.update(FIFO_ATTRIBUTES)
        self._url = url
        self._lock = threading.Lock()
        self._known: dict[str, QueueInfo] = {}

    def get(self, name: str) -> QueueInfo:
        """The queue called ``name``; missing and not allowed to create: ConfigError."""
        info = self._known.get(name)
        if info is not None:
            return info
        with self._lock:
            info = self._known.get(name)
            if info is None:
                info = self._known[name] = self._lookup(name)
            return info

    def _lookup(self, name: str) -> QueueInfo:
        try:
            with guarded(self._url, "GetQueueUrl"):
                queue_url = self._client.get_queue_url(QueueName=name)["QueueUrl"]
        except SqsError as exc:
            if exc.code not in _MISSING:
                raise
            if not self._create:
                raise ConfigError(
                    f"SQS queue {name!r} does not exist at {mask_url(self._url)}; create it "
                    f"({', '.join(f'{k}={v}' for k, v in self._attributes.items())}) or add "
                    "create=1 to the URL"
                ) from exc
            with guarded(self._url, "CreateQueue"):
                queue_url = self._client.create_queue(
                    QueueName=name, Attributes=self._attributes  # type: ignore[arg-type]
                )["QueueUrl"]
        with guarded(self._url, "GetQueueAttributes"):
            attrs = self._client.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["MaximumMessageSize"]
            ).get("Attributes", {})
        return QueueInfo(queue_url, int(attrs.get("MaximumMessageSize", SQS_MAX_MESSAGE)))
