"""Lowering the index shard count on a live table hides no event: the lake records the largest
count ever in force (`_eventlake/index.json`), and every reader of the index that has the lake
queries that many shards per day. Events written with 8 shards and read by processes restarted
with 4 (one `sam deploy` with a lower IndexShards, or `eventlake init` on a re-created tag)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from archive_support import NOW, World, hours, make_world

from eventlake import EventLake, Settings
from eventlake.archive.expiry import check_expiry
from eventlake.archive.reconcile import reconcile
from eventlake.archive.ttlguard import ttl_margin
from eventlake.errors import StorageError
from eventlake.hot.store import shard_of
from eventlake.lake.shards import remember_shards
from eventlake.lake.watermark import advance_watermark

TABLE = "orders-events"
IDS = [f"ord-{i:03d}" for i in range(40)]


def process(tmp_path: Path, **settings: Any) -> EventLake:
    """One process (producer, sweeper, reader): its own Settings, clients and caches."""
    return EventLake(Settings.from_env(table=TABLE, lake_uri=str(tmp_path / "lake"), **settings))


def orders() -> list[dict[str, Any]]:
    stamp = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return [{"event_id": i, "event_type": "order.placed", "timestamp": stamp,
             "source": "shop.checkout", "event_payload": {"order_id": i.upper()}} for i in IDS]


def retag(lake: EventLake, shards: int) -> None:
    """Change the table's recorded shard count, as a deploy with a new IndexShards does."""
    ddb = lake.clients.dynamodb
    arn = ddb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "eventlake:index_shards",
                                             "Value": str(shards)}])


def record_file(tmp_path: Path) -> Path:
    return tmp_path / "lake" / "_eventlake" / "index.json"


def recorded_max(tmp_path: Path) -> int:
    return int(json.loads(record_file(tmp_path).read_text())["index_shards_max"])


@pytest.fixture
def lowered(mocked_aws: None, tmp_path: Path) -> Iterator[None]:
    """40 events written with 8 shards (half of them in shards 4..7), then the table re-tagged
    to 4: every process below starts after the change, set to 4 like its new environment."""
    producer = process(tmp_path, index_shards=8, retention_days=2.0, ttl_safety_hours=6.0)
    producer.init()
    assert {r.outcome.value for r in producer.put_many(orders())} == {"created"}
    assert sum(shard_of(i, 8) >= 4 for i in IDS) == 20
    retag(producer, 4)
    yield


# --- the reported loss, end to end -----------------------------------------------------------

def test_a_sweep_after_the_shard_count_was_lowered_archives_every_event(
        lowered: None, tmp_path: Path) -> None:
    sweeper = process(tmp_path, index_shards=4)

    report = sweeper.archive(settle_seconds=0)

    assert (report.counts.read, report.counts.archived) == (40, 40)
    assert sorted(sweeper.cold.read(columns=["event_id"])["event_id"].to_pylist()) == IDS
    reader = process(tmp_path, index_shards=4)
    assert reader.sql("select count(*) as n from events").to_pylist() == [{"n": 40}]
    assert reader.status()["unarchived"] == 0


def test_the_view_shows_every_hot_event_after_the_shard_count_was_lowered(
        lowered: None, tmp_path: Path) -> None:
    reader = process(tmp_path, index_shards=4)

    rows = reader.sql("select event_id from events_hot order by event_id").to_pylist()

    assert [row["event_id"] for row in rows] == IDS


def test_status_counts_the_events_of_the_old_shards_as_unarchived(
        lowered: None, tmp_path: Path) -> None:
    status = process(tmp_path).status()

    assert status["unarchived"] == 40


def test_lowering_warns_once_that_the_old_shards_are_still_read(
        lowered: None, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reader = process(tmp_path)
    with caplog.at_level(logging.WARNING, logger="eventlake"):
        reader.sql("select count(*) as n from events")
        reader.sql("select count(*) as n from events")
        reader.ttl_margin()

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"table `{TABLE}` records 4 index shards (tag `eventlake:index_shards`), fewer than "
        f"the 8 lake `{tmp_path / 'lake'}` has seen in force (_eventlake/index.json): events "
        "written with the larger count stay readable, because readers keep querying shards "
        "4 to 7 (they hold events written before the change until retention has passed); "
        "nothing to do"]


# --- the lake's record -----------------------------------------------------------------------

def test_init_records_the_shard_count_in_the_lake(mocked_aws: None, tmp_path: Path) -> None:
    changes = process(tmp_path, index_shards=16).init()

    assert recorded_max(tmp_path) == 16
    assert (f"recorded 16 index shards in lake `{tmp_path / 'lake'}` "
            "(_eventlake/index.json: readers query at least that many)") in changes
    assert process(tmp_path).init() == []


def test_a_lowered_table_keeps_the_lakes_record(lowered: None, tmp_path: Path) -> None:
    assert process(tmp_path).init() == []
    process(tmp_path).archive(settle_seconds=0)

    assert recorded_max(tmp_path) == 8


