"""Review 30: the sweep against DynamoDB behaviours moto does not emulate. moto's index is
updated synchronously, its Query pages are exact and it never throttles; real DynamoDB pages at
1 MB (and may return an empty page that still carries LastEvaluatedKey), throttles a Query in
the middle of a partition, and shows an item in a global secondary index some time after the
write (normally < 1 s). `DynamoQuery` wraps the client's Query to behave so."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from archive_support import NOW, World, hours, make_world
from botocore.exceptions import ClientError

from eventlake import EventLake
from eventlake.archive.ttlguard import ttl_margin
from eventlake.archive.writer import archive_items
from eventlake.errors import TransientError
from eventlake.lake.watermark import read_watermark
from eventlake.query.views import connect


class DynamoQuery:
    """Query as DynamoDB answers it: `limit` items a page (the 1 MB cut), an empty page with
    LastEvaluatedKey before each continuation, the entries of `hidden` event_ids not in the
    index yet, and ProvisionedThroughputExceededException (botocore's retries spent) on every
    continuation once `throttle_from` continuations have been answered."""

    def __init__(self, client: Any, *, limit: int = 2) -> None:
        self.real = client.query
        self.limit = limit
        self.hidden: set[str] = set()
        self.throttle_from: int | None = None
        self.continuations = 0
        self.empty_pages = 0
        self._answered_empty: set[str] = set()

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        start = kwargs.get("ExclusiveStartKey")
        if start is not None:
            self.continuations += 1
            if self.throttle_from is not None and self.continuations > self.throttle_from:
                raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                             "Message": "throttled (injected by the test)"},
                                   "ResponseMetadata": {"HTTPStatusCode": 400}}, "Query")
            marker = json.dumps(start, sort_keys=True, default=repr)
            if marker not in self._answered_empty:
                self._answered_empty.add(marker)
                self.empty_pages += 1
                return {"Items": [], "Count": 0, "ScannedCount": 0, "LastEvaluatedKey": start}
        response = dict(self.real(**kwargs, Limit=self.limit))
        response["Items"] = [i for i in response.get("Items", [])
                             if i["event_id"]["S"] not in self.hidden]
        return response


@pytest.fixture
def world(lake: EventLake) -> World:
    """Three days of retention, a 6-hour margin, a 10-minute clock skew; swept an hour ago."""
    world = make_world(lake)
    world.sweep(NOW - hours(1))
    return world


@pytest.fixture
def query(world: World, monkeypatch: pytest.MonkeyPatch) -> DynamoQuery:
    wrapped = DynamoQuery(world.clients.dynamodb)
    monkeypatch.setattr(world.clients.dynamodb, "query", wrapped)
    return wrapped


def test_small_and_empty_query_pages_archive_every_event_once(world: World,
                                                               query: DynamoQuery) -> None:
    # given 15 events, read 2 a page with an empty page before every continuation
    ids = world.ingest([f"p-{i:02d}" for i in range(15)], NOW - timedelta(minutes=30))
    # when the sweep runs
    report = world.sweep(NOW)
    # then it followed every LastEvaluatedKey: each event once, the watermark at NOW
    assert query.empty_pages >= 6
    assert world.stored_rows() == Counter(ids)
    assert report.counts.archived == 15 and report.ttl.unarchived == 0
    watermark = read_watermark(world.lake)
    assert watermark is not None and watermark.at == NOW


def test_a_query_throttled_mid_partition_fails_the_sweep_and_keeps_the_watermark(
        world: World, query: DynamoQuery) -> None:
    # given 15 events, and DynamoDB throttling every Query after the third page
    ids = world.ingest([f"t-{i:02d}" for i in range(15)], NOW - timedelta(minutes=30))
    before = read_watermark(world.lake)
    query.throttle_from = 3
    # when the sweep runs, then it fails loudly, naming the cause, the watermark unmoved
    with pytest.raises(TransientError, match="ProvisionedThroughputExceeded"):
        world.sweep(NOW)
    after = read_watermark(world.lake)
    assert before is not None and after is not None and after.at == before.at
    assert set(world.stored_rows()) < set(ids)  # not all of them were read
    # and once the throttling stops, the next sweep archives the rest: each event once
    query.throttle_from = None
    world.sweep(NOW + timedelta(minutes=1))
    assert world.stored_rows() == Counter(ids)


def test_an_entry_the_index_shows_late_is_archived_by_the_next_sweeps_look_back(
        world: World, query: DynamoQuery) -> None:
    # given an event ingested 5 s before a settle-0 sweep, not in the index yet at that sweep
    ids = world.ingest([f"o-{i}" for i in range(4)], NOW - timedelta(minutes=30))
    [late] = world.ingest(["straggler"], NOW - timedelta(seconds=5))
    query.hidden = {late}
    world.sweep(NOW)  # the watermark steps over it
    assert late not in world.stored_rows()
    watermark = read_watermark(world.lake)
    assert watermark is not None and watermark.at == NOW
    # when the index shows it, the next sweep re-reads the skew behind its watermark
    query.hidden = set()
    report = world.sweep(NOW + timedelta(minutes=5))
    # then it is archived, once, and no other event is written again
    assert world.stored_rows() == Counter([*ids, late])
    assert report.counts.archived == 1 and report.ttl.unarchived == 0


def test_an_entry_the_index_shows_later_than_the_look_back_is_archived_before_expiry(
        world: World, query: DynamoQuery, caplog: pytest.LogCaptureFixture) -> None:
    # given an event the index shows only after every sweep whose window held it
    [late] = world.ingest(["very-late"], NOW - timedelta(seconds=5))
    query.hidden = {late}
    world.sweep(NOW)
    world.sweep(NOW + timedelta(minutes=20))  # its look-back (10 min) is past the event
    assert late not in world.stored_rows()
    # when it shows, and a sweep runs within the safety margin of its expiry
    query.hidden = set()
    report = world.sweep(NOW + timedelta(days=3) - hours(5))
    # then the expiry check archives it, loudly, before TTL may delete it
    assert world.stored_rows() == Counter([late])
    assert report.expiry is not None and report.expiry.beyond_skew == 1
    assert "very-late" in caplog.text and report.ttl.at_risk == 0


def test_an_expired_item_ttl_has_not_deleted_yet_is_counted_once_and_not_at_risk(
        lake: EventLake) -> None:
    # given no sweep yet, and an event that expired an hour ago (DynamoDB deletes lazily),
    # which the stream archived long ago
    world = make_world(lake)
    world.ingest(["expired"], NOW - timedelta(days=3) - hours(1))
    world.ingest(["fresh"], NOW - hours(1))
    [item] = [i for i in world.clients.dynamodb.scan(TableName=world.settings.table)["Items"]
              if i["event_id"]["S"] == "expired"]
    archive_items(world.lake, [item], name="stream-1-1")
    # when the events view and the TTL guard read both tiers
    con = connect(EventLake(world.settings, clients=world.clients), now=NOW)
    rows = con.sql("SELECT event_id FROM events ORDER BY event_id").fetchall()
    margin = ttl_margin(world.lake, world.hot, world.settings, now=NOW)
    # then the expired event is read once (from the lake), and only `fresh` is unarchived
    assert rows == [("expired",), ("fresh",)]
    assert (margin.unarchived, margin.at_risk) == (1, 0)


def test_keys_dynamodb_never_processes_fail_the_sweep_without_counting_them_archived(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given events the lake lacks, and a BatchGetItem that leaves every key unprocessed
    from eventlake.hot import fetch

    ids = world.ingest([f"b-{i:02d}" for i in range(5)], NOW - timedelta(minutes=30))
    before = read_watermark(world.lake)
    ddb = world.clients.dynamodb
    real = ddb.batch_get_item
    calls: list[int] = []

    def throttled(**kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        [(table, _)] = kwargs["RequestItems"].items()
        return {"Responses": {table: []}, "UnprocessedKeys": kwargs["RequestItems"]}

    monkeypatch.setattr(fetch, "UNPROCESSED_ATTEMPTS", 2)  # a short back-off for the test
    monkeypatch.setattr(ddb, "batch_get_item", throttled)
    # when the sweep runs: it fails naming the keys, writes nothing, keeps the watermark
    with pytest.raises(TransientError, match=r"unprocessed.*`b-0\d`"):
        world.sweep(NOW)
    assert calls and world.stored_rows() == Counter()
    after = read_watermark(world.lake)
    assert before is not None and after is not None and after.at == before.at
    # and once DynamoDB answers, the next sweep archives each event once
    monkeypatch.setattr(ddb, "batch_get_item", real)
    world.sweep(NOW + timedelta(minutes=1))
    assert world.stored_rows() == Counter(ids)
