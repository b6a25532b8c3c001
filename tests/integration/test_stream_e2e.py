"""End to end on a moto server over HTTP: ingest Lambda -> DynamoDB -> stream poller ->
stream Lambda -> Parquet on (moto) S3 -> rows equal to what was ingested."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from eventlake import EventLake
from eventlake.handlers import ingest, stream
from eventlake.hot.store import Item
from eventlake.lake.store import Lake
from eventlake.local.stack import StreamPoller

pytestmark = pytest.mark.integration


def item_record(item: Item) -> dict[str, Any]:
    """An eventlake item as plain strings (payload left as its JSON text)."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        if "S" in value:
            out[name] = value["S"]
        elif "N" in value:
            out[name] = int(value["N"]) if value["N"].lstrip("-").isdigit() else value["N"]
    return out


def apigw_v2(events: list[dict[str, object]]) -> dict[str, object]:
    return {"version": "2.0", "routeKey": "POST /events", "rawPath": "/events",
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/events"},
                               "requestId": str(uuid.uuid4()), "stage": "$default"},
            "body": json.dumps(events), "isBase64Encoded": False}


def shop_event(i: int) -> dict[str, object]:
    return {"event_id": f"e2e-{i:05d}", "event_type": ("viewed", "ordered")[i % 2],
            "timestamp": f"2026-11-{20 + i % 3:02d}T{i % 24:02d}:15:00.25+01:00",
            "source": "shop", "subject": f"user-{i % 7}",
            "event_payload": {"i": i, "price": "12.50", "name": "Café ☕", "big": 10**30}}


def test_ingested_events_reach_the_s3_lake_through_the_stream(
        server_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a table and an s3:// lake on the moto server, reached through AWS_ENDPOINT_URL
    suffix = uuid.uuid4().hex[:10]
    monkeypatch.setenv("EVENTLAKE_TABLE", f"e2e-{suffix}")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", f"s3://lake-{suffix}/prefix")
    lake = EventLake.from_env()
    lake.init()
    ingest.reset(lake)
    cold = Lake(lake.settings)
    stream.reset(cold)
    events = [shop_event(i) for i in range(240)]

    # when the events come in through the ingest Lambda (some of them twice), and the
    # local event source mapping feeds the table's stream to the stream Lambda
    for start in range(0, len(events), 80):
        assert ingest.handler(apigw_v2(events[start:start + 80]))["statusCode"] == 201
    assert ingest.handler(apigw_v2(events[:10]))["statusCode"] == 200
    poller = StreamPoller(lake.clients, lake.settings.table, stream.handler, batch_size=100)
    stats = poller.poll_once()

    # then every event is in the lake once, with the stored content and hash
    assert stats.records == len(events)
    rows = {r["event_id"]: r for r in cold.read().to_pylist()}
    assert len(rows) == cold.read().num_rows == len(events)
    now = datetime.now(UTC)
    stored = [item_record(i) for i in lake.hot.read_ingested(now - timedelta(hours=1),
                                                              now + timedelta(seconds=1))]
    assert {s["event_id"] for s in stored} == set(rows)
    for item in stored:
        row = rows[item["event_id"]]
        assert row["content_hash"] == item["content_hash"]
        assert row["event_payload"] == item["event_payload"]
        assert row["timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%fZ") == item["timestamp"]
        assert row["ingested_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ") == item["ingested_at"]
    assert json.loads(rows["e2e-00003"]["event_payload"]) == {
        "big": 10**30, "i": 3, "name": "Café ☕", "price": "12.50"}  # an integer stays exact

    # and the lake reads as a plain Hive-partitioned dataset on S3, no eventlake code
    s3 = pafs.S3FileSystem(endpoint_override=server_env.removeprefix("http://"),
                           scheme="http", region="us-east-1")
    dataset = ds.dataset(f"lake-{suffix}/prefix/events", filesystem=s3, format="parquet",
                         partitioning="hive")
    assert dataset.count_rows() == len(events)
    assert sorted(dataset.to_table(columns=["dt"]).column("dt").unique().to_pylist()) == [
        "2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22"]
