"""The shapes a replayed event takes (`--shape`): a function from the `seed` event dict
(`Batch.events`: event_id, event_type, timestamp as `...Z` text, event_payload parsed exactly,
source, subject) to the JSON-able value a target sends.

    seed         the event itself (None here: targets then use the fast path, `Batch.seed_lines`)
    cloudevents  CloudEvents 1.0 structured JSON (what eventlake's ingest also accepts)
    eventbridge  a PutEvents request entry (the eventbridge target adds EventBusName)
    stream       a DynamoDB Streams INSERT record as Lambda delivers it, NewImage the item the
                 hot tier stores (hot.store.item_of), so a stream consumer is re-fed unchanged

The `stream` record's NewImage is the stored item: the replay reads each event's `ingested_at`
and adds it for this shape (`stored_fields`, Batch.shaped). What a replay cannot know is the
table's settings when the event was stored; the record assumes the defaults:

    NewImage.ingested_at, ApproximateCreationDateTime   the stored ingested_at
    NewImage.expires_at                                  ingested_at + retention (default 30 days)
    NewImage.ingest_shard / ingest_key / s / k           from ingested_at and `index_shards` (8);
                                                         `k` in base64, as Lambda sends binary
    SequenceNumber                                       from (timestamp, event_id), see below:
                                                         it grows with the timestamp (not
                                                         between events stamped alike, and
                                                         about one such pair in a million
                                                         shares one: lambda_.py copes)
    everything else (content_hash included)              equal to the stored item

`content_hash` is recomputed from the same canonical fields, so it is the stored one: an
archiver fed these records (handlers/stream.py) writes the same events, hashes included
(tests/replay/test_shapes.py replays a lake into a second one and compares them).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from eventlake.config import Settings
from eventlake.errors import ConfigError
from eventlake.events.canonical import canonical_json, digest
from eventlake.events.model import Event as StoredEvent
from eventlake.events.times import parse_timestamp
from eventlake.hot.capacity import item_size
from eventlake.hot.store import item_of

Event = dict[str, Any]
Shape = Callable[[Event], Any]

CLOUDEVENTS_SOURCE = "eventlake"
"""CloudEvents' `source` is required: this stands in for an event stored without one."""
EVENTBRIDGE_SOURCE = "eventlake.replay"
"""PutEvents' `Source` for an event stored without one (the eventbridge target's too)."""
_EPOCH_0001 = datetime(1, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class ShapeError(ConfigError):
    """An unknown shape, or one the target cannot carry."""


def cloudevent(event: Event) -> dict[str, Any]:
    """CloudEvents 1.0 structured JSON: the required `specversion`, `id` (event_id), `source`
    (the event's, else "eventlake") and `type` (event_type); `time` (RFC 3339, UTC),
    `subject` when the event has one, `datacontenttype` application/json and `data` (the
    payload). eventlake's ingest maps it back to the same event (a null source excepted)."""
    out: dict[str, Any] = {
        "specversion": "1.0",
        "id": event["event_id"],
        "source": event.get("source") or CLOUDEVENTS_SOURCE,
        "type": event["event_type"],
        "time": event["timestamp"],
        "datacontenttype": "application/json",
        "data": event["event_payload"],
    }
    if event.get("subject") is not None:
        out["subject"] = event["subject"]
    return out


def eventbridge_entry(event: Event) -> dict[str, Any]:
    """A PutEvents entry: `Source` (the event's, else "eventlake.replay"), `DetailType`
    (event_type), `Time` (the timestamp), `Resources` [] and `Detail`: the whole `seed`
    event as canonical JSON text, not the payload alone, because EventBridge gives each event
    an id of its own and the event_id must reach the consumer (its deduplication key after a
    resumed replay). Rules therefore match `detail.event_payload.<field>`, `detail.subject`..."""
    return {
        "Source": event.get("source") or EVENTBRIDGE_SOURCE,
        "DetailType": event["event_type"],
        "Detail": canonical_json(event),
        "Time": event["timestamp"],
        "Resources": [],
    }


def stream_record(event: Event, *, region: str = Settings.region,
                  retention_days: float = Settings.retention_days,
                  index_shards: int = Settings.index_shards,
                  source_arn: str | None = None) -> dict[str, Any]:
    """A DynamoDB Streams INSERT record of `event` as Lambda delivers it (one element of
    `{"Records": [...]}`), NewImage the hot tier's item for it, ingested at the event's
    `ingested_at` (a datetime; the replay adds it, see `stored_fields`) or, without one, at
    its timestamp (see the module docstring for what follows from it). `SequenceNumber` is
    digits that grow with the timestamp (microseconds since year 1, then 6 digits of the
    event_id's digest): the same event always gets the same number, so a re-sent record is
    the same record. `eventSourceARN` is set only when `source_arn` is given."""
    stored = stored_event(event)
    ingested_at = event.get("ingested_at") or stored.timestamp
    item = item_of(stored, ingested_at, retention_seconds=int(retention_days * 86400),
                   index_shards=index_shards)
    micros = (stored.timestamp - _EPOCH_0001) // _MICROSECOND
    sequence = f"{micros:018d}{int(digest(stored.event_id)[:8], 16) % 1_000_000:06d}"
    record: dict[str, Any] = {
        "eventID": digest(f"{stored.event_id}#{sequence}")[:32],
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": {
            "ApproximateCreationDateTime": int(ingested_at.timestamp()),
            "Keys": {"event_id": item["event_id"]},
            "NewImage": {**item, "k": {"B": base64.b64encode(item["k"]["B"]).decode("ascii")}},
            "SequenceNumber": sequence,
            "SizeBytes": item_size(item),
            "StreamViewType": "NEW_AND_OLD_IMAGES",  # what `eventlake init` sets on the table
        },
    }
    if source_arn is not None:
        record["eventSourceARN"] = source_arn
    return record


def stored_event(event: Event) -> StoredEvent:
    """The `seed` event dict as the event model's Event (payload canonical JSON again, as
    stored). Not validated again: it was when it was stored."""
    return StoredEvent(event_id=event["event_id"], event_type=event["event_type"],
                       timestamp=parse_timestamp(event["timestamp"]),
                       payload=canonical_json(event["event_payload"]),
                       source=event.get("source"), subject=event.get("subject"))


stream_record.stored_fields = ("ingested_at",)  # type: ignore[attr-defined]
"""What the replay adds to the seed event for this shape (Batch.shaped)."""

SHAPES: dict[str, Shape | None] = {
    "seed": None,
    "cloudevents": cloudevent,
    "eventbridge": eventbridge_entry,
    "stream": stream_record,
}
"""Every shape by name; `seed` maps to None (the event as it is)."""


def shape_for(name: str) -> Shape | None:
    """The shape called `name` (None for `seed`); ShapeError naming the known ones."""
    try:
        return SHAPES[name]
    except KeyError:
        raise ShapeError(f"unknown shape `{name}`; expected one of: "
                         f"{', '.join(SHAPES)}") from None

