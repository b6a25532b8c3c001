"""The projected ingestion-time index: the migration from the ALL-projecting index of tables
created before issue 12, readers during it, and the BatchGetItem reader."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventlake import EventLake, Settings
from eventlake.archive.writer import archive_items
from eventlake.errors import StorageError, TransientError
from eventlake.hot.capacity import batch_get_units, item_size, query_units
from eventlake.hot.fetch import UNPROCESSED_ATTEMPTS, fetch_items
from eventlake.hot.index import (
    INDEX_NAME,
    LEGACY_INDEX_NAME,
    PROJECTED,
    choose,
    index_spec,
    wait_index_active,
)
from eventlake.hot.tablesettings import tags_for
from eventlake.lake.shards import remember_shards

NOW = datetime.now(UTC)


def legacy_lake(tmp_path: Any, table: str = "legacy-events") -> EventLake:
    """A table exactly as `eventlake init` created it before issue 12 (index by_ingested_at,
    projection ALL), with events in it."""
    lake = EventLake(Settings.from_env(table=table, lake_uri=str(tmp_path / "lake")))
    lake.clients.dynamodb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
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
    lake.clients.dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires_at"})
    lake.cold.create_marker(table=table)
    remember_shards(lake.cold, lake.hot)
    results = lake.put_many([{"event_id": f"e-{i}", "event_type": "order_placed",
                              "event_payload": {"n": i}} for i in range(6)])
    assert all(r.ok for r in results)
    return lake


def indexes(lake: EventLake) -> dict[str, Any]:
    desc = lake.clients.dynamodb.describe_table(TableName=lake.settings.table)["Table"]
    return {i["IndexName"]: i["Projection"] for i in desc.get("GlobalSecondaryIndexes", [])}


def hot_ids(lake: EventLake) -> list[str]:
    return sorted(i["event_id"]["S"] for i in lake.hot.read_ingested(NOW - timedelta(hours=1),
                                                                     NOW + timedelta(hours=1)))


# --- the migration -------------------------------------------------------------------------

def test_init_on_a_table_of_the_old_init_replaces_its_index_and_says_so(
        mocked_aws: None, tmp_path: Any) -> None:
    lake = legacy_lake(tmp_path)
    before = lake.sql("select event_id from events order by event_id").to_pylist()

    changes = EventLake(lake.settings).init()

    assert changes == [
        f"added index {INDEX_NAME} (keys + timestamp, content_hash, expires_at: events are "
        "fetched whole only when the lake lacks them)",
        f"index {INDEX_NAME} is ACTIVE: readers use it from now on",
        f"deleted index {LEGACY_INDEX_NAME} (it projected ALL attributes: every event was "
        "stored twice)"]
    assert list(indexes(lake)) == [INDEX_NAME]
    assert EventLake(lake.settings).init() == []  # nothing left to do
    after = EventLake(lake.settings)
    assert after.sql("select event_id from events order by event_id").to_pylist() == before
    assert len(before) == 6


def test_a_reader_that_chose_the_old_index_keeps_reading_after_it_is_deleted(
        mocked_aws: None, tmp_path: Any) -> None:
    # given a reader that read through the old index before the migration
    lake = legacy_lake(tmp_path)
    assert lake.hot.index_name() == LEGACY_INDEX_NAME
    assert hot_ids(lake) == [f"e-{i}" for i in range(6)]
    # when init migrates meanwhile (another process)
    EventLake(lake.settings).init()
    # then its next read chooses again and reads the new index: nothing missing
    assert hot_ids(lake) == [f"e-{i}" for i in range(6)]
    assert lake.hot.index_name() == INDEX_NAME


def test_readers_use_the_old_index_while_the_new_one_is_being_built(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = legacy_lake(tmp_path)
    ddb = lake.clients.dynamodb
    ddb.update_table(TableName=lake.settings.table, GlobalSecondaryIndexUpdates=[
        {"Create": {"IndexName": INDEX_NAME, "KeySchema": [
            {"AttributeName": "ingest_shard", "KeyType": "HASH"},
            {"AttributeName": "ingest_key", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}}])
    real = ddb.describe_table

    def building(**kwargs: Any) -> Any:
        desc = real(**kwargs)
        for index in desc["Table"]["GlobalSecondaryIndexes"]:
            if index["IndexName"] == INDEX_NAME:
                index["IndexStatus"] = "CREATING"
        return desc

    monkeypatch.setattr(ddb, "describe_table", building)
    assert lake.hot.index_name() == LEGACY_INDEX_NAME
    assert hot_ids(lake) == [f"e-{i}" for i in range(6)]


def test_an_index_of_the_new_name_with_another_projection_is_refused(
        mocked_aws: None, tmp_path: Any) -> None:
    lake = legacy_lake(tmp_path)
    lake.clients.dynamodb.update_table(TableName=lake.settings.table, GlobalSecondaryIndexUpdates=[
        {"Create": {"IndexName": INDEX_NAME, "KeySchema": [
            {"AttributeName": "ingest_shard", "KeyType": "HASH"},
            {"AttributeName": "ingest_key", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}}])

    with pytest.raises(StorageError, match=f"index {INDEX_NAME} projecting .*KEYS_ONLY"):
        EventLake(lake.settings).init()
    assert LEGACY_INDEX_NAME in indexes(lake)  # the old one is left for readers


def test_an_init_interrupted_after_the_new_index_deletes_only_the_old_one(
        mocked_aws: None, tmp_path: Any) -> None:
    lake = legacy_lake(tmp_path)
    spec = {"IndexName": INDEX_NAME, "KeySchema": [
        {"AttributeName": "ingest_shard", "KeyType": "HASH"},
        {"AttributeName": "ingest_key", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "INCLUDE",
                       "NonKeyAttributes": ["timestamp", "content_hash", "expires_at"]}}
    lake.clients.dynamodb.update_table(TableName=lake.settings.table,
                                       GlobalSecondaryIndexUpdates=[{"Create": spec}])

    changes = EventLake(lake.settings).init()

    assert [c.split(" (")[0] for c in changes] == [
        f"index {INDEX_NAME} is ACTIVE: readers use it from now on",
        f"deleted index {LEGACY_INDEX_NAME}"]
    assert list(indexes(lake)) == [INDEX_NAME]



def race_after_describe(monkeypatch: pytest.MonkeyPatch, ddb: Any,
                        rival: Callable[[], object]) -> list[bool]:
    """Make `rival` run right after `ddb`'s first DescribeTable answered (what an init saw is
    then out of date); the list returned gets a True once it ran."""
    real = ddb.describe_table
    raced: list[bool] = []

    def described_then_raced(**kwargs: Any) -> Any:
        desc = real(**kwargs)
        if not raced:
            raced.append(True)
            rival()
        return desc

    monkeypatch.setattr(ddb, "describe_table", described_then_raced)
    return raced


def test_two_inits_migrating_at_once_both_succeed_when_the_other_created_the_index_first(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given init A described the table (old index only) and init B then migrated it all
    lake = legacy_lake(tmp_path)
    first = EventLake(lake.settings)
    raced = race_after_describe(monkeypatch, first.clients.dynamodb,
                                lambda: EventLake(lake.settings).init())
    # when A goes on from what it saw
    first.init()
    # then it succeeds, and the table has the new index only
    assert raced
    assert list(indexes(lake)) == [INDEX_NAME]
    assert hot_ids(lake) == [f"e-{i}" for i in range(6)]


def test_an_init_finding_the_old_index_already_deleted_by_another_still_succeeds(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an init interrupted after creating the new index (both indexes there) ...
    lake = legacy_lake(tmp_path)
    lake.clients.dynamodb.update_table(TableName=lake.settings.table,
                                       GlobalSecondaryIndexUpdates=[{"Create": index_spec()}])
    first = EventLake(lake.settings)
    # ... init A saw both, then init B deleted the old one
    race_after_describe(monkeypatch, first.clients.dynamodb,
                        lambda: EventLake(lake.settings).init())
    # when A goes on to delete the old index, then it finds it gone and succeeds
    assert [c.split(" (")[0] for c in first.init()] == [
        f"index {INDEX_NAME} is ACTIVE: readers use it from now on",
        f"deleted index {LEGACY_INDEX_NAME}"]
    assert list(indexes(lake)) == [INDEX_NAME]


def test_an_index_of_the_new_name_created_meanwhile_with_another_projection_is_refused(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given init A saw the old index only, and someone then made the new name KEYS_ONLY
    lake = legacy_lake(tmp_path)
    first = EventLake(lake.settings)
    ddb = first.clients.dynamodb
    spec = {**index_spec(), "Projection": {"ProjectionType": "KEYS_ONLY"}}
    race_after_describe(monkeypatch, ddb, lambda: ddb.update_table(
        TableName=lake.settings.table, GlobalSecondaryIndexUpdates=[{"Create": spec}]))
    # when A tries to create it, then it refuses clearly and leaves the old index for readers
    with pytest.raises(StorageError, match=f"index {INDEX_NAME} projecting .*KEYS_ONLY"):
        first.init()
    assert LEGACY_INDEX_NAME in indexes(lake)


def test_waiting_for_an_index_polls_until_it_is_active_and_fails_if_it_vanishes() -> None:
    states = iter(["CREATING", "CREATING", "ACTIVE", "ACTIVE"])
    pauses: list[float] = []

    def describe() -> dict[str, Any]:
        return {"GlobalSecondaryIndexes": [{"IndexName": "x", "IndexStatus": next(states)}]}

    wait_index_active(describe, "x", sleep=pauses.append, delay=2.0)
    assert pauses == [2.0, 2.0]
    with pytest.raises(StorageError, match="index y vanished"):
        wait_index_active(describe, "y", sleep=pauses.append)


def test_readers_refuse_an_index_of_the_new_name_keyed_otherwise_unless_the_old_one_serves(
        caplog: pytest.LogCaptureFixture) -> None:
    wrong_keys = {**index_spec(), "IndexStatus": "ACTIVE",
                  "KeySchema": [{"AttributeName": "event_type", "KeyType": "HASH"}]}
    keys_only = {**index_spec(), "IndexStatus": "ACTIVE",
                 "Projection": {"ProjectionType": "KEYS_ONLY"}}
    legacy = {"IndexName": LEGACY_INDEX_NAME, "IndexStatus": "ACTIVE",
              "Projection": {"ProjectionType": "ALL"}}
    for wrong in (wrong_keys, keys_only):
        # alone: a clear refusal naming the index, not a Query failing on its keys or every
        # entry fetched whole
        with pytest.raises(StorageError, match=f"index {INDEX_NAME} (keyed|projecting)"):
            choose({"GlobalSecondaryIndexes": [wrong]}, "t")
        # beside the old index (a migration someone got wrong): readers keep the old one
        assert choose({"GlobalSecondaryIndexes": [wrong, legacy]}, "t") == LEGACY_INDEX_NAME
    assert "is not the one eventlake makes" in caplog.text
    # eventlake's own index, its attributes in any order, is chosen over the old one
    ours = {**index_spec(), "IndexStatus": "ACTIVE",
            "Projection": {"ProjectionType": "INCLUDE",
                           "NonKeyAttributes": sorted(PROJECTED, reverse=True)}}
    assert choose({"GlobalSecondaryIndexes": [legacy, ours]}, "t") == INDEX_NAME


def test_a_table_with_no_active_index_is_refused_with_what_to_do() -> None:
    desc = {"GlobalSecondaryIndexes": [{"IndexName": INDEX_NAME, "IndexStatus": "CREATING"}]}
    with pytest.raises(StorageError, match="run `eventlake init`"):
        choose(desc, "t")


# --- BatchGetItem ------------------------------------------------------------------------

class FakeDynamo:
    """BatchGetItem answering from `items`; `unprocessed` calls leave every key unprocessed;
    ids in `lagging` are missing from eventually consistent reads only."""

    def __init__(self, items: dict[str, Any], unprocessed: int = 0,
                 lagging: frozenset[str] = frozenset()) -> None:
        self.items, self.unprocessed, self.lagging = items, unprocessed, lagging
        self.calls: list[tuple[int, bool]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        [(table, request)] = RequestItems.items()
        keys = [k["event_id"]["S"] for k in request["Keys"]]
        assert len(keys) <= 100 and len(set(keys)) == len(keys)
        self.calls.append((len(keys), request["ConsistentRead"]))
        if self.unprocessed:
            self.unprocessed -= 1
            return {"Responses": {table: []}, "UnprocessedKeys": RequestItems}
        found = [self.items[k] for k in keys if k in self.items
                 and (request["ConsistentRead"] or k not in self.lagging)]
        return {"Responses": {table: found}, "UnprocessedKeys": {}}


def item(event_id: str) -> dict[str, Any]:
    return {"event_id": {"S": event_id}, "event_payload": {"S": "{}"}}


def test_fetch_asks_100_keys_a_call_once_each_and_names_what_vanished() -> None:
    ddb = FakeDynamo({f"e{i}": item(f"e{i}") for i in range(240)})
    ids = [f"e{i}" for i in range(250)] + ["e0", "e1"]  # 10 gone, 2 repeated

    fetched = fetch_items(ddb, "t", ids)

    assert sorted(fetched.items) == sorted(f"e{i}" for i in range(240))
    assert fetched.vanished == [f"e{i}" for i in range(240, 250)]
    # eventually consistent first; what it did not find is asked again, consistently
    assert ddb.calls == [(100, False), (100, False), (50, False), (10, True)]


def test_fetch_reads_consistently_what_an_eventually_consistent_read_missed() -> None:
    ddb = FakeDynamo({"a": item("a"), "b": item("b")}, lagging=frozenset({"b"}))
    fetched = fetch_items(ddb, "t", ["a", "b"])
    assert sorted(fetched.items) == ["a", "b"] and fetched.vanished == []


def test_fetch_retries_unprocessed_keys_backing_off_then_gives_up_naming_them() -> None:
    pauses: list[float] = []
    ddb = FakeDynamo({"a": item("a")}, unprocessed=2)
    assert list(fetch_items(ddb, "t", ["a"], sleep=pauses.append).items) == ["a"]
    assert pauses == [0.05, 0.1]

    stuck = FakeDynamo({"a": item("a")}, unprocessed=UNPROCESSED_ATTEMPTS)
    with pytest.raises(TransientError, match=r"left 1 key.*unprocessed.*`a`"):
        fetch_items(stuck, "t", ["a"], sleep=pauses.append)


def test_a_sweep_reads_index_entries_not_whole_items(lake: EventLake) -> None:
    results = lake.put_many([{"event_id": "p-1", "event_type": "t", "event_payload": {"x": 1}}])
    assert results[0].ok
    [entry] = [e for page in lake.hot.read_index_pages(NOW - timedelta(hours=1),
                                                       NOW + timedelta(hours=1)) for e in page]
    assert set(entry) == {"event_id", "ingest_shard", "ingest_key", "timestamp",
                          "content_hash", "expires_at"}


# --- read units by DynamoDB's sizing rules -------------------------------------------------

def test_item_sizes_follow_dynamodbs_rules() -> None:
    assert item_size({"ab": {"S": "é"}}) == 2 + 2  # UTF-8 bytes
    assert item_size({"n": {"N": "1200"}}) == 1 + 2  # 2 significant digits: 1 + 1
    assert item_size({"n": {"N": "123"}}) == 1 + 3
    assert item_size({"m": {"M": {"k": {"BOOL": True}}}}) == 1 + 3 + 1 + 1 + 1
    assert item_size({"l": {"L": [{"NULL": True}, {"S": "xy"}]}}) == 1 + 3 + 2 + 3


def test_read_units_round_per_call_for_query_and_per_item_for_batch_get() -> None:
    small = {"s": {"S": "x" * 999}}  # 1,000 bytes
    assert query_units([small] * 5) == 1.0  # 5,000 B -> 2 units, halved
    assert query_units([], consistent=True) == 1
    assert batch_get_units([small] * 5) == 2.5  # each rounded up to 4 KB, halved
    assert batch_get_units([small], missing=1, consistent=True) == 2


def test_reading_whole_items_says_which_ones_vanished_between_index_and_fetch(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    assert all(r.ok for r in lake.put_many([{"event_id": f"v-{i}", "event_type": "t",
                                             "event_payload": {"n": i}} for i in range(3)]))
    real_fetch = lake.hot.fetch

    def ttl_strikes_first(event_ids: Any) -> Any:
        # TTL deletes v-1 after the index page listing it was read, before its fetch (not
        # before: a shard queried after the delete would not list it at all, and the items
        # land on random shards)
        if "v-1" in event_ids:
            lake.clients.dynamodb.delete_item(TableName=lake.settings.table,
                                              Key={"event_id": {"S": "v-1"}})
        return real_fetch(event_ids)

    monkeypatch.setattr(lake.hot, "fetch", ttl_strikes_first)
    with caplog.at_level("WARNING", logger="eventlake.hot.store"):
        assert hot_ids(lake) == ["v-0", "v-2"]
    assert "1 item(s) the index listed were gone when fetched" in caplog.text
    assert "v-1" in caplog.text


def test_a_reader_whose_old_index_is_deleted_between_two_pages_reads_each_event_once(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a reader paging through the old index, one entry a page
    lake = legacy_lake(tmp_path)
    assert all(r.ok for r in lake.put_many([
        {"event_id": f"e-{i}", "event_type": "order_placed", "event_payload": {"n": i}}
        for i in range(6, 30)]))
    ddb = lake.clients.dynamodb
    real = ddb.query
    calls: list[tuple[str, bool]] = []
    lock = threading.Lock()  # the reader queries its partitions from several threads

    def one_a_page(**kwargs: Any) -> Any:
        with lock:
            second_page = "ExclusiveStartKey" in kwargs
            calls.append((kwargs["IndexName"], second_page))
            if second_page and kwargs["IndexName"] == LEGACY_INDEX_NAME \
                    and LEGACY_INDEX_NAME in indexes(lake):
                EventLake(lake.settings).init()  # when init migrates mid-partition
            return real(**kwargs, Limit=1)

    monkeypatch.setattr(ddb, "query", one_a_page)
    # then it reads that partition again from the new index: no event twice, none missing
    assert hot_ids(lake) == sorted(f"e-{i}" for i in range(30))
    assert (LEGACY_INDEX_NAME, True) in calls and calls[-1][0] == INDEX_NAME


def test_events_hot_read_through_the_old_index_holds_only_what_the_lake_lacks(
        mocked_aws: None, tmp_path: Any) -> None:
    # given a table not yet migrated, and half its events archived
    lake = legacy_lake(tmp_path)
    assert lake.hot.index_name() == LEGACY_INDEX_NAME
    items = sorted(lake.hot.read_ingested(NOW - timedelta(hours=1), NOW + timedelta(hours=1)),
                   key=lambda i: i["event_id"]["S"])
    archive_items(lake.cold, items[:3], name="stream-half")
    # then events_hot (whole items from the old index) leaves out what the lake holds
    hot = lake.sql("select event_id from events_hot order by event_id").to_pylist()
    assert [r["event_id"] for r in hot] == ["e-3", "e-4", "e-5"]
    assert lake.sql("select count(*) as n, count(distinct event_id) as ids from events"
                    ).to_pylist() == [{"n": 6, "ids": 6}]


def test_the_new_index_described_with_its_attributes_in_another_order_is_accepted(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a migrated table whose description lists the projected attributes otherwise
    lake = legacy_lake(tmp_path)
    EventLake(lake.settings).init()
    again = EventLake(lake.settings)
    ddb = again.clients.dynamodb
    real = ddb.describe_table

    def reordered(**kwargs: Any) -> Any:
        desc = real(**kwargs)
        for index in desc["Table"].get("GlobalSecondaryIndexes", []):
            index["Projection"]["NonKeyAttributes"].reverse()
        return desc

    monkeypatch.setattr(ddb, "describe_table", reordered)
    # then init finds nothing to do (DynamoDB does not promise the order it lists them in)
    assert again.init() == []


def test_an_index_of_the_new_name_with_other_keys_is_refused_naming_them(
        mocked_aws: None, tmp_path: Any) -> None:
    lake = legacy_lake(tmp_path)
    lake.clients.dynamodb.update_table(
        TableName=lake.settings.table, GlobalSecondaryIndexUpdates=[{"Create": {
            **index_spec(), "KeySchema": [{"AttributeName": "ingest_key", "KeyType": "HASH"}]}}])

    with pytest.raises(StorageError, match=f"index {INDEX_NAME} keyed .*ingest_key"):
        EventLake(lake.settings).init()
    assert LEGACY_INDEX_NAME in indexes(lake)
