"""The hot store on in-process moto: provisioning, conditional writes, retries, window reads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from archive_support import record_on_table
from aws_support import FailAttempts, inject_where, record_pauses
from aws_support import inject as inject_attempts
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from clock_support import Clock

from eventlake import EventLake, Settings
from eventlake.aws import Clients
from eventlake.errors import ConfigError, StorageError, TableNotFoundError, TransientError
from eventlake.events.model import Event, estimated_item_bytes, parse_event
from eventlake.hot.results import Deadline, Outcome
from eventlake.hot.store import INDEX_NAME, HotStore, Item, shard_of

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def event(event_id: str, **changes: Any) -> Event:
    raw = {"event_id": event_id, "event_type": "cart.item_added",
           "timestamp": "2024-05-01T09:30:00Z", "source": "shop/web", "subject": "cart/77",
           "event_payload": {"sku": "MUG-01", "qty": 1}, **changes}
    return parse_event({k: v for k, v in raw.items() if v is not ...}, now=NOW)


def stored(store: HotStore, event_id: str) -> Item | None:
    response = store.clients.dynamodb.get_item(
        TableName=store.table, Key={"event_id": {"S": event_id}}, ConsistentRead=True)
    return response.get("Item")


def client_error(code: str, status: int = 400, operation: str = "PutItem") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (injected by the test)"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def inject(store: EventLake | HotStore, method: str, error: Exception,
           times: int | None) -> FailAttempts:
    """The first `times` attempts (None: all) of `method` fail, below botocore's retries."""
    operation = "".join(w.title() for w in method.split("_"))  # put_item -> PutItem
    return inject_attempts(store.clients.dynamodb, operation, error, times)


def store_with(lake: EventLake, **changes: Any) -> HotStore:
    """A store on clients of its own, built from the lake's settings with `changes`."""
    settings = lake.settings.with_(**changes)
    return HotStore(settings, Clients(settings))


def dynamodb_item_bytes(item: Item) -> int:
    """DynamoDB's item size: names plus UTF-8 strings, bytes, and numbers (at most 1 byte a
    digit)."""
    total = 0
    for name, value in item.items():
        total += len(name.encode("utf-8"))
        if "S" in value:
            total += len(value["S"].encode("utf-8"))
        else:
            total += len(value["B"]) if "B" in value else len(value["N"])
    return total


@pytest.fixture
def store(lake: EventLake, sleeps: list[float]) -> HotStore:
    """The lake's hot store, with botocore's pauses recorded instead of slept."""
    return HotStore(lake.settings, lake.clients)


# --- provisioning ------------------------------------------------------------------------

def test_provisioning_twice_changes_nothing_the_second_time(mocked_aws: None) -> None:
    store = HotStore(Settings.from_env(table="provision-twice"),
                     Clients(Settings.from_env(table="provision-twice")))
    first = store.provision()
    assert any("created table" in change for change in first)
    assert store.provision() == []


