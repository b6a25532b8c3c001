"""Shared by the stream archiver tests: the events behind tests/fixtures/ddb_stream_*, a local lake,
and readers that look at the lake's files directly (every row of every file, no dedup).

The fixtures' eventlake items are exactly what `HotStore.to_item` stores for `SEEDS` (a test
pins that), so a row can be compared with the `Event` it came from.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from conftest import load_event

from eventlake.config import Settings
from eventlake.events.model import Event, parse_event
from eventlake.events.times import parse_timestamp
from eventlake.hot.store import HotStore
from eventlake.lake.shards import INDEX_KEY, read_shard_record
from eventlake.lake.store import Lake
from eventlake.lake.watermark import EXPIRY_CHECK_KEY, WATERMARK_KEY, advance_watermark

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
STORE = HotStore(Settings(), clients=None, recorded={})  # type: ignore[arg-type]  # no AWS: nothing recorded
SERVICE = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}

_SEEDS: list[dict[str, Any]] = [
    {"event_id": "evt-seen", "event_type": "user.seen", "timestamp": "2026-11-01T08:00:00Z",
     "event_payload": {"user": 7, "name": "Zoë 🦊", "tags": ["a", "b"]}, "subject": "user/7"},
    {"event_id": "evt-placed-late", "event_type": "order.placed",
     "timestamp": "2026-10-31T23:59:59.5Z", "event_payload": {"order": 1, "total": 12.5},
     "source": "shop", "subject": "order/1"},
    {"event_id": "evt-placed-midnight", "event_type": "order.placed",
     "timestamp": "2026-11-01T00:00:00Z", "event_payload": {"order": 2, "total": 10**30},
     "source": "shop", "subject": "order/2"},
    {"event_id": "evt-paid-offset", "event_type": "order.paid",
     "timestamp": "2026-11-01T01:00:00+02:00", "event_payload": {"order": 1}, "source": "pay"},
    {"event_id": "evt-placed-service", "event_type": "order.placed",
     "timestamp": "2026-10-31T06:00:00Z", "event_payload": {}, "source": "shop"},
    {"event_id": "evt-expired", "event_type": "order.placed",
     "timestamp": "2026-07-01T00:00:00Z", "event_payload": {"order": 0}},
    {"event_id": "evt-good", "event_type": "order.placed", "timestamp": "2026-11-01T09:30:00Z",
     "event_payload": {"order": 3}, "source": "shop"},
    {"event_id": "evt-kinesis-1", "event_type": "order.placed",
     "timestamp": "2026-11-01T10:00:00Z", "event_payload": {"order": 4}},
    {"event_id": "evt-kinesis-2", "event_type": "order.paid",
     "timestamp": "2026-10-30T10:00:00Z", "event_payload": {"order": 4}},
]
SEEDS: dict[str, dict[str, Any]] = {str(s["event_id"]): s for s in _SEEDS}
EVENTS: dict[str, Event] = {i: parse_event(s, now=NOW) for i, s in SEEDS.items()}
ARCHIVED_IN_BATCH = ["evt-seen", "evt-placed-late", "evt-placed-midnight", "evt-paid-offset",
                     "evt-placed-service"]
"""The INSERTs of ddb_stream_eventlake_batch.json, in record order."""


def batch() -> dict[str, Any]:
    """ddb_stream_eventlake_batch.json: 5 INSERTs over two UTC dates, a MODIFY, a TTL REMOVE,
    a user REMOVE (read afresh on each call, so a test may change it)."""
    return dict(load_event("ddb_stream_eventlake_batch.json"))


def seq_of(event: dict[str, Any], position: int) -> str:
    return str(event["Records"][position]["dynamodb"]["SequenceNumber"])


def expected_row(image: dict[str, Any]) -> dict[str, Any]:
    """The lake row of an eventlake item: the Event's fields, ingested_at from the item."""
    event = EVENTS[image["event_id"]["S"]]
    return {"event_id": event.event_id, "event_type": event.event_type,
            "timestamp": event.timestamp,
            "ingested_at": parse_timestamp(image["ingested_at"]["S"]),
            "source": event.source, "subject": event.subject,
            "event_payload": event.payload, "content_hash": event.content_hash}


VOUCHED_UNTIL = datetime(2026, 11, 2, tzinfo=UTC)
"""The expiry checkpoint and archive watermark `new_lake` records: after every fixture item's
ingestion, as a lake whose sweeps run has them (with the index shards they record). A REMOVE
of an item ingested before both is only counted (archive/removed.py); tests of the REMOVE
rescue make lakes without them."""


