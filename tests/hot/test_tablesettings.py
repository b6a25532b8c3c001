"""Settings every process must agree on (index shards, retention) belong to the table: recorded
as tags at `eventlake init`, adopted by a process that did not set them, refused when it set
another value. Producers, sweepers and readers are separate EventLakes on one moto table."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from eventlake import EventLake, Settings
from eventlake.errors import ConfigError
from eventlake.hot.store import HotStore, shard_of

TABLE = "orders-events"


def process(tmp_path: Path, **settings: Any) -> EventLake:
    """One process (producer, sweeper, reader) of the lake: its own Settings and clients."""
    return EventLake(Settings.from_env(table=TABLE, lake_uri=str(tmp_path / "lake"), **settings))


def orders(count: int) -> list[dict[str, Any]]:
    stamp = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return [{"event_id": f"ord-{i:03d}", "event_type": "order.placed", "timestamp": stamp,
             "source": "shop.checkout", "event_payload": {"order_id": f"ORD-{i:03d}"}}
            for i in range(count)]


def tags(lake: EventLake) -> dict[str, str]:
    ddb = lake.clients.dynamodb
    arn = ddb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}


def untag(lake: EventLake) -> None:
    """Make the table look like one created before settings were recorded on it."""
    ddb = lake.clients.dynamodb
    arn = ddb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    ddb.untag_resource(ResourceArn=arn, TagKeys=[
        "eventlake:index_shards", "eventlake:retention_days", "eventlake:clock_skew_seconds",
        "eventlake:archive_settle_seconds"])


# --- index shards ----------------------------------------------------------------------------

def test_a_sweeper_with_no_shard_count_set_archives_every_event_of_a_16_shard_producer(
        mocked_aws: None, tmp_path: Path) -> None:
    # given a table initialised by a producer with 16 index shards, which stores 64 events
    producer = process(tmp_path, index_shards=16, retention_days=2.0)
    producer.init()
    results = producer.put_many(orders(64))
    assert {r.outcome.value for r in results} == {"created"}
    # when a sweeper and a reader that set neither shards nor retention run
    sweeper = process(tmp_path)
    report = sweeper.archive(settle_seconds=0)
    # then the sweep archives every event, and the reader's view shows every event
    assert (report.counts.read, report.counts.archived) == (64, 64)
    assert sweeper.cold.read(columns=["event_id"]).num_rows == 64
    reader = process(tmp_path)
    assert reader.sql("select count(*) as n from events").to_pylist() == [{"n": 64}]
    # because both use the table's values
    assert (sweeper.hot.table_settings().index_shards,
            sweeper.hot.table_settings().retention_days) == (16, 2.0)


def test_a_producer_with_no_shard_count_set_writes_with_the_tables_count(
        mocked_aws: None, tmp_path: Path) -> None:
    process(tmp_path, index_shards=16).init()
    producer = process(tmp_path)
    producer.put_many(orders(40))
    shards = {item["ingest_shard"]["S"].split("#")[1] for item in _items(producer)}
    assert shards == {str(shard_of(f"ord-{i:03d}", 16)) for i in range(40)}
    assert max(int(s) for s in shards) >= 8  # shards the default count (8) would never use


def test_a_sweeper_set_to_8_shards_refuses_a_table_initialised_with_16(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a table initialised with 16 shards, holding events
    producer = process(tmp_path, index_shards=16)
    producer.init()
    producer.put_many(orders(3))
    # when a sweeper configured with EVENTLAKE_INDEX_SHARDS=8 runs
    monkeypatch.setenv("EVENTLAKE_INDEX_SHARDS", "8")
    sweeper = EventLake.from_env(table=TABLE, lake_uri=str(tmp_path / "lake"))
    with pytest.raises(ConfigError) as raised:
        sweeper.archive(settle_seconds=0)
    # then it refuses, naming the variable, both values, the tag and the way out
    assert str(raised.value) == (
        "EVENTLAKE_INDEX_SHARDS=8 but table `orders-events` was initialised with 16 index "
        "shards (tag `eventlake:index_shards`): every writer and reader must agree, and "
        "changing it on a live table is not supported; unset EVENTLAKE_INDEX_SHARDS to use "
        "the table's value")
    # and it archived nothing
    assert sweeper.cold.list_files() == []


def test_a_producer_set_to_another_retention_refuses_before_writing(
        mocked_aws: None, tmp_path: Path) -> None:
    # given a table initialised with 30 days of retention
    process(tmp_path).init()
    # when a producer with 7 days stores events
    producer = process(tmp_path, retention_days=7.0, ttl_safety_hours=6.0)
    with pytest.raises(ConfigError) as raised:
        producer.put_many(orders(2))
    # then it refuses, naming both values, and writes nothing
    message = str(raised.value)
    assert message.startswith("EVENTLAKE_RETENTION_DAYS=7 but table `orders-events` was "
                              "initialised with a retention of 30 days "
                              "(tag `eventlake:retention_days`)")
    assert "unset EVENTLAKE_RETENTION_DAYS" in message
    assert _items(producer) == []


def test_a_sweeper_set_to_another_retention_refuses(mocked_aws: None, tmp_path: Path) -> None:
    process(tmp_path, retention_days=7.0).init()
    sweeper = process(tmp_path, retention_days=30.0)
    with pytest.raises(ConfigError, match=r"EVENTLAKE_RETENTION_DAYS=30 but table "
                                          r"`orders-events` was initialised with a retention "
                                          r"of 7 days"):
        sweeper.archive(settle_seconds=0)


def test_a_producer_with_no_retention_set_stamps_expiry_with_the_tables_retention(
        mocked_aws: None, tmp_path: Path) -> None:
    process(tmp_path, retention_days=2.0).init()
    producer = process(tmp_path)
    producer.put_many(orders(1))
    [item] = _items(producer)
    ingested = datetime.fromisoformat(item["ingested_at"]["S"])
    assert int(item["expires_at"]["N"]) == int(ingested.timestamp()) + 2 * 86400


def test_a_process_set_to_the_tables_values_runs(mocked_aws: None, tmp_path: Path) -> None:
    process(tmp_path, index_shards=4, retention_days=2.0).init()
    producer = process(tmp_path, index_shards=4, retention_days=2.0)
    assert [r.outcome.value for r in producer.put_many(orders(2))] == ["created", "created"]


def test_the_tables_settings_are_read_once_per_process_not_per_write(
        mocked_aws: None, tmp_path: Path) -> None:
    process(tmp_path, index_shards=16).init()
    producer = process(tmp_path)
    calls: list[str] = []
    producer.clients.dynamodb.meta.events.register(
        "before-call.dynamodb.ListTagsOfResource", lambda **_: calls.append("tags"))
    producer.put_many(orders(30))
    producer.put_many(orders(5))
    list(producer.hot.read_ingested(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC)))
    assert calls == ["tags"]


def test_a_process_meeting_a_missing_table_reads_its_settings_once_it_exists(
        mocked_aws: None, tmp_path: Path) -> None:
    # given a process started before `init` created the table
    early = process(tmp_path)
    assert early.hot.table_settings().index_shards == 8  # nothing to read yet
    # when the table is initialised with 16 shards
    process(tmp_path, index_shards=16).init()
    # then the process reads them on its next use
    assert early.hot.table_settings().index_shards == 16


# --- init ------------------------------------------------------------------------------------

def test_init_records_shards_and_retention_on_a_new_table(mocked_aws: None,
                                                          tmp_path: Path) -> None:
    lake = process(tmp_path, index_shards=16, retention_days=7.5, ttl_safety_hours=12.0)
    changes = lake.init()
    assert tags(lake) == {"app": "eventlake", "eventlake:index_shards": "16",
                          "eventlake:retention_days": "7.5",
                          "eventlake:clock_skew_seconds": "600",
                          "eventlake:archive_settle_seconds": "60"}
    assert any("16 index shards recorded as tag `eventlake:index_shards`" in change
               for change in changes)


def test_init_records_the_settings_on_a_table_created_before_they_were_recorded(
        mocked_aws: None, tmp_path: Path) -> None:
    # given an old table without the tags
    lake = process(tmp_path)
    lake.init()
    untag(lake)
    # when `eventlake init` runs again
    changes = process(tmp_path).init()
    # then it records the current settings and says so
    assert tags(lake) == {"app": "eventlake", "eventlake:index_shards": "8",
                          "eventlake:retention_days": "30",
                          "eventlake:clock_skew_seconds": "600",
                          "eventlake:archive_settle_seconds": "60"}
    assert changes == [
        "recorded 8 index shards on table `orders-events` (tag `eventlake:index_shards`; it "
        "had none: every process now uses it)",
        "recorded a retention of 30 days on table `orders-events` (tag "
        "`eventlake:retention_days`; it had none: every process now uses it)",
        "recorded a clock skew of 600 s on table `orders-events` (tag "
        "`eventlake:clock_skew_seconds`; it had none: every process now uses it)",
        "recorded an archive settle of 60 s on table `orders-events` (tag "
        "`eventlake:archive_settle_seconds`; it had none: every process now uses it)"]
    # and a further init changes nothing
    assert process(tmp_path).init() == []


def test_init_set_to_another_shard_count_refuses_and_changes_nothing(
        mocked_aws: None, tmp_path: Path) -> None:
    process(tmp_path, index_shards=16).init()
    again = process(tmp_path, index_shards=32)
    with pytest.raises(ConfigError, match=r"EVENTLAKE_INDEX_SHARDS=32 but table "
                                          r"`orders-events` was initialised with 16 index "
                                          r"shards .*not supported"):
        again.init()
    assert tags(again)["eventlake:index_shards"] == "16"


def test_init_with_nothing_set_keeps_the_recorded_values(mocked_aws: None,
                                                         tmp_path: Path) -> None:
    process(tmp_path, index_shards=16, retention_days=2.0).init()
    lake = process(tmp_path)
    assert lake.init() == []
    assert tags(lake)["eventlake:index_shards"] == "16"
    assert tags(lake)["eventlake:retention_days"] == "2"


# --- a table without recorded settings -------------------------------------------------------

def test_a_process_meeting_an_untagged_table_uses_its_own_settings_and_warns_once(
        mocked_aws: None, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # given a table created before settings were recorded on it
    lake = process(tmp_path)
    lake.init()
    untag(lake)
    # when a producer with 4 shards stores events, in two requests
    producer = process(tmp_path, index_shards=4)
    with caplog.at_level(logging.WARNING, logger="eventlake.hot.tablesettings"):
        producer.put_many(orders(10))
        producer.put_many(orders(3))
    # then it writes with its own shard count and warns once, saying what to do
    assert {int(i["ingest_shard"]["S"].split("#")[1]) for i in _items(producer)} <= set(range(4))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "table `orders-events` records no `eventlake:index_shards`" in warnings[0]
    assert "run `eventlake init` to record them" in warnings[0]


def test_a_tag_edited_into_nonsense_is_refused_naming_it(mocked_aws: None,
                                                         tmp_path: Path) -> None:
    lake = process(tmp_path)
    lake.init()
    ddb = lake.clients.dynamodb
    arn = ddb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "eventlake:index_shards", "Value": "many"}])
    with pytest.raises(ConfigError, match=r"tag `eventlake:index_shards`=`many`, which is not "
                                          r"an integer from 1 to 100"):
        HotStore(lake.settings, lake.clients).table_settings()


def test_a_safety_margin_that_no_longer_fits_the_tables_retention_names_both(
        mocked_aws: None, tmp_path: Path) -> None:
    process(tmp_path, retention_days=0.5, ttl_safety_hours=6.0).init()
    sweeper = process(tmp_path)  # the default 24 h margin does not fit 12 h of retention
    with pytest.raises(ConfigError, match=r"EVENTLAKE_TTL_SAFETY_HOURS=24.0 is not valid.*"
                                          r"a retention of 0.5 days, as recorded on table "
                                          r"`orders-events`"):
        sweeper.hot.table_settings()


def _items(lake: EventLake) -> list[dict[str, Any]]:
    pages = lake.clients.dynamodb.get_paginator("scan").paginate(TableName=TABLE)
    return [item for page in pages for item in page["Items"]]


def test_a_read_that_missed_the_tags_right_after_init_is_read_again(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import eventlake.hot.store
    import eventlake.hot.tablesettings

    # given a table initialised with 16 shards, whose tags a first read does not see yet
    # (ListTagsOfResource is eventually consistent right after TagResource)
    process(tmp_path, index_shards=16, retention_days=2.0).init()
    real_read = eventlake.hot.store.read_tags
    reads: list[int] = []

    def stale_then_real(*args: Any) -> dict[str, str]:
        reads.append(1)
        return {} if len(reads) == 1 else real_read(*args)

    monkeypatch.setattr(eventlake.hot.store, "read_tags", stale_then_real)
    monkeypatch.setattr(eventlake.hot.tablesettings, "RECHECK_SECONDS", 0.0)  # due at once
    producer = process(tmp_path)
    # when the producer starts (its first read misses the tags), then reads again once due
    assert producer.hot.table_settings().index_shards == 8
    # then it adopts the table's settings, and keeps them without reading again
    assert producer.hot.table_settings().index_shards == 16
    assert producer.hot.table_settings().retention_days == 2.0
    assert len(reads) == 2
