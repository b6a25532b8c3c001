"""A REMOVE's old image whose event_id the lake holds with other content, the case mutation
testing found unchecked (mutants35/36: the quarantine entry's `source`): it is quarantined,
not archived, and the entry says it came from a REMOVE, so an operator knows the stream's
deletions found it (not an INSERT, a sweep or a backfill)."""

from __future__ import annotations

from pathlib import Path

from stream_support import STORE, lambda_event, new_lake, removal

from eventlake.archive.stream import archive_event
from eventlake.events.model import parse_event
from tests.archive.test_stream_removed import INGESTED, ids, item


def test_a_removed_image_with_a_reused_id_is_quarantined_as_the_removes(
        tmp_path: Path) -> None:
    # given the lake holds `evt-x` (no expiry check vouches for anything yet)
    lake = new_lake(tmp_path / "lake", vouched=False)
    assert archive_event(lake, lambda_event([item("evt-x")])).archived == 1
    # when a REMOVE deletes an item with that id and other content
    other = STORE.to_item(parse_event({"event_id": "evt-x", "event_type": "order.cancelled",
                                       "timestamp": "2026-11-01T08:00:00Z",
                                       "event_payload": {"order": "other"}}, now=INGESTED),
                          INGESTED)
    report = archive_event(lake, {"Records": [removal(other, 900)]})
    # then the lake keeps its one copy, and the other is quarantined as found by a REMOVE
    assert report.error is None and ids(lake) == ["evt-x"]
    [entry] = lake.read_quarantine()
    assert (entry.rule, entry.source) == ("event.id_reused", "stream-remove")
    assert entry.record["event_type"] == {"S": "order.cancelled"}
