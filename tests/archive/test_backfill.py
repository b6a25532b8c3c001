"""The backfill: a parallel Scan archives every item of the table, other producers' included,
once, beside the sweep."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from archive_support import NOW, World, hours, make_world
from conftest import load_event

from eventlake import EventLake
from eventlake.archive.backfill import backfill


@pytest.fixture
def world(lake: EventLake) -> World:
    return make_world(lake)


def other_producer_item(event_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    """An item another producer wrote: epoch-ms timestamp, payload as a map, no ingested_at,
    content_hash, expires_at or index attributes."""
    return {"event_id": {"S": str(event_id)}, "event_type": {"S": "sensor.reading"},
            "timestamp": {"N": "1715342400123"}, "source": {"S": "legacy-writer"},
            "event_payload": {"M": payload}}


def test_backfill_archives_other_producers_items_and_quarantines_non_events(
        world: World) -> None:
    fixture = load_event("ddb_item_other_producer.json")
    fixture["event_payload"]["M"] = {k: v for k, v in fixture["event_payload"]["M"].items()
                                     if "B" not in v and "BS" not in v}  # B is bytes in boto3
    fixture["event_id"] = {"S": "101"}  # the table's key is a string
    others = [fixture, *(other_producer_item(200 + i, {"n": {"N": str(i)}, "s": {"S": "x"}})
                         for i in range(5))]
    ours = [world.item(f"ours-{i}", NOW - hours(1)) for i in range(4)]
    not_events = [{"event_id": {"S": "config#1"}, "setting": {"S": "on"}}]
    world.put_items([*others, *ours, *not_events])
    before = datetime.now(UTC)

    report = backfill(world.lake, world.hot, world.settings, segments=3)

    assert (report.segments, report.scanned) == (3, 11)
    assert (report.counts.archived, report.counts.quarantined) == (10, 1)
    rows = {r["event_id"]: r for r in world.lake.read().to_pylist()}
    assert set(rows) == {"101", *(str(200 + i) for i in range(5)),
                         *(f"ours-{i}" for i in range(4))}
    legacy = rows["200"]
    assert json.loads(legacy["event_payload"]) == {"n": 0, "s": "x"}
    assert legacy["timestamp"] == datetime(2024, 5, 10, 12, 0, 0, 123000, tzinfo=UTC)
    assert before <= legacy["ingested_at"] <= datetime.now(UTC)  # the scan's time
    assert len(legacy["content_hash"]) == 64
    assert rows["ours-1"]["ingested_at"] == NOW - hours(1)  # kept from the item
    [entry] = world.lake.read_quarantine()
    assert entry.record == not_events[0] and entry.source == "backfill"


def test_backfill_is_idempotent(world: World) -> None:
    world.put_items([other_producer_item(i, {"i": {"N": str(i)}}) for i in range(7)])
    first = backfill(world.lake, world.hot, world.settings, segments=2)
    files = world.lake.list_files()
    second = backfill(world.lake, world.hot, world.settings, segments=4)
    assert first.counts.archived == 7
    assert (second.counts.archived, second.counts.already, second.counts.files) == (0, 7, [])
    assert world.lake.list_files() == files
    assert world.stored_rows() == Counter(str(i) for i in range(7))


def test_backfill_and_sweep_together_store_each_event_once(world: World) -> None:
    world.ingest([f"e-{i}" for i in range(3)], NOW - hours(1))
    world.put_items([other_producer_item(9, {})])
    world.sweep(NOW)
    backfill(world.lake, world.hot, world.settings, segments=2)
    assert world.stored_rows() == Counter(["e-0", "e-1", "e-2", "9"])
