"""`sqs:QUEUE` (a queue name or URL): SendMessageBatch, at most 10 messages and 1 MiB a call
(SQS's limits since August 2025; a message is further held to the queue's own
MaximumMessageSize, read at start: 256 KiB on queues made before then), each message the
canonical JSON of the shaped event with a message attribute `event_id` (the consumer's
deduplication key; the body carries it too).

FIFO queues (`.fifo`): MessageGroupId = subject, else event_type; MessageDeduplicationId =
event_id. SQS takes at most 128 characters of `!`..`~` for either: a value that does not fit
(longer, spaces, non-ASCII) is replaced by its SHA-256 in hex, so the same value always lands
in the same group and deduplicates the same way.

Order within a FIFO group. Calls go one after another and a call's refused messages are
resent (only those, in order) before the next call, so a later call never overtakes. Within
one call SQS enqueues in the order sent; if it refused a message yet accepted a later one
of the same group, the group's order in the queue is already broken, and no resend can mend
it: resending from the refused message on would not help either, since the later message
is then deduplicated (same event_id) and stays ahead. That case stops the replay with a
DeliveryError naming both events, instead of delivering out of order without a word.

A body character SQS does not allow (U+FFFE, U+FFFF; SQS would silently turn it into U+FFFD)
is written as a JSON `\\uXXXX` escape: the same JSON value, never a changed one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from eventlake.aws import error_code
from eventlake.replay.aws.entries import (
    DENIED,
    Entry,
    EntryTarget,
    Limits,
    call,
    cannot_check,
    fitted,
    metas,
    missing,
    reason,
    shaped_bodies,
)
from eventlake.replay.backoff import Refused
from eventlake.replay.batch import Batch
from eventlake.replay.checkpoint import Checkpoint
from eventlake.replay.targets import DeliveryError, TargetError

SQS_LIMITS = Limits(entries=10, request_bytes=1_048_576, entry_bytes=1_048_576,
                    what="an SQS message")
ATTRIBUTE = "event_id"
_SQS_ID = re.compile(r"[!-~]+")
_NOT_ALLOWED = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
_UNKNOWN_QUEUE_MAXIMUM = 262_144
"""The message size assumed of a queue whose attributes the role may not read: 256 KiB, the
largest SQS took before 2025; a queue set lower refuses a larger message at send, naming its
event."""


def sqs_id(value: str) -> str:
    """A MessageGroupId or MessageDeduplicationId for `value` (see the module's docstring)."""
    return fitted(value, 128, lambda v: _SQS_ID.fullmatch(v) is not None)


def sqs_text(body: str) -> str:
    """`body` (JSON) with characters SQS refuses written as `\\uXXXX` escapes."""
    return _NOT_ALLOWED.sub(lambda m: f"\\u{ord(m.group()):04x}", body)


def sender_fault(failed: dict[str, Any]) -> bool:
    """Whether SQS refused a message for good: SenderFault (the request itself is wrong), a
    throttle excepted (that one passes)."""
    return bool(failed.get("SenderFault")) and "throttl" not in str(failed.get("Code")).lower()


class SqsTarget(EntryTarget):
    """SendMessageBatch to one queue (standard or FIFO)."""

    kind = "sqs"
    limits = SQS_LIMITS
    url = ""
    """The queue's URL (found at `start`)."""
    fifo = False

    def start(self, checkpoint: Checkpoint | None) -> None:
        from botocore.exceptions import ClientError

        sqs = self.clients.sqs
        try:
            if self.name.startswith(("https://", "http://")):
                url = self.name
            else:
                url = sqs.get_queue_url(QueueName=self.name)["QueueUrl"]
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                raise missing(self.label, exc) from exc
            if error_code(exc) in DENIED:
                raise TargetError(f"target `{self.label}`: the role may not look up the "
                                  f"queue's URL ({error_code(exc)}): give the queue URL "
                                  "instead (`sqs:https://sqs.REGION.amazonaws.com/ACCOUNT/"
                                  "NAME`)") from exc
            raise
        try:
            attributes = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["MaximumMessageSize", "FifoQueue"])["Attributes"]
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                raise missing(self.label, exc) from exc
            if error_code(exc) not in DENIED:
                raise
            # least privilege (sqs:SendMessage only): FIFO by the name SQS requires of one,
            # and the smallest message size a queue is created with by default
            cannot_check(self.label, exc)
            attributes = {"MaximumMessageSize": str(_UNKNOWN_QUEUE_MAXIMUM)}
        self.url = url
        self.fifo = attributes.get("FifoQueue") == "true" or url.endswith(".fifo")
        most = int(attributes.get("MaximumMessageSize", SQS_LIMITS.entry_bytes))
        self.limits = replace(SQS_LIMITS, entry_bytes=min(most, SQS_LIMITS.entry_bytes),
                              what=f"a message of this queue (MaximumMessageSize {most:,})")

    def entries(self, batch: Batch) -> list[Entry]:
        bodies, _ = shaped_bodies(batch, self.shape)
        entries = []
        for meta, raw in zip(metas(batch), bodies, strict=True):
            body = sqs_text(raw.decode())
            fields: dict[str, Any] = {
                "MessageBody": body,
                "MessageAttributes": {ATTRIBUTE: {"DataType": "String",
                                                  "StringValue": meta.event_id}}}
            group = None
            if self.fifo:
                group = sqs_id(meta.subject or meta.event_type)
                fields["MessageGroupId"] = group
                fields["MessageDeduplicationId"] = sqs_id(meta.event_id)
            size = (len(body.encode()) + len(ATTRIBUTE) + len("String")
                    + len(meta.event_id.encode()))
            entries.append(Entry(meta.event_id, fields, size, group))
        return entries

    def put(self, entries: Sequence[Entry]) -> list[Refused[Entry]]:
        response = call(self.label, entries, self.clients.sqs.send_message_batch,
                        QueueUrl=self.url,
                        Entries=[{"Id": str(i), **e.fields} for i, e in enumerate(entries)])
        failed = {int(f["Id"]): f for f in response.get("Failed") or []}
        if self.fifo and failed:
            self._check_group_order(entries, failed)
        return [Refused(entries[i], entries[i].event_id,
                        reason(failed[i].get("Code"), failed[i].get("Message")),
                        final=sender_fault(failed[i]))
                for i in sorted(failed)]

    def _check_group_order(self, entries: Sequence[Entry], failed: dict[int, Any]) -> None:
        for i in sorted(failed):
            for j in range(i + 1, len(entries)):
                if j not in failed and entries[j].group == entries[i].group:
                    raise DeliveryError(
                        self.label, [entries[k].event_id for k in sorted(failed)],
                        f"SQS refused `{entries[i].event_id}` but accepted the later "
                        f"`{entries[j].event_id}` of message group `{entries[i].group}` in "
                        "the same call: that group is out of order in the queue, so the "
                        "replay stops rather than deliver the rest out of order")