def test_raising_the_shard_count_raises_the_lakes_record(
        mocked_aws: None, tmp_path: Path) -> None:
    # given a table initialised with 4 shards, raised to 8, and events written with 8
    process(tmp_path, index_shards=4).init()
    assert recorded_max(tmp_path) == 4
    producer = process(tmp_path, index_shards=4)
    retag(producer, 8)
    process(tmp_path).put_many(orders())
    # when a sweep runs, then it records 8
    process(tmp_path).archive(settle_seconds=0)
    assert recorded_max(tmp_path) == 8
    # and after lowering the count back to 4, nothing is hidden
    retag(producer, 4)
    reader = process(tmp_path)
    assert reader.ttl_margin().checked == 40  # index entries read: all 8 shards


def test_a_lake_without_a_record_gets_one_from_its_first_sweep(
        mocked_aws: None, tmp_path: Path) -> None:
    # given a lake initialised before the record existed
    process(tmp_path, index_shards=8).init()
    record_file(tmp_path).unlink()
    # when a sweep runs, then it records the table's count
    process(tmp_path).archive(settle_seconds=0)
    record = json.loads(record_file(tmp_path).read_text())
    assert record["index_shards_max"] == 8
    assert record["table"] == TABLE


def test_a_record_raised_by_another_process_meanwhile_is_never_lowered(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a lake recorded at 4 shards, the table raised to 8
    process(tmp_path, index_shards=4).init()
    retag(process(tmp_path), 8)
    sweeper = process(tmp_path)
    write = sweeper.cold.write_state

    def another_init_first(key: str, data: bytes, *, expected: str | None) -> str:
        # another process records 16 between this one's read and its write
        monkeypatch.setattr(sweeper.cold, "write_state", write)
        current = sweeper.cold.read_state(key)
        assert current is not None
        write(key, b'{"index_shards_max": 16}', expected=current[1])
        return write(key, data, expected=expected)

    monkeypatch.setattr(sweeper.cold, "write_state", another_init_first)
    # when this process records its table's 8
    changes = remember_shards(sweeper.cold, sweeper.hot)
    # then it loses the swap, reads 16 again, keeps it and reads 16 shards
    assert changes == []
    assert recorded_max(tmp_path) == 16
    assert sweeper.hot.shards_to_read() == 16


def test_an_unreadable_record_is_refused_naming_it_and_the_way_out(
        mocked_aws: None, tmp_path: Path) -> None:
    process(tmp_path).init()
    record_file(tmp_path).write_text('{"index_shards_max": "lots"}')

    with pytest.raises(StorageError) as raised:
        process(tmp_path).archive(settle_seconds=0)

    message = str(raised.value)
    assert "`_eventlake/index.json` of lake" in message
    assert "largest index shard count the table was ever written with" in message


# --- every reader of the index, on stores that never swept -----------------------------------

@pytest.fixture
def world(lake: EventLake) -> World:
    """The fixture's lake was initialised with 8 shards (recorded by `init`)."""
    return make_world(lake, index_shards=8)


def lower(lake: EventLake) -> World:
    """Restart every process with 4 shards, the table re-tagged to 4."""
    return make_world(lake, index_shards=4)


def test_the_ttl_guard_sees_the_events_of_the_old_shards_at_risk(
        lake: EventLake, world: World) -> None:
    # given 40 events that expire in 2 hours, never archived, written with 8 shards
    world.ingest(IDS, NOW - timedelta(days=3) + hours(2))
    # when a guard restarted with 4 shards checks the margin
    low = lower(lake)
    margin = ttl_margin(low.lake, low.hot, low.settings, now=NOW)
    # then every event is unarchived and at risk
    assert (margin.unarchived, margin.at_risk) == (40, 40)


def test_the_expiry_check_archives_the_events_of_the_old_shards(
        lake: EventLake, world: World) -> None:
    # given 40 events about to expire, behind a watermark that was moved past them
    world.ingest(IDS, NOW - timedelta(days=3) + hours(2))
    advance_watermark(world.lake, NOW - hours(1), expected=None, run_id="edited")
    # when the expiry check of a process restarted with 4 shards runs
    low = lower(lake)
    check = check_expiry(low.lake, low.hot, low.settings, now=NOW,
                         window_since=NOW - hours(1), run_id="t")
    # then it archives all of them
    assert check.beyond_skew == 40
    assert sorted(low.stored_rows()) == IDS


def test_reconcile_checks_and_repairs_the_events_of_the_old_shards(
        lake: EventLake, world: World) -> None:
    # given 40 events ingested yesterday, behind the watermark, that the lake lacks
    world.ingest(IDS, NOW - hours(24))
    advance_watermark(world.lake, NOW - hours(1), expected=None, run_id="edited")
    low = lower(lake)
    day = date(2024, 5, 9)
    # when a reconcile restarted with 4 shards checks that day, with repair
    report = reconcile(low.lake, low.hot, low.settings, start=day, end=day, repair=True,
                       now=NOW)
    # then it finds and repairs all of them
    assert (report.hot, report.missing, report.repaired) == (40, 40, 40)
    assert sorted(low.stored_rows()) == IDS
