"""The stream archiver Lambda (eventlake/handlers/stream.py): partial batch responses, Lambda's
re-delivery from the reported record, one log line per batch, and every real capture in
shared/realcases handled without dropping a record.

"Each event once" is checked on raw rows: every row of every file, nothing deduplicated here.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import FIXTURES, load_event
from stream_support import (
    ARCHIVED_IN_BATCH,
    batch,
    expected_row,
    handler_lake,
    ids_in_lake,
    lake_files,
    new_lake,
    raw_rows,
    seq_of,
    written,
)

from eventlake.codec import CodecError
from eventlake.errors import StorageError
from eventlake.handlers import stream as stream_handler
from eventlake.lake.quarantine import record_key
from eventlake.lake.store import Lake

REALCASES = Path("/work/shared/realcases/lambda_events/dynamodb_streams")
OCT30, OCT31, NOV1 = "2026-10-30", "2026-10-31", "2026-11-01"


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    """A fresh local lake that the handler uses instead of building one from the env."""
    with handler_lake(tmp_path / "lake") as made:
        yield made


@pytest.fixture
def log_lines(caplog: pytest.LogCaptureFixture) -> Callable[[], list[dict[str, Any]]]:
    caplog.set_level(logging.INFO, logger=stream_handler.__name__)
    return lambda: [json.loads(r.getMessage()) for r in caplog.records
                    if r.name == stream_handler.__name__]


def invoke(event: Any, request_id: str = "req-1") -> dict[str, Any]:
    return stream_handler.handler(event, SimpleNamespace(aws_request_id=request_id))


def from_record(event: dict[str, Any], position: int) -> dict[str, Any]:
    """What Lambda re-delivers after a partial failure: the batch from `position` onward."""
    return {**event, "Records": copy.deepcopy(event["Records"][position:])}


def every_event_once(lake: Lake, images: list[dict[str, Any]]) -> None:
    rows = raw_rows(lake)
    assert sorted(r["event_id"] for r in rows) == sorted(i["event_id"]["S"] for i in images)
    assert sorted(rows, key=lambda r: r["event_id"]) == sorted(
        (expected_row(i) for i in images), key=lambda r: r["event_id"])


def batch_images() -> list[dict[str, Any]]:
    return [r["dynamodb"]["NewImage"] for r in batch()["Records"][:5]]


class Fault:
    """One partition of the lake that cannot be written until `heal()`."""

    def __init__(self, kind: str, lake: Lake, dt: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kind, self.broken = kind, True
        if kind == "filesystem":  # a file where the partition's directory must go
            self.blocker = Path(lake.root) / "events" / f"dt={dt}"
            self.blocker.parent.mkdir(parents=True, exist_ok=True)
            self.blocker.write_text("not a directory")
            return
        real = lake.write_partition
        error = ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your "
                                       "request rate."}}, "PutObject")

        def write_partition(dt_: str, table: Any, name: str, **kwargs: Any) -> Any:
            if self.broken and dt_ == dt:
                raise error
            return real(dt_, table, name, **kwargs)

        monkeypatch.setattr(lake, "write_partition", write_partition)

    def heal(self) -> None:
        self.broken = False
        if self.kind == "filesystem":
            self.blocker.unlink()


FAULTS = ["filesystem", "s3-slowdown"]


def io_error(*args: Any, **kwargs: Any) -> Any:
    raise OSError(5, "Input/output error")


# --- the handler's shape ---------------------------------------------------------------------

def test_importing_the_handler_loads_no_prefect_and_no_duckdb() -> None:
    code = ("import json, sys, eventlake.handlers.stream; print(json.dumps(sorted({"
            "m.split('.')[0] for m in sys.modules} & {'prefect', 'duckdb'})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2])
    assert json.loads(out.stdout) == []


def test_a_batch_is_archived_and_no_failures_are_reported(lake: Lake) -> None:
    # when a batch of INSERTs, a MODIFY and two REMOVEs is handled
    result = invoke(batch())

    # then Lambda is told nothing failed, and every event is in the lake once
    assert result == {"batchItemFailures": []}
    every_event_once(lake, batch_images())


def test_the_lake_comes_from_the_environment_and_is_kept_until_reset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the handler configured by EVENTLAKE_LAKE_URI only
    first, second = new_lake(tmp_path / "first"), new_lake(tmp_path / "second")
    for made in (first, second):  # as `eventlake init` leaves them (the handler checks)
        made.create_marker(table="eventlake-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", first.root)
    stream_handler.reset()
    try:
        # when a batch is handled, the variable changes, and another batch is handled
        invoke(batch())
        monkeypatch.setenv("EVENTLAKE_LAKE_URI", second.root)
        invoke(load_event("ddb_stream_not_archivable.json"))
        in_first = ids_in_lake(first)
        # and after reset() a third
        stream_handler.reset()
        invoke(load_event("ddb_stream_not_archivable.json"))
    finally:
        stream_handler.reset()

    # then the lake was built once from the environment and reused until reset
    assert in_first == sorted([*ARCHIVED_IN_BATCH, "evt-good"])
    assert ids_in_lake(second) == ["evt-good"]


def test_an_empty_batch_reports_no_failures_and_writes_nothing(lake: Lake) -> None:
    assert invoke({"Records": []}) == {"batchItemFailures": []}
    assert written(lake) == []


# --- one log line per batch -------------------------------------------------------------------

def test_each_batch_logs_one_json_line_with_counts_partitions_bytes_and_duration(
        lake: Lake, log_lines: Callable[[], list[dict[str, Any]]],
        caplog: pytest.LogCaptureFixture) -> None:
    # when a batch is handled
    invoke(batch(), request_id="req-42")

    # then one INFO line tells what happened to it
    [line] = log_lines()
    assert [r.levelno for r in caplog.records if r.name == stream_handler.__name__] == [
        logging.INFO]
    assert {k: line[k] for k in ("msg", "records", "archived", "already_archived",
                                 "quarantined", "modified", "ttl_removals", "other_removals",
                                 "failed_from", "error", "request_id")} == {
        "msg": "stream batch", "records": 8, "archived": 5, "already_archived": 0,
        "quarantined": 1, "modified": 1, "ttl_removals": 1, "other_removals": 1,
        "failed_from": None, "error": None, "request_id": "req-42"}
    assert line["partitions"] == [OCT31, NOV1]
    assert sorted(line["files"]) == [str(p) for p in lake_files(lake)]
    assert line["bytes"] == sum(p.stat().st_size for p in lake_files(lake)) > 0
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["quarantine_file"] is not None


def test_a_failed_batch_logs_its_line_at_error_level(
        lake: Lake, monkeypatch: pytest.MonkeyPatch,
        log_lines: Callable[[], list[dict[str, Any]]],
        caplog: pytest.LogCaptureFixture) -> None:
    Fault("s3-slowdown", lake, OCT31, monkeypatch)

    invoke(batch())

    [line] = log_lines()
    assert caplog.records[-1].levelno == logging.ERROR
    assert line["failed_from"] == seq_of(batch(), 1)
    assert f"lake write to dt={OCT31} failed" in line["error"]
    assert line["partitions"] == [NOV1]


# --- partial failures and Lambda's re-delivery ------------------------------------------------

@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("failing", "first"), [(OCT31, 1), (NOV1, 0)],
                         ids=["later-partition", "first-partition"])
def test_a_failed_partition_is_redelivered_from_its_first_record_and_lands_once(
        lake: Lake, monkeypatch: pytest.MonkeyPatch, fault: str, failing: str,
        first: int) -> None:
    # given a lake that cannot write one date's partition
    event = batch()
    broken = Fault(fault, lake, failing, monkeypatch)

    # when the batch is handled
    result = invoke(event)

    # then Lambda is told to retry from the first record of that partition
    assert result == {"batchItemFailures": [{"itemIdentifier": seq_of(event, first)}]}

    # when Lambda re-delivers from there while the fault lasts, then again once it is gone
    again = invoke(from_record(event, first))
    broken.heal()
    healed = invoke(from_record(event, first))

    # then the same record is reported until the write succeeds, and every event is in the
    # lake exactly once: none lost, none doubled
    assert again == result
    assert healed == {"batchItemFailures": []}
    every_event_once(lake, batch_images())
    # and the MODIFY, delivered three times, is quarantined once
    assert [e.record for e in lake.read_quarantine()] == [event["Records"][5]]


def test_a_failed_quarantine_is_redelivered_from_the_first_quarantined_record(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a lake whose quarantine cannot be written
    event = batch()
    real = lake.quarantine
    monkeypatch.setattr(lake, "quarantine", io_error)

    # when a batch whose record 5 is a MODIFY is handled
    result = invoke(event)

    # then the retry starts at the MODIFY
    assert result == {"batchItemFailures": [{"itemIdentifier": seq_of(event, 5)}]}

    # when Lambda re-delivers from there, the quarantine healed
    monkeypatch.setattr(lake, "quarantine", real)
    assert invoke(from_record(event, 5)) == {"batchItemFailures": []}

    # then the MODIFY is quarantined once and every event is in the lake once
    assert [e.record for e in lake.read_quarantine()] == [event["Records"][5]]
    every_event_once(lake, batch_images())


def test_a_failed_quarantine_before_the_inserts_loses_and_doubles_nothing(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given four records to quarantine before a good INSERT, and a quarantine that fails
    event = load_event("ddb_stream_not_archivable.json")
    real = lake.quarantine
    monkeypatch.setattr(lake, "quarantine", io_error)
    result = invoke(event)
    monkeypatch.setattr(lake, "quarantine", real)

    # when Lambda re-delivers from the reported record
    assert result == {"batchItemFailures": [{"itemIdentifier": seq_of(event, 0)}]}
    assert invoke(from_record(event, 0)) == {"batchItemFailures": []}

    # then the four are quarantined once and the good event is stored once
    assert len(lake.read_quarantine()) == 4
    every_event_once(lake, [event["Records"][4]["dynamodb"]["NewImage"]])


def kinesis_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    """DynamoDB change records as a Lambda reading the Kinesis destination stream sees them."""
    def wrap(n: int, record: dict[str, Any]) -> dict[str, Any]:
        seq = f"4965782840918770152001999524250839011995335832519258{9310 + n}"
        return {"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"{n:032X}",
                            "sequenceNumber": seq,
                            "data": base64.b64encode(json.dumps(record).encode()).decode(),
                            "approximateArrivalTimestamp": 1793527201.932},
                "eventSource": "aws:kinesis", "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{seq}", "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/stream-archiver",
                "awsRegion": "eu-west-1",
                "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/events-cdc"}
    return {"Records": [wrap(n, r) for n, r in enumerate(records)]}


def decoded_records() -> list[dict[str, Any]]:
    """Two change records as Kinesis carries them (no SequenceNumber): Nov 1 and Oct 30."""
    records: list[dict[str, Any]] = load_event("ddb_kinesis_decoded_records.json")["records"]
    return records


def test_kinesis_wrapped_records_retry_from_the_kinesis_sequence_number(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given change records delivered through Kinesis, and one date that cannot be written
    records = decoded_records()
    event = kinesis_event(records)
    broken = Fault("s3-slowdown", lake, OCT30, monkeypatch)

    # when handled
    result = invoke(event)

    # then the failed record is named by its Kinesis sequenceNumber
    failed = event["Records"][1]["kinesis"]["sequenceNumber"]
    assert result == {"batchItemFailures": [{"itemIdentifier": failed}]}

    # and re-delivery from there stores every event once
    broken.heal()
    assert invoke(from_record(event, 1)) == {"batchItemFailures": []}
    every_event_once(lake, [r["dynamodb"]["NewImage"] for r in records])


def test_a_failure_of_records_without_sequence_numbers_fails_the_whole_batch(
        lake: Lake, monkeypatch: pytest.MonkeyPatch,
        log_lines: Callable[[], list[dict[str, Any]]]) -> None:
    # given records with no sequence number at all (Kinesis' inner records, decoded), and a
    # date that cannot be written
    records = decoded_records()
    broken = Fault("filesystem", lake, OCT30, monkeypatch)

    # when handled, there is no record to name: the handler raises so Lambda retries it all
    with pytest.raises(StorageError, match=rf"stream batch not archived: lake write to "
                                           rf"dt={OCT30} failed"):
        invoke({"Records": copy.deepcopy(records)})
    [line] = log_lines()
    assert line["failed_from"] is None and line["error"]

    # and the retried batch stores every event once
    broken.heal()
    assert invoke({"Records": copy.deepcopy(records)}) == {"batchItemFailures": []}
    every_event_once(lake, [r["dynamodb"]["NewImage"] for r in records])
    assert all(p.name.startswith("stream-x") for p in lake_files(lake))


def test_a_redelivered_record_and_a_redelivered_batch_are_stored_once(lake: Lake) -> None:
    # given a batch where a record comes twice, delivered twice
    event = batch()
    event["Records"].append(copy.deepcopy(event["Records"][3]))

    # when handled twice
    assert invoke(event) == invoke(copy.deepcopy(event)) == {"batchItemFailures": []}

    # then each event is stored once
    every_event_once(lake, batch_images())


# --- malformed input --------------------------------------------------------------------------

def test_an_insert_whose_payload_is_null_is_quarantined_and_the_batch_still_succeeds(
        lake: Lake) -> None:
    # given a batch whose second INSERT carries `event_payload` {"S": null} (not an event: the
    # column-wise path must not take it, or the lake refuses the null and the batch fails on
    # every re-delivery)
    event = batch()
    event["Records"][1]["dynamodb"]["NewImage"]["event_payload"] = {"S": None}

    # when handled, twice (a re-delivery)
    assert invoke(event) == invoke(copy.deepcopy(event)) == {"batchItemFailures": []}

    # then the other events are archived once, and the record is quarantined, raw, with its
    # reason and rule, once
    every_event_once(lake, [i for n, i in enumerate(batch_images()) if n != 1])
    bad = [e for e in lake.read_quarantine() if e.rule == "record.bad_payload"]
    assert [e.record for e in bad] == [event["Records"][1]]
    assert "event_payload" in bad[0].reason



@pytest.mark.parametrize(("event", "message"), [
    ((FIXTURES / "ddb_stream_truncated.json").read_text(encoding="utf-8"),
     "not valid JSON"),
    ({"version": "0", "detail-type": "Scheduled Event"}, "no `Records` list"),
    ([{"id": 1}, {"id": 2}], "none of them a change record"),
], ids=["truncated-json", "dict-without-records", "list-of-non-records"])
def test_malformed_input_raises_codec_error_and_writes_nothing(
        lake: Lake, event: Any, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        invoke(event)

    assert written(lake) == []


# --- every real capture ----------------------------------------------------------------------

def _stream_events(value: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """(path inside the file, event) for every stream event in a capture: dicts with a
    `Records` list, record lists under `records`/`content`, and bare records."""
    if isinstance(value, dict):
        if isinstance(value.get("Records"), list) or ("eventName" in value
                                                       and "dynamodb" in value):
            yield where or "/", value
            return
        for key, child in value.items():
            if (key in ("records", "content") and isinstance(child, list) and child
                    and all(isinstance(c, dict) and "Records" not in c for c in child)):
                yield f"{where}/{key}", child
            else:
                yield from _stream_events(child, f"{where}/{key}")
    elif isinstance(value, list):
        for n, child in enumerate(value):
            yield from _stream_events(child, f"{where}[{n}]")


def _realcases() -> list[Any]:
    if not REALCASES.is_dir():
        return [pytest.param("", "", None, id="realcases-missing",
                             marks=pytest.mark.skip(reason=f"{REALCASES} is not here"))]
    cases = []
    for path in sorted(REALCASES.glob("*.json")):
        text = path.read_text(encoding="utf-8-sig")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            cases.append(pytest.param(path.name, "<text>", text, id=f"{path.name}:<text>"))
            continue
        cases += [pytest.param(path.name, where, event, id=f"{path.name}:{where}")
                  for where, event in _stream_events(data)]
    return cases


def _record_count(event: Any) -> int:
    if isinstance(event, list):
        return len(event)
    return len(event["Records"]) if "Records" in event else 1


@pytest.mark.parametrize(("name", "where", "event"), _realcases())
def test_every_real_capture_is_archived_or_refused_and_no_record_is_dropped(
        lake: Lake, log_lines: Callable[[], list[dict[str, Any]]], name: str, where: str,
        event: Any) -> None:
    if where == "<text>":  # not JSON (the truncated capture): refused, nothing written
        with pytest.raises(CodecError, match="truncated"):
            invoke(event)
        assert written(lake) == []
        return

    # when the captured event is handled (a copy: the parametrized value is shared)
    result = invoke(copy.deepcopy(event))

    # then nothing failed, and every record is accounted for under exactly one outcome
    assert result == {"batchItemFailures": []}
    [line] = log_lines()
    outcomes = (line["archived"] + line["already_archived"] + line["quarantined"]
                + line["ttl_removals"] + line["other_removals"])
    assert line["records"] == _record_count(event)
    assert outcomes == line["records"], f"{name} {where}: {line}"
    # every quarantined record is written; readers count a record delivered more than once
    # (a capture holding Lambda's retries of one record) once
    lines = [json.loads(text) for f in lake.list_quarantine()
             for text in Path(f.path).read_text(encoding="utf-8").split("\n") if text]
    assert len(lines) == line["quarantined"]
    assert len(lake.read_quarantine()) == len({record_key(x["record"]) for x in lines})
    assert len(raw_rows(lake)) == line["archived"]