def test_the_table_is_keyed_by_event_id_with_index_stream_and_ttl(lake: EventLake) -> None:
    ddb = lake.clients.dynamodb
    table = ddb.describe_table(TableName="events-test")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "event_id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == INDEX_NAME
    assert index["KeySchema"] == [{"AttributeName": "s", "KeyType": "HASH"},
                                  {"AttributeName": "k", "KeyType": "RANGE"}]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert table["StreamSpecification"] == {"StreamEnabled": True,
                                            "StreamViewType": "NEW_AND_OLD_IMAGES"}
    ttl = ddb.describe_time_to_live(TableName="events-test")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_provisioning_completes_a_bare_table_made_by_someone_else(mocked_aws: None) -> None:
    # given a table keyed by event_id with no index, stream or TTL
    settings = Settings.from_env(table="bare-table")
    store = HotStore(settings, Clients(settings))
    store.clients.dynamodb.create_table(
        TableName="bare-table", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "event_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}])
    # when it is provisioned
    changes = store.provision()
    # then the index, the stream and TTL are added, and a second run has nothing left to do
    assert changes == [
        "recorded 8 index shards on table `bare-table` (tag `eventlake:index_shards`; it had "
        "none: every process now uses it)",
        "recorded a retention of 30 days on table `bare-table` (tag `eventlake:retention_days`;"
        " it had none: every process now uses it)",
        "recorded a clock skew of 600 s on table `bare-table` (tag "
        "`eventlake:clock_skew_seconds`; it had none: every process now uses it)",
        "recorded an archive settle of 60 s on table `bare-table` (tag "
        "`eventlake:archive_settle_seconds`; it had none: every process now uses it)",
        f"added index {INDEX_NAME} (keys only, 53-byte sort key: events are "
        "fetched whole only when the lake lacks them)", "enabled stream NEW_AND_OLD_IMAGES",
        "enabled TTL on `expires_at`"]
    assert store.describe()["index"] == "ACTIVE"
    assert store.provision() == []


def test_provisioning_waits_for_each_table_update_before_the_next(
        mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a bare table, and a DynamoDB that refuses an update while one is still applying
    settings = Settings.from_env(table="busy-table")
    store = HotStore(settings, Clients(settings))
    ddb = store.clients.dynamodb
    ddb.create_table(
        TableName="busy-table", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "event_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}])
    busy = {"updating": False}
    real_update, real_describe = ddb.update_table, ddb.describe_table

    def update_table(**kwargs: Any) -> Any:
        if busy["updating"]:
            raise client_error("ResourceInUseException", operation="UpdateTable")
        busy["updating"] = True
        return real_update(**kwargs)

    def describe_table(**kwargs: Any) -> Any:
        response = real_describe(**kwargs)
        if busy["updating"]:  # reported UPDATING once, then the update is done
            busy["updating"] = False
            response["Table"]["TableStatus"] = "UPDATING"
        return response

    monkeypatch.setattr(ddb, "update_table", update_table)
    monkeypatch.setattr(ddb, "describe_table", describe_table)
    monkeypatch.setattr("botocore.waiter.time.sleep", lambda _: None)
    # when it is provisioned, then both updates go through
    assert "enabled stream NEW_AND_OLD_IMAGES" in store.provision()


def test_two_inits_racing_to_create_the_table_both_succeed(mocked_aws: None) -> None:
    # given process A saw no table, and process B created it right after
    settings = Settings.from_env(table="raced-table")
    first, second = HotStore(settings, Clients(settings)), HotStore(settings, Clients(settings))
    inject(first, "describe_table", client_error("ResourceNotFoundException"), times=1)
    second.provision()
    # when A goes on to create it, then A finds B's table complete instead of failing
    assert first.provision() == []


def test_provisioning_refuses_a_table_keyed_otherwise(mocked_aws: None) -> None:
    settings = Settings.from_env(table="orders")
    store = HotStore(settings, Clients(settings))
    store.clients.dynamodb.create_table(
        TableName="orders", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}])
    with pytest.raises(StorageError, match="EVENTLAKE_TABLE"):
        store.provision()


def test_provisioning_refuses_a_stream_without_old_and_new_images(mocked_aws: None) -> None:
    settings = Settings.from_env(table="keys-only")
    store = HotStore(settings, Clients(settings))
    store.clients.dynamodb.create_table(
        TableName="keys-only", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "event_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    with pytest.raises(StorageError, match="NEW_AND_OLD_IMAGES"):
        store.provision()


def test_provisioning_refuses_ttl_on_another_attribute(lake: EventLake) -> None:
    ddb = lake.clients.dynamodb
    ddb.update_time_to_live(TableName="events-test", TimeToLiveSpecification={
        "Enabled": False, "AttributeName": "expires_at"})
    ddb.update_time_to_live(TableName="events-test", TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "purge_at"})
    with pytest.raises(StorageError, match="purge_at"):
        lake.hot.provision()


# --- conditional writes ------------------------------------------------------------------

def test_a_new_event_is_created_with_every_stored_attribute(lake: EventLake) -> None:
    # given a store whose clock reads 12:34:56.789 UTC
    ingested = datetime(2024, 5, 1, 12, 34, 56, 789_000, tzinfo=UTC)
    store = HotStore(lake.settings, lake.clients, clock=Clock(ingested))
    cart = event("cart-77-item-1")
    # when the event is put
    result = store.put(cart)
    # then it is created, and the item holds the event and the store's bookkeeping
    assert (result.outcome, result.event_id, result.ok) == (Outcome.CREATED, "cart-77-item-1",
                                                            True)
    shard = shard_of("cart-77-item-1", 8)
    assert stored(store, "cart-77-item-1") == {
        "event_id": {"S": "cart-77-item-1"},
        "event_type": {"S": "cart.item_added"},
        "timestamp": {"S": "2024-05-01T09:30:00.000000Z"},
        "event_payload": {"S": '{"qty":1,"sku":"MUG-01"}'},
        "source": {"S": "shop/web"},
        "subject": {"S": "cart/77"},
        "ingested_at": {"S": "2024-05-01T12:34:56.789000Z"},
        "content_hash": {"S": cart.content_hash},
        "expires_at": {"N": str(int(ingested.timestamp()) + 30 * 86400)},
        "ingest_shard": {"S": f"2024-05-01#{shard}"},
        "ingest_key": {"S": "2024-05-01T12:34:56.789000Z#cart-77-item-1"},
        # the index's keys: the same shard, and ingested_at, timestamp, expires_at and the
        # hash packed (hot/index.py), microseconds and seconds big-endian
        "s": {"S": f"2024-05-01#{shard}"},
        "k": {"B": (1714566896789000).to_bytes(8, "big")
              + (1714555800000000 + 2**63).to_bytes(8, "big")
              + (int(ingested.timestamp()) + 30 * 86400).to_bytes(5, "big")
              + bytes.fromhex(cart.content_hash)},
    }


def test_expires_at_is_ingestion_time_plus_retention(lake: EventLake) -> None:
    ingested = datetime(2024, 5, 1, 23, 59, 59, 999_999, tzinfo=UTC)
    settings = lake.settings.with_(retention_days=2, ttl_safety_hours=6)
    record_on_table(lake.clients, settings)
    store = HotStore(settings, lake.clients, clock=Clock(ingested))
    store.put(event("short-lived"))
    item = stored(store, "short-lived")
    assert item is not None
    assert int(item["expires_at"]["N"]) == int(ingested.timestamp()) + 2 * 86400


def test_an_event_without_source_or_subject_stores_neither(store: HotStore) -> None:
    store.put(event("bare-event", source=..., subject=...))
    item = stored(store, "bare-event")
    assert item is not None
    assert "source" not in item and "subject" not in item


def test_an_identical_retry_is_a_duplicate_and_changes_nothing(lake: EventLake) -> None:
    # given an event stored at 12:00
    clock = Clock(NOW)
    store = HotStore(lake.settings, lake.clients, clock=clock)
    assert store.put(event("cart-77-item-1")).outcome is Outcome.CREATED
    first = stored(store, "cart-77-item-1")
    # when the producer sends it again an hour later
    clock.at = NOW + timedelta(hours=1)
    result = store.put(event("cart-77-item-1"))
    # then it is a duplicate (a success) and the stored item keeps its first ingestion
    assert result.outcome is Outcome.DUPLICATE
    assert result.ok
    assert stored(store, "cart-77-item-1") == first


def test_different_content_under_a_stored_id_is_a_conflict_and_keeps_the_stored_event(
        store: HotStore) -> None:
    # given a stored event
    store.put(event("cart-77-item-1"))
    original = stored(store, "cart-77-item-1")
    # when different content arrives under the same id
    result = store.put(event("cart-77-item-1", event_payload={"sku": "MUG-01", "qty": 5}))
    # then it is refused as a conflict that says why, and the stored item is untouched
    assert result.outcome is Outcome.CONFLICT
    assert not result.ok
    assert result.message is not None
    assert "`cart-77-item-1`" in result.message
    assert "immutable" in result.message
    assert stored(store, "cart-77-item-1") == original


def refusals_carry_no_item(store: HotStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DynamoDB whose failed conditions do not return the stored item (the store must read
    it): ReturnValuesOnConditionCheckFailure dropped from every PutItem."""
    ddb = store.clients.dynamodb
    real_put = ddb.put_item

    def put_item(**kwargs: Any) -> Any:
        kwargs.pop("ReturnValuesOnConditionCheckFailure", None)
        return real_put(**kwargs)

    monkeypatch.setattr(ddb, "put_item", put_item)


def test_a_conflict_is_found_even_when_the_failed_condition_returns_no_item(
        store: HotStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a DynamoDB that does not return the old item with a failed condition
    store.put(event("cart-77-item-1"))
    refusals_carry_no_item(store, monkeypatch)
    # then the store reads the stored copy to tell a duplicate from a conflict
    assert store.put(event("cart-77-item-1")).outcome is Outcome.DUPLICATE
    changed = event("cart-77-item-1", event_type="cart.item_removed")
    assert store.put(changed).outcome is Outcome.CONFLICT


def test_an_event_without_timestamp_sent_again_later_is_a_duplicate(lake: EventLake) -> None:
    # given an event with an id but no timestamp, stored at 12:00 (its timestamp defaulted)
    heartbeat = {"event_id": "sensor-4-heartbeat-1", "event_type": "sensor.heartbeat",
                 "event_payload": {"battery": 0.91}}
    [first] = lake.put_many([heartbeat], now=NOW)
    # when the producer retries it a minute later
    [retry] = lake.put_many([heartbeat], now=NOW + timedelta(minutes=1))
    # then the retry is a duplicate, not a conflict, and the first timestamp stays
    assert (first.outcome, retry.outcome) == (Outcome.CREATED, Outcome.DUPLICATE)
    item = stored(lake.hot, "sensor-4-heartbeat-1")
    assert item is not None
    assert item["timestamp"]["S"] == "2024-05-01T12:00:00.000000Z"


def test_an_event_without_timestamp_but_with_new_content_is_still_a_conflict(
        lake: EventLake) -> None:
    heartbeat = {"event_id": "sensor-4-heartbeat-1", "event_type": "sensor.heartbeat",
                 "event_payload": {"battery": 0.91}}
    lake.put_many([heartbeat], now=NOW)
    changed = {**heartbeat, "event_payload": {"battery": 0.5}}
    [retry] = lake.put_many([changed], now=NOW + timedelta(minutes=1))
    assert retry.outcome is Outcome.CONFLICT


def test_an_item_dynamodb_finds_too_large_is_invalid_with_the_reason(store: HotStore) -> None:
    # given an event built past the parser's size check (e.g. by a caller making Events)
    huge = Event("huge-1", "blob.uploaded", NOW, '{"blob":"' + "x" * 410_000 + '"}')
    # when it is put, then DynamoDB's refusal is reported as an invalid event, not stored
    result = store.put(huge)
    assert (result.outcome, result.rule) == (Outcome.INVALID, "item.too_large")
    assert result.message is not None and "DynamoDB" in result.message
    assert stored(store, "huge-1") is None


def test_an_event_just_under_400_kb_is_stored_whole(store: HotStore) -> None:
    big = event("big-1", event_payload={"blob": "x" * 399_000})
    assert store.put(big).outcome is Outcome.CREATED
    item = stored(store, "big-1")
    assert item is not None
    assert item["event_payload"]["S"] == big.payload


@pytest.mark.parametrize("event_id", ["e", "0190f1c2-7a4b-7c3d-8e5f-a1b2c3d4e5f6", "i" * 256])
def test_the_size_estimate_never_undercounts_the_stored_item(store: HotStore,
                                                             event_id: str) -> None:
    # given events with the longest id, source and subject, and a multi-byte payload
    full = event(event_id, source="s" * 1024, subject="ü" * 1024,
                 event_payload={"text": "ünïcödé " * 100})
    # then the parser's estimate covers every byte the store will write, with little slack
    item = store.to_item(full, datetime(2024, 5, 1, 12, tzinfo=UTC))
    actual = dynamodb_item_bytes(item)
    assert actual <= estimated_item_bytes(full) <= actual + 64


def test_put_many_reports_every_outcome_in_input_order(lake: EventLake) -> None:
    # given a table holding one event to be retried and one to be contradicted
    lake.put(event("retried").to_dict())
    lake.put(event("contradicted").to_dict())
    batch: list[Any] = [
        event("fresh-1").to_dict(),
        event("retried").to_dict(),
        event("contradicted", event_payload={"sku": "MUG-02", "qty": 1}).to_dict(),
        {"event_id": "broken", "event_payload": {"sku": "MUG-01"}},  # no event_type
        event("twice").to_dict(),
        event("twice").to_dict(),
    ] + [event(f"fresh-{i}").to_dict() for i in range(2, 30)]
    # when it is sent in one concurrent batch
    results = lake.put_many(batch)
    # then each input has one result at its position, with the outcome it deserves
    assert [r.position for r in results] == list(range(len(batch)))
    assert [r.outcome for r in results[:4]] == [Outcome.CREATED, Outcome.DUPLICATE,
                                                Outcome.CONFLICT, Outcome.INVALID]
    assert (results[3].rule, results[3].event_id) == ("event_type.required", "broken")
    assert sorted([results[4].outcome, results[5].outcome]) == [Outcome.CREATED,
                                                                Outcome.DUPLICATE]
    assert {r.outcome for r in results[6:]} == {Outcome.CREATED}
    assert stored(lake.hot, "broken") is None
    contradicted = stored(lake.hot, "contradicted")
    assert contradicted is not None
    assert contradicted["content_hash"]["S"] == event("contradicted").content_hash


def test_the_same_id_twice_in_one_batch_with_different_content_stores_one_of_them(
        store: HotStore) -> None:
    # given two versions of one event in the same concurrent batch
    versions = [event("racy", event_payload={"v": 1}), event("racy", event_payload={"v": 2})]
    # when they are written concurrently
    results = store.put_many(versions)
    # then exactly one is created, the other is a conflict, and the stored one is the winner
    outcomes = [r.outcome for r in results]
    assert sorted(outcomes) == [Outcome.CONFLICT, Outcome.CREATED]
    winner = versions[outcomes.index(Outcome.CREATED)]
    item = stored(store, "racy")
    assert item is not None
    assert item["content_hash"]["S"] == winner.content_hash


def test_put_many_keeps_the_positions_it_is_given(store: HotStore) -> None:
    results = store.put_many([event("p-1"), event("p-2")], positions=[4, 9])
    assert [(r.position, r.event_id) for r in results] == [(4, "p-1"), (9, "p-2")]
    with pytest.raises(ValueError, match="positions"):
        store.put_many([event("p-3"), event("p-4")], positions=[1])


# --- throttling and errors ---------------------------------------------------------------

def test_throttled_writes_are_retried_with_backoff_until_created(
        lake: EventLake, store: HotStore, sleeps: list[float]) -> None:
    # given DynamoDB throttles the first three writes
    puts = inject(store, "put_item", client_error("ProvisionedThroughputExceededException"),
                  times=3)
    # when an event is put
    result = store.put(event("throttled-1"))
    # then botocore creates it on the fourth attempt, after three capped exponential pauses
    assert result.outcome is Outcome.CREATED
    assert puts.calls == 4
    assert len(sleeps) == 3
    assert all(0 <= s <= 2 ** i for i, s in enumerate(sleeps))
    assert stored(store, "throttled-1") is not None


def test_throttling_that_never_stops_fails_the_event_without_raising(
        lake: EventLake, sleeps: list[float]) -> None:
    # given DynamoDB throttles every write, and a store allowed 4 attempts
    store = store_with(lake, aws_max_attempts=4)
    puts = inject(store, "put_item", client_error("ThrottlingException"), times=None)
    # when an event is put
    result = store.put(event("throttled-forever"))
    # then it fails after 4 attempts in total with a message saying so, and nothing is raised
    assert result.outcome is Outcome.FAILED and result.retryable is True
    assert not result.ok
    assert result.message is not None
    assert "4 attempts" in result.message
    assert "ThrottlingException" in result.message
    assert "safe to retry" in result.message
    assert (puts.calls, len(sleeps)) == (4, 3)


@pytest.mark.parametrize("error", [
    EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"),
    ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"),
], ids=["connection", "read-timeout"])
def test_a_dropped_connection_is_retried(store: HotStore, error: Exception) -> None:
    puts = inject(store, "put_item", error, times=2)
    assert store.put(event("after-outage")).outcome is Outcome.CREATED
    assert puts.calls == 3


def test_a_server_error_without_a_known_code_is_retried(store: HotStore) -> None:
    inject(store, "put_item", client_error("BrandNewOutage", status=503), times=1)
    assert store.put(event("after-503")).outcome is Outcome.CREATED


@pytest.mark.parametrize("code", ["AccessDeniedException",
                                  "ItemCollectionSizeLimitExceededException"])
def test_a_non_transient_error_fails_at_once_naming_the_error(
        store: HotStore, sleeps: list[float], code: str) -> None:
    puts = inject(store, "put_item", client_error(code), times=None)
    result = store.put(event("refused"))
    assert result.outcome is Outcome.FAILED and result.retryable is False
    assert result.message is not None and code in result.message
    assert (puts.calls, sleeps) == (1, [])


def test_a_throttled_batch_still_reports_every_event_created(
        store: HotStore, sleeps: list[float]) -> None:
    # given DynamoDB throttles the first two writes of every event in a concurrent batch, 300
    # throttled retries in all: more than botocore's per-client retry budget (500 tokens, 5 a
    # retry), after which botocore alone would give every later write one attempt
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def throttled(body: dict[str, Any]) -> bool:
        with lock:
            event_id = body["Item"]["event_id"]["S"]
            attempts[event_id] = attempts.get(event_id, 0) + 1
            return attempts[event_id] <= 2

    inject_where(store.clients.dynamodb, "PutItem",
                 client_error("ProvisionedThroughputExceededException"), throttled)
    # when the batch is put, then every event is created on its third attempt
    results = store.put_many([event(f"burst-{i}") for i in range(150)])
    assert [r.outcome for r in results] == [Outcome.CREATED] * 150
    assert set(attempts.values()) == {3}


class FakeTime:
    """A monotonic clock that only moves when botocore pauses between attempts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        record_pauses(monkeypatch, self.sleep)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_throttling_stops_retrying_before_the_deadline_and_fails_retryable(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given DynamoDB throttles every write, 50 attempts allowed, and 1.5 s left to answer
    store = store_with(lake, aws_max_attempts=50, clock_skew_seconds=3000)
    record_on_table(store.clients, store.settings)  # the table's look-back
    puts = inject(store, "put_item", client_error("ThrottlingException"), times=None)
    fake = FakeTime(monkeypatch)
    deadline = Deadline.after(1.5, clock=fake.clock)
    # when an event is put
    result = store.put(event("throttled-late"), deadline=deadline)
    # then botocore never pauses past the deadline, and the store says it stopped in time
    assert fake.now <= 1001.5
    assert 1 < puts.calls < 50
    assert result.outcome is Outcome.FAILED and result.retryable is True
    assert result.message is not None
    assert "stopped retrying" in result.message and "in time" in result.message
    assert "ThrottlingException" in result.message


def test_a_write_stops_retrying_in_time_to_land_within_the_sweeps_look_back(
        lake: EventLake, sleeps: list[float]) -> None:
    """ingested_at is stamped before the first attempt: a write landing later than the sweep
    re-reads behind its watermark would be behind every sweep window."""
    # given a look-back that leaves 3 s for retries (0 s skew + 38 s settle - 35 s for the
    # last attempt's timeouts) and DynamoDB throttling every write
    store = store_with(lake, clock_skew_seconds=0, archive_settle_seconds=38)
    record_on_table(store.clients, store.settings)  # the table's look-back
    assert store.settings.write_retry_seconds == 3
    puts = inject(store, "put_item", client_error("ThrottlingException"), times=None)
    # when an event is put
    result = store.put(event("throttled-long"))
    # then no pause could end past the budget (up to 1 s, then 2 s; not the 4 s next), and the
    # result says why it stopped
    assert puts.calls == 3 and len(sleeps) == 2 and sum(sleeps) <= 3
    assert result.outcome is Outcome.FAILED and result.retryable is True
    assert result.message is not None and "re-reads behind its watermark" in result.message


def test_a_put_whose_deadline_has_passed_is_not_attempted(
        lake: EventLake, store: HotStore, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTime(monkeypatch)
    result = store.put(event("too-late"), deadline=Deadline.after(-0.1, clock=fake.clock))
    assert result.outcome is Outcome.FAILED and result.retryable is True
    assert stored(store, "too-late") is None


def test_a_deadline_far_away_changes_nothing(
        lake: EventLake, store: HotStore, monkeypatch: pytest.MonkeyPatch) -> None:
    puts = inject(store, "put_item", client_error("ThrottlingException"), times=3)
    fake = FakeTime(monkeypatch)
    result = store.put(event("in-time"), deadline=Deadline.after(600, clock=fake.clock))
    assert result.outcome is Outcome.CREATED
    assert (puts.calls, len(fake.sleeps)) == (4, 3)


def test_put_many_passes_the_deadline_to_every_event(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given every write throttled and 1 s left for a batch of 40 events
    store = store_with(lake, aws_max_attempts=50, clock_skew_seconds=3000, put_concurrency=4)
    record_on_table(store.clients, store.settings)  # the table's look-back
    inject(store, "put_item", client_error("ThrottlingException"), times=None)
    fake = FakeTime(monkeypatch)
    # when they are put, then each fails retryable instead of retrying 50 times
    results = store.put_many([event(f"late-{i}") for i in range(40)],
                             deadline=Deadline.after(1.0, clock=fake.clock))
    assert {(r.outcome, r.retryable) for r in results} == {(Outcome.FAILED, True)}


def test_the_longest_event_id_that_passes_the_rules_is_stored(store: HotStore) -> None:
    # given an id of 256 characters and 996 bytes (the index sort key is then 1,024 bytes)
    longest = "🎉" * 246 + "é" * 2 + "x" * 8
    # when it is put, then DynamoDB stores it, index key included
    assert store.put(event(longest)).outcome is Outcome.CREATED
    item = stored(store, longest)
    assert item is not None
    assert len(item["ingest_key"]["S"].encode("utf-8")) == 1024


# --- reads by ingestion window -----------------------------------------------------------

def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


INGESTED = {
    "a-0959": at("2024-05-01T09:59:59.999999"),
    "b-1000": at("2024-05-01T10:00:00"),
    "c-1030": at("2024-05-01T10:30:00"),
    "d-1059": at("2024-05-01T10:59:59.999999"),
    "e-1100": at("2024-05-01T11:00:00"),
    "f-1215": at("2024-05-01T12:15:00"),
    "g-2359": at("2024-05-01T23:59:59.999999"),
    "h-0000": at("2024-05-02T00:00:00"),
}


@pytest.fixture
def spread(lake: EventLake) -> HotStore:
    """A store holding one event per INGESTED entry, ingested at that moment."""
    clock = Clock(NOW)
    store = HotStore(lake.settings, lake.clients, clock=clock)
    for event_id, ingested in INGESTED.items():
        clock.at = ingested
        assert store.put(event(event_id)).outcome is Outcome.CREATED
    return store


def ids_between(store: HotStore, since: datetime, until: datetime) -> list[str]:
    return sorted(item["event_id"]["S"] for item in store.read_ingested(since, until))


@pytest.mark.parametrize(("since", "until", "expected"), [
    ("2024-05-01T10:00:00", "2024-05-01T11:00:00", ["b-1000", "c-1030", "d-1059"]),
    ("2024-05-01T09:59:59.999999", "2024-05-01T11:00:00.000001",
     ["a-0959", "b-1000", "c-1030", "d-1059", "e-1100"]),
    ("2024-05-01T10:00:00.000001", "2024-05-01T10:59:59.999999", ["c-1030"]),
    ("2024-05-01T10:45:00", "2024-05-01T12:15:00.000001", ["d-1059", "e-1100", "f-1215"]),
    ("2024-05-01T23:00:00", "2024-05-02T01:00:00", ["g-2359", "h-0000"]),
    ("2024-05-01T00:00:00", "2024-05-03T00:00:00", sorted(INGESTED)),
    ("2024-05-01T13:00:00", "2024-05-01T23:00:00", []),
    ("2024-05-01T11:00:00", "2024-05-01T11:00:00", []),
    ("2024-05-01T12:00:00", "2024-05-01T10:00:00", []),
], ids=["one-hour", "microsecond-edges", "exclusive-of-neighbours", "across-two-hours",
        "across-midnight", "two-days", "quiet-hours", "empty", "inverted"])
def test_a_window_read_returns_exactly_what_was_ingested_in_since_until(
        spread: HotStore, since: str, until: str, expected: list[str]) -> None:
    assert ids_between(spread, at(since), at(until)) == expected


def test_a_window_given_in_another_time_zone_reads_the_same_events(spread: HotStore) -> None:
    sydney = timezone(timedelta(hours=11))
    since = datetime(2024, 5, 1, 21, 0, tzinfo=sydney)  # 10:00 UTC
    until = datetime(2024, 5, 1, 22, 0, tzinfo=sydney)  # 11:00 UTC
    assert ids_between(spread, since, until) == ["b-1000", "c-1030", "d-1059"]


def test_a_window_read_returns_whole_items(spread: HotStore) -> None:
    [item] = spread.read_ingested(at("2024-05-01T12:00:00"), at("2024-05-01T13:00:00"))
    assert item == stored(spread, "f-1215")


def test_events_spread_over_all_8_shards_are_all_found(lake: EventLake) -> None:
    # given 64 events ingested within one hour by a store with 8 index shards
    clock = Clock(at("2024-05-01T10:00:00"))
    store = HotStore(lake.settings, lake.clients, clock=clock)
    assert lake.settings.index_shards == 8
    for i in range(64):
        clock.at = at("2024-05-01T10:00:00") + timedelta(seconds=50 * i)
        store.put(event(f"evt-{i:03d}"))
    # when the hour is read
    items = list(store.read_ingested(at("2024-05-01T10:00:00"), at("2024-05-01T11:00:00")))
    # then every event comes back once, from every one of the 8 shards
    assert sorted(item["event_id"]["S"] for item in items) == [f"evt-{i:03d}" for i in range(64)]
    assert {item["ingest_shard"]["S"] for item in items} == {
        f"2024-05-01#{s}" for s in range(8)}


def test_raising_the_shard_count_keeps_older_events_readable(lake: EventLake) -> None:
    # (a table without recorded settings: each process uses its own count)
    ddb = lake.clients.dynamodb
    ddb.untag_resource(ResourceArn=ddb.describe_table(TableName="events-test")["Table"]["TableArn"],
                       TagKeys=["eventlake:index_shards", "eventlake:retention_days"])
    clock = Clock(at("2024-05-01T10:00:00"))
    narrow = HotStore(lake.settings.with_(index_shards=2), lake.clients, clock=clock)
    for i in range(10):
        narrow.put(event(f"old-{i}"))
    wide = HotStore(lake.settings.with_(index_shards=16), lake.clients)
    found = ids_between(wide, at("2024-05-01T10:00:00"), at("2024-05-01T10:00:01"))
    assert found == [f"old-{i}" for i in range(10)]


def test_a_window_read_pages_through_large_partitions(lake: EventLake) -> None:
    # given one shard holding more than one 1 MB query page of events
    clock = Clock(at("2024-05-01T10:00:00"))
    record_on_table(lake.clients, lake.settings.with_(index_shards=1))
    store = HotStore(lake.settings.with_(index_shards=1), lake.clients, clock=clock)
    payload = {"blob": "x" * 100_000}
    for i in range(15):
        store.put(event(f"page-{i:02d}", event_payload=payload))
    # then the read follows LastEvaluatedKey to the end
    found = ids_between(store, at("2024-05-01T10:00:00"), at("2024-05-01T11:00:00"))
    assert found == [f"page-{i:02d}" for i in range(15)]


def test_a_throttled_window_read_is_retried(spread: HotStore, sleeps: list[float]) -> None:
    inject(spread, "query", client_error("ThrottlingException", operation="Query"), times=5)
    assert ids_between(spread, at("2024-05-01T10:00:00"), at("2024-05-01T11:00:00")) == [
        "b-1000", "c-1030", "d-1059"]
    assert len(sleeps) == 5


def test_a_window_read_throttled_for_good_raises_a_transient_error(
        spread: HotStore, lake: EventLake, sleeps: list[float]) -> None:
    store = store_with(lake, aws_max_attempts=2)
    inject(store, "query", client_error("ThrottlingException", operation="Query"), times=None)
    with pytest.raises(TransientError, match="kept failing"):
        ids_between(store, at("2024-05-01T10:00:00"), at("2024-05-01T11:00:00"))


# --- a table that does not exist ----------------------------------------------------------

@pytest.fixture
def no_table(mocked_aws: None) -> HotStore:
    """A store whose table was never created (a typo in EVENTLAKE_TABLE, or no `init`)."""
    settings = Settings.from_env(table="orders-evnets", index_shards=2)
    return HotStore(settings, Clients(settings))


MISSING = ("table `orders-evnets` does not exist in region `us-east-1`: run `eventlake init`, "
           "or set EVENTLAKE_TABLE to the table's name")


def test_a_write_to_a_missing_table_fails_for_good_naming_the_table_and_the_fix(
        no_table: HotStore) -> None:
    results = no_table.put_many([event("o-1"), event("o-2")])

    assert [(r.outcome, r.retryable, r.rule, r.message) for r in results] == [
        (Outcome.FAILED, False, "table.missing", MISSING)] * 2


@pytest.mark.parametrize("read", [
    lambda s: list(s.read_ingested(NOW - timedelta(hours=1), NOW)),
    lambda s: list(s.scan_pages()),
], ids=["index-query", "scan"])
def test_a_read_of_a_missing_table_raises_table_not_found_naming_it(
        no_table: HotStore, read: Callable[[HotStore], Any]) -> None:
    with pytest.raises(TableNotFoundError) as info:
        read(no_table)
    assert str(info.value) == MISSING
    assert isinstance(info.value, ConfigError)


def test_require_table_raises_only_when_the_table_is_missing(
        no_table: HotStore, lake: EventLake) -> None:
    with pytest.raises(TableNotFoundError, match="orders-evnets"):
        no_table.require_table()
    lake.hot.require_table()  # the fixture's table exists: no error


def test_the_missing_table_message_names_the_endpoint_without_its_password() -> None:
    settings = Settings.from_env(table="orders", region="eu-west-1",
                                 endpoint_url="http://user:secret@localhost:4566")
    message = str(HotStore(settings, Clients(settings)).table_not_found())
    assert message == ("table `orders` does not exist in region `eu-west-1` (endpoint "
                       "`http://***@localhost:4566`): run `eventlake init`, or set "
                       "EVENTLAKE_TABLE to the table's name")


def test_a_connection_failure_message_hides_the_endpoint_password(
        lake: EventLake, sleeps: list[float]) -> None:
    error = EndpointConnectionError(endpoint_url="http://user:secret@127.0.0.1:1/")
    store = store_with(lake, aws_max_attempts=2)
    inject(store, "put_item", error, None)

    result = store.put(event("o-3"))

    assert result.outcome is Outcome.FAILED and result.retryable
    assert "secret" not in (result.message or "")
    assert "http://***@127.0.0.1:1/" in (result.message or "")


def test_a_put_that_stops_for_the_deadline_hides_the_endpoint_password(
        lake: EventLake, sleeps: list[float]) -> None:
    # given an endpoint with a password that cannot be reached, and a deadline that leaves time
    # for one attempt only (the ingest handler always passes one; its messages reach HTTP callers)
    error = EndpointConnectionError(endpoint_url="http://user:secret@127.0.0.1:1/")
    store = store_with(lake, aws_max_attempts=5)
    inject(store, "put_item", error, None)

    result = store.put(event("o-4"), deadline=Deadline(lambda: 0.001))

    assert result.outcome is Outcome.FAILED and result.retryable
    assert "stopped retrying" in (result.message or "")
    assert "secret" not in (result.message or "")
    assert "http://***@127.0.0.1:1/" in (result.message or "")
