"""`eventbridge:BUS` (a bus name or ARN): PutEvents, at most 10 entries and 256 KB a call.

Each entry: Source = the event's source (`eventlake.replay` when it has none), DetailType =
event_type, Detail = the shaped event's canonical JSON, Time = timestamp. With the
`eventbridge` shape, the shape already is a PutEvents entry: it is sent as it is, with
EventBusName set. Entry sizes follow EventBridge's rule (UTF-8 bytes of Source, DetailType,
Detail and each Resource, 14 for Time). EventBridge itself keeps no order between entries.
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
    is_shape,
    metas,
    refused_in,
    shaped_bodies,
)
from eventlake.replay.backoff import Refused
from eventlake.replay.batch import Batch
from eventlake.replay.checkpoint import Checkpoint
from eventlake.replay.shapes import EVENTBRIDGE_SOURCE

EVENTBRIDGE_LIMITS = Limits(entries=10, request_bytes=262_144, entry_bytes=262_144,
                            what="an EventBridge entry")

NOT_RETRYABLE = frozenset({
    "AccessDeniedException", "InvalidAccountIdException", "InvalidArgument", "MalformedDetail",
    "RedactionFailure", "NotAuthorizedForSourceException", "NotAuthorizedForDetailTypeException",
})
"""The ErrorCodes PutEvents' API reference calls non-retryable: such an entry stops the replay
at once (InternalFailure and ThrottlingException, and codes not listed, are resent)."""


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge counts it toward the 256 KB of a PutEvents call."""
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key) or "").encode())
    return size + sum(len(str(r).encode()) for r in entry.get("Resources") or [])


class EventBridgeTarget(EntryTarget):
    """PutEvents to one event bus."""

    kind = "eventbridge"
    limits = EVENTBRIDGE_LIMITS

    def start(self, checkpoint: Checkpoint | None) -> None:
        ensure_exists(self.label, lambda: self.clients.events.describe_event_bus(Name=self.name))

    def entries(self, batch: Batch) -> list[Entry]:
        bodies, values = shaped_bodies(batch, self.shape)
        entries = []
        if is_shape(self.shape, "eventbridge"):
            for meta, value in zip(metas(batch), values, strict=True):
                fields = {**value, "EventBusName": self.name}
                entries.append(Entry(meta.event_id, fields, entry_size(fields)))
            return entries
        for meta, body in zip(metas(batch), bodies, strict=True):
            fields = {"Source": meta.source or EVENTBRIDGE_SOURCE, "DetailType": meta.event_type,
                      "Detail": body.decode(), "Time": meta.timestamp,
                      "EventBusName": self.name}
            entries.append(Entry(meta.event_id, fields, entry_size(fields)))
        return entries

    def put(self, entries: Sequence[Entry]) -> list[Refused[Entry]]:
        response = call(self.label, entries, self.clients.events.put_events,
                        Entries=[e.fields for e in entries])
        return refused_in("PutEvents", entries, response.get("Entries") or [], NOT_RETRYABLE)