def new_lake(root: Path, *, vouched: bool = True) -> Lake:
    """A local lake at `root`; `vouched`: with an expiry checkpoint at VOUCHED_UNTIL (and the
    index shards the sweep recorded before reading)."""
    lake = Lake(Settings(lake_uri=str(root)))
    if vouched:
        record_shards(lake)
        advance_watermark(lake, VOUCHED_UNTIL, expected=None, run_id="sweep-tests",
                          key=EXPIRY_CHECK_KEY)
        advance_watermark(lake, VOUCHED_UNTIL, expected=None, run_id="sweep-tests")
    return lake


@contextmanager
def handler_lake(root: Path) -> Iterator[Lake]:
    """A fresh local lake (`new_lake`) that the stream handler uses instead of building one
    from the environment, for the block; then the handler forgets it."""
    from eventlake.handlers import stream

    lake = new_lake(root)
    stream.reset(lake)
    try:
        yield lake
    finally:
        stream.reset()


def record_shards(lake: Lake) -> None:
    """What a sweep records before it reads the index: the table's shard count (STORE's)."""
    if read_shard_record(lake) is None:
        lake.write_state(INDEX_KEY, json.dumps(
            {"index_shards_max": STORE.table_settings().index_shards}).encode(), expected=None)


def written(lake: Lake) -> list[str]:
    """Every file under the lake's root but the lake state `new_lake` records."""
    root = Path(lake.root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file()
                  and not any(k in p.name for k in (EXPIRY_CHECK_KEY, WATERMARK_KEY, INDEX_KEY)))


def lake_files(lake: Lake) -> list[Path]:
    """Every Parquet file under `<root>/events/`, found on disk (not through the Lake)."""
    return sorted((Path(lake.root) / "events").glob("dt=*/*.parquet"))


def raw_rows(lake: Lake) -> list[dict[str, Any]]:
    """Every row of every event file, read with pyarrow alone: copies are not merged."""
    rows = []
    for path in lake_files(lake):
        for row in pq.read_table(path).to_pylist():
            row.pop("dt", None)  # pyarrow may add the Hive key of the directory
            rows.append(row)
    return rows


def ids_in_lake(lake: Lake) -> list[str]:
    """event_ids of every stored row (through Lake.read, which dedupes nothing), sorted."""
    return sorted(lake.read(columns=["event_id"])["event_id"].to_pylist())


def wire_image(item: dict[str, Any]) -> dict[str, Any]:
    """An item as Lambda's JSON carries it: binary values (the index key `k`) in base64."""
    return {name: {"B": base64.b64encode(value["B"]).decode("ascii")} if "B" in value else value
            for name, value in item.items()}


def lambda_event(items: list[dict[str, Any]], *, first_seq: int = 500000000000000000000,
                 source_arn: str = "arn:aws:dynamodb:us-east-1:123456789012:table/events/"
                 "stream/2024-05-01T00:00:00.000") -> dict[str, Any]:
    """A Lambda DynamoDB Streams event of one INSERT per stored item (wire-format images, as
    `HotStore.to_item` makes them), sequence numbers counting up from `first_seq`."""
    records = []
    for i, item in enumerate(items):
        created = parse_timestamp(item["ingested_at"]["S"])
        records.append({
            "eventID": f"{first_seq + i:032x}", "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "eventSourceARN": source_arn,
            "dynamodb": {"ApproximateCreationDateTime": int(created.timestamp()),
                         "Keys": {"event_id": item["event_id"]},
                         "NewImage": wire_image(item),
                         "SequenceNumber": str(first_seq + i), "SizeBytes": 300,
                         "StreamViewType": "NEW_AND_OLD_IMAGES"}})
    return {"Records": records}


def removal(image: dict[str, Any], seq: int, *, ttl: bool = True, key: str = "event_id"
            ) -> dict[str, Any]:
    """The REMOVE record DynamoDB Streams delivers for `image` (TTL's identity, or none)."""
    return {"eventID": f"r{seq}", "eventName": "REMOVE", "eventSource": "aws:dynamodb",
            "eventVersion": "1.1", "awsRegion": "us-east-1",
            **({"userIdentity": SERVICE} if ttl else {}),
            "dynamodb": {"ApproximateCreationDateTime": 1796112000,
                         "Keys": {key: image[key]}, "OldImage": image,
                         "SequenceNumber": str(seq), "SizeBytes": 300,
                         "StreamViewType": "NEW_AND_OLD_IMAGES"}}
