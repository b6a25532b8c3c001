"""A sweep or backfill whose settings name one table and another table's lake (review20).

The lake's marker (_eventlake/lake.json, written by `eventlake init`) records the table it
archives. A worker or a shell with EVENTLAKE_TABLE and EVENTLAKE_LAKE_URI of two deployments
(staging's table, prod's lake) archived staging's events into prod's lake and moved prod's
watermark on staging's ingestion: prod events not yet archived fell behind the watermark, out of
`events` until the expiry check found them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eventlake import EventLake, Settings
from eventlake.errors import ConfigError
from eventlake.lake.watermark import read_watermark


@pytest.fixture
def lakes(mocked_aws: None, tmp_path: Path) -> tuple[EventLake, EventLake]:
    """prod (its table and its lake) and staging (its own table, configured with prod's lake)."""
    uri = str(tmp_path / "lake")
    prod = EventLake(Settings(table="prod-events", lake_uri=uri, index_shards=2))
    prod.init()
    own = EventLake(Settings(table="staging-events", lake_uri=str(tmp_path / "staging"),
                             index_shards=2))
    own.init()  # staging's table exists (with its own lake)
    staging = EventLake(Settings(table="staging-events", lake_uri=uri, index_shards=2))
    staging.put_many([{"event_id": "stg-1", "event_type": "t", "event_payload": {}}])
    return prod, staging


def test_a_sweep_of_another_tables_events_into_a_lake_is_refused_naming_both(
        lakes: tuple[EventLake, EventLake]) -> None:
    prod, staging = lakes

    # when staging's table is swept with prod's lake, then it is refused, naming both tables
    with pytest.raises(ConfigError, match=r"archives table `prod-events`.*not `staging-events`"):
        staging.archive(settle_seconds=0)

    # and prod's lake got no file and no watermark
    assert prod.cold.list_files() == []
    assert read_watermark(prod.cold) is None


def test_a_backfill_of_another_tables_items_into_a_lake_is_refused(
        lakes: tuple[EventLake, EventLake]) -> None:
    prod, staging = lakes

    with pytest.raises(ConfigError, match="archives table `prod-events`"):
        staging.backfill()
    assert prod.cold.list_files() == []


def test_the_lakes_own_table_is_swept(lakes: tuple[EventLake, EventLake]) -> None:
    prod, _ = lakes
    prod.put_many([{"event_id": "prod-1", "event_type": "t", "event_payload": {}}])

    report = prod.archive(settle_seconds=0)

    assert report.counts.archived == 1
    assert prod.cold.read(columns=["event_id"]).column("event_id").to_pylist() == ["prod-1"]


def test_init_on_another_tables_lake_is_refused_before_anything_is_provisioned(
        mocked_aws: None, tmp_path: Path) -> None:
    """Review24: the refusal says `eventlake init` makes a lake; `init` with staging's table and
    prod's lake succeeded (creating staging's table) and left the lake prod's, so the sweep
    after it was refused again."""
    uri = str(tmp_path / "lake")
    EventLake(Settings(table="prod-events", lake_uri=uri, index_shards=2)).init()
    staging = EventLake(Settings(table="staging-events", lake_uri=uri, index_shards=2))

    with pytest.raises(ConfigError, match=r"archives table `prod-events`.*not `staging-events`"):
        staging.init()

    assert not staging.hot.describe().get("exists")  # no table was made for it
    assert EventLake(Settings(table="prod-events", lake_uri=uri, index_shards=2)).init() == []


def test_init_of_a_new_s3_lake_still_makes_its_bucket(mocked_aws: None) -> None:
    lake = EventLake(Settings(table="prod-events", lake_uri="s3://fresh-lake/x", index_shards=2))
    assert any("fresh-lake" in change for change in lake.init())
