"""EventLake, the Python API: init, put, put_many and status on in-process moto."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from eventlake import EventLake, Outcome, Settings, parse_event
from eventlake.hot.results import count_outcomes

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

SEED = {"event_id": "order-8812-placed", "event_type": "order.placed",
        "timestamp": "2024-05-01T09:30:00Z", "event_payload": {"order_id": 8812, "total": "49.90"}}
CLOUDEVENT = {"specversion": "1.0", "id": "A234-1234-1234",
              "type": "com.github.pull_request.opened",
              "source": "https://github.com/cloudevents/spec/pull", "subject": "123",
              "time": "2018-04-05T17:31:00Z", "data": {"action": "opened"}}
EVENTBRIDGE = {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
               "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
               "account": "111122223333", "time": "2017-12-22T18:43:48Z", "region": "us-west-1",
               "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
               "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"}}


def stored_ids(lake: EventLake) -> set[str]:
    pages = lake.clients.dynamodb.get_paginator("scan").paginate(TableName=lake.settings.table)
    return {item["event_id"]["S"] for page in pages for item in page["Items"]}


def test_from_env_reads_the_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAKE_TABLE", "orders-events")
    monkeypatch.setenv("EVENTLAKE_INDEX_SHARDS", "4")
    lake = EventLake.from_env(lake_uri="s3://acme-lake/events")
    assert (lake.settings.table, lake.settings.index_shards) == ("orders-events", 4)
    assert lake.settings.lake_uri == "s3://acme-lake/events"


def test_building_a_lake_contacts_no_aws_and_every_client_uses_the_endpoint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given an endpoint where nothing listens
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    # when a lake is built, nothing is contacted; its clients, built on first use, aim there
    lake = EventLake.from_env()
    assert lake.clients.dynamodb.meta.endpoint_url == "http://127.0.0.1:9"
    assert lake.clients.s3.meta.endpoint_url == "http://127.0.0.1:9"
    assert lake.clients.dynamodb is lake.clients.dynamodb


def test_init_with_an_s3_lake_creates_a_private_encrypted_bucket(mocked_aws: None) -> None:
    # given a lake on S3 in a fresh account
    lake = EventLake(Settings.from_env(table="orders-events", lake_uri="s3://acme-lake/prod"))
    # when it is initialised
    changes = lake.init()
    # then the bucket exists, blocks every kind of public access and encrypts by default
    assert "created bucket `acme-lake`" in changes
    s3 = lake.clients.s3
    s3.head_bucket(Bucket="acme-lake")
    block = s3.get_public_access_block(Bucket="acme-lake")["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                     "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    [rule] = s3.get_bucket_encryption(Bucket="acme-lake")[
        "ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    # and a second init changes nothing
    assert lake.init() == []


def test_init_with_a_local_lake_creates_no_bucket(mocked_aws: None, tmp_path: Path) -> None:
    lake = EventLake(Settings.from_env(table="local-lake", lake_uri=str(tmp_path)))
    lake.init()
    assert lake.clients.s3.list_buckets()["Buckets"] == []


@pytest.mark.parametrize(("raw", "event_id"), [
    (SEED, "order-8812-placed"),
    (CLOUDEVENT, "A234-1234-1234"),
    (EVENTBRIDGE, "6a7e8feb-b491-4cf7-a9f1-bf3703467718"),
], ids=["seed", "cloudevents", "eventbridge"])
def test_put_stores_an_event_of_any_accepted_shape(lake: EventLake, raw: dict[str, Any],
                                                   event_id: str) -> None:
    result = lake.put(raw)
    assert (result.outcome, result.event_id, result.position) == (Outcome.CREATED, event_id, 0)
    assert stored_ids(lake) == {event_id}


def test_put_accepts_an_already_parsed_event(lake: EventLake) -> None:
    assert lake.put(parse_event(SEED)).outcome is Outcome.CREATED
    assert lake.put(SEED).outcome is Outcome.DUPLICATE


def test_an_event_without_an_id_is_stored_under_the_id_its_result_reports(
        lake: EventLake) -> None:
    result = lake.put({"event_type": "page.viewed", "event_payload": {"path": "/pricing"}})
    assert result.outcome is Outcome.CREATED
    assert result.event_id is not None and UUID.fullmatch(result.event_id)
    assert stored_ids(lake) == {result.event_id}


def test_an_invalid_event_is_reported_not_raised(lake: EventLake) -> None:
    # when an event breaks a rule
    result = lake.put({**SEED, "timestamp": "2024-05-01 09:30"})
    # then its result names the rule and the event, and nothing is stored
    assert (result.outcome, result.rule, result.event_id) == (
        Outcome.INVALID, "timestamp.naive", "order-8812-placed")
    assert result.message is not None and "[rule timestamp.naive]" in result.message
    assert result.to_dict() == {"position": 0, "event_id": "order-8812-placed",
                                "outcome": "invalid", "rule": "timestamp.naive",
                                "message": result.message}
    assert stored_ids(lake) == set()


def test_a_500_kb_event_is_invalid_and_nothing_is_stored(lake: EventLake) -> None:
    result = lake.put({**SEED, "event_payload": {"blob": "x" * 500_000}})
    assert (result.outcome, result.rule) == (Outcome.INVALID, "item.too_large")
    assert stored_ids(lake) == set()


def test_put_many_stores_the_valid_events_around_invalid_ones(lake: EventLake) -> None:
    # given a batch whose 2nd and 4th events are broken, one unparseable in any calendar
    batch = [
        {**SEED, "event_id": "ok-1"},
        {**SEED, "event_id": "bad-1", "event_payload": [1, 2]},
        {**SEED, "event_id": "ok-2"},
        {**SEED, "event_id": "bad-2", "timestamp": "9999-12-31T23:59:59-01:00"},
        "not an event",
    ]
    # when it is put
    results = lake.put_many(batch)
    # then there is one result per event, in order, and only the valid ones are stored
    assert [(r.position, r.event_id, r.outcome) for r in results] == [
        (0, "ok-1", Outcome.CREATED), (1, "bad-1", Outcome.INVALID),
        (2, "ok-2", Outcome.CREATED), (3, "bad-2", Outcome.INVALID),
        (4, None, Outcome.INVALID)]
    assert [r.rule for r in results[1::2]] == ["payload.not_object", "timestamp.unparseable"]
    assert results[1].message is not None and "#1 `bad-1`" in results[1].message
    assert stored_ids(lake) == {"ok-1", "ok-2"}
    assert count_outcomes(results) == {"created": 2, "duplicate": 0, "conflict": 0,
                                       "invalid": 3, "failed": 0}


def test_put_many_takes_any_iterable_and_an_empty_one(lake: EventLake) -> None:
    results = lake.put_many({**SEED, "event_id": f"gen-{i}"} for i in range(3))
    assert [r.event_id for r in results] == ["gen-0", "gen-1", "gen-2"]
    assert lake.put_many([]) == []


def test_status_reports_the_table_and_the_lake(lake: EventLake) -> None:
    status = lake.status()
    assert status["hot"]["table"] == "events-test"
    assert status["hot"]["exists"] is True
    assert status["hot"]["stream"] == "NEW_AND_OLD_IMAGES"
    assert status["hot"]["ttl"] == "ENABLED on expires_at"
    assert status["hot"]["index"] == "ACTIVE"
    assert status["lake_uri"] == lake.settings.lake_uri


def test_status_of_an_uninitialised_lake_says_the_table_is_missing(mocked_aws: None) -> None:
    lake = EventLake(Settings.from_env(table="not-yet"))
    assert lake.status()["hot"] == {"table": "not-yet", "exists": False}


def test_init_marks_the_lake_so_that_it_exists(mocked_aws: None, tmp_path: Path) -> None:
    lake = EventLake(Settings.from_env(table="orders-events", lake_uri=str(tmp_path / "lake")))
    assert lake.cold.lake_exists() is False

    changes = lake.init()

    assert f"created lake `{tmp_path / 'lake'}` (_eventlake/lake.json)" in changes
    assert lake.cold.lake_exists() is True
    assert lake.init() == []


def test_status_says_when_the_lake_does_not_exist(lake: EventLake, tmp_path: Path) -> None:
    typo = EventLake(lake.settings.with_(lake_uri=str(tmp_path / "laek")), clients=lake.clients)

    status = typo.status()

    assert status["lake_exists"] is False
    assert "watermark" not in status
    assert lake.status()["lake_exists"] is True


# --- retries never double an event sent without an id -------------------------------------

PAGE_VIEWS = [{"event_type": "page.viewed", "timestamp": f"2024-05-01T09:3{i}:00Z",
               "source": "web", "event_payload": {"path": f"/pricing/{i}"}} for i in range(4)]


def test_put_many_sent_twice_without_ids_stores_each_event_once(lake: EventLake) -> None:
    # given four events without ids, stored once
    first = lake.put_many(PAGE_VIEWS)
    # when the producer retries the whole batch
    again = lake.put_many(PAGE_VIEWS)
    # then the retry finds the same ids, reports duplicates, and the table holds four items
    assert [r.outcome for r in first] == [Outcome.CREATED] * 4
    assert [r.outcome for r in again] == [Outcome.DUPLICATE] * 4
    assert [r.event_id for r in again] == [r.event_id for r in first]
    assert stored_ids(lake) == {r.event_id for r in first}
    assert len(stored_ids(lake)) == 4


def test_a_repeat_of_an_event_without_id_or_timestamp_is_a_duplicate_that_says_why(
        lake: EventLake) -> None:
    # given a heartbeat without id or timestamp, sent twice a minute apart
    heartbeat = {"event_type": "sensor.heartbeat", "event_payload": {"battery": 0.91}}
    [first] = lake.put_many([heartbeat])
    [second] = lake.put_many([heartbeat])
    # then it is stored once; the duplicate says how to store repeats
    assert (first.outcome, second.outcome) == (Outcome.CREATED, Outcome.DUPLICATE)
    assert second.event_id == first.event_id
    assert second.message is not None
    assert "event_id" in second.message and "timestamp" in second.message
    assert len(stored_ids(lake)) == 1


def test_a_duplicate_of_an_event_with_an_id_has_no_message(lake: EventLake) -> None:
    lake.put(SEED)
    assert lake.put(SEED).message is None


@pytest.mark.parametrize("field", ["event_id", "event_type", "source", "subject"])
def test_put_many_reports_a_lone_surrogate_as_invalid_and_stores_the_rest(
        lake: EventLake, field: str) -> None:
    # given a batch whose middle event holds a lone surrogate in one field
    import json

    broken = {**SEED, "event_id": "bad-1", field: json.loads('"x\\ud800"')}
    batch = [{**SEED, "event_id": "ok-1"}, broken, {**SEED, "event_id": "ok-2"}]
    # when it is put, then nothing is raised, the broken one is invalid and the rest stored
    results = lake.put_many(batch)
    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.INVALID, Outcome.CREATED]
    assert results[1].rule == f"{field}.invalid_unicode"
    assert stored_ids(lake) == {"ok-1", "ok-2"}
