"""The ingestion-time index by_ingested_at_v3 (keys only, a packed binary sort key): its
layout, readers during a migration from the indexes of earlier `eventlake init`s (the backfill,
crashes and races), and the BatchGetItem reader."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from stream_support import wire_image

from eventlake import EventLake, Settings
from eventlake.archive.stream import archive_event, is_reindexing
from eventlake.archive.writer import archive_items
from eventlake.errors import StorageError, TransientError
from eventlake.events.model import parse_event
from eventlake.hot.capacity import batch_get_units, item_size, query_units
from eventlake.hot.fetch import UNPROCESSED_ATTEMPTS, fetch_items
from eventlake.hot.index import (
    INDEX_NAME,
    KEY_BYTES,
    LEGACY_INDEX_NAME,
    PREVIOUS_INDEX_NAME,
    attribute_definitions,
    choose,
    decode_entry,
    entry_key,
    index_spec,
    key_of_item,
    wait_index_active,
)
from eventlake.hot.store import item_of
from eventlake.hot.tablesettings import tags_for
from eventlake.lake.shards import remember_shards

NOW = datetime.now(UTC)
OLD_PROJECTIONS = {
    PREVIOUS_INDEX_NAME: {"ProjectionType": "INCLUDE",
                          "NonKeyAttributes": ["timestamp", "content_hash", "expires_at"]},
    LEGACY_INDEX_NAME: {"ProjectionType": "ALL"},
}
"""The index of each earlier `eventlake init`: by_ingested_at_v2 between issue 12's two steps,
by_ingested_at before it; both keyed (ingest_shard, ingest_key)."""
ENTRY = ("event_id", "ingest_shard", "ingest_key", "timestamp", "content_hash", "expires_at")
"""What readers read of an entry (an old index's, or this one's decoded)."""


def old_spec(name: str) -> dict[str, Any]:
    return {"IndexName": name,
            "KeySchema": [{"AttributeName": "ingest_shard", "KeyType": "HASH"},
                          {"AttributeName": "ingest_key", "KeyType": "RANGE"}],
            "Projection": OLD_PROJECTIONS[name]}


def old_lake(tmp_path: Any, index: str = PREVIOUS_INDEX_NAME, table: str = "old-events",
             count: int = 6) -> EventLake:
    """A table exactly as an earlier `eventlake init` created it (`index`), holding `count`
    events stored by a writer of that time (`write_old`)."""
    lake = EventLake(Settings.from_env(table=table, lake_uri=str(tmp_path / "lake")))
    lake.clients.dynamodb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                              for a in ("event_id", "ingest_shard", "ingest_key")],
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[old_spec(index)],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        Tags=[{"Key": "app", "Value": "eventlake"}, *tags_for(lake.settings)])
    lake.clients.dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires_at"})
    lake.cold.create_marker(table=table)
    remember_shards(lake.cold, lake.hot)
    write_old(lake, [f"e-{i}" for i in range(count)])
    return lake


def write_old(lake: EventLake, ids: list[str]) -> None:
    """Store events as a writer before by_ingested_at_v3 did: today's item without s and k."""
    results = lake.put_many([{"event_id": i, "event_type": "order_placed",
                              "event_payload": {"id": i}} for i in ids])
    assert all(r.outcome.value == "created" for r in results), results
    for event_id in ids:
        lake.clients.dynamodb.update_item(TableName=lake.settings.table,
                                          Key={"event_id": {"S": event_id}},
                                          UpdateExpression="REMOVE s, k")


def create_new_index(lake: EventLake) -> None:
    """What step 1 of the migration does (or a crashed `init` left behind)."""
    lake.clients.dynamodb.update_table(TableName=lake.settings.table,
                                       AttributeDefinitions=attribute_definitions(),
                                       GlobalSecondaryIndexUpdates=[{"Create": index_spec()}])


def indexes(lake: EventLake) -> dict[str, Any]:
    desc = lake.clients.dynamodb.describe_table(TableName=lake.settings.table)["Table"]
    return {i["IndexName"]: i["Projection"] for i in desc.get("GlobalSecondaryIndexes", [])}


def stored(lake: EventLake) -> dict[str, dict[str, Any]]:
    items = lake.clients.dynamodb.scan(TableName=lake.settings.table)["Items"]
    return {i["event_id"]["S"]: i for i in items}


