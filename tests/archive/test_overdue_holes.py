"""The expiry checkpoint's holes: stretches of ingestion time it moved over that TTL may have
emptied before any sweep read them (the sweeps stopped for longer than the retention period).
A REMOVE of an item ingested in one is the event's possible last copy, so it is checked against
the lake even though the item was ingested before the checkpoint (archive/removed.py); the
holes ride on the checkpoint's own compare-and-swap and are carried forward
(lake/watermark.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from stream_support import STORE, new_lake, raw_rows, record_shards, removal

from eventlake.archive.stream import archive_event
from eventlake.events.model import parse_event
from eventlake.lake.store import Lake
from eventlake.lake.watermark import (
    EXPIRY_CHECK_KEY,
    MAX_HOLES,
    advance_watermark,
    merge_holes,
    read_watermark,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def item_at(event_id: str, ingested: datetime) -> dict[str, object]:
    event = parse_event({"event_id": event_id, "event_type": "order.placed",
                         "timestamp": (ingested - timedelta(seconds=1)).isoformat(),
                         "event_payload": {"id": event_id}}, now=ingested)
    return STORE.to_item(event, ingested)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return new_lake(tmp_path / "lake", vouched=False)


def test_holes_are_sorted_joined_and_capped_by_joining_the_closest() -> None:
    assert merge_holes([(at(5), at(6)), (at(1), at(2)), (at(2), at(3)), (at(4), at(4))]) == (
        (at(1), at(3)), (at(5), at(6)))
    many = [(at(10 * i), at(10 * i + 1)) for i in range(MAX_HOLES)] + [(at(-3), at(-2))]
    kept = merge_holes(many)
    assert len(kept) == MAX_HOLES
    assert kept[0] == (at(-3), at(1))  # the smallest gap (1 h) was closed: wider, never narrower
    assert all(any(a <= s and e <= b for a, b in kept) for s, e in many)


def test_a_hole_is_written_even_when_the_checkpoint_stays_and_is_carried_forward(
        lake: Lake) -> None:
    first = advance_watermark(lake, at(10), expected=None, run_id="s1", key=EXPIRY_CHECK_KEY)
    assert first.holes == ()

    # a hole added without moving the mark: written (the mark stays where it was)
    held = advance_watermark(lake, at(9), expected=first, run_id="s2", key=EXPIRY_CHECK_KEY,
                             holes=[(at(2), at(3))])
    assert held.at == at(10) and held.version != first.version
    # a later move without a hole keeps it; the same hole again writes nothing
    moved = advance_watermark(lake, at(20), expected=held, run_id="s3", key=EXPIRY_CHECK_KEY)
    again = advance_watermark(lake, at(19), expected=moved, run_id="s4", key=EXPIRY_CHECK_KEY,
                              holes=[(at(2), at(3))])
    assert again is moved
    read = read_watermark(lake, EXPIRY_CHECK_KEY)
    assert read is not None and read.at == at(20) and read.holes == ((at(2), at(3)),)


def test_a_checkpoint_written_before_holes_existed_reads_as_having_none(lake: Lake) -> None:
    data = json.dumps({"at": "2026-11-01T10:00:00.000000Z", "run_id": "old",
                       "updated_at": "2026-11-01T10:00:00.000000Z"}).encode()
    lake.swap_state(EXPIRY_CHECK_KEY, data, expected=None)
    mark = read_watermark(lake, EXPIRY_CHECK_KEY)
    assert mark is not None and mark.holes == ()


def test_a_remove_ingested_in_a_hole_is_checked_and_its_last_copy_archived(lake: Lake) -> None:
    # given a checkpoint and a watermark past two events, one of them in a recorded hole
    record_shards(lake)
    advance_watermark(lake, at(10), expected=None, run_id="s", key=EXPIRY_CHECK_KEY,
                      holes=[(at(2), at(4))])
    advance_watermark(lake, at(10), expected=None, run_id="s")
    in_hole, vouched = item_at("evt-in-hole", at(3)), item_at("evt-vouched", at(5))

    # when TTL deletes both, and neither is in the lake
    report = archive_event(lake, {"Records": [removal(in_hole, 900), removal(vouched, 901)]})

    # then the one in the hole is archived from its old image; the other is only counted
    assert [r["event_id"] for r in raw_rows(lake)] == ["evt-in-hole"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)
