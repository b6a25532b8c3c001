"""`lambda:FUNCTION` (a name or ARN): Invoke (RequestResponse), one batch per call.

Payload = a JSON list of the shaped events; with the `stream` shape (DynamoDB Streams
records), `{"Records": [...]}`, the event a stream consumer such as
`eventlake.handlers.stream.handler` expects. A batch bigger than Invoke's payload limit
(fewer than 6,291,456 bytes) is split by size into several calls, in order. Each Invoke
waits for the function's answer as long as a function may run (config.LAMBDA_READ_TIMEOUT_S,
the Lambda client's read timeout): timing out sooner would invoke it again with the same batch
while the first still runs.

The function's answer:
- `FunctionError` (it raised, timed out, ran out of memory): the whole call is retried with
  backoff, then DeliveryError with the error's excerpt;
- a partial batch response, `{"batchItemFailures": [{"itemIdentifier": ...}]}`: the events
  from the first one reported on are resent, in order (as Lambda does for a stream: the
  consumer may have stopped there; those after it are then seen again, at least once). An
  `itemIdentifier` is matched to an event by its event_id, the shaped value's `id` or
  `eventID`, or a stream record's `SequenceNumber` (one that names several events, as
  SequenceNumbers of events stamped alike may, counts for the first of them: resending more
  is at least once, resending less would skip events); one that matches none fails the call;
- anything else acknowledges the call.
"""

from __future__ import annotations

import json
import sys
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
    shaped_bodies,
)
from eventlake.replay.backoff import Refused
from eventlake.replay.batch import Batch
from eventlake.replay.checkpoint import Checkpoint

MAX_PAYLOAD = 6_291_455
"""Invoke refuses a request of 6,291,456 bytes or more."""
STREAM_WRAP = (b'{"Records":[', b"]}")
LIST_WRAP = (b"[", b"]")


def limits(wrap: tuple[bytes, bytes]) -> Limits:
    room = MAX_PAYLOAD - len(wrap[0]) - len(wrap[1]) + 1  # each entry counts a comma but one
    return Limits(entries=sys.maxsize, request_bytes=room, entry_bytes=room,
                  what="a Lambda payload")


def names(event_id: str, value: Any) -> tuple[str, ...]:
    """What a consumer may report an event by in `batchItemFailures`."""
    found = [event_id]
    if isinstance(value, dict):
        found += [str(value[k]) for k in ("id", "eventID") if value.get(k) is not None]
        record = value.get("dynamodb")
        if isinstance(record, dict) and record.get("SequenceNumber") is not None:
            found.append(str(record["SequenceNumber"]))
    return tuple(found)


def excerpt(payload: bytes, most: int = 300) -> str:
    text = payload.decode("utf-8", "replace")
    return text if len(text) <= most else text[:most] + "..."


class LambdaTarget(EntryTarget):
    """Invoke one function with each batch (split by size)."""

    kind = "lambda"
    limits = limits(LIST_WRAP)

    def start(self, checkpoint: Checkpoint | None) -> None:
        ensure_exists(self.label, lambda: self.clients.lambda_.get_function(FunctionName=self.name))
        self.limits = limits(self.wrap)  # the shape is known by now

    @property
    def wrap(self) -> tuple[bytes, bytes]:
        return STREAM_WRAP if is_shape(self.shape, "stream") else LIST_WRAP

    def entries(self, batch: Batch) -> list[Entry]:
        bodies, values = shaped_bodies(batch, self.shape)
        return [Entry(meta.event_id, {"json": body}, len(body) + 1,  # + its comma
                      names=names(meta.event_id, values[i] if values else None))
                for i, (meta, body) in enumerate(zip(metas(batch), bodies, strict=True))]

    def put(self, entries: Sequence[Entry]) -> list[Refused[Entry]]:
        start, end = self.wrap
        payload = start + b",".join(e.fields["json"] for e in entries) + end
        response = call(self.label, entries, self.clients.lambda_.invoke,
                        FunctionName=self.name, InvocationType="RequestResponse",
                        Payload=payload)
        answer = response["Payload"].read()
        if response.get("FunctionError"):
            why = f"the function failed ({response['FunctionError']}): {excerpt(answer)}"
            return [Refused(e, e.event_id, why) for e in entries]
        return self._partial(entries, answer)

    def _partial(self, entries: Sequence[Entry], answer: bytes) -> list[Refused[Entry]]:
        try:
            parsed = json.loads(answer) if answer else None
        except ValueError:
            return []  # not a partial batch response: the call succeeded
        failures = parsed.get("batchItemFailures") if isinstance(parsed, dict) else None
        if not failures:
            return []
        where: dict[str, int] = {}
        for i, entry in enumerate(entries):
            for name in entry.names:
                where.setdefault(name, i)  # a name several events share: from the first on
        idents = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures]
        unknown = [ident for ident in idents if ident is None or str(ident) not in where]
        if unknown:
            why = (f"the function reported itemIdentifier `{unknown[0]}`, which names no "
                   "event of the call: the whole call counts as failed")
            return [Refused(e, e.event_id, why) for e in entries]
        first = min(where[str(ident)] for ident in idents)
        why = (f"the function reported `{entries[first].event_id}` failed (batchItemFailures);"
               " it and the events after it are sent again")
        return [Refused(e, e.event_id, why) for e in entries[first:]]
