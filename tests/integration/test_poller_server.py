"""The stream poller over a moto server reached via HTTP (AWS_ENDPOINT_URL), as the local stack
runs it: the table made by `init`, events stored by `put_many`, records fed to a handler."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from eventlake import EventLake
from eventlake.local.stack import StreamPoller

pytestmark = pytest.mark.integration


@pytest.fixture
def lake(server_env: str, tmp_path: Path) -> EventLake:
    lake = EventLake.from_env(table=f"poller-{uuid.uuid4().hex[:12]}",
                              lake_uri=str(tmp_path / "lake"))
    lake.init()
    return lake


def events(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"event_id": f"srv-{i:03d}", "event_type": "page.viewed",
             "timestamp": "2024-05-01T09:30:00Z", "event_payload": {"path": f"/p/{i}"}}
            for i in range(start, start + n)]


class Handler:
    """Records each batch; fails the record at `fail_key` the first time it sees it."""

    def __init__(self, fail_key: str | None = None) -> None:
        self.fail_key = fail_key
        self.batches: list[list[dict[str, Any]]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any] | None:
        records = json.loads(json.dumps(event))["Records"]  # what Lambda's JSON would carry
        self.batches.append(records)
        for record in records:
            key = record["dynamodb"]["Keys"]["event_id"]["S"]
            if key == self.fail_key:
                self.fail_key = None
                return {"batchItemFailures": [
                    {"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}
        return None

    def keys(self, first_batch: int = 0) -> list[str]:
        return [r["dynamodb"]["Keys"]["event_id"]["S"]
                for batch in self.batches[first_batch:] for r in batch]


def test_events_stored_over_http_reach_the_handler_once_in_lambda_shape(lake: EventLake) -> None:
    results = lake.put_many(events(30))
    lake.clients.dynamodb.put_item(TableName=lake.settings.table, Item={
        "event_id": {"S": "srv-bin"}, "blob": {"B": b"\x00\x01\xfe"}})
    lake.clients.dynamodb.delete_item(TableName=lake.settings.table,
                                      Key={"event_id": {"S": "srv-bin"}})
    handler = Handler()

    stats = StreamPoller(lake.clients, lake.settings.table, handler, batch_size=8).poll_once()

    keys = handler.keys()
    assert sorted(keys[:30]) == sorted(str(r.event_id) for r in results)
    assert keys[30:] == ["srv-bin", "srv-bin"]
    assert [len(b) for b in handler.batches] == [8, 8, 8, 8]
    assert (stats.records, stats.retries) == (32, 0)
    insert, remove = handler.batches[-1][-2:]
    assert insert["dynamodb"]["NewImage"]["blob"] == {"B": base64.b64encode(b"\x00\x01\xfe")
                                                      .decode()}
    assert remove["eventName"] == "REMOVE"
    assert remove["dynamodb"]["OldImage"] == insert["dynamodb"]["NewImage"]
    assert isinstance(insert["dynamodb"]["ApproximateCreationDateTime"], float)
    assert insert["eventSourceARN"].startswith(
        f"arn:aws:dynamodb:us-east-1:123456789012:table/{lake.settings.table}/stream/")


def test_a_partial_failure_then_a_restart_loses_and_doubles_nothing(lake: EventLake) -> None:
    for event in events(6):
        lake.put(event)
    handler = Handler(fail_key="srv-003")

    first = StreamPoller(lake.clients, lake.settings.table, handler, batch_size=4,
                         sleep=lambda _s: None)
    first.poll_once()
    saved = first.positions
    for event in events(3, start=6):
        lake.put(event)
    resumed = Handler()
    StreamPoller(lake.clients, lake.settings.table, resumed, positions=saved).poll_once()

    assert handler.keys() == ["srv-000", "srv-001", "srv-002", "srv-003",  # srv-003 failed
                              "srv-003", "srv-004", "srv-005"]
    assert resumed.keys() == ["srv-006", "srv-007", "srv-008"]


def test_a_running_poller_picks_up_events_as_they_arrive(lake: EventLake) -> None:
    handler = Handler()
    stop = threading.Event()
    poller = StreamPoller(lake.clients, lake.settings.table, handler)
    thread = threading.Thread(target=poller.run, args=(stop,), kwargs={"interval_s": 0.02})
    thread.start()
    try:
        for event in events(5):
            lake.put(event)
        for _ in range(500):
            if len(handler.keys()) >= 5:
                break
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(10)

    assert handler.keys() == [f"srv-{i:03d}" for i in range(5)]
