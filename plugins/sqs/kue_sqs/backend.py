"""kue's verbs on Amazon SQS, mapped as honestly as SQS allows.

- ``put``: SendMessage; priority and ttr travel in the ``kue`` message attribute
  (:mod:`kue_sqs.codec`). ``put_many``: SendMessageBatch in chunks of at most 10 messages and
  1 MiB, retrying only the entries that failed.
- ``reserve``: ReceiveMessage of one message, long polling (at most ``wait`` s per call, never past
  the caller's timeout), the most urgent band first. The visibility timeout is the job's ttr;
  attempts come from ApproximateReceiveCount plus the attempts carried by a re-sent message.
- ``touch``: ChangeMessageVisibility to the ttr. ``release`` without a delay and with the same
  priority: ChangeMessageVisibility 0. ``release`` with a delay or a new priority: the job is
  re-sent (SendMessage with DelaySeconds, then DeleteMessage), because SQS cannot change a
  message's attributes and because a message hidden by ChangeMessageVisibility counts as
  in flight, not as delayed, in the queue's statistics.
- ``bury``: send to the companion ``<queue>-buried`` queue, then delete. ``kick``: receive from
  the companion, send back to the band of the job's priority, delete. Kicking *delayed* jobs is
  impossible: SQS hands out no message before its delay ends, so ``kick`` with nothing buried
  and delayed jobs waiting raises :class:`kue.Unsupported`.
- Delays over SQS's native 900 s are emulated: the message is sent with the native maximum and
  carries its due time; a consumer that receives it early hides it again with
  ChangeMessageVisibility until due (or re-sends it, if SQS refuses so long a visibility), and
  that early receive does not count as an attempt. Clocks of producers and consumers must agree
  (NTP); once received early, the job counts as reserved (in flight) in ``stats`` until due.
- ``stats``: the Approximate* queue attributes. They are approximate on real SQS (eventually
  consistent, about a minute behind); moto reports exact counts.
- ``peek``: unsupported. Receiving a message is not a copy: it hides the message and counts an
  attempt.

Lost reservations: SQS may accept a stale receipt handle, and moto always does (it deletes the
message with any receipt handle the message ever had). So this backend remembers its own
reservations (:mod:`kue_sqs.leases`) and raises ReservationLost for one whose ttr ran out or that
was already finished; a receipt it does not know is left to SQS to judge.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kue.backend import Capabilities, JobInfo, JobState, PutItem, QueueStats, Reservation
from kue.errors import JobTooBig, ReservationLost, Unsupported
from kue.job import DEFAULT_TTR
from kue_sqs.client import QueueDirectory, QueueInfo, guarded, make_client
from kue_sqs.codec import (
    ATTRIBUTE,
    ATTRIBUTE_TYPE,
    MAX_BODY,
    SQS_MAX_MESSAGE,
    Meta,
    decode_body,
    decode_meta,
    encode_body,
    encode_meta,
    max_body_for,
    message_size,
)
from kue_sqs.errors import PutManyFailed, SqsError
from kue_sqs.layout import Layout
from kue_sqs.leases import Leases
from kue_sqs.settings import SqsSettings

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import (
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

__all__ = ["CONTRACT_JOBS", "MAX_VISIBILITY", "NATIVE_MAX_DELAY", "SqsBackend", "capabilities_for"]

#: SQS's own limits: the longest DelaySeconds and the longest visibility timeout.
NATIVE_MAX_DELAY = 900
MAX_VISIBILITY = 43_200
#: Jobs the contract suite's concurrency tests should use: moto slows down past a few hundred.
CONTRACT_JOBS = 200
#: A long poll ends this long before the caller's deadline; shorter waits poll this often.
POLL_MARGIN = 0.25
TAIL_POLL = 0.1
#: How often put_many sends the entries SQS failed (not the sender's fault) before giving up.
BATCH_RETRIES = 3
_LOST_CODES = ("ReceiptHandleIsInvalid", "MessageNotInflight",
               "AWS.SimpleQueueService.MessageNotInflight")


def capabilities_for(settings: SqsSettings) -> Capabilities:
    """What an SQS backend with these settings offers; priority only with bands."""
    extra: dict[str, object] = {
        "contract_jobs": CONTRACT_JOBS,
        "stats": "approximate (SQS's Approximate* queue attributes)",
        "native_max_delay": NATIVE_MAX_DELAY,
        "order": "none: SQS standard queues are best-effort ordered",
    }
    if settings.bands:
        extra["order"] = (
            f"by priority band only (band boundaries {list(settings.bands)}); no order "
            "within a band"
        )
    return Capabilities(
        name="sqs",
        priority=bool(settings.bands),
        fifo=False,
        delay=True,
        bury=True,
        kick_delayed=False,  # SQS cannot reach a message before its delay ends
        peek=False,
        durable=True,
        shared=True,
        max_body=MAX_BODY,
        max_delay=float(MAX_VISIBILITY),
        min_ttr=1.0,
        max_ttr=float(MAX_VISIBILITY),
        whole_seconds=True,
        max_batch=10,
        extra=extra,
    )


@dataclass(frozen=True)
class _Outgoing:
    """One message ready to send: body text, attribute value, native delay, size."""

    index: int
    text: str
    meta: str
    delay: int
    size: int

    def attributes(self) -> dict[str, MessageAttributeValueTypeDef]:
        """The MessageAttributes parameter for this message."""
        return {ATTRIBUTE: {"DataType": ATTRIBUTE_TYPE, "StringValue": self.meta}}


def _lost(exc: SqsError) -> bool:
    """True if SQS refused a receipt handle: expired, unknown, or its message not in flight."""
    if exc.code in _LOST_CODES:
        return True
    return exc.code == "InvalidParameterValue" and "receipt" in str(exc).lower()


def _meta_value(msg: MessageTypeDef) -> str | None:
    """The ``kue`` attribute's value of a received message, if it has one."""
    attributes = msg.get("MessageAttributes")
    if not attributes or ATTRIBUTE not in attributes:
        return None
    return attributes[ATTRIBUTE].get("StringValue")