def hot_ids(lake: EventLake) -> list[str]:
    return sorted(i["event_id"]["S"] for i in lake.hot.read_ingested(NOW - timedelta(hours=1),
                                                                     NOW + timedelta(hours=1)))


def event_ids(lake: EventLake) -> list[str]:
    return [r["event_id"] for r in lake.sql("select event_id from events order by event_id"
                                            ).to_pylist()]


def short(changes: list[str]) -> list[str]:
    return [c.split(" (")[0] for c in changes]


# --- the layout ----------------------------------------------------------------------------

def test_an_entry_is_the_id_and_two_keys_and_decodes_to_what_readers_use(
        lake: EventLake) -> None:
    # given an event stored by today's writer
    assert lake.put_many([{"event_id": "p-1", "event_type": "t", "event_payload": {"x": 1},
                           "timestamp": "2026-11-30T23:59:59.999999Z"}])[0].ok
    [item] = stored(lake).values()
    # then the index entry DynamoDB returns is the id, s and k alone (keys only) ...
    [raw] = lake.clients.dynamodb.query(
        TableName=lake.settings.table, IndexName=INDEX_NAME,
        KeyConditionExpression="s = :s", ExpressionAttributeValues={
            ":s": item["ingest_shard"]})["Items"]
    assert set(raw) == {"event_id", "s", "k"} and len(raw["k"]["B"]) == KEY_BYTES
    assert item_size(raw) == len("event_id") + 3 + 1 + len(item["s"]["S"]) + 1 + KEY_BYTES
    # ... which reads as the old index's entry did: the attributes the sweep decides by
    [entry] = [e for page in lake.hot.read_index_pages(NOW - timedelta(hours=1),
                                                       NOW + timedelta(hours=1)) for e in page]
    assert entry == {name: item[name] for name in ENTRY}
    assert entry_key(entry) == ("p-1", "2026-11-30", item["content_hash"]["S"])


@settings(max_examples=200, deadline=None)
@given(event_id=st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S")),
                        min_size=1, max_size=40),
       timestamp=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                              timezones=st.just(UTC)),
       ingested=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1),
                             timezones=st.just(UTC)),
       retention=st.integers(min_value=1, max_value=10 * 365 * 86400))
def test_the_key_of_every_item_decodes_to_its_own_attributes(
        event_id: str, timestamp: datetime, ingested: datetime, retention: int) -> None:
    event = parse_event({"event_id": event_id, "event_type": "t", "event_payload": {},
                         "timestamp": timestamp.isoformat()}, now=timestamp)
    item = item_of(event, ingested, retention_seconds=retention, index_shards=4)
    entry = decode_entry({"event_id": item["event_id"], "s": item["s"], "k": item["k"]})
    assert entry == {name: item[name] for name in ENTRY}
    # and the backfill would give an old writer's item the same keys
    old = {name: value for name, value in item.items() if name not in ("s", "k")}
    assert key_of_item(old) == {"s": item["s"], "k": item["k"]}


def test_what_k_cannot_hold_is_left_out_so_the_reader_fetches_the_item() -> None:
    # given an old item of another writer's layout: a timestamp, hash and expiry eventlake
    # does not write
    old = {"event_id": {"S": "x-1"}, "ingest_shard": {"S": "2026-11-01#0"},
           "ingest_key": {"S": "2026-11-01T10:00:00.000000Z#x-1"},
           "timestamp": {"S": "2026-11-01 09:00:00"}, "content_hash": {"S": "AB" * 32},
           "expires_at": {"N": "1793530000.5"}}
    keys = key_of_item(old)
    assert keys is not None
    entry = decode_entry({"event_id": old["event_id"], **keys})
    # then its entry holds only what is certain, and the entry alone decides nothing
    assert entry == {name: old[name] for name in ("event_id", "ingest_shard", "ingest_key")}
    assert entry_key(entry) is None
    # an impossible date in the right layout is not a timestamp either
    feb30 = {**old, "timestamp": {"S": "2026-02-30T00:00:00.000000Z"}}
    assert "timestamp" not in decode_entry({"event_id": old["event_id"], **key_of_item(feb30)})


def test_an_item_whose_ingest_key_is_not_eventlakes_has_no_place() -> None:
    base = {"event_id": {"S": "x-1"}, "ingest_shard": {"S": "2026-11-01#0"}}
    for key in ("2026-11-01T10:00:00.000000Z#x-2", "2026-11-01T10:00:00Z#x-1", "x-1",
                "1969-12-31T23:59:59.000000Z#x-1"):
        assert key_of_item({**base, "ingest_key": {"S": key}}) is None, key
    assert key_of_item({"event_id": {"S": "x-1"}, "ingest_key": {
        "S": "2026-11-01T10:00:00.000000Z#x-1"}}) is None  # no shard


