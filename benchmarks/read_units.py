"""DynamoDB read request units per 1,000 events: a sweep and an `events` query, with the
ingestion-time index projecting ALL attributes (before issue 12) and projecting only what the
readers decide by (after: eventlake/hot/index.py).

    before   a table as `eventlake init` created it until issue 12: index `by_ingested_at`,
             projection ALL, and the sweep's read path before issue 12: the TTL guard queries
             [watermark - skew, now] again after the window read (`_REUSE_WINDOW_READ` off).
             Today's readers on it otherwise read exactly what the old ones read: the same
             Queries, whole items in every entry, nothing fetched (`index.is_whole`).
    after    a table as `eventlake init` creates it now: `by_ingested_at_v2`, projection keys +
             timestamp, content_hash, expires_at; whole items fetched (BatchGetItem) only for
             what the lake lacks; the window read runs on to `now` and the TTL guard judges
             its entries instead of querying that range again (archive/sweep.py).

Scenario (moto, in process; the same events in both tables): a watermark 20 minutes ago,
EVENTS events ingested over the next 15 minutes, payloads of ~100 B and ~2 KB.
    archived    the stream path wrote them all to the lake (the normal case)
    unarchived  the stream path wrote none (it is down; the sweep is the safety net)
    query       `SELECT count(*) FROM events` (reads the hot window: the watermark - skew on)
    sweep       `eventlake archive`: expiry check, window read, writes, TTL guard re-read

Read units come from the items each call returned, by DynamoDB's sizing rules
(eventlake/hot/capacity.py), counted by a botocore hook on every Query, Scan, GetItem and
BatchGetItem; moto's own ConsumedCapacity is a constant 1.0. Outputs are checked equal (the
query's count, the sweep's counts and the lake's ids) before any unit is printed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EVENTS = 1_000
PAYLOADS = {"~100 B": 1, "~2 KB": 24}
"""Payload label -> how many ~85-byte blocks it holds."""


class ReadMeter:
    """Read units of every read call made by one boto3 DynamoDB client."""

    def __init__(self, client: Any) -> None:
        self.units: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        events = client.meta.events
        for op in ("Query", "Scan", "GetItem", "BatchGetItem"):
            events.register(f"before-parameter-build.dynamodb.{op}", self._before)
            events.register(f"after-call.dynamodb.{op}", self._after)

    def reset(self) -> None:
        self.units.clear()
        self.calls.clear()

    @property
    def total(self) -> float:
        return sum(self.units.values())

    def _before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["eventlake_params"] = dict(params)

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any],
               **_: Any) -> None:
        from eventlake.hot.capacity import batch_get_units, item_size, query_units

        params = context.get("eventlake_params", {})
        op = model.name
        self.calls[op] += 1
        if op in ("Query", "Scan"):
            self.units[op] += query_units(parsed.get("Items", []),
                                          consistent=bool(params.get("ConsistentRead")))
        elif op == "GetItem":
            item = parsed.get("Item")
            units = max(1, -(-item_size(item) // 4096)) if item else 1
            self.units[op] += units if params.get("ConsistentRead") else units / 2
        else:
            for table, request in params.get("RequestItems", {}).items():
                got = parsed.get("Responses", {}).get(table, [])
                left = len(parsed.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
                missing = len(request["Keys"]) - len(got) - left
                self.units[op] += batch_get_units(got, missing,
                                                  consistent=bool(request.get("ConsistentRead")))


def legacy_table(lake: Any) -> None:
    """The table `eventlake init` created before issue 12 (its CreateTable, verbatim but for
    the tags helper), and the lake's marker."""
    from eventlake.hot.index import LEGACY_INDEX_NAME
    from eventlake.hot.tablesettings import tags_for

    ddb = lake.clients.dynamodb
    ddb.create_table(
        TableName=lake.settings.table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                              for a in ("event_id", "ingest_shard", "ingest_key")],
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{
            "IndexName": LEGACY_INDEX_NAME,
            "KeySchema": [{"AttributeName": "ingest_shard", "KeyType": "HASH"},
                          {"AttributeName": "ingest_key", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        Tags=[{"Key": "app", "Value": "eventlake"}, *tags_for(lake.settings)])
    lake.cold.create_marker(table=lake.settings.table)


def events(count: int, blocks: int, start: datetime) -> list[tuple[Any, datetime]]:
    from eventlake.events.model import parse_event

    step = timedelta(minutes=15) / count
    out = []
    for i in range(count):
        ingested = start + step * i
        raw = {"event_id": f"ev-{uuid.UUID(int=i * 0x9E3779B97F4A7C15 % 2**128)}",
               "event_type": ("page_viewed", "cart_updated", "order_placed")[i % 3],
               "timestamp": (ingested - timedelta(seconds=i % 50)).isoformat(),
               "source": "shop.web", "subject": f"user-{i % 997:04d}",
               "event_payload": {"lines": [{"sku": f"sku-{i % 400}-{j}", "qty": j + 1,
                                            "note": "gift wrap, leave at the door"}
                                           for j in range(blocks)]}}
        out.append((parse_event(raw, now=ingested), ingested))
    return out


def world(kind: str, blocks: int, stream: bool, root: Path, now: datetime) -> tuple[Any, ReadMeter]:
    """A table (`kind`: before/after), a lake, EVENTS events in both, watermark set."""
    from eventlake import EventLake, Settings
    from eventlake.archive.writer import archive_items
    from eventlake.lake.watermark import advance_watermark

    name = f"rru-{kind}-{blocks}-{int(stream)}"
    lake_dir = root / name
    lake_dir.mkdir()
    lake = EventLake(Settings.from_env(table=name, lake_uri=str(lake_dir)))
    if kind == "before":
        legacy_table(lake)
    else:
        lake.init()
    start = now - timedelta(minutes=20)
    advance_watermark(lake.cold, start, expected=None, run_id="bench", now=now)
    items = [lake.hot.to_item(event, at) for event, at in events(EVENTS, blocks, start)]
    ddb = lake.clients.dynamodb
    for i in range(0, len(items), 25):
        ddb.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": item}}
                                                  for item in items[i:i + 25]]})
    if stream:
        archive_items(lake.cold, items, name="stream-000-999", source="stream")
    return lake, ReadMeter(ddb)


