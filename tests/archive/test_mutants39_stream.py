"""The stream batch's own decisions that mutation testing found unchecked (mutants39,
archive/stream.py's `_archive`): what a quarantine entry holds when the record cannot be
decoded or its date does not exist, the MODIFYs counted, and what a batch that partly failed
reports as archived.

A quarantine entry is the only copy of a record the lake refused: it must hold the record as
delivered, and say why, or nobody can repair and re-archive it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from conftest import load_event
from stream_support import (
    ARCHIVED_IN_BATCH,
    NOW,
    STORE,
    batch,
    ids_in_lake,
    lambda_event,
    new_lake,
    seq_of,
)

from eventlake.archive.stream import archive_event
from eventlake.events.model import parse_event
from eventlake.lake.store import Lake
from tests.archive.test_stream_quarantine_retry import fail_partition

NOV01 = "2026-11-01"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return new_lake(tmp_path / "lake")


def test_a_record_that_cannot_be_decoded_is_quarantined_as_it_was_delivered(
        lake: Lake) -> None:
    # given the fixture batch with one more record, cut short: it has no `dynamodb` part
    event = batch()
    cut = {k: v for k, v in copy.deepcopy(event["Records"][0]).items() if k != "dynamodb"}
    cut["eventID"] = "cut-short"
    event["Records"].append(cut)

    # when archived
    report = archive_event(lake, event)

    # then the record is in the quarantine whole, next to the MODIFY, and the INSERTs archived
    entries = {e.rule: e for e in lake.read_quarantine()}
    [rule] = set(entries) - {"stream.modify"}
    assert entries[rule].record == cut
    assert (report.quarantined, sorted(ids_in_lake(lake))) == (2, sorted(ARCHIVED_IN_BATCH))


def test_an_impossible_date_is_quarantined_with_its_record_and_a_reason_naming_it(
        lake: Lake) -> None:
    # given an eventlake item whose timestamp has the right layout but no such day (Feb 30)
    event = batch()
    record = event["Records"][0]
    record["dynamodb"]["NewImage"]["timestamp"] = {"S": "2026-02-30T08:00:00.000000Z"}

    # when archived
    archive_event(lake, event)

    # then its quarantine entry holds the record as delivered and a reason naming the date
    [entry] = [e for e in lake.read_quarantine() if e.rule == "record.bad_timestamp"]
    assert entry.record == record
    assert "2026-02-30" in entry.reason


def test_every_modify_of_a_batch_is_counted(lake: Lake) -> None:
    # given the fixture batch with a second MODIFY (another sequence number) in front
    event = batch()
    modify = copy.deepcopy(event["Records"][5])
    modify["dynamodb"]["SequenceNumber"] = "400000000000000000100"
    modify["eventID"] = "modify-first"
    event["Records"].insert(0, modify)

    # when archived
    report = archive_event(lake, event)

    # then both MODIFYs are counted and quarantined
    assert (report.modified, report.quarantined) == (2, 2)


def test_a_partition_written_after_an_earlier_one_failed_is_reported_archived(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the fixture batch (Nov 1's partition starts at record 0, Oct 31's at record 1)
    # and a lake whose Nov 1 write fails
    event = batch()
    fail_partition(lake, monkeypatch, NOV01)

    # when archived
    report = archive_event(lake, event)

    # then Lambda retries from record 0, and the report still counts Oct 31's three events
    # and names its file: they are in the lake (the re-delivery skips them)
    assert report.failed_from == seq_of(event, 0)
    assert report.archived == 3
    assert [f.dt for f in report.files] == ["2026-10-31"]
    assert sorted(ids_in_lake(lake)) == ["evt-paid-offset", "evt-placed-late",
                                          "evt-placed-service"]


def test_items_of_other_producers_in_a_lambda_event_name_their_file_by_sequence_numbers(
        lake: Lake) -> None:
    # given a Lambda event of two INSERTs another producer wrote (the row-wise path)
    event = dict(load_event("ddb_stream_other_producers.json"))
    seqs = sorted(r["dynamodb"]["SequenceNumber"] for r in event["Records"])

    # when archived
    report = archive_event(lake, event)

    # then their file is named by their sequence range, as the fast path's are: a partial
    # re-delivery finds it by that range (a content name would make it read by time instead)
    [written] = report.files
    assert Path(written.path).name.startswith(f"stream-{seqs[0]}-{seqs[-1]}-")


def test_a_sequence_number_that_is_not_a_number_names_only_its_own_file_by_content(
        lake: Lake) -> None:
    # given a Lambda event of two eventlake INSERTs on two days (the fast path), the second
    # record's sequence number not a number
    items = [STORE.to_item(parse_event({"event_id": f"evt-{day}", "event_type": "order.placed",
                                        "timestamp": f"{day}T08:00:00Z",
                                        "event_payload": {}}, now=NOW), NOW)
             for day in ("2026-10-31", "2026-11-01")]
    event = lambda_event(items)
    event["Records"][1]["dynamodb"]["SequenceNumber"] = "12a"

    # when archived
    report = archive_event(lake, event)

    # then both are archived: the first day's file named by its sequence number, the
    # second's by its content
    assert report.failed_from is None
    names = sorted(Path(f.path).name for f in report.files)
    seq = event["Records"][0]["dynamodb"]["SequenceNumber"]
    assert [n.startswith(f"stream-{seq}-{seq}-") for n in names] == [True, False]
    assert names[1].startswith("stream-x")
    assert sorted(ids_in_lake(lake)) == ["evt-2026-10-31", "evt-2026-11-01"]
