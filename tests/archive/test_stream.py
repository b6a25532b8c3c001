"""The stream archiver (eventlake/archive/stream.py): DynamoDB change records -> Parquet and
quarantine, on a local lake, with the batches of tests/fixtures/ddb_stream_* (see
tests/stream_support.py).

Lake contents are always read back raw (every row of every file, no dedup), so "stored once"
means one row, not one row after a DISTINCT.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from conftest import FIXTURES, load_event
from stream_support import (
    ARCHIVED_IN_BATCH,
    EVENTS,
    SERVICE,
    STORE,
    batch,
    expected_row,
    ids_in_lake,
    lake_files,
    new_lake,
    raw_rows,
    seq_of,
    written,
)

from eventlake.archive.stream import archive_event, archive_records
from eventlake.codec import CodecError, parse_stream_records
from eventlake.events.canonical import canonical_json
from eventlake.events.model import parse_event
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.events.times import parse_timestamp
from eventlake.lake.compact import compact
from eventlake.lake.store import Lake

OCT31, NOV1 = "2026-10-31", "2026-11-01"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return new_lake(tmp_path / "lake")


def by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["event_id"])


def inserted_images(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["dynamodb"]["NewImage"] for r in event["Records"] if r["eventName"] == "INSERT"]


def file_names(lake: Lake) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in lake_files(lake)]


def fail_writes_to(lake: Lake, monkeypatch: pytest.MonkeyPatch, dt: str,
                   error: Exception) -> list[str]:
    """Make the lake raise `error` when writing partition `dt`; returns the dts attempted."""
    real = lake.write_partition
    attempts: list[str] = []

    def write_partition(dt_: str, table: Any, name: str, **kwargs: Any) -> Any:
        attempts.append(dt_)
        if dt_ == dt:
            raise error
        return real(dt_, table, name, **kwargs)

    monkeypatch.setattr(lake, "write_partition", write_partition)
    return attempts


# --- INSERTs become rows ---------------------------------------------------------------------

def test_the_fixture_items_are_exactly_what_eventlake_stores() -> None:
    # given the eventlake items in the fixture batches
    images = [*inserted_images(batch()),
              load_event("ddb_stream_not_archivable.json")["Records"][4]["dynamodb"]["NewImage"],
              *(r["dynamodb"]["NewImage"]
                for r in load_event("ddb_kinesis_decoded_records.json")["records"])]
    assert len(images) == 8

    # then each is what HotStore.to_item builds for its event (so rows can be checked
    # against the Event itself); expires_at follows the retention setting, so only its type
    # (and the 5 bytes of `k` that pack it); Lambda's JSON carries binary as base64
    for image in images:
        event = EVENTS[image["event_id"]["S"]]
        stored = STORE.to_item(event, parse_timestamp(image["ingested_at"]["S"]))
        key = base64.b64decode(image["k"]["B"])
        assert key == stored["k"]["B"][:16] + key[16:21] + stored["k"]["B"][21:]
        assert key[16:21] == int(image["expires_at"]["N"]).to_bytes(5, "big")
        assert ({**image, "expires_at": None, "k": None}
                == {**stored, "expires_at": None, "k": None})
        assert image["expires_at"]["N"].isdigit()


def test_inserts_become_rows_equal_to_their_events(lake: Lake) -> None:
    # given a batch with five INSERTs of eventlake items
    event = batch()

    # when it is archived
    archive_event(lake, event)

    # then the lake holds one row per INSERT, each equal to its Event, hash included
    rows = raw_rows(lake)
    assert by_id(rows) == by_id([expected_row(i) for i in inserted_images(event)])
    assert {r["event_id"]: r["content_hash"] for r in rows} == {
        i: EVENTS[i].content_hash for i in ARCHIVED_IN_BATCH}
    assert all(pq.read_schema(p).remove_metadata().equals(EVENT_SCHEMA)
               for p in lake_files(lake))


def test_each_utc_date_of_the_batch_gets_one_file_named_by_its_sequence_range(
        lake: Lake) -> None:
    # given a batch whose INSERTs fall on two UTC dates (one sent as 01:00+02:00 on Nov 1)
    event = batch()

    # when it is archived
    report = archive_event(lake, event)

    # then there is one file per date, named by the first and last sequence number it holds
    # and a digest of its event_ids (sequence numbers are ordered per shard, not unique)
    names = file_names(lake)
    assert [n.rsplit("-", 1)[0] for n in names] == [
        f"dt={OCT31}/stream-{seq_of(event, 1)}-{seq_of(event, 4)}",
        f"dt={NOV1}/stream-{seq_of(event, 0)}-{seq_of(event, 2)}",
    ]
    assert all(re.fullmatch(r"[0-9a-f]{12}\.parquet", n.rsplit("-", 1)[1]) for n in names)
    assert sorted(f.path for f in report.files) == [str(p) for p in lake_files(lake)]
    assert sorted((f.dt, f.rows) for f in report.files) == [(OCT31, 3), (NOV1, 2)]
    assert all(f.bytes == Path(f.path).stat().st_size for f in report.files)


def test_rows_in_a_file_are_sorted_by_event_type_then_timestamp(lake: Lake) -> None:
    # given INSERTs whose record order is not the sort order
    archive_event(lake, batch())

    # when each file is read back as stored
    stored = {p.parent.name: pq.read_table(p) for p in lake_files(lake)}

    # then its rows are in (event_type, timestamp) order
    assert stored[f"dt={OCT31}"]["event_id"].to_pylist() == [
        "evt-paid-offset", "evt-placed-service", "evt-placed-late"]
    assert stored[f"dt={NOV1}"]["event_id"].to_pylist() == ["evt-placed-midnight", "evt-seen"]
    for table in stored.values():
        keys = list(zip(table["event_type"].to_pylist(), table["timestamp"].to_pylist(),
                        strict=True))
        assert keys == sorted(keys)


def test_the_report_counts_every_record_by_outcome(lake: Lake) -> None:
    # given 5 INSERTs, a MODIFY, a TTL REMOVE and a user REMOVE
    # when archived
    report = archive_event(lake, batch())

    # then each record is counted once, under its outcome
    assert (report.records, report.archived, report.already_archived, report.quarantined,
            report.modified, report.ttl_removals, report.other_removals) == (8, 5, 0, 1, 1, 1, 1)
    assert report.failed_from is None and report.error is None
    assert report.duration_ms > 0


def test_archive_records_takes_parsed_records_and_writes_the_same_files(
        tmp_path: Path) -> None:
    # given the same batch archived from the raw event and from parsed records
    by_event, by_records = new_lake(tmp_path / "a"), new_lake(tmp_path / "b")
    archive_event(by_event, batch())

    # when the parsed records are archived
    report = archive_records(by_records, parse_stream_records(batch()))

    # then the files and rows are the same
    assert file_names(by_records) == file_names(by_event)
    assert raw_rows(by_records) == raw_rows(by_event)
    assert (report.archived, report.quarantined, report.ttl_removals) == (5, 1, 1)


def test_json_text_of_a_batch_is_archived_like_the_batch(lake: Lake) -> None:
    # given the fixture as the bytes on disk
    text = (FIXTURES / "ddb_stream_eventlake_batch.json").read_text(encoding="utf-8")

    # when archived as text
    report = archive_event(lake, text)

    # then the same rows are stored
    assert report.archived == 5
    assert ids_in_lake(lake) == sorted(ARCHIVED_IN_BATCH)


# --- REMOVE never deletes ----------------------------------------------------------------------

def test_a_remove_never_deletes_from_the_lake(lake: Lake) -> None:
    # given an archived batch
    archive_event(lake, batch())
    before = raw_rows(lake)
    names = file_names(lake)

    # when every archived event is removed from the table, by TTL or by someone
    removals = {"Records": [
        {"eventID": f"r{n}", "eventName": "REMOVE", "eventSource": "aws:dynamodb",
         **({"userIdentity": SERVICE} if n % 2 else {}),
         "dynamodb": {"ApproximateCreationDateTime": 1796112000,
                      "Keys": {"event_id": image["event_id"]}, "OldImage": image,
                      "SequenceNumber": str(400000000000000000900 + n), "SizeBytes": 300,
                      "StreamViewType": "NEW_AND_OLD_IMAGES"}}
        for n, image in enumerate(inserted_images(batch()))]}
    report = archive_event(lake, removals)

    # then the lake is untouched and the removals are only counted
    assert raw_rows(lake) == before and file_names(lake) == names
    assert (report.ttl_removals, report.other_removals, report.archived) == (2, 3, 0)
    assert report.files == [] and report.quarantine_file is None


@pytest.mark.parametrize(("identity", "ttl"), [
    (SERVICE, True),
    ({"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}, True),
    ({"type": "Service", "principalId": "lambda.amazonaws.com"}, False),
    ({"type": "AssumedRole", "principalId": "dynamodb.amazonaws.com"}, False),
    (None, False),
], ids=["lambda-spelling", "getrecords-spelling", "other-service", "not-a-service",
        "no-identity"])
def test_only_dynamodb_service_removals_count_as_ttl(
        lake: Lake, identity: dict[str, str] | None, ttl: bool) -> None:
    # given a REMOVE with only an OldImage (as TTL deletes deliver it)
    record = copy.deepcopy(batch()["Records"][6])
    record.pop("userIdentity")
    if identity is not None:
        record["userIdentity"] = identity

    # when archived
    report = archive_event(lake, {"Records": [record]})

    # then it is a TTL removal only for Service + dynamodb.amazonaws.com
    assert (report.ttl_removals, report.other_removals) == ((1, 0) if ttl else (0, 1))
    assert lake_files(lake) == []


def test_an_insert_carrying_the_ttl_service_identity_is_archived(lake: Lake) -> None:
    # given the batch, whose evt-placed-service INSERT carries the TTL identity
    event = batch()
    assert event["Records"][4]["userIdentity"] == SERVICE

    # when archived
    report = archive_event(lake, event)

    # then that INSERT is an ordinary row, and only the REMOVE counts as TTL
    [row] = [r for r in raw_rows(lake) if r["event_id"] == "evt-placed-service"]
    assert row == expected_row(event["Records"][4]["dynamodb"]["NewImage"])
    assert report.ttl_removals == 1


# --- MODIFY and records that cannot be archived --------------------------------------------

def test_a_modify_is_quarantined_raw_as_immutable_event_modified(lake: Lake) -> None:
    # given a batch with a MODIFY of an archived event (someone edited the item)
    event = batch()
    modify = event["Records"][5]

    # when archived
    report = archive_event(lake, event)

    # then the raw record is in the quarantine with its reason and rule
    [entry] = lake.read_quarantine()
    assert (entry.reason, entry.rule, entry.source) == (
        "immutable event modified", "stream.modify", "stream")
    assert entry.record == modify
    assert report.quarantine_file is not None
    assert Path(report.quarantine_file).parent.parent.name == "_quarantine"
    # and the lake keeps the event as it was inserted
    [seen] = [r for r in raw_rows(lake) if r["event_id"] == "evt-seen"]
    assert seen == expected_row(modify["dynamodb"]["OldImage"])


NOT_ARCHIVABLE = [
    ("cfg-1", "record.not_an_event", "item has no `event_type`; not an eventlake event"),
    ("legacy-9", "attribute.base64", "`not base64!` is not valid (padded, canonical) base64"),
    ("legacy-10", "record.bad_timestamp", "`17934912OO` is not a number"),
    ("evt-lost", "stream.view_type", "eventlake needs NEW_AND_OLD_IMAGES"),
]


def test_records_that_are_not_events_are_quarantined_and_the_rest_archived(
        lake: Lake) -> None:
    # given a batch with an item of another producer (no event_type), a bad base64 B, a bad
    # N timestamp, an INSERT from an OLD_IMAGE stream (no NewImage), and one good event
    event = load_event("ddb_stream_not_archivable.json")

    # when archived
    report = archive_event(lake, event)

    # then each bad record is quarantined raw, with a reason naming what is wrong
    entries = lake.read_quarantine()
    assert [(e.record["dynamodb"]["Keys"]["event_id"]["S"], e.rule) for e in entries] == [
        (key, rule) for key, rule, _ in NOT_ARCHIVABLE]
    for entry, (_, _, reason) in zip(entries, NOT_ARCHIVABLE, strict=True):
        assert reason in entry.reason
        assert entry.record in event["Records"]
    assert "`event_payload.raw`" in entries[1].reason  # the attribute path
    # and the good event is archived
    assert [r["event_id"] for r in raw_rows(lake)] == ["evt-good"]
    assert (report.archived, report.quarantined, report.records) == (1, 4, 5)


def test_a_keys_only_stream_is_quarantined_and_logs_an_error_naming_the_view_type(
        lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    # given records of a KEYS_ONLY stream (INSERT, MODIFY, REMOVE; no images)
    caplog.set_level(logging.INFO, logger="eventlake.archive.stream")

    # when archived
    report = archive_event(lake, load_event("ddb_stream_keys_only.json"))

    # then the INSERT and MODIFY are quarantined, the REMOVE counted, and an error says what
    # the stream must be
    assert [e.rule for e in lake.read_quarantine()] == ["stream.view_type", "stream.modify"]
    assert (report.quarantined, report.other_removals, report.archived) == (2, 1, 0)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "NEW_AND_OLD_IMAGES" in errors[0].getMessage()
    assert "KEYS_ONLY" in errors[0].getMessage()
    assert lake_files(lake) == []


def test_an_impossible_date_in_an_eventlake_item_is_quarantined_not_the_batch(
        lake: Lake) -> None:
    # given an eventlake item whose timestamp has the right layout but no such day
    event = batch()
    image = event["Records"][0]["dynamodb"]["NewImage"]
    image["timestamp"] = {"S": "2026-02-30T08:00:00.000000Z"}

    # when archived
    report = archive_event(lake, event)

    # then that record alone is quarantined
    assert [e.rule for e in lake.read_quarantine()] == ["record.bad_timestamp", "stream.modify"]
    assert sorted(ids_in_lake(lake)) == sorted(set(ARCHIVED_IN_BATCH) - {"evt-seen"})
    assert (report.archived, report.quarantined) == (4, 2)


# --- other producers and record shapes -----------------------------------------------------

def test_items_of_other_producers_are_archived_with_canonical_json_payloads(
        lake: Lake) -> None:
    # given INSERTs written by another producer: payload as an M map, timestamp as N
    # (seconds, milliseconds), an N event_id, no ingested_at and no content_hash
    event = load_event("ddb_stream_other_producers.json")

    # when archived
    report = archive_event(lake, event)

    # then each row is what the event model stores for the same event, and ingested_at is the
    # record's ApproximateCreationDateTime
    sensor = parse_event({
        "event_id": "sensor-1", "event_type": "sensor.reading",
        "timestamp": "2026-11-01T00:00:00Z", "source": "legacy-writer",
        "event_payload": {"celsius": Decimal("21.50"), "meta": {"note": None, "unit": "C"},
                          "ok": True, "readings": [1, Decimal("2.0")], "tags": ["a", "b"]}})
    numbered = parse_event({
        "event_id": "102", "event_type": "sensor.reading",
        "timestamp": "2026-11-01T00:00:00.123Z", "subject": "sensor/102",
        "event_payload": {"raw": "AAEqQQ==", "n": Decimal("1e100")}})
    rows = by_id(raw_rows(lake))
    assert [(r["event_id"], r["event_type"], r["timestamp"], r["source"], r["subject"],
             r["event_payload"], r["content_hash"]) for r in rows] == [
        (e.event_id, e.event_type, e.timestamp, e.source, e.subject, e.payload, e.content_hash)
        for e in (numbered, sensor)]
    assert rows[1]["event_payload"] == canonical_json(json.loads(rows[1]["event_payload"]))
    assert [r["ingested_at"] for r in rows] == [
        datetime(2026, 11, 1, 0, 0, 6, tzinfo=UTC), datetime(2026, 11, 1, 0, 0, 5, tzinfo=UTC)]
    assert report.archived == 2


ACDT_SHAPES: list[tuple[str, str, datetime]] = [
    ("seconds-int", "1793491205", datetime(2026, 11, 1, 0, 0, 5, tzinfo=UTC)),
    ("float-exponent", "1.44130524E9", datetime(2015, 9, 3, 18, 34, tzinfo=UTC)),
    ("sub-second-float", "1.7934912051234567E9",
     datetime(2026, 11, 1, 0, 0, 5, 123456, tzinfo=UTC)),
    ("milliseconds", "1793491205123", datetime(2026, 11, 1, 0, 0, 5, 123000, tzinfo=UTC)),
    ("seconds-float", "1793491205.0", datetime(2026, 11, 1, 0, 0, 5, tzinfo=UTC)),
]


def _acdt_batch(literal: str) -> str:
    """An eventlake INSERT and another producer's INSERT (no ingested_at), as Lambda's JSON
    text with ApproximateCreationDateTime written as the number literal `literal`."""
    event = load_event("ddb_stream_other_producers.json")
    good = load_event("ddb_stream_not_archivable.json")["Records"][4]
    event["Records"] = [good, event["Records"][0]]
    for record in event["Records"]:
        record["dynamodb"]["ApproximateCreationDateTime"] = "@ACDT@"
    return json.dumps(event).replace('"@ACDT@"', literal)


@pytest.mark.parametrize(("literal", "expected"), [c[1:] for c in ACDT_SHAPES],
                         ids=[c[0] for c in ACDT_SHAPES])
def test_every_approximate_creation_time_shape_is_accepted(
        tmp_path: Path, literal: str, expected: datetime) -> None:
    # given a batch whose ApproximateCreationDateTime is written in one of the shapes seen
    text = _acdt_batch(literal)

    # when archived from the JSON text and from the decoded dict
    for n, event in enumerate((text, json.loads(text))):
        lake = new_lake(tmp_path / str(n))
        report = archive_event(lake, event)

        # then both records are archived, and the time stands in for the missing ingested_at
        assert (report.archived, report.quarantined) == (2, 0)
        rows = {r["event_id"]: r for r in raw_rows(lake)}
        assert rows["sensor-1"]["ingested_at"] == expected
        assert rows["evt-good"]["ingested_at"] == datetime(2026, 11, 1, 9, 30, 0, 500000,
                                                           tzinfo=UTC)


def test_an_absent_approximate_creation_time_is_accepted(lake: Lake) -> None:
    # given records without ApproximateCreationDateTime (as Kinesis-delivered ones may be)
    event = json.loads(_acdt_batch("0"))
    for record in event["Records"]:
        del record["dynamodb"]["ApproximateCreationDateTime"]

    # when archived
    report = archive_event(lake, event)

    # then the eventlake item is archived; the other producer's item, which has no other
    # ingestion time, is quarantined saying so (never dropped)
    assert [r["event_id"] for r in raw_rows(lake)] == ["evt-good"]
    assert [e.rule for e in lake.read_quarantine()] == ["record.no_ingested_at"]
    assert (report.archived, report.quarantined) == (1, 1)


def test_a_getrecords_response_with_datetimes_and_bytes_is_archived(lake: Lake) -> None:
    # given a GetRecords response (boto3): datetimes, raw bytes for B, no eventSourceARN,
    # the identity spelled Type/PrincipalId
    good = load_event("ddb_stream_not_archivable.json")["Records"][4]
    other = load_event("ddb_stream_other_producers.json")["Records"][1]
    other["dynamodb"]["NewImage"]["event_payload"]["M"]["raw"] = {"B": b"\x00\x01*A"}
    other["dynamodb"]["NewImage"]["event_payload"]["M"]["set"] = {"BS": [b"\xff", b"\x00"]}
    ttl = batch()["Records"][6]
    ttl["userIdentity"] = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
    records = [good, other, ttl]
    for record in records:
        record.pop("eventSourceARN")
        record["dynamodb"]["ApproximateCreationDateTime"] = datetime(
            2026, 11, 1, 1, 0, 7, tzinfo=timezone(timedelta(hours=1)))
    response = {"Records": records, "NextShardIterator": "arn:aws:dynamodb:...|1|AAAA"}

    # when archived
    report = archive_event(lake, response)

    # then bytes become base64 text in the payload and the datetime is the ingestion time
    rows = {r["event_id"]: r for r in raw_rows(lake)}
    assert json.loads(rows["102"]["event_payload"]) == {
        "raw": base64.b64encode(b"\x00\x01*A").decode(), "n": 1e100, "set": ["AA==", "/w=="]}
    assert rows["102"]["ingested_at"] == datetime(2026, 11, 1, 0, 0, 7, tzinfo=UTC)
    assert rows["evt-good"] == expected_row(good["dynamodb"]["NewImage"])
    assert (report.archived, report.ttl_removals) == (2, 1)


# --- redelivery: each event once -----------------------------------------------------------

def test_a_record_delivered_twice_in_one_batch_is_stored_once(lake: Lake) -> None:
    # given a batch in which two INSERTs come again (same eventID and SequenceNumber)
    event = batch()
    event["Records"] += [copy.deepcopy(event["Records"][1]), copy.deepcopy(event["Records"][0])]

    # when archived
    report = archive_event(lake, event)

    # then every event has exactly one row in the lake
    assert ids_in_lake(lake) == sorted(ARCHIVED_IN_BATCH)
    assert len(raw_rows(lake)) == 5
    assert (report.archived, report.already_archived) == (5, 2)
    assert report.archived + report.already_archived + report.quarantined \
        + report.ttl_removals + report.other_removals == report.records


def test_a_record_repeated_in_a_parsed_batch_is_stored_once(lake: Lake) -> None:
    # given parsed records with one repeated (the row-wise path, not the column-wise one)
    records = parse_stream_records(batch())
    records.insert(3, records[2])

    # when archived
    report = archive_records(lake, records)

    # then it is stored once
    assert ids_in_lake(lake) == sorted(ARCHIVED_IN_BATCH)
    assert report.already_archived == 1


def test_the_same_batch_delivered_twice_writes_the_same_files_and_rows_once(
        lake: Lake) -> None:
    # given a batch archived once
    archive_event(lake, batch())
    names, first = file_names(lake), {p.name: pq.read_table(p) for p in lake_files(lake)}

    # when Lambda delivers the very same batch again
    report = archive_event(lake, batch())

    # then the files are the same ones, with the same rows, and no second copy exists
    assert file_names(lake) == names
    assert {p.name: pq.read_table(p) for p in lake_files(lake)} == first
    assert ids_in_lake(lake) == sorted(ARCHIVED_IN_BATCH)
    assert report.failed_from is None


def test_a_later_batch_overlapping_an_earlier_one_adds_only_what_is_new(lake: Lake) -> None:
    # given a batch archived once
    archive_event(lake, batch())

    # when a batch comes that repeats its second half and brings one new event
    event = batch()
    good = load_event("ddb_stream_not_archivable.json")["Records"][4]
    good["dynamodb"]["SequenceNumber"] = "400000000000000000109"
    event["Records"] = [*event["Records"][2:], good]
    report = archive_event(lake, event)

    # then only the new event is added
    assert ids_in_lake(lake) == sorted([*ARCHIVED_IN_BATCH, "evt-good"])
    assert (report.archived, report.already_archived) == (1, 3)


# --- failures -----------------------------------------------------------------------------

@pytest.mark.parametrize(("failing", "first_record"), [(OCT31, 1), (NOV1, 0)])
def test_a_failed_partition_reports_its_earliest_record_and_the_others_are_written(
        lake: Lake, monkeypatch: pytest.MonkeyPatch, failing: str, first_record: int) -> None:
    # given a lake that cannot write one date's partition (S3 throttling)
    event = batch()
    throttled = ClientError({"Error": {"Code": "SlowDown", "Message": "Reduce your rate"}},
                            "PutObject")
    attempts = fail_writes_to(lake, monkeypatch, failing, throttled)

    # when the batch is archived
    report = archive_event(lake, event)

    # then the retry point is the first record of that partition, the error says which,
    # and the other partition is written
    assert sorted(attempts) == [OCT31, NOV1]
    assert report.failed_from == seq_of(event, first_record)
    assert report.error is not None and f"dt={failing}" in report.error
    assert "SlowDown" in report.error
    assert [p.parent.name for p in lake_files(lake)] == [
        f"dt={dt}" for dt in (OCT31, NOV1) if dt != failing]


def test_when_every_partition_fails_the_retry_starts_at_the_first_insert(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    event = batch()
    monkeypatch.setattr(lake, "write_partition", _raise_os_error)

    report = archive_event(lake, event)

    assert report.failed_from == seq_of(event, 0)
    assert lake_files(lake) == []


def _raise_os_error(*args: Any, **kwargs: Any) -> Any:
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize(("fixture", "first_quarantined", "archived"), [
    ("ddb_stream_eventlake_batch.json", 5, ARCHIVED_IN_BATCH),
    ("ddb_stream_not_archivable.json", 0, ["evt-good"]),
], ids=["modify-after-inserts", "four-before-an-insert"])
def test_a_failed_quarantine_reports_the_first_quarantined_record(
        lake: Lake, monkeypatch: pytest.MonkeyPatch, fixture: str, first_quarantined: int,
        archived: list[str]) -> None:
    # given a lake that cannot write its quarantine
    event = load_event(fixture)
    monkeypatch.setattr(lake, "quarantine", _raise_os_error)

    # when a batch with records to quarantine is archived
    report = archive_event(lake, event)

    # then the retry starts at the first of them, and the INSERTs are written anyway
    assert report.failed_from == seq_of(event, first_quarantined)
    assert report.error is not None and "quarantine write failed" in report.error
    assert report.quarantined == 0 and report.quarantine_file is None
    assert ids_in_lake(lake) == sorted(archived)


# --- input that is not a stream event --------------------------------------------------------

MALFORMED: list[tuple[str, Any, str]] = [
    ("truncated-json", (FIXTURES / "ddb_stream_truncated.json").read_text(encoding="utf-8"),
     "truncated"),
    ("no-records", {"Items": [], "Count": 0}, "no `Records` list"),
    ("records-not-a-list", {"Records": {"eventName": "INSERT"}}, "`Records` must be a list"),
    ("list-of-non-records", [1, "two", {"three": 3}], "none of them a change record"),
    ("a-number", 42, "a stream event is an object with `Records`"),
]


@pytest.mark.parametrize(("event", "message"), [c[1:] for c in MALFORMED],
                         ids=[c[0] for c in MALFORMED])
def test_input_that_is_not_a_stream_event_raises_codec_error_and_writes_nothing(
        lake: Lake, event: Any, message: str) -> None:
    # when something that is not a stream event is archived
    with pytest.raises(CodecError) as caught:
        archive_event(lake, event)

    # then the error says what is wrong, and nothing at all is written
    assert message in str(caught.value)
    assert caught.value.rule in ("stream.not_json", "stream.no_records")
    assert written(lake) == []


def test_an_empty_batch_writes_nothing(lake: Lake) -> None:
    report = archive_event(lake, {"Records": []})

    assert (report.records, report.files, report.quarantine_file) == (0, [], None)
    assert written(lake) == []


def test_two_shards_with_the_same_sequence_range_never_overwrite_each_other(
        lake: Lake) -> None:
    # given two batches from different shards whose records carry the same sequence numbers
    # (numbers are ordered within a shard, not unique across shards) but different events
    first = batch()
    second = copy.deepcopy(first)
    for record in second["Records"]:
        image = record["dynamodb"].get("NewImage")
        if record["eventName"] == "INSERT" and image and "content_hash" in image:
            raw = {"event_id": image["event_id"]["S"] + "-shard2",
                   "event_type": image["event_type"]["S"],
                   "timestamp": image["timestamp"]["S"],
                   "event_payload": json.loads(image["event_payload"]["S"])}
            item = STORE.to_item(parse_event(raw), parse_timestamp(image["ingested_at"]["S"]))
            record["dynamodb"]["NewImage"] = item
            record["dynamodb"]["Keys"] = {"event_id": item["event_id"]}

    # when both are archived
    archive_event(lake, first)
    archive_event(lake, second)

    # then both shards' events are in the lake, each once
    ids = ids_in_lake(lake)
    assert len(ids) == len(set(ids)) == 2 * len(ARCHIVED_IN_BATCH)


def test_two_shards_quarantining_the_same_sequence_numbers_keep_both_files(
        lake: Lake) -> None:
    # given a MODIFY from each of two shards, carrying the same sequence number (numbers are
    # ordered within a shard, not unique across shards) but different records
    first = batch()
    modify = first["Records"][5]
    other = copy.deepcopy(modify)
    other["eventID"] = "0" * 32
    other["eventSourceARN"] = modify["eventSourceARN"].replace("stream/", "stream/shard-2-")
    other["dynamodb"]["NewImage"]["note"] = {"S": "edited by another hand"}

    # when each shard's batch is archived
    one = archive_event(lake, {"Records": [modify]})
    two = archive_event(lake, {"Records": [other]})

    # then both records are in the quarantine, each in its own file
    assert one.quarantine_file != two.quarantine_file
    assert sorted(e.record["eventID"] for e in lake.read_quarantine()) == sorted(
        [modify["eventID"], other["eventID"]])


def test_a_partly_failed_batch_leaves_what_follows_the_retry_point_to_the_re_delivery(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a batch whose oct-31 partition failed, so Lambda re-delivers from its first record
    event = batch()
    real = lake.write_partition
    fail_writes_to(lake, monkeypatch, OCT31, OSError(5, "I/O error"))
    first = archive_event(lake, event)
    assert first.failed_from == seq_of(event, 1)
    monkeypatch.setattr(lake, "write_partition", real)

    # when the re-delivery (from record 1 on) is archived
    again = archive_event(lake, {"Records": event["Records"][1:]})

    # then the MODIFY (after the retry point) was left to the re-delivery, which quarantined it
    # once
    assert first.quarantine_file is None and first.quarantined == 0
    assert again.quarantine_file is not None and again.quarantined == 1
    assert [e.record for e in lake.read_quarantine()] == [event["Records"][5]]


# --- the sweep or compaction wrote them first: no copies (issue 8, item 5) -----------------------

def sweep_name(since: datetime, until: datetime) -> str:
    """What the sweep names its files (archive/sweep.py, archive/writer.py): window, chunk,
    digest."""
    return f"sweep-{since:%Y%m%dT%H%M%S%f}-{until:%Y%m%dT%H%M%S%f}-0000-0123456789ab"


def archived_rows(tmp_path: Path) -> Any:
    """The rows the fixture batch becomes, archived in a scratch lake."""
    scratch = new_lake(tmp_path / "scratch")
    archive_event(scratch, batch())
    return scratch.read()


def test_a_batch_the_sweep_archived_first_adds_no_copies(lake: Lake, tmp_path: Path) -> None:
    # given the sweep archived the batch's events before the stream delivered them (a stream
    # lagging past the settle time), its files named by their ingestion window
    rows = archived_rows(tmp_path)
    low, high = (v.as_py() for v in pc.min_max(rows["ingested_at"]).values())
    lake.write(rows, sweep_name(low - timedelta(minutes=5), high + timedelta(seconds=1)))
    before = file_names(lake)

    # when the stream batch arrives
    report = archive_event(lake, batch())

    # then nothing is written again: each event is one row in the lake's files
    assert file_names(lake) == before
    assert sorted(r["event_id"] for r in raw_rows(lake)) == sorted(ARCHIVED_IN_BATCH)
    assert (report.archived, report.already_archived, report.files) == (0, 5, [])


def test_a_batch_redelivered_after_compaction_adds_no_copies(lake: Lake) -> None:
    # given a batch delivered in two parts, then compacted (oct-31 had a file from each part)
    event = batch()
    archive_event(lake, {"Records": event["Records"][:3]})
    archive_event(lake, {"Records": event["Records"][3:]})
    compact(lake, min_files=2)
    before = file_names(lake)
    assert [n.split("/")[1].split("-")[0] for n in before] == ["compacted", "stream"]

    # when Lambda re-delivers the whole batch
    report = archive_event(lake, batch())

    # then no row is written again (nov-1's stream file is rewritten as itself: same records)
    assert file_names(lake) == before
    assert sorted(r["event_id"] for r in raw_rows(lake)) == sorted(ARCHIVED_IN_BATCH)
    assert report.already_archived == 3


def test_files_whose_ingestion_window_misses_the_batch_are_not_read(
        lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a sweep file and a compacted file of the same days, from the day before
    rows = archived_rows(tmp_path)
    older = rows.set_column(rows.schema.get_field_index("event_id"), "event_id",
                            pc.binary_join_element_wise(rows["event_id"], "-old", ""))
    older = older.set_column(older.schema.get_field_index("ingested_at"), "ingested_at",
                             pc.subtract(rows["ingested_at"], pa.scalar(timedelta(days=1))))
    low, high = (v.as_py() for v in pc.min_max(older["ingested_at"]).values())
    lake.write(older.slice(0, 2), sweep_name(low, high + timedelta(microseconds=1)))
    lake.write(older.slice(2), "compacted-0123456789abcdef-0-of-1")
    read: list[str] = []
    real = lake.read_ids_of
    monkeypatch.setattr(lake, "read_ids_of", lambda paths, **kw: read.extend(paths) or real(
        paths, **kw))

    # when the stream batch arrives
    report = archive_event(lake, batch())

    # then no file's ids were read (names and footers said no), and every event is written
    assert read == []
    assert report.archived == 5


def test_a_file_of_unknown_origin_is_read_to_skip_what_it_holds(
        lake: Lake, tmp_path: Path) -> None:
    # given a file another writer put in the partition, with no range in its name
    rows = archived_rows(tmp_path)
    lake.write(rows.slice(0, 2), "import-by-hand")

    report = archive_event(lake, batch())

    assert sorted(r["event_id"] for r in raw_rows(lake)) == sorted(ARCHIVED_IN_BATCH)
    assert report.already_archived == 2


def test_the_usual_batch_on_stream_files_opens_no_other_file(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a partition of stream files only
    event = batch()
    archive_event(lake, {"Records": event["Records"][:2]})

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the overlap check read a file it did not need")

    monkeypatch.setattr(lake, "ingested_range", refuse)
    monkeypatch.setattr(lake, "read_ids_of", refuse)

    # when the next, non-overlapping batch arrives
    report = archive_event(lake, {"Records": event["Records"][2:]})

    # then it is written without reading any footer or id
    assert report.archived == 3 and report.failed_from is None


def test_files_compacted_away_under_the_overlap_check_are_looked_for_again(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a batch delivered in two parts: each day has stream files
    event = batch()
    archive_event(lake, {"Records": event["Records"][:3]})
    archive_event(lake, {"Records": event["Records"][3:]})
    real = lake.read_ids_of
    compacted: list[bool] = []

    def compact_first(paths: Any, **kwargs: Any) -> set[str]:
        if not compacted:  # compaction merges and deletes the listed files right now
            compacted.append(True)
            compact(lake, min_files=2)
        return real(paths, **kwargs)

    monkeypatch.setattr(lake, "read_ids_of", compact_first)

    # when the whole batch is re-delivered while that happens
    archive_event(lake, batch())

    # then the check listed again, found the merged file, and wrote no copy
    assert sorted(r["event_id"] for r in raw_rows(lake)) == sorted(ARCHIVED_IN_BATCH)


def test_a_batch_of_another_producers_items_a_backfill_archived_first_adds_no_copies(
        lake: Lake) -> None:
    # given another producer's items (payload as a map, no `ingested_at`), archived by a backfill,
    # which stamps them with its scan time (a day after the stream records' creation time)
    from eventlake.archive.writer import archive_items

    items = [{"event_id": {"S": f"legacy-{i}"}, "event_type": {"S": "legacy.saved"},
              "timestamp": {"S": "2024-05-01T10:00:00Z"},
              "event_payload": {"M": {"n": {"N": str(i)}}}} for i in range(6)]
    archive_items(lake, items, name="backfill-000of001",
                  fallback_ingested_at=datetime(2024, 5, 2, 9, 0, tzinfo=UTC), source="backfill")
    before = file_names(lake)

    # when the stream delivers the same INSERTs (a replayed shard, a lagging consumer)
    records = [{"eventID": f"{i:032x}", "eventName": "INSERT", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
                "dynamodb": {"ApproximateCreationDateTime": 1714557600 + i,
                             "Keys": {"event_id": item["event_id"]}, "NewImage": item,
                             "SequenceNumber": str(10**20 + i), "SizeBytes": 100,
                             "StreamViewType": "NEW_AND_OLD_IMAGES"}}
               for i, item in enumerate(items)]
    report = archive_event(lake, {"Records": records})

    # then nothing is written twice: a plain scan of the files counts each event once
    assert (report.archived, report.already_archived) == (0, 6)
    assert file_names(lake) == before
    assert sorted(r["event_id"] for r in raw_rows(lake)) == [f"legacy-{i}" for i in range(6)]


# --- sequence numbers and listing ------------------------------------------------------------

def _with_seqs(event: dict[str, Any], seqs: list[str]) -> dict[str, Any]:
    for record, seq in zip(event["Records"], seqs, strict=False):
        record["dynamodb"]["SequenceNumber"] = seq
    return event


def test_sequence_numbers_of_different_widths_are_ranged_as_numbers(lake: Lake) -> None:
    # given INSERTs whose sequence numbers differ in width ("9" < "10" as numbers, not as text)
    event = _with_seqs(batch(), ["9", "50", "10", "100", "7", "101", "102", "103"])

    # when archived
    report = archive_event(lake, event)

    # then each file is named by the numeric range of its records
    assert report.failed_from is None
    assert [re.sub(r"-[0-9a-f]{12}\.parquet$", "", n) for n in file_names(lake)] == [
        f"dt={OCT31}/stream-7-100", f"dt={NOV1}/stream-9-10"]


@pytest.mark.parametrize("odd", ["４０１", "²", "12a", ""], ids=["fullwidth", "superscript",
                                                              "letter", "empty"])
def test_a_sequence_number_that_is_not_ascii_digits_names_its_file_by_content(
        lake: Lake, odd: str) -> None:
    # given a batch whose first INSERT carries a sequence number no file name can hold
    # (str.isdigit admits "４０１" and "²"; a name with them was refused, failing the batch
    # on every re-delivery)
    event = batch()
    event["Records"][0]["dynamodb"]["SequenceNumber"] = odd

    # when archived
    report = archive_event(lake, event)

    # then nothing fails: its partition is named by content, the other by its range
    assert report.failed_from is None and report.error is None
    assert ids_in_lake(lake) == sorted(ARCHIVED_IN_BATCH)
    names = file_names(lake)
    assert names[1].startswith(f"dt={NOV1}/stream-x")
    assert names[0].startswith(f"dt={OCT31}/stream-400000000000000000102-400000000000000000105-")


def test_a_batch_lists_the_lake_once_whatever_its_partitions(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a lake that counts its listings, and a batch over two dates
    listings: list[Any] = []
    real = lake.list_files
    monkeypatch.setattr(lake, "list_files", lambda *a, **kw: listings.append(kw.get("dts"))
                        or real(*a, **kw))

    # when the batch is archived
    report = archive_event(lake, batch())

    # then one listing covered both partitions (each used to list the `events/` folder again)
    assert report.archived == 5
    assert [sorted(dts) for dts in listings] == [[OCT31, NOV1]]


@pytest.mark.parametrize("failures", [1, 99], ids=["once", "always"])
def test_a_failed_listing_is_retried_per_partition_and_reported_as_a_failed_write(
        lake: Lake, monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
    # given a lake whose listing fails (throttled) once, or every time
    event = batch()
    calls: list[Any] = []
    real = lake.list_files

    def list_files(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("dts"))
        if len(calls) <= failures:
            raise OSError("SLOW_DOWN: Please reduce your request rate")
        return real(*args, **kwargs)

    monkeypatch.setattr(lake, "list_files", list_files)

    # when the batch is archived
    report = archive_event(lake, event)

    # then a passing failure costs nothing but a listing per partition; a lasting one is
    # reported from the first INSERT, with nothing written and the cause named
    if failures == 1:
        assert len(calls) == 3
        assert report.failed_from is None and ids_in_lake(lake) == sorted(ARCHIVED_IN_BATCH)
    else:
        assert report.failed_from == seq_of(event, 0)
        assert report.error is not None and "SLOW_DOWN" in report.error
        assert lake_files(lake) == []
