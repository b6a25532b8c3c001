"""Which copy the stream keeps of an event_id repeated in one batch, the case mutation testing
found unchecked (mutants35): the earliest record's, whatever order the partition's rows sort
in (the one rule of lake/dedup.py: the stream keeps the first record of its batch)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stream_support import STORE, lambda_event, new_lake, raw_rows

from eventlake.archive.stream import archive_event
from eventlake.events.model import parse_event
from eventlake.lake.names import window_name

INGESTED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _item(event_type: str) -> dict[str, Any]:
    """The item of event `evt-reused` of `event_type` (the id reused with other content)."""
    return STORE.to_item(parse_event({"event_id": "evt-reused", "event_type": event_type,
                                      "timestamp": "2026-11-01T08:00:00Z",
                                      "event_payload": {"type": event_type}}, now=INGESTED),
                         INGESTED)


def _types(rows: list[dict[str, Any]]) -> list[str]:
    return [r["event_type"] for r in rows]


def test_one_batch_keeps_the_earliest_records_copy_once(tmp_path: Path) -> None:
    # given two records of one event_id, the earlier sorting last in its partition (type `z`)
    lake = new_lake(tmp_path / "lake")
    # when they come in one batch
    report = archive_event(lake, lambda_event([_item("z.first"), _item("a.later")],
                                              first_seq=100))
    # then the lake holds the earlier record's copy, once
    assert _types(raw_rows(lake)) == ["z.first"]
    assert (report.archived, report.already_archived) == (1, 1)


def test_a_sweep_window_starting_at_the_batchs_last_ingestion_is_checked(
        tmp_path: Path) -> None:
    # given the sweep archived an event in a window [since, until) that starts exactly at the
    # event's ingestion time (the window's first instant is in it)
    stored = _item("order.placed")
    first = new_lake(tmp_path / "first")
    archive_event(first, lambda_event([stored], first_seq=100))
    rows = first.read_files(first.list_files())
    lake = new_lake(tmp_path / "lake")
    lake.write(rows, f"{window_name('sweep', INGESTED, INGESTED + timedelta(hours=1))}-0000")
    # when the stream delivers it
    report = archive_event(lake, lambda_event([stored], first_seq=100))
    # then no second copy is written
    assert len(raw_rows(lake)) == 1
    assert (report.archived, report.already_archived) == (0, 1)