def _chunks(outs: list[_Outgoing]) -> Iterator[list[_Outgoing]]:
    """Batches of at most 10 messages and at most 1 MiB in all."""
    chunk: list[_Outgoing] = []
    size = 0
    for out in outs:
        if chunk and (len(chunk) == 10 or size + out.size > SQS_MAX_MESSAGE):
            yield chunk
            chunk, size = [], 0
        chunk.append(out)
        size += out.size
    if chunk:
        yield chunk


class SqsBackend:
    """A kue backend on Amazon SQS standard queues (or moto, ElasticMQ); thread-safe.

    :param settings: parsed ``sqs://`` settings (:func:`kue_sqs.settings.parse_settings`).
    :param url: the URL, for error messages (masked there).
    :param client: a boto3 SQS client to use instead of making one.
    :param native_max_delay: the longest delay SQS does itself (900 s); longer ones are
        emulated. Tests shorten it to see the emulation work in seconds.
    :param wall_clock: epoch seconds, for due times of emulated delays.
    """

    def __init__(
        self,
        settings: SqsSettings,
        *,
        url: str = "sqs://",
        client: SQSClient | None = None,
        native_max_delay: int = NATIVE_MAX_DELAY,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= native_max_delay <= NATIVE_MAX_DELAY:
            raise ValueError(
                f"native_max_delay {native_max_delay} is outside SQS's 0..{NATIVE_MAX_DELAY} s"
            )
        self.url = url
        self.settings = settings
        self.capabilities = capabilities_for(settings)
        self._client = client if client is not None else make_client(settings, url)
        self._queues = QueueDirectory(self._client, settings, url)
        self._layout = Layout(settings.prefix, settings.bands)
        self._leases = Leases()
        self._native = native_max_delay
        self._wall = wall_clock
        self._guess: dict[str, int] = {}

    # -- putting ---------------------------------------------------------------------------

    def _prepare(
        self, info: QueueInfo, index: int, body: bytes, priority: int, delay: float,
        ttr: float, *, base: int = 0, job_id: str | None = None,
    ) -> _Outgoing:
        """Encode one message; JobTooBig if it does not fit the queue. Sends nothing."""
        text, encoding = encode_body(body)
        seconds = math.ceil(delay)
        due = None
        if seconds > self._native:
            due, seconds = self._wall() + delay, self._native
        meta = encode_meta(Meta(priority, math.ceil(ttr), base, due, job_id, encoding))
        size = message_size(text, meta)
        if size > info.max_message:
            raise JobTooBig(len(body), max_body_for(info.max_message), "sqs")
        return _Outgoing(index, text, meta, seconds, size)

    def _send(self, url: str, out: _Outgoing) -> str:
        with guarded(self.url, "SendMessage"):
            return self._client.send_message(
                QueueUrl=url, MessageBody=out.text, DelaySeconds=out.delay,
                MessageAttributes=out.attributes(),
            )["MessageId"]

    def put(self, queue: str, body: bytes, priority: int, delay: float, ttr: float) -> str:
        """Send one message to the band of ``priority``; returns its MessageId as the job id."""
        info = self._queues.get(self._layout.name_for(self._layout.check(queue), priority))
        return self._send(info.url, self._prepare(info, 0, body, priority, delay, ttr))

    def put_many(self, queue: str, items: Sequence[PutItem]) -> list[str]:
        """SendMessageBatch in chunks of 10 (and 1 MiB); every item is encoded before sending.

        Entries SQS fails through no fault of the sender are sent again, up to
        :data:`BATCH_RETRIES` times; any still failing raise :class:`PutManyFailed`, which
        carries the ids of the items that were stored.
        """
        self._layout.check(queue)
        groups: dict[str, list[_Outgoing]] = {}
        for index, item in enumerate(items):
            info = self._queues.get(self._layout.name_for(queue, item.priority))
            out = self._prepare(info, index, item.body, item.priority, item.delay, item.ttr)
            groups.setdefault(info.url, []).append(out)
        ids: list[str | None] = [None] * len(items)
        failures: dict[int, str] = {}
        for url, outs in groups.items():
            for chunk in _chunks(outs):
                self._send_batch(url, chunk, ids, failures)
        if failures:
            raise PutManyFailed(queue, ids, failures)
        return [job_id for job_id in ids if job_id is not None]

    def _send_batch(
        self, url: str, chunk: list[_Outgoing], ids: list[str | None], failures: dict[int, str]
    ) -> None:
        pending = chunk
        for attempt in range(BATCH_RETRIES):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(out.index), "MessageBody": out.text, "DelaySeconds": out.delay,
                 "MessageAttributes": out.attributes()}
                for out in pending
            ]
            with guarded(self.url, "SendMessageBatch"):
                response = self._client.send_message_batch(QueueUrl=url, Entries=entries)
            for ok in response.get("Successful", []):
                ids[int(ok["Id"])] = ok["MessageId"]
            by_index = {out.index: out for out in pending}
            retry = []
            for failed in response.get("Failed", []):
                index = int(failed["Id"])
                why = f"{failed.get('Code', '')}: {failed.get('Message', '')}"
                if failed.get("SenderFault") or attempt == BATCH_RETRIES - 1:
                    failures[index] = why
                else:
                    retry.append(by_index[index])
            if not retry:
                return
            pending = retry
            time.sleep(0.05 * 2**attempt)

    # -- reserving -------------------------------------------------------------------------

    def _receive(
        self, url: str, wait: int, visibility: int, count: int = 1
    ) -> list[MessageTypeDef]:
        with guarded(self.url, "ReceiveMessage"):
            return self._client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=count, WaitTimeSeconds=wait,
                VisibilityTimeout=visibility, MessageAttributeNames=[ATTRIBUTE],
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])

    def _visibility(self, url: str, receipt: str, seconds: int) -> None:
        with guarded(self.url, "ChangeMessageVisibility"):
            self._client.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=seconds
            )

    def _delete(self, url: str, receipt: str) -> None:
        with guarded(self.url, "DeleteMessage"):
            self._client.delete_message(QueueUrl=url, ReceiptHandle=receipt)

    def _try(
        self, queue: str, info: QueueInfo, wait: int, deadline: float | None
    ) -> Reservation | None:
        """One ReceiveMessage on one SQS queue; the reservation, or None.

        A receive that does not wait answers at once, so only a long poll (``wait`` > 0) can
        answer after ``deadline``, and only its visibility may have started well after the
        request did: its message gets the ttr again from a known time.
        """
        started = time.monotonic()
        guess = self._guess.get(info.url, int(DEFAULT_TTR))
        for msg in self._receive(info.url, wait, guess):
            if wait == 0:
                return self._admit(queue, info, msg, started, guess, None)
            return self._admit(queue, info, msg, started, 0, deadline)
        return None

    def _admit(
        self, queue: str, info: QueueInfo, msg: MessageTypeDef, started: float, guess: int,
        deadline: float | None,
    ) -> Reservation | None:
        """Turn a received message into a reservation, or hide it if it came early or late."""
        receipt = msg["ReceiptHandle"]
        try:
            meta = decode_meta(_meta_value(msg))
        except ValueError:
            meta = Meta()  # a message someone else sent: defaults, body as it is
        if meta.due is not None and meta.due > self._wall():
            self._hide_until_due(info, msg, meta)
            return None
        if deadline is not None and time.monotonic() > deadline:
            self._visibility(info.url, receipt, 0)  # too late for this caller: give it back
            return None
        try:
            body = decode_body(msg["Body"], meta.encoding)
        except ValueError:
            body = msg["Body"].encode()
        ttr = max(1, min(meta.ttr, MAX_VISIBILITY))
        if ttr != guess:  # guess 0: the visibility must be set again in any case
            started = time.monotonic()
            self._visibility(info.url, receipt, ttr)
            self._guess[info.url] = ttr
        system = msg.get("Attributes")
        count = int(system["ApproximateReceiveCount"]) if system else 1
        early = 1 if meta.due is not None else 0
        self._leases.add(receipt, info.url, started, ttr)
        return Reservation(
            queue=queue,
            id=meta.job_id or msg["MessageId"],
            body=body,
            priority=meta.priority,
            attempts=max(1, meta.base + count - early),
            ttr=float(ttr),
            receipt=receipt,
        )

    def _hide_until_due(self, info: QueueInfo, msg: MessageTypeDef, meta: Meta) -> None:
        """An emulated delay, received early: hide the message until due (not an attempt)."""
        assert meta.due is not None
        left = meta.due - self._wall()
        seconds = math.ceil(left)
        if seconds <= MAX_VISIBILITY:
            try:
                self._visibility(info.url, msg["ReceiptHandle"], seconds)
                return
            except SqsError as exc:
                if exc.code != "InvalidParameterValue" or _lost(exc):
                    raise
        # SQS refused so long a visibility (its 12 h cap counts from the receive, moto's from
        # the send): send the rest of the delay as a new message, then drop this one.
        job_id = meta.job_id or msg["MessageId"]
        due = meta.due if seconds > self._native else None
        new = Meta(meta.priority, meta.ttr, meta.base, due, job_id, meta.encoding)
        text, value = msg["Body"], encode_meta(new)
        out = _Outgoing(0, text, value, min(seconds, self._native), message_size(text, value))
        self._send(info.url, out)
        try:
            self._delete(info.url, msg["ReceiptHandle"])
        except SqsError as exc:
            if not _lost(exc):
                raise

    def reserve(self, queues: Sequence[str], timeout: float | None) -> Reservation | None:
        """Receive one message, the most urgent band first, never returning after ``timeout``.

        Every queue is asked once without waiting; then one queue is long polled (several:
        each in turn for 1 s) for as long as the timeout leaves room, and the last part of the
        timeout, too short for a long poll, is polled every 0.1 s.
        """
        if not queues:
            raise ValueError("reserve needs at least one queue name")
        names = [self._layout.check(q) for q in queues]
        targets = [(q, self._queues.get(name)) for q, name in self._layout.targets(names)]
        deadline = None if timeout is None else time.monotonic() + timeout
        longest = self.settings.wait if len(targets) == 1 else 1
        while True:
            for queue, info in targets:
                job = self._try(queue, info, 0, deadline)
                if job is not None:
                    return job
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            if left is not None and left < 1 + POLL_MARGIN:
                time.sleep(min(TAIL_POLL, left))
                continue
            for queue, info in targets:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left < 1 + POLL_MARGIN:
                    break
                wait = longest if left is None else min(longest, int(left - POLL_MARGIN))
                job = self._try(queue, info, wait, deadline)
                if job is not None:
                    return job

    # -- acting on a reservation -----------------------------------------------------------

    def _where(self, job: Reservation) -> str:
        """The SQS queue URL ``job``'s message lives in; ReservationLost if no longer held."""
        lease = self._leases.check(job)
        if lease is not None:
            return lease.url
        return self._queues.get(self._layout.name_for(job.queue, job.priority)).url

    def _finish(self, job: Reservation, url: str) -> None:
        """Delete the reserved message; a refused receipt handle is ReservationLost."""
        try:
            self._delete(url, job.receipt)
        except SqsError as exc:
            if _lost(exc):
                self._leases.finish(job.receipt)
                raise ReservationLost(job.queue, job.id, f"SQS said {exc.code}") from exc
            raise
        self._leases.finish(job.receipt)

    def _resend(self, job: Reservation, dest: str, priority: int, delay: float) -> None:
        """Send ``job`` as a new message to SQS queue ``dest``, keeping its id and attempts."""
        info = self._queues.get(dest)
        self._send(info.url, self._prepare(
            info, 0, job.body, priority, delay, job.ttr, base=job.attempts, job_id=job.id
        ))

    def delete(self, job: Reservation) -> None:
        """DeleteMessage; ReservationLost if this reservation ran out or was finished."""
        self._finish(job, self._where(job))

    def release(self, job: Reservation, priority: int, delay: float) -> None:
        """Visible again now (ChangeMessageVisibility 0), or re-sent with a delay or priority."""
        url = self._where(job)
        if priority == job.priority and delay <= 0:
            try:
                self._visibility(url, job.receipt, 0)
            except SqsError as exc:
                if _lost(exc):
                    self._leases.finish(job.receipt)
                    raise ReservationLost(job.queue, job.id, f"SQS said {exc.code}") from exc
                raise
            self._leases.finish(job.receipt)
            return
        self._resend(job, self._layout.name_for(job.queue, priority), priority, delay)
        self._finish(job, url)

    def bury(self, job: Reservation, priority: int | None) -> None:
        """Send the job to ``<queue>-buried``, then delete the reserved message."""
        url = self._where(job)
        keep = job.priority if priority is None else priority
        self._resend(job, self._layout.buried_name(job.queue), keep, 0)
        self._finish(job, url)

    def touch(self, job: Reservation) -> None:
        """ChangeMessageVisibility to the full ttr from now."""
        url = self._where(job)
        ttr = math.ceil(job.ttr)
        started = time.monotonic()
        try:
            self._visibility(url, job.receipt, ttr)
        except SqsError as exc:
            if _lost(exc):
                self._leases.finish(job.receipt)
                raise ReservationLost(job.queue, job.id, f"SQS said {exc.code}") from exc
            raise
        self._leases.renew(job.receipt, started, ttr)

    # -- looking and kicking ---------------------------------------------------------------

    def kick(self, queue: str, n: int) -> int:
        """Move up to n jobs from ``<queue>-buried`` back to their bands; returns how many.

        With nothing buried and delayed jobs waiting, raises Unsupported: SQS cannot hand out
        a message before its delay ends.
        """
        buried = self._queues.get(self._layout.buried_name(self._layout.check(queue)))
        moved = 0
        while moved < n:
            msgs = self._receive(buried.url, 0, 30, min(10, n - moved))
            if not msgs:
                break
            for msg in msgs:
                meta = decode_meta(_meta_value(msg))
                job_id = meta.job_id or msg["MessageId"]
                back = Meta(meta.priority, meta.ttr, meta.base, None, job_id, meta.encoding)
                text, meta_value = msg["Body"], encode_meta(back)
                dest = self._queues.get(self._layout.name_for(queue, meta.priority))
                self._send(dest.url, _Outgoing(0, text, meta_value, 0,
                                               message_size(text, meta_value)))
                try:
                    self._delete(buried.url, msg["ReceiptHandle"])
                except SqsError as exc:
                    if not _lost(exc):
                        raise
                moved += 1
        if moved == 0 and self.stats(queue).delayed:
            raise Unsupported(
                "sqs", "kicking delayed jobs (SQS hands out no message before its delay ends)"
            )
        return moved

    def peek(self, queue: str, state: JobState) -> JobInfo | None:
        """Unsupported: an SQS receive hides the message and counts an attempt; not a copy."""
        raise Unsupported("sqs", "peek (receiving an SQS message is not a copy)")

    def _counts(self, name: str) -> dict[str, int]:
        info = self._queues.get(name)
        with guarded(self.url, "GetQueueAttributes"):
            attrs = self._client.get_queue_attributes(
                QueueUrl=info.url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesDelayed",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            ).get("Attributes", {})
        return {key: int(value) for key, value in attrs.items()}

    def stats(self, queue: str) -> QueueStats:
        """Approximate counts from SQS's queue attributes (exact on moto).

        ready: visible messages; delayed: messages in their native delay; reserved: messages in
        flight, including emulated delays received early; buried: the companion queue.
        """
        ready = delayed = reserved = 0
        for name in self._layout.band_names(self._layout.check(queue)):
            c = self._counts(name)
            ready += c.get("ApproximateNumberOfMessages", 0)
            delayed += c.get("ApproximateNumberOfMessagesDelayed", 0)
            reserved += c.get("ApproximateNumberOfMessagesNotVisible", 0)
        b = self._counts(self._layout.buried_name(queue))
        return QueueStats(ready=ready, delayed=delayed, reserved=reserved,
                          buried=sum(b.values()))

    def close(self) -> None:
        """Close the boto3 client's connections."""
        self._client.close()
