"""kue's verbs on Amazon SQS, mapped as honestly as SQS allows.

- ``put``: SendMessage; priority and ttr travel in the ``kue`` message attribute
  (:mod:`kue_sqs.message`). ``put_many``: SendMessageBatch in chunks of at most 10 messages and
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
  carries its due time; a consumer that receives it early sends the rest of the delay as a new
  message (natively once 900 s or less are left) and deletes the early one, so that early
  receive is no attempt, and every message's ApproximateReceiveCount counts attempts alone,
  whether or not a consumer came by before the job was due. Clocks of producers and consumers
  must agree (NTP).
- ``stats``: the Approximate* queue attributes. They are approximate on real SQS (eventually
  consistent, about a minute behind); moto reports exact counts.
- ``peek``: unsupported. Receiving a message is not a copy: it hides the message and counts an
  attempt.

FIFO queues (``fifo=1``): every SQS name ends in ``.fifo``; kue chooses each job's id (a UUID)
and sends it as the MessageDeduplicationId, so a put that reaches SQS twice within its 5-minute
deduplication window (a retried request) is stored once. Re-sent copies (bury, kick, a release
with a new priority) get a deduplication id of their own, derived from the receipt handle they
replace: SQS remembers a deduplication id for 5 minutes even after its message is deleted, so
reusing the job id would silently drop them. The MessageGroupId is the kue queue's name
(``fifo_group=queue``: put order, one job of a queue in flight at a time) or the job id
(``fifo_group=job``: parallel, no order). FIFO queues take no per-message DelaySeconds, so
``put`` with a delay raises :class:`kue.Unsupported` before sending; ``release`` with a delay (the
worker's retry backoff) keeps the message in flight with ChangeMessageVisibility, which holds its
place at the head of its group.

Lost reservations: SQS may accept a stale receipt handle, and moto always does (it deletes the
message with any receipt handle the message ever had). So this backend remembers its own
reservations (:mod:`kue_sqs.leases`) and raises ReservationLost for one whose ttr ran out or that
was already finished; a receipt it does not know is left to SQS to judge.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kue.spi import (
    DEFAULT_TTR,
    Ack,
    Backoff,
    BatchReply,
    Capabilities,
    JobInfo,
    JobState,
    JobTooBig,
    PutItem,
    QueueStats,
    Reservation,
    ReservationLost,
    Unsupported,
    check_reserve_n,
)
from kue_sqs.batches import Batches
from kue_sqs.client import QueueDirectory, QueueInfo, guarded, make_client
from kue_sqs.errors import PutManyFailed, SqsError, refused_receipt
from kue_sqs.layout import BURIED_SUFFIX, FIFO_SUFFIX, Layout
from kue_sqs.leases import Leases
from kue_sqs.message import (
    ATTRIBUTE,
    ATTRIBUTE_TYPE,
    MAX_BODY,
    SQS_MAX_MESSAGE,
    Meta,
    body_to_text,
    decode_meta,
    encode_meta,
    max_body_for,
    message_size,
    text_to_body,
)
from kue_sqs.settings import SqsSettings

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ListQueuesRequestTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

__all__ = [
    "MAX_VISIBILITY",
    "NATIVE_MAX_DELAY",
    "SqsBackend",
    "capabilities_for",
    "resent_dedup_id",
]

#: SQS's own limits: the longest DelaySeconds and the longest visibility timeout.
NATIVE_MAX_DELAY = 900
MAX_VISIBILITY = 43_200
#: Seconds of SQS's 12 hours a reservation leaves for its receive: the visibility is counted
#: from the receive, so a ttr of the full 12 hours set just after it would be refused.
TTR_MARGIN = 60
#: A long poll ends this long before the caller's deadline; shorter waits poll this often.
POLL_MARGIN = 0.25
TAIL_POLL = 0.1
#: How often put_many sends the entries SQS failed (not the sender's fault) before giving up.
BATCH_RETRIES = 3


def capabilities_for(settings: SqsSettings) -> Capabilities:
    """What an SQS backend with these settings offers.

    Priority only with bands. Put order (``fifo``) only on FIFO queues with one message group
    per kue queue, and then a reserved job holds back the rest of its queue (``parallel``
    False). FIFO queues take no per-message delay, so ``delay`` is False there.
    """
    extra: dict[str, object] = {
        "stats": "approximate (SQS's Approximate* queue attributes)",
        "native_max_delay": NATIVE_MAX_DELAY,
        "order": "none: SQS standard queues are best-effort ordered",
    }
    if settings.bands:
        extra["order"] = (
            f"by priority band only (band boundaries {list(settings.bands)}); no order "
            "within a band"
        )
    ordered = settings.fifo and settings.fifo_group == "queue"
    if settings.fifo:
        extra.update(_fifo_extra(settings, ordered))
        del extra["native_max_delay"]
    return Capabilities(
        name="sqs",
        priority=bool(settings.bands),
        fifo=ordered,
        parallel=not ordered,  # a message in flight holds back the rest of its message group
        delay=not settings.fifo,  # FIFO queues take no per-message DelaySeconds
        release_delay=True,  # FIFO: the released message stays in flight for the delay
        bury=True,
        # Standard: SQS cannot reach a message before its delay ends. FIFO: nothing is delayed.
        kick_delayed=False,
        peek=False,
        durable=True,
        shared=True,
        max_body=MAX_BODY,
        # FIFO: the longest a release can hold a job back (a visibility timeout); put takes none.
        max_delay=float(MAX_VISIBILITY),
        min_ttr=1.0,
        max_ttr=float(MAX_VISIBILITY - TTR_MARGIN),
        whole_seconds=True,
        # Whole-second delays and visibility timeouts; a reserve over several queues long
        # polls each in turn for 1 s.
        timing_tolerance=1.0,
        max_batch=10,
        # Batches need a give-back that keeps the job's place and counts no attempt: a FIFO
        # queue in put order has neither a re-sent copy (it joins the back) nor a visible-again
        # message (SQS counts the receive).
        reserve_many=not ordered,
        max_reserve=10,
        extra=extra,
    )


def _fifo_extra(settings: SqsSettings, ordered: bool) -> dict[str, object]:
    """The ``extra`` entries of a FIFO backend: its group setting, order, dedup and delays."""
    within = " within a band" if settings.bands else ""
    if ordered:
        order = (
            f"put order{within} (one SQS message group per kue queue{within and ' and band'}); "
            "a job released with its own priority keeps its place, a kicked job or one "
            "released with another priority joins the back"
        )
    else:
        order = "none: each job is its own SQS message group and SQS orders only within a group"
    if settings.bands:
        order = f"by priority band (band boundaries {list(settings.bands)}); {order}"
    extra: dict[str, object] = {
        "order": order,
        "fifo_group": settings.fifo_group,
        "dedup": "the job id is the MessageDeduplicationId: a put SQS receives twice within "
                 "5 minutes is stored once",
        "delays": "put takes no delay (SQS FIFO has no per-message delay); a release with a "
                  "delay keeps the job in flight (counted as reserved) for the delay"
                  + (", holding back its queue" if ordered else ""),
    }
    return extra


def resent_dedup_id(job_id: str, receipt: str) -> str:
    """The MessageDeduplicationId of a copy re-sent in place of the message ``receipt`` names.

    Not the job id: SQS keeps a deduplication id for 5 minutes even after its message is
    deleted, and would silently drop a kicked or re-released copy sent within that time. Derived
    from the receipt handle, so sending the same copy again (a retried request, a retried bury)
    is still stored once. At most 36 + 1 + 32 characters of SQS's allowed 128.
    """
    digest = hashlib.sha256(receipt.encode()).hexdigest()[:32]
    return f"{job_id}-{digest}"


@dataclass(frozen=True)
class _Outgoing:
    """One message ready to send: body text, attribute value, native delay, size.

    On a FIFO queue also its job id (kue's choice, returned by put), message group and
    deduplication id; on a standard queue those are None and the job id is SQS's MessageId.
    """

    index: int
    text: str
    meta: str
    delay: int
    size: int
    job_id: str | None = None
    group: str | None = None
    dedup: str | None = None

    def attributes(self) -> dict[str, MessageAttributeValueTypeDef]:
        """The MessageAttributes parameter for this message."""
        return {ATTRIBUTE: {"DataType": ATTRIBUTE_TYPE, "StringValue": self.meta}}

    def entry(self) -> SendMessageBatchRequestEntryTypeDef:
        """The SendMessageBatch entry for this message."""
        entry: SendMessageBatchRequestEntryTypeDef = {
            "Id": str(self.index), "MessageBody": self.text, "MessageAttributes": self.attributes(),
        }
        if self.group is None:
            entry["DelaySeconds"] = self.delay
        else:
            # FIFO: SQS refuses a per-message DelaySeconds, and needs both ids.
            entry["MessageGroupId"] = self.group
            entry["MessageDeduplicationId"] = self.dedup or ""
        return entry


def _lost(exc: SqsError) -> bool:
    """True if SQS refused a receipt handle: expired, unknown, or its message not in flight."""
    return refused_receipt(exc.code, str(exc))


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
    """A kue backend on Amazon SQS standard or FIFO queues (or moto, ElasticMQ); thread-safe.

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
        self._layout = Layout(settings.prefix, settings.bands, settings.fifo)
        self._leases = Leases()
        self._native = native_max_delay
        self._wall = wall_clock
        self._guess: dict[str, int] = {}
        self._batches = Batches(self._client, url, self._leases, self._where,
                                self._give_back_copy)

    # -- putting ---------------------------------------------------------------------------

    def _outgoing(
        self, queue: str, index: int, text: str, meta: Meta, delay: int, dedup: str | None
    ) -> _Outgoing:
        """A message of kue queue ``queue``; on FIFO with its group and deduplication id."""
        value = encode_meta(meta)
        group = None
        if self.settings.fifo:
            assert meta.job_id is not None, "FIFO messages always carry their job id"
            group = queue if self.settings.fifo_group == "queue" else meta.job_id
            dedup = dedup or meta.job_id
        else:
            dedup = None
        return _Outgoing(index, text, value, delay, message_size(text, value), meta.job_id,
                         group, dedup)

    def _prepare(
        self, queue: str, info: QueueInfo, index: int, body: bytes, priority: int,
        delay: float, ttr: float, *, base: int = 0, job_id: str | None = None,
        dedup: str | None = None,
    ) -> _Outgoing:
        """Encode one message; JobTooBig if it does not fit the queue. Sends nothing.

        On a FIFO queue a delay is Unsupported (SQS takes none per message), and a new job gets
        its id here: a UUID, which is also its MessageDeduplicationId.
        """
        text, encoding = body_to_text(body)
        seconds = math.ceil(delay)
        due = None
        if self.settings.fifo:
            if seconds > 0:
                raise Unsupported(
                    "sqs", f"a delay ({delay:g} s) on a FIFO queue: SQS FIFO queues take no "
                    "per-message delay; put the job without one, or use a standard queue"
                )
            job_id = job_id or str(uuid.uuid4())
        elif seconds > self._native:
            due, seconds = self._wall() + delay, self._native
        meta = Meta(priority, math.ceil(ttr), base, due, job_id, encoding)
        out = self._outgoing(queue, index, text, meta, seconds, dedup)
        if out.size > info.max_message:
            raise JobTooBig(len(body), max_body_for(info.max_message), "sqs")
        return out

    def _send(self, url: str, out: _Outgoing) -> str:
        """Send one message; returns the job id (kue's on FIFO, else SQS's MessageId)."""
        with guarded(self.url, "SendMessage"):
            if out.group is None:
                message_id = self._client.send_message(
                    QueueUrl=url, MessageBody=out.text, DelaySeconds=out.delay,
                    MessageAttributes=out.attributes(),
                )["MessageId"]
            else:
                message_id = self._client.send_message(
                    QueueUrl=url, MessageBody=out.text, MessageAttributes=out.attributes(),
                    MessageGroupId=out.group, MessageDeduplicationId=out.dedup or "",
                )["MessageId"]
        return out.job_id or message_id

    def put(self, queue: str, body: bytes, priority: int, delay: float, ttr: float) -> str:
        """Send one message to the band of ``priority``; returns the job id.

        On a standard queue the job id is SQS's MessageId; on a FIFO queue kue chooses it.
        """
        info = self._queues.get(self._layout.name_for(self._layout.check(queue), priority))
        return self._send(info.url, self._prepare(queue, info, 0, body, priority, delay, ttr))

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
            out = self._prepare(
                queue, info, index, item.body, item.priority, item.delay, item.ttr
            )
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
        backoff = Backoff(first=0.05, cap=0.05 * 2**BATCH_RETRIES)
        for attempt in range(BATCH_RETRIES):
            # A retried entry keeps its MessageDeduplicationId on FIFO: should SQS have stored
            # it after all, the retry is not stored twice.
            entries = [out.entry() for out in pending]
            by_index = {out.index: out for out in pending}
            with guarded(self.url, "SendMessageBatch"):
                response = self._client.send_message_batch(QueueUrl=url, Entries=entries)
            for ok in response.get("Successful", []):
                index = int(ok["Id"])
                ids[index] = by_index[index].job_id or ok["MessageId"]
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
            time.sleep(backoff.next())

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
        self, queue: str, info: QueueInfo, wait: int, deadline: float | None, count: int = 1
    ) -> list[Reservation]:
        """One ReceiveMessage of up to ``count`` messages on one SQS queue; the reservations.

        A receive that does not wait answers at once, so only a long poll (``wait`` > 0) can
        answer after ``deadline``, and only its visibility may have started well after the
        request did: its messages get the ttr again from a known time.
        """
        started = time.monotonic()
        guess = self._guess.get(info.url, int(DEFAULT_TTR))
        found: list[Reservation] = []
        for msg in self._receive(info.url, wait, guess, count):
            if wait == 0:
                job = self._admit(queue, info, msg, started, guess, None)
            else:
                job = self._admit(queue, info, msg, started, 0, deadline)
            if job is not None:
                found.append(job)
        return found

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
            body = text_to_body(msg["Body"], meta.encoding)
        except ValueError:
            body = msg["Body"].encode()
        ttr = max(1, min(meta.ttr, MAX_VISIBILITY))
        if ttr != guess:  # guess 0: the visibility must be set again in any case
            started = time.monotonic()
            self._visibility(info.url, receipt, ttr)
            self._guess[info.url] = ttr
        system = msg.get("Attributes")
        count = int(system["ApproximateReceiveCount"]) if system else 1
        self._leases.add(receipt, info.url, started, ttr)
        return Reservation(
            queue=queue,
            id=meta.job_id or msg["MessageId"],
            body=body,
            priority=meta.priority,
            attempts=max(1, meta.base + count),
            ttr=float(ttr),
            receipt=receipt,
        )

    def _hide_until_due(self, info: QueueInfo, msg: MessageTypeDef, meta: Meta) -> None:
        """An emulated delay, received early: re-send the rest of it, then drop this message.

        Not hidden in place with ChangeMessageVisibility: that receive would stay in the
        message's ApproximateReceiveCount, and whether it happened (a consumer came by before
        the job was due) cannot be told later, so attempts would be one off either way.
        """
        assert meta.due is not None
        seconds = math.ceil(meta.due - self._wall())
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
        found = self._take(queues, 1, timeout)
        return found[0] if found else None

    def reserve_many(
        self, queues: Sequence[str], n: int, timeout: float | None
    ) -> list[Reservation]:
        """Receive up to ``n`` (at most 10) messages, the most urgent band first.

        One ReceiveMessage of up to ``n`` messages per SQS queue asked, without waiting, until
        ``n`` are in hand; with none ready it waits as :meth:`reserve` does, and returns what
        the receive that found some gave.
        """
        check_reserve_n(n, self.capabilities)
        return self._take(queues, n, timeout)

    def _take(self, queues: Sequence[str], n: int, timeout: float | None) -> list[Reservation]:
        """Up to ``n`` reservations of ``queues`` (see :meth:`reserve` for the waiting)."""
        if not queues:
            raise ValueError("reserve needs at least one queue name")
        names = [self._layout.check(q) for q in queues]
        targets = [(q, self._queues.get(name)) for q, name in self._layout.targets(names)]
        deadline = None if timeout is None else time.monotonic() + timeout
        longest = self.settings.wait if len(targets) == 1 else 1
        while True:
            found: list[Reservation] = []
            for queue, info in targets:
                found += self._try(queue, info, 0, deadline, n - len(found))
                if len(found) == n:
                    break
            if found:
                return found
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return []
            if left is not None and left < 1 + POLL_MARGIN:
                time.sleep(min(TAIL_POLL, left))
                continue
            for queue, info in targets:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left < 1 + POLL_MARGIN:
                    break
                wait = longest if left is None else min(longest, int(left - POLL_MARGIN))
                found = self._try(queue, info, wait, deadline, n)
                if found:
                    return found

    def settle_many(
        self, acks: Sequence[Ack], give_back: Sequence[Reservation], queues: Sequence[str],
        n: int, timeout: float | None,
    ) -> BatchReply:
        """Ack, give back, then reserve up to ``n`` (see kue.BatchBackend.settle_many).

        Acks: DeleteMessageBatch per SQS queue and 10 messages (an entry SQS refuses for its
        receipt handle, or a reservation this process knows ran out or was settled, is
        lost). Give-backs: the job is sent again with its attempts less the one given back
        (SendMessageBatch), then its message deleted (DeleteMessageBatch): SQS counts every
        receive of a message, so a message made visible again would count the give-back as
        an attempt. A receipt this process does not know (another process's) is made visible
        again instead (ChangeMessageVisibilityBatch to 0), the give-back counted. SQS has no
        call that acks and receives at once: the reserve is one ReceiveMessage more.
        """
        check_reserve_n(n, self.capabilities, zero=True)
        for ack in acks:
            if ack.fields is not None:
                raise ValueError(f"an Ack of job {ack.job.id} carries record fields, but SQS "
                                 "keeps no records: write them to a results store")
        lost = self._batches.delete(acks)
        self._batches.give_back(give_back)
        reserved = self._take(queues, n, timeout) if n else []
        return BatchReply(reserved, lost)

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
            job.queue, info, 0, job.body, priority, delay, job.ttr, base=job.attempts,
            job_id=job.id, dedup=resent_dedup_id(job.id, job.receipt),
        ))

    def _give_back_copy(
        self, job: Reservation, index: int
    ) -> tuple[str, SendMessageBatchRequestEntryTypeDef]:
        """Where to send a copy of ``job`` given back unstarted, and its batch entry.

        The copy carries the job's id, priority and ttr, and its attempts less the one given
        back, so the next receive counts the attempt it was.
        """
        info = self._queues.get(self._layout.name_for(job.queue, job.priority))
        out = self._prepare(job.queue, info, index, job.body, job.priority, 0, job.ttr,
                            base=job.attempts - 1, job_id=job.id,
                            dedup=resent_dedup_id(job.id, job.receipt))
        return info.url, out.entry()

    def delete(self, job: Reservation) -> None:
        """DeleteMessage; ReservationLost if this reservation ran out or was finished."""
        self._finish(job, self._where(job))

    def release(self, job: Reservation, priority: int, delay: float) -> None:
        """Visible again now (ChangeMessageVisibility 0), or re-sent with a delay or priority.

        On a FIFO queue a delay cannot be sent, so the message itself is kept in flight for the
        delay (ChangeMessageVisibility), which also keeps its place at the head of its group;
        a new priority and a delay together are Unsupported there.
        """
        url = self._where(job)
        fifo = self.settings.fifo
        if priority == job.priority and (delay <= 0 or fifo):
            seconds = max(0, math.ceil(delay))
            if seconds > MAX_VISIBILITY:
                raise ValueError(
                    f"release delay {delay:g} s is over SQS's longest visibility timeout of "
                    f"{MAX_VISIBILITY} s, which is how a FIFO queue holds a job back"
                )
            try:
                self._visibility(url, job.receipt, seconds)
            except SqsError as exc:
                if _lost(exc):
                    self._leases.finish(job.receipt)
                    raise ReservationLost(job.queue, job.id, f"SQS said {exc.code}") from exc
                if seconds and exc.code == "InvalidParameterValue":
                    # SQS counts the 12 h from the receive; nothing changed, the job is held.
                    raise ValueError(
                        f"release delay {delay:g} s is too long for job {job.id}: SQS keeps "
                        f"a message in flight at most {MAX_VISIBILITY} s from its receive "
                        f"({exc})"
                    ) from exc
                raise
            self._leases.finish(job.receipt)
            return
        if fifo and delay > 0:
            raise Unsupported(
                "sqs", f"a release with a new priority and a delay ({delay:g} s) on a FIFO "
                "queue: the copy with the new priority cannot be delayed; release with the "
                "job's own priority to delay it, or with no delay to change its priority"
            )
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
                dest = self._queues.get(self._layout.name_for(queue, meta.priority))
                dedup = resent_dedup_id(job_id, msg["ReceiptHandle"])
                self._send(dest.url, self._outgoing(queue, 0, msg["Body"], back, 0, dedup))
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
        flight; buried: the companion queue.
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

    # -- admin listing (kue.listing.QueueListing, kue.listing.JobBrowser) -----------------

    #: What this backend cannot do of :mod:`kue.listing`, and why (those methods raise
    #: Unsupported).
    listing_unsupported = {
        "buried": "listing buried jobs (SQS shows a message of a queue's -buried companion "
                  "only by receiving it, which hides it from everyone else and is not a copy)",
        "kick_job": "kicking one buried job by id (SQS can reach it only by receiving the "
                    "messages of the queue's -buried companion until it comes up, which hides "
                    "the others meanwhile and, on FIFO queues, cannot get past the first 10); "
                    "kue kick QUEUE N moves buried jobs back in no particular order",
    }

    def list_queues(self) -> list[str]:
        """The kue queues behind the SQS queues (ListQueues) whose names start with the prefix.

        A band queue (``-b100``) and the ``-buried`` companion count as their kue queue; on a
        FIFO backend only ``.fifo`` queues are kue's, on a standard one only the others. With
        no prefix every SQS queue of the account and region whose name is a valid kue queue
        name is listed; a kue queue whose own name ends like a companion (``x-buried``) is
        listed under the name it would be the companion of.
        """
        names: set[str] = set()
        request: ListQueuesRequestTypeDef = {"MaxResults": 1000}
        if self.settings.prefix:
            request["QueueNamePrefix"] = self.settings.prefix
        while True:
            with guarded(self.url, "ListQueues"):
                page = self._client.list_queues(**request)
            for queue_url in page.get("QueueUrls", []):
                name = self._kue_queue_of(queue_url.rstrip("/").rsplit("/", 1)[-1])
                if name is not None:
                    names.add(name)
            token = page.get("NextToken")
            if not token:
                return sorted(names)
            request["NextToken"] = token

    def _kue_queue_of(self, sqs_name: str) -> str | None:
        """The kue queue an SQS queue name belongs to under this layout, or None."""
        layout = self._layout
        if layout.fifo != sqs_name.endswith(FIFO_SUFFIX):
            return None
        name = sqs_name[: -len(FIFO_SUFFIX)] if layout.fifo else sqs_name
        if not name.startswith(layout.prefix):
            return None
        name = name[len(layout.prefix):]
        if name.endswith(BURIED_SUFFIX):
            name = name[: -len(BURIED_SUFFIX)]
        else:
            for bound in layout.bands[1:]:
                if name.endswith(f"-b{bound}"):
                    name = name[: -len(f"-b{bound}")]
                    break
        try:
            return layout.check(name)
        except (ValueError, Unsupported):
            return None

    def buried(self, queue: str, limit: int, offset: int) -> list[JobInfo]:
        """Unsupported: an SQS queue cannot be listed without receiving its messages."""
        raise Unsupported("sqs", self.listing_unsupported["buried"])

    def kick_job(self, queue: str, job_id: str) -> bool:
        """Unsupported: SQS cannot reach one message of a queue by its id."""
        raise Unsupported("sqs", self.listing_unsupported["kick_job"])

    def close(self) -> None:
        """Close the boto3 client's connections."""
        self._client.close()