def test_a_key_not_of_this_layout_is_refused_naming_the_event() -> None:
    with pytest.raises(StorageError, match=r"event `odd-1` with a key `k` of 3 bytes"):
        decode_entry({"event_id": {"S": "odd-1"}, "s": {"S": "2026-11-01#0"},
                      "k": {"B": b"abc"}})
    with pytest.raises(StorageError, match=r"event `odd-2` .* past year 9999"):
        decode_entry({"event_id": {"S": "odd-2"}, "s": {"S": "2026-11-01#0"},
                      "k": {"B": b"\xff" * KEY_BYTES}})


def test_a_window_read_is_half_open_to_the_microsecond(lake: EventLake) -> None:
    # given events ingested one microsecond around both ends of a window
    start = NOW.replace(microsecond=0) - timedelta(minutes=5)
    end = start + timedelta(minutes=1)
    at = {"before": start - timedelta(microseconds=1), "first": start,
          "last": end - timedelta(microseconds=1), "after": end}
    agreed = lake.hot.table_settings()
    for name, ingested in at.items():
        event = parse_event({"event_id": name, "event_type": "t", "event_payload": {}},
                            now=ingested)
        lake.clients.dynamodb.put_item(TableName=lake.settings.table, Item=item_of(
            event, ingested, retention_seconds=agreed.retention_seconds,
            index_shards=agreed.index_shards))
    # then [start, end) holds exactly the two inside
    read = [e["event_id"]["S"] for page in lake.hot.read_index_pages(start, end) for e in page]
    assert sorted(read) == ["first", "last"]


# --- the migration -------------------------------------------------------------------------

@pytest.mark.parametrize("old", [PREVIOUS_INDEX_NAME, LEGACY_INDEX_NAME])
def test_init_on_a_table_of_an_earlier_init_backfills_the_new_index_then_drops_the_old(
        mocked_aws: None, tmp_path: Any, old: str) -> None:
    # given a table an earlier init made, with events an earlier writer stored
    lake = old_lake(tmp_path, old)
    before = stored(lake)
    assert event_ids(lake) == [f"e-{i}" for i in range(6)]
    assert not any("k" in item for item in before.values())

    changes = EventLake(lake.settings).init()

    # then init says what it did, in order
    assert short(changes) == [f"added index {INDEX_NAME}",
                              f"gave 6 existing item(s) the keys of index {INDEX_NAME}",
                              f"deleted index {old}"]
    assert list(indexes(lake)) == [INDEX_NAME]
    assert EventLake(lake.settings).init() == []  # nothing left to do
    # and each item gained s and k only: the keys today's writer gives the same event
    after = stored(lake)
    for event_id, item in after.items():
        assert {n: v for n, v in item.items() if n not in ("s", "k")} == before[event_id]
        assert decode_entry({"event_id": item["event_id"], "s": item["s"], "k": item["k"]}
                            ) == {name: item[name] for name in ENTRY}
    # and every reader finds every event through the new index
    again = EventLake(lake.settings)
    assert event_ids(again) == [f"e-{i}" for i in range(6)]
    assert again.hot.index_name() == INDEX_NAME and hot_ids(again) == sorted(after)


def test_the_backfills_modifies_pass_the_stream_path_but_other_modifies_do_not(
        mocked_aws: None, tmp_path: Any) -> None:
    lake = old_lake(tmp_path, count=1)
    old = stored(lake)["e-0"]
    EventLake(lake.settings).init()
    new = stored(lake)["e-0"]
    assert is_reindexing(old, new)
    # and as Lambda's JSON carries it (base64)
    assert is_reindexing(old, wire_image(new))
    # anything else changed, keys other than the backfill computes from the item, or keys
    # there before, is an immutable event modified
    assert not is_reindexing(old, {**new, "event_payload": {"S": "{}"}})
    assert not is_reindexing(old, {**new, "k": {"B": new["k"]["B"][:21] + bytes(32)}})
    assert not is_reindexing(old, {**new, "s": {"S": "2026-01-01#0"}})
    assert not is_reindexing(new, {**new, "k": {"B": bytes(KEY_BYTES)}})
    assert not is_reindexing({**old, "s": new["s"]}, new)
    assert not is_reindexing(old, {**old, "s": new["s"]})
    assert not is_reindexing(old, old)
    assert not is_reindexing(None, new) and not is_reindexing(old, None)


