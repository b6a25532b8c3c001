"""`kinesis:STREAM` (a stream name or ARN): PutRecords, at most 500 records and 5 MiB a
call, 1 MiB a record (data and partition key). Data = the shaped event's canonical JSON;
PartitionKey = subject, else event_id (Kinesis takes 1..256 characters: a longer key is
replaced by its SHA-256 in hex, the same for the same subject, so its events share a shard).

PutRecords does not promise order between the records of one call (AWS's API reference);
calls go one after another, and refused records are resent before the next call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventlake.replay.aws.entries import (
    Entry,
    EntryTarget,
    Limits,
    call,
    ensure_exists,
    fitted,
    metas,
    refused_in,
    shaped_bodies,
)
from eventlake.replay.backoff import Refused
from eventlake.replay.batch import Batch
from eventlake.replay.checkpoint import Checkpoint

MIB = 1024 * 1024
KINESIS_LIMITS = Limits(entries=500, request_bytes=5 * MIB, entry_bytes=MIB,
                        what="a Kinesis record")


def partition_key(subject: str | None, event_id: str) -> str:
    return fitted(subject or event_id, 256)


class KinesisTarget(EntryTarget):
    """PutRecords to one data stream."""

    kind = "kinesis"
    limits = KINESIS_LIMITS

    @property
    def stream(self) -> dict[str, str]:
        """The stream parameter of a Kinesis call: by ARN or by name."""
        return ({"StreamARN": self.name} if self.name.startswith("arn:")
                else {"StreamName": self.name})

    def start(self, checkpoint: Checkpoint | None) -> None:
        ensure_exists(self.label,
                      lambda: self.clients.kinesis.describe_stream_summary(**self.stream))

    def entries(self, batch: Batch) -> list[Entry]:
        bodies, _ = shaped_bodies(batch, self.shape)
        entries = []
        for meta, data in zip(metas(batch), bodies, strict=True):
            key = partition_key(meta.subject, meta.event_id)
            fields: dict[str, Any] = {"Data": data, "PartitionKey": key}
            entries.append(Entry(meta.event_id, fields, len(data) + len(key.encode())))
        return entries

    def put(self, entries: Sequence[Entry]) -> list[Refused[Entry]]:
        response = call(self.label, entries, self.clients.kinesis.put_records,
                        Records=[e.fields for e in entries], **self.stream)
        return refused_in("PutRecords", entries, response.get("Records") or [])
