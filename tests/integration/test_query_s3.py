"""The query layer over an S3 lake (moto's HTTP server): DuckDB reads it through pyarrow
datasets (no httpfs offline), with the same answers and the same pruning as on local disk."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from archive_support import NOW, World, hours

from eventlake import EventLake
from eventlake.archive.writer import archive_items
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.compact import compact
from eventlake.lake.store import Lake
from eventlake.query.views import Snapshot, connect

pytestmark = pytest.mark.integration

DAYS = [date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)]


@pytest.fixture
def el(s3_world: World) -> EventLake:
    return EventLake(s3_world.settings, clients=s3_world.clients)


def event(n: int, day: date) -> dict[str, Any]:
    return {"event_id": f"{day.isoformat()}-{n:03d}", "event_type": "click",
            "timestamp": datetime(day.year, day.month, day.day, tzinfo=UTC)
            + timedelta(minutes=7 * n), "ingested_at": NOW - timedelta(days=3),
            "source": None, "subject": None, "event_payload": json.dumps({"n": n}),
            "content_hash": f"hash-{day}-{n}"}


def write(lake: Lake, day: date, numbers: range, name: str) -> list[str]:
    table = pa.Table.from_pylist([event(n, day) for n in numbers], schema=EVENT_SCHEMA)
    return [f.path for f in lake.write(table, name)]


def ids(con: duckdb.DuckDBPyConnection, where: str = "true") -> list[str]:
    relation = con.sql(f"SELECT event_id FROM events WHERE {where}")
    assert relation is not None
    return sorted(r[0] for r in relation.fetchall())


def test_events_on_s3_holds_each_event_once_across_tiers_files_and_late_arrivals(
        s3_world: World, el: EventLake) -> None:
    s3_world.ingest(["a", "b"], NOW - hours(5))
    s3_world.sweep(NOW - hours(1))
    items = [s3_world.item("c", NOW - hours(0.5)),
             s3_world.item("late", NOW - hours(0.4), timestamp=NOW - timedelta(days=9))]
    s3_world.put_items(items)
    archive_items(s3_world.lake, items, name="stream-000-001")  # hot and archived: the seam
    write(s3_world.lake, DAYS[0], range(0, 4), "stream-a")
    write(s3_world.lake, DAYS[0], range(2, 6), "stream-b")  # copies of 2 and 3

    con = connect(el, now=NOW)

    assert ids(con) == sorted(["a", "b", "c", "late",
                               *(f"{DAYS[0]}-{n:03d}" for n in range(6))])
    relation = con.sql("SELECT engine, hot_rows FROM eventlake_snapshot")
    # both hot items are in listed files: none was fetched from DynamoDB (events_hot is empty)
    assert relation is not None and relation.fetchall() == [("pyarrow-dataset", 0)]


def test_on_s3_dt_and_timestamp_predicates_skip_other_days_objects(s3_world: World,
                                                                    el: EventLake) -> None:
    # named as compaction names its files: a lone own file is read bare, its day pruned
    paths = {day: write(s3_world.lake, day, range(6), "compacted-0") for day in DAYS}
    con = connect(el, hot=False)
    s3 = s3_world.clients.s3
    for day in (DAYS[0], DAYS[2]):
        bucket, key = paths[day][0].removeprefix("s3://").split("/", 1)
        s3.put_object(Bucket=bucket, Key=key, Body=b"not parquet at all" * 4)
    day = DAYS[1]

    assert len(ids(con, f"dt = DATE '{day}'")) == 6
    assert ids(con, f"timestamp >= TIMESTAMPTZ '{day} 00:10:00+00' AND "
                    f"timestamp < TIMESTAMPTZ '{day} 00:30:00+00'") == [
        f"{day}-{n:03d}" for n in (2, 3, 4)]
    relation = con.sql(f"SELECT count(*) FROM events_between('{day}', '{day} 00:15:00')")
    assert relation is not None and relation.fetchall() == [(3,)]
    with pytest.raises(duckdb.Error):  # control: a full read meets the corrupt objects
        ids(con)


def test_sql_on_s3_lists_again_when_compaction_removes_objects_under_it(
        s3_world: World, el: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        write(s3_world.lake, DAYS[0], range(i, i + 3), f"stream-{i}")
    import eventlake.query.views as query

    real = query.take_snapshot
    listings: list[int] = []

    def listed_then_compacted(*args: Any, **kwargs: Any) -> Snapshot:
        snapshot = real(*args, **kwargs)
        listings.append(len(snapshot.files))
        if len(listings) == 1:
            compact(s3_world.lake, min_files=2)
        return snapshot

    monkeypatch.setattr(query, "take_snapshot", listed_then_compacted)

    got = el.sql("SELECT event_id FROM events ORDER BY event_id", hot=False)

    assert got["event_id"].to_pylist() == [f"{DAYS[0]}-{n:03d}" for n in range(5)]
    assert listings == [3, 1]