def stream_records(lake: EventLake) -> list[dict[str, Any]]:
    """Every record on the table's stream so far (moto's shape: boto3 decodes binary)."""
    streams = lake.clients.dynamodbstreams
    arn = lake.clients.dynamodb.describe_table(TableName=lake.settings.table)["Table"][
        "LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            if not page["Records"]:
                break
            records += page["Records"]
            iterator = page.get("NextShardIterator")
    return records


def test_the_stream_path_archives_the_old_events_and_passes_the_backfills_modifies(
        mocked_aws: None, tmp_path: Any) -> None:
    # given an old table migrated by init: its stream holds the INSERTs, then a MODIFY each
    lake = old_lake(tmp_path)
    EventLake(lake.settings).init()
    records = stream_records(lake)
    names = [r["eventName"] for r in records]
    assert names.count("INSERT") == 6 and names.count("MODIFY") == 12  # REMOVE s, k; then SET
    # when the stream path archives the backfill's MODIFYs (those after the old writer's own)
    backfill = [r for r in records if r["eventName"] == "MODIFY"
                and "k" in r["dynamodb"]["NewImage"]]
    assert len(backfill) == 6
    inserts = [r for r in records if r["eventName"] == "INSERT"]
    report = archive_event(lake.cold, {"Records": inserts + backfill})
    # then the events are archived once and nothing is quarantined
    assert (report.archived, report.reindexed, report.modified, report.quarantined) == (
        6, 6, 0, 0)
    assert lake.cold.read_quarantine() == []


def test_readers_use_the_old_index_while_the_new_one_is_not_yet_backfilled(
        mocked_aws: None, tmp_path: Any) -> None:
    # given the new index created (ACTIVE) but holding none of the old items yet
    lake = old_lake(tmp_path)
    create_new_index(lake)
    # then readers query the old index, which holds the old items and today's writer's
    assert lake.put_many([{"event_id": "new-1", "event_type": "t", "event_payload": {}}]
                         )[0].ok
    assert lake.hot.index_name() == PREVIOUS_INDEX_NAME
    assert hot_ids(lake) == [*(f"e-{i}" for i in range(6)), "new-1"]
    assert event_ids(lake) == [*(f"e-{i}" for i in range(6)), "new-1"]


def fail_updates_after(monkeypatch: pytest.MonkeyPatch, ddb: Any, allowed: int) -> list[str]:
    """Make UpdateItem fail (not retried: an injected 500) once `allowed` calls succeeded."""
    real = ddb.update_item
    done: list[str] = []
    lock = threading.Lock()

    def update_item(**kwargs: Any) -> Any:
        with lock:
            if len(done) >= allowed:
                raise ClientError({"Error": {"Code": "InternalServerError",
                                             "Message": "injected by the test"}}, "UpdateItem")
            done.append(kwargs["Key"]["event_id"]["S"])
        return real(**kwargs)

    monkeypatch.setattr(ddb, "update_item", update_item)
    return done


def test_an_init_that_fails_mid_backfill_keeps_the_old_index_and_the_next_one_finishes(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an init whose backfill fails after 3 of 6 items
    lake = old_lake(tmp_path)
    first = EventLake(lake.settings)
    with monkeypatch.context() as m:
        done = fail_updates_after(m, first.clients.dynamodb, 3)
        with pytest.raises(ClientError, match="injected by the test"):
            first.init()
    assert len(done) == 3
    # then both indexes are there, and readers still find every event through the old one
    assert set(indexes(lake)) == {INDEX_NAME, PREVIOUS_INDEX_NAME}
    reader = EventLake(lake.settings)
    assert reader.hot.index_name() == PREVIOUS_INDEX_NAME
    assert hot_ids(reader) == [f"e-{i}" for i in range(6)]
    # and the next init gives the other 3 their keys and finishes
    assert short(EventLake(lake.settings).init()) == [
        f"gave 3 existing item(s) the keys of index {INDEX_NAME}",
        f"deleted index {PREVIOUS_INDEX_NAME}"]
    assert all("k" in item for item in stored(lake).values())
    assert hot_ids(reader) == [f"e-{i}" for i in range(6)]  # re-chose the new index
    assert reader.hot.index_name() == INDEX_NAME


def test_an_item_the_new_index_cannot_place_keeps_the_old_index_and_is_named(
        mocked_aws: None, tmp_path: Any) -> None:
    # given an item in the old index whose ingest_key is not eventlake's
    lake = old_lake(tmp_path)
    lake.clients.dynamodb.put_item(TableName=lake.settings.table, Item={
        "event_id": {"S": "odd-1"}, "ingest_shard": {"S": "2026-11-01#0"},
        "ingest_key": {"S": "yesterday#odd-1"}, "event_type": {"S": "t"}})
    # then init places the rest, refuses to drop the old index, and names the item
    with pytest.raises(StorageError, match=r"cannot place these items: odd-1 \(its ingest_key "
                                           r"is not .*\); by_ingested_at_v2 kept"):
        EventLake(lake.settings).init()
    assert set(indexes(lake)) == {INDEX_NAME, PREVIOUS_INDEX_NAME}
    assert sum("k" in item for item in stored(lake).values()) == 6
    assert EventLake(lake.settings).hot.index_name() == PREVIOUS_INDEX_NAME


def test_init_asked_to_keep_the_old_index_backfills_and_leaves_it(
        mocked_aws: None, tmp_path: Any) -> None:
    # given an old table whose stack template still holds the old index (PreviousIndex=keep)
    lake = old_lake(tmp_path)
    # when init runs with --keep-old-index
    changes = EventLake(lake.settings).init(keep_old_index=True)
    # then it backfills, keeps the old index and says how it goes away
    assert short(changes)[:2] == [f"added index {INDEX_NAME}",
                                  f"gave 6 existing item(s) the keys of index {INDEX_NAME}"]
    assert changes[2].startswith(f"kept index {PREVIOUS_INDEX_NAME}")
    assert "--keep-old-index" in changes[2] and "PreviousIndex=drop" in changes[2]
    assert set(indexes(lake)) == {INDEX_NAME, PREVIOUS_INDEX_NAME}
    assert all("k" in item for item in stored(lake).values())
    # and a later init with the flag has nothing to give keys to
    assert short(EventLake(lake.settings).init(keep_old_index=True)) == [
        f"kept index {PREVIOUS_INDEX_NAME}"]


def test_the_cli_passes_keep_old_index_and_reindex_to_init(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from eventlake.cli.main import main

    lake = old_lake(tmp_path)
    monkeypatch.setenv("EVENTLAKE_TABLE", lake.settings.table)
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", lake.settings.lake_uri)
    assert main(["init", "--keep-old-index"]) == 0
    out = capsys.readouterr().out
    assert f"gave 6 existing item(s) the keys of index {INDEX_NAME}" in out
    assert f"kept index {PREVIOUS_INDEX_NAME}" in out
    assert set(indexes(lake)) == {INDEX_NAME, PREVIOUS_INDEX_NAME}
    assert main(["init", "--reindex"]) == 0
    assert f"deleted index {PREVIOUS_INDEX_NAME}" in capsys.readouterr().out
    assert list(indexes(lake)) == [INDEX_NAME]


def test_reindex_gives_keys_to_items_left_without_them_when_the_old_index_is_gone(
        mocked_aws: None, tmp_path: Any) -> None:
    # given the old index dropped before any init had backfilled (a stack updated keep ->
    # drop too soon): the old items are in no index
    lake = old_lake(tmp_path)
    create_new_index(lake)
    lake.clients.dynamodb.update_table(TableName=lake.settings.table,
                                       GlobalSecondaryIndexUpdates=[
                                           {"Delete": {"IndexName": PREVIOUS_INDEX_NAME}}])
    assert hot_ids(EventLake(lake.settings)) == []
    # when init runs without --reindex nothing is found to do; with it, they are indexed
    assert EventLake(lake.settings).init() == []
    assert short(EventLake(lake.settings).init(reindex=True)) == [
        f"gave 6 existing item(s) the keys of index {INDEX_NAME}"]
    assert hot_ids(EventLake(lake.settings)) == [f"e-{i}" for i in range(6)]


def test_items_an_old_writer_stores_during_the_backfill_are_given_keys_by_the_next_pass(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an old writer storing one event without s and k while the first pass runs
    lake = old_lake(tmp_path)
    first = EventLake(lake.settings)
    real = first.clients.dynamodb.scan
    passes: list[int] = []

    def scan(**kwargs: Any) -> Any:
        response = real(**kwargs)
        if kwargs.get("ConsistentRead") and "ExclusiveStartKey" not in kwargs:
            passes.append(1)
            if len(passes) == 1:
                write_old(lake, ["late-1"])
        return response

    monkeypatch.setattr(first.clients.dynamodb, "scan", scan)
    # when init migrates, then a second pass finds it, a third finds none, and the old index
    # goes only then
    assert short(first.init()) == [f"added index {INDEX_NAME}",
                                   f"gave 7 existing item(s) the keys of index {INDEX_NAME}",
                                   f"deleted index {PREVIOUS_INDEX_NAME}"]
    assert len(passes) == 3
    assert hot_ids(EventLake(lake.settings)) == sorted([*(f"e-{i}" for i in range(6)), "late-1"])


def test_an_old_writer_still_storing_keeps_the_old_index_and_is_named(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an old writer storing an event without s and k during every pass
    lake = old_lake(tmp_path)
    first = EventLake(lake.settings)
    real = first.clients.dynamodb.scan
    late = iter(range(100))

    def scan(**kwargs: Any) -> Any:
        response = real(**kwargs)
        if kwargs.get("ConsistentRead") and "ExclusiveStartKey" not in kwargs:
            write_old(lake, [f"late-{next(late)}"])
        return response

    monkeypatch.setattr(first.clients.dynamodb, "scan", scan)
    # then init gives up, saying why, and readers keep the old index, which lists them all
    with pytest.raises(StorageError, match="a writer older than this version is still"):
        first.init()
    assert set(indexes(lake)) == {INDEX_NAME, PREVIOUS_INDEX_NAME}
    reader = EventLake(lake.settings)
    assert reader.hot.index_name() == PREVIOUS_INDEX_NAME
    assert len(hot_ids(reader)) == 6 + 5


def test_items_too_large_for_the_keys_or_with_foreign_keys_keep_the_old_index_and_are_named(
        mocked_aws: None, tmp_path: Any) -> None:
    # given, in an old table, an item within 68 bytes of the item limit (moto's: 405,000
    # bytes) and one with an attribute `k` of another writer (a string)
    lake = old_lake(tmp_path)
    ddb, table = lake.clients.dynamodb, lake.settings.table
    [small] = [i for i in stored(lake).values() if i["event_id"]["S"] == "e-0"]
    big = {**small, "event_id": {"S": "big-1"},
           "ingest_key": {"S": small["ingest_key"]["S"].replace("#e-0", "#big-1")}}
    big["event_payload"] = {"S": "x" * (404_990 - item_size(big) + len(
        small["event_payload"]["S"]))}
    ddb.put_item(TableName=table, Item=big)
    foreign = {**small, "event_id": {"S": "odd-k"}, "k": {"S": "theirs"},
               "ingest_key": {"S": small["ingest_key"]["S"].replace("#e-0", "#odd-k")}}
    ddb.put_item(TableName=table, Item=foreign)
    # then init names both, with why, and keeps the old index (readers list both there)
    with pytest.raises(StorageError) as refused:
        EventLake(lake.settings).init()
    assert "big-1 (the 68 bytes of s and k would take it past DynamoDB's 400 KB" in str(
        refused.value)
    assert "odd-k (it has an `s` or `k` the index cannot use" in str(refused.value)
    assert f"{PREVIOUS_INDEX_NAME} kept (readers use it)" in str(refused.value)
    assert set(indexes(lake)) == {INDEX_NAME, PREVIOUS_INDEX_NAME}
    assert {"big-1", "odd-k"} <= set(hot_ids(EventLake(lake.settings)))


def test_a_table_of_a_cloudformation_stack_keeps_its_old_index_for_the_template_to_drop(
        mocked_aws: None, tmp_path: Any) -> None:
    # given an old table CloudFormation made (its stack tag)
    lake = old_lake(tmp_path)
    ddb = lake.clients.dynamodb
    arn = ddb.describe_table(TableName=lake.settings.table)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "aws:cloudformation:stack-name",
                                             "Value": "events-prod"}])
    # when init migrates it, then it backfills but leaves the old index to the template
    changes = EventLake(lake.settings).init()
    assert short(changes)[:2] == [f"added index {INDEX_NAME}",
                                  f"gave 6 existing item(s) the keys of index {INDEX_NAME}"]
    assert changes[2].startswith(f"kept index {PREVIOUS_INDEX_NAME}")
    assert "stack `events-prod`" in changes[2] and "PreviousIndex=drop" in changes[2]
    assert set(indexes(lake)) == {INDEX_NAME, PREVIOUS_INDEX_NAME}
    reader = EventLake(lake.settings)
    assert reader.hot.index_name() == PREVIOUS_INDEX_NAME
    # and once the template drops it, readers read the new index, every event there
    ddb.update_table(TableName=lake.settings.table, GlobalSecondaryIndexUpdates=[
        {"Delete": {"IndexName": PREVIOUS_INDEX_NAME}}])
    assert hot_ids(reader) == [f"e-{i}" for i in range(6)]
    assert reader.hot.index_name() == INDEX_NAME


def test_a_reader_that_chose_the_old_index_keeps_reading_after_it_is_deleted(
        mocked_aws: None, tmp_path: Any) -> None:
    # given a reader that read through the old index before the migration
    lake = old_lake(tmp_path, LEGACY_INDEX_NAME)
    assert lake.hot.index_name() == LEGACY_INDEX_NAME
    assert hot_ids(lake) == [f"e-{i}" for i in range(6)]
    # when init migrates meanwhile (another process)
    EventLake(lake.settings).init()
    # then its next read chooses again and reads the new index: nothing missing
    assert hot_ids(lake) == [f"e-{i}" for i in range(6)]
    assert lake.hot.index_name() == INDEX_NAME


def test_an_index_of_the_new_name_with_another_projection_or_keys_is_refused(
        mocked_aws: None, tmp_path: Any) -> None:
    lake = old_lake(tmp_path)
    included = {**index_spec(), "Projection": {"ProjectionType": "INCLUDE",
                                               "NonKeyAttributes": ["timestamp"]}}
    lake.clients.dynamodb.update_table(TableName=lake.settings.table,
                                       AttributeDefinitions=attribute_definitions(),
                                       GlobalSecondaryIndexUpdates=[{"Create": included}])
    with pytest.raises(StorageError, match=f"index {INDEX_NAME} projecting .*INCLUDE"):
        EventLake(lake.settings).init()
    assert PREVIOUS_INDEX_NAME in indexes(lake)  # the old one is left for readers

    other = old_lake(tmp_path / "other", table="other-events")
    other.clients.dynamodb.update_table(
        TableName="other-events", GlobalSecondaryIndexUpdates=[{"Create": {
            **index_spec(), "KeySchema": [{"AttributeName": "ingest_key", "KeyType": "HASH"}]}}])
    with pytest.raises(StorageError, match=f"index {INDEX_NAME} keyed .*ingest_key"):
        EventLake(other.settings).init()
    assert PREVIOUS_INDEX_NAME in indexes(other)


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
    lake = old_lake(tmp_path)
    first = EventLake(lake.settings)
    raced = race_after_describe(monkeypatch, first.clients.dynamodb,
                                lambda: EventLake(lake.settings).init())
    # when A goes on from what it saw
    first.init()
    # then it succeeds, and the table has the new index only, every event in it
    assert raced
    assert list(indexes(lake)) == [INDEX_NAME]
    assert hot_ids(lake) == [f"e-{i}" for i in range(6)]
    assert all("k" in item for item in stored(lake).values())


def test_an_init_finding_the_old_index_already_deleted_by_another_still_succeeds(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an init interrupted after creating the new index (both indexes there) ...
    lake = old_lake(tmp_path)
    create_new_index(lake)
    first = EventLake(lake.settings)
    # ... init A saw both, then init B backfilled and deleted the old one
    race_after_describe(monkeypatch, first.clients.dynamodb,
                        lambda: EventLake(lake.settings).init())
    # when A goes on, then it finds nothing to backfill and the old index gone, and succeeds
    assert short(first.init()) == [f"deleted index {PREVIOUS_INDEX_NAME}"]
    assert list(indexes(lake)) == [INDEX_NAME]


def test_an_index_of_the_new_name_created_meanwhile_with_another_projection_is_refused(
        mocked_aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given init A saw the old index only, and someone then made the new name project ALL
    lake = old_lake(tmp_path)
    first = EventLake(lake.settings)
    ddb = first.clients.dynamodb
    spec = {**index_spec(), "Projection": {"ProjectionType": "ALL"}}
    race_after_describe(monkeypatch, ddb, lambda: ddb.update_table(
        TableName=lake.settings.table, AttributeDefinitions=attribute_definitions(),
        GlobalSecondaryIndexUpdates=[{"Create": spec}]))
    # when A tries to create it, then it refuses clearly and leaves the old index for readers
    with pytest.raises(StorageError, match=f"index {INDEX_NAME} projecting .*ALL"):
        first.init()
    assert PREVIOUS_INDEX_NAME in indexes(lake)


def test_waiting_for_an_index_polls_until_it_is_active_and_fails_if_it_vanishes() -> None:
    states = iter(["CREATING", "CREATING", "ACTIVE", "ACTIVE"])
    pauses: list[float] = []

    def describe() -> dict[str, Any]:
        return {"GlobalSecondaryIndexes": [{"IndexName": "x", "IndexStatus": next(states)}]}

    wait_index_active(describe, "x", sleep=pauses.append, delay=2.0)
    assert pauses == [2.0, 2.0]
    with pytest.raises(StorageError, match="index y vanished"):
        wait_index_active(describe, "y", sleep=pauses.append)


# --- which index a reader reads --------------------------------------------------------------

def described(*indexes: dict[str, Any], status: str = "ACTIVE") -> dict[str, Any]:
    return {"GlobalSecondaryIndexes": [{"IndexStatus": status, **i} for i in indexes]}


def test_readers_prefer_an_old_index_while_one_is_queryable() -> None:
    new, previous, legacy = index_spec(), old_spec(PREVIOUS_INDEX_NAME), old_spec(
        LEGACY_INDEX_NAME)
    assert choose(described(new, previous, legacy), "t") == PREVIOUS_INDEX_NAME
    assert choose(described(new, legacy), "t") == LEGACY_INDEX_NAME
    assert choose(described(new), "t") == INDEX_NAME
    # an old index being deleted (or one being built) is not read
    deleting = {**previous, "IndexStatus": "DELETING"}
    assert choose({"GlobalSecondaryIndexes": [{**new, "IndexStatus": "ACTIVE"}, deleting]},
                  "t") == INDEX_NAME
    # an old index described with its attributes in another order is still eventlake's
    reordered = {**previous, "Projection": {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": sorted(OLD_PROJECTIONS[PREVIOUS_INDEX_NAME]["NonKeyAttributes"],
                                   reverse=True)}}
    assert choose(described(new, reordered), "t") == PREVIOUS_INDEX_NAME


def test_readers_skip_an_old_name_that_is_not_eventlakes_index(
        caplog: pytest.LogCaptureFixture) -> None:
    foreign = {**old_spec(PREVIOUS_INDEX_NAME), "Projection": {"ProjectionType": "KEYS_ONLY"}}
    assert choose(described(index_spec(), foreign), "t") == INDEX_NAME
    assert choose(described(foreign, old_spec(LEGACY_INDEX_NAME)), "t") == LEGACY_INDEX_NAME
    assert "is not the one eventlake made" in caplog.text


def test_readers_refuse_an_index_of_the_new_name_keyed_or_projecting_otherwise() -> None:
    wrong_keys = {**index_spec(), "KeySchema": [{"AttributeName": "event_type",
                                                  "KeyType": "HASH"}]}
    projecting = {**index_spec(), "Projection": {"ProjectionType": "ALL"}}
    for wrong in (wrong_keys, projecting):
        with pytest.raises(StorageError, match=f"index {INDEX_NAME} (keyed|projecting)"):
            choose(described(wrong), "t")


def test_a_table_with_no_active_index_is_refused_with_what_to_do() -> None:
    with pytest.raises(StorageError, match="run `eventlake init`"):
        choose(described(index_spec(), status="CREATING"), "t")
    with pytest.raises(StorageError, match="none exists"):
        choose({}, "t")


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
    lake = old_lake(tmp_path, LEGACY_INDEX_NAME, count=30)
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
    lake = old_lake(tmp_path, LEGACY_INDEX_NAME)
    assert lake.hot.index_name() == LEGACY_INDEX_NAME
    items = sorted(lake.hot.read_ingested(NOW - timedelta(hours=1), NOW + timedelta(hours=1)),
                   key=lambda i: i["event_id"]["S"])
    archive_items(lake.cold, items[:3], name="stream-half")
    # then events_hot (whole items from the old index) leaves out what the lake holds
    hot = lake.sql("select event_id from events_hot order by event_id").to_pylist()
    assert [r["event_id"] for r in hot] == ["e-3", "e-4", "e-5"]
    assert lake.sql("select count(*) as n, count(distinct event_id) as ids from events"
                    ).to_pylist() == [{"n": 6, "ids": 6}]
