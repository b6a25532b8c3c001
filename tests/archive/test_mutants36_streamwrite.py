"""Stream files named by content (records without sequence numbers: Kinesis-wrapped), the
path mutation testing found unchecked (mutants35/36: `write_partition`'s content-named call).
Their name once came from the event_ids alone, so the same ids with other rows (an event
deleted from the table, by TTL or DeleteItem, then sent again with other content) got the same
name: the stream rewrote that file and the first copy, by then only in the lake, was lost.
A name now follows everything the rows hold: an identical re-delivery rewrites its own file
with the same rows; other rows go to another file, and readers keep the earliest copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stream_support import STORE, new_lake, raw_rows

from eventlake.archive.stream import archive_event
from eventlake.events.model import parse_event

INGESTED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _kinesis(payload: dict[str, Any], ingested: datetime) -> dict[str, Any]:
    """The INSERT of `evt-1` (`payload`, ingested at `ingested`) as a Kinesis Data Streams
    destination delivers it, decoded: no sequence number."""
    item = STORE.to_item(parse_event({"event_id": "evt-1", "event_type": "order.placed",
                                      "timestamp": "2026-11-01T08:00:00Z",
                                      "event_payload": payload}, now=ingested), ingested)
    return {"eventID": f"k-{ingested.timestamp()}", "eventName": "INSERT",
            "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1", "tableName": "events",
            "recordFormat": "application/json",
            "dynamodb": {"ApproximateCreationDateTime": int(ingested.timestamp() * 1000),
                         "Keys": {"event_id": item["event_id"]}, "NewImage": item,
                         "SizeBytes": 200}}


def _payloads(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((r["event_payload"], r["ingested_at"].isoformat()) for r in rows)


def test_an_id_sent_again_with_other_content_never_replaces_the_first_copy(
        tmp_path: Path) -> None:
    # given the stream archived `evt-1` from a record without a sequence number
    lake = new_lake(tmp_path / "lake")
    first = archive_event(lake, [_kinesis({"v": "A"}, INGESTED)])
    assert first.archived == 1 and first.error is None
    # when, deleted from the table days later, it is sent again with other content
    later = INGESTED + timedelta(days=4)
    again = archive_event(lake, [_kinesis({"v": "B"}, later)])
    # then the first copy is still in the lake (readers keep it: the earliest ingested)
    assert again.error is None
    assert _payloads(raw_rows(lake)) == [('{"v":"A"}', INGESTED.isoformat()),
                                         ('{"v":"B"}', later.isoformat())]


def test_an_identical_re_delivery_rewrites_its_own_file(tmp_path: Path) -> None:
    # given the stream archived `evt-1` from a record without a sequence number
    lake = new_lake(tmp_path / "lake")
    first = archive_event(lake, [_kinesis({"v": "A"}, INGESTED)])
    # when the same record comes again
    again = archive_event(lake, [_kinesis({"v": "A"}, INGESTED)])
    # then it rewrites its own file, with the same rows, and adds none
    assert [f.path for f in again.files] == [f.path for f in first.files]
    assert _payloads(raw_rows(lake)) == [('{"v":"A"}', INGESTED.isoformat())]