def measure(blocks: int, stream: bool, root: Path) -> dict[str, dict[str, float]]:
    now = datetime.now(UTC)
    results: dict[str, dict[str, float]] = {}
    outputs: dict[str, Any] = {}
    from eventlake.archive import sweep as sweep_module

    for kind in ("before", "after"):
        lake, meter = world(kind, blocks, stream, root, now)
        meter.reset()
        count = lake.sql("SELECT count(*) AS n FROM events").to_pylist()
        query = meter.total
        meter.reset()
        sweep_module._REUSE_WINDOW_READ = kind == "after"
        try:
            report = lake.archive(settle_seconds=0)
        finally:
            sweep_module._REUSE_WINDOW_READ = True
        sweep = meter.total
        ids = sorted(lake.cold.read(columns=["event_id"])["event_id"].to_pylist())
        c = report.counts
        outputs[kind] = (count, c.read, c.archived, c.already, ids)
        results[kind] = {"query": query * 1000 / EVENTS, "sweep": sweep * 1000 / EVENTS,
                         "fetch_calls": meter.calls.get("BatchGetItem", 0),
                         "query_calls": meter.calls.get("Query", 0)}
    if outputs["before"] != outputs["after"]:
        raise AssertionError(f"outputs differ: before {outputs['before'][:4]}, "
                             f"after {outputs['after'][:4]}")
    if outputs["after"][0] != [{"n": EVENTS}] or len(outputs["after"][4]) != EVENTS:
        raise AssertionError(f"expected {EVENTS} events, got {outputs['after'][:4]}")
    return results


def run() -> dict[str, float]:
    from moto import mock_aws

    from eventlake.query.table import aligned

    for key, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(key, value)
    print(f"\n## read_units: DynamoDB read request units per 1,000 events ({EVENTS:,} events; "
          "by DynamoDB's sizing rules, from the items each call returned)")
    rows: list[list[str]] = []
    summary: dict[str, float] = {}
    root = Path(tempfile.mkdtemp(prefix="eventlake-rru-"))
    try:
        with mock_aws():
            for label, blocks in PAYLOADS.items():
                for stream in (True, False):
                    state = "archived" if stream else "unarchived"
                    r = measure(blocks, stream, root)
                    for what in ("query", "sweep"):
                        b, a = r["before"][what], r["after"][what]
                        calls = (f"{r['before']['query_calls']:.0f} / "
                                 f"{r['after']['query_calls']:.0f}" if what == "sweep" else "")
                        rows.append([label, state, what, f"{b:,.1f}", f"{a:,.1f}",
                                     f"{b / a:,.1f}x" if a else "inf", calls])
                        summary[f"rru_{what}_{state}_{label.strip('~ ')}_before"] = b
                        summary[f"rru_{what}_{state}_{label.strip('~ ')}_after"] = a
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for line in aligned(["payload", "events", "call", "RRU before (ALL)",
                         "RRU after (projected)", "before/after", "sweep Queries b / a"],
                        rows, [False, False, False, True, True, True, True]):
        print(line)
    print("(before/after > 1: the projected index reads less; < 1: it reads more. Unarchived "
          "events are fetched whole by BatchGetItem, which rounds each item up to 4 KB)")
    return summary


if __name__ == "__main__":
    run()
