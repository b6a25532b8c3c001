"""The expiry check's guarantees that mutation testing found untested (mutants39,
docs/mutation-testing.md): the hole it records on its checkpoint (widened back to the old
checkpoint, from the epoch when there was none), the checkpoint stopping exactly at an item TTL
deleted during the check, the band starting at the checkpoint itself, and the sample of what it
had to archive. The check is called as the sweep calls it (archive/sweep.py), on the world's two
tiers: 3 days' retention, a 6-hour margin, so its band ends at now - 66 h."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from archive_support import NOW, World, hours

from eventlake.archive import expiry
from eventlake.archive.expiry import band_end, check_expiry
from eventlake.archive.report import SAMPLE_IDS
from eventlake.archive.writer import archive_items
from eventlake.hot.store import Item
from eventlake.lake.names import window_name
from eventlake.lake.watermark import (
    EXPIRY_CHECK_KEY,
    MAX_HOLES,
    advance_watermark,
    merge_holes,
    read_watermark,
)

EPOCH = datetime.fromtimestamp(0, UTC)
SINCE = NOW - hours(1)  # where the sweep's own window starts: the band stops before it


def test_a_hole_before_the_checkpoint_is_recorded_whole_back_to_its_start(world: World) -> None:
    # given a checkpoint at now - 68 h, and sweeps that stopped long enough for TTL to empty
    # ingestion time from now - 80 h to now - 67 h before any sweep read it
    checkpoint = NOW - hours(68)
    advance_watermark(world.lake, checkpoint, expected=None, run_id="s0", key=EXPIRY_CHECK_KEY)
    hole = (NOW - hours(80), NOW - hours(67))
    # when the expiry check runs with that hole
    check = check_expiry(world.lake, world.hot, world.settings, now=NOW, window_since=SINCE,
                         run_id="s1", hole=hole)
    # then the checkpoint holds the hole from its own start (not cut at the old checkpoint:
    # a REMOVE of an item ingested at now - 75 h is still checked against the lake), on to
    # the band's end
    recorded = (NOW - hours(80), band_end(NOW, world.settings))
    assert check.hole == recorded
    mark = read_watermark(world.lake, EXPIRY_CHECK_KEY)
    assert mark is not None and mark.holes == (recorded,)
    # (written by this run, at the sweep's time: what a conflicting sweep is told)
    assert (mark.run_id, mark.updated_at) == ("s1", NOW)


def test_a_hole_is_recorded_when_the_checkpoint_has_nothing_to_move_over(world: World) -> None:
    # given a checkpoint already at the end of the band (a check ran a moment ago)
    end = band_end(NOW, world.settings)
    advance_watermark(world.lake, end, expected=None, run_id="s0", key=EXPIRY_CHECK_KEY)
    # when the expiry check runs again with a hole the sweep found
    check_expiry(world.lake, world.hot, world.settings, now=NOW, window_since=SINCE,
                 run_id="s1", hole=(NOW - hours(80), NOW - hours(70)))
    # then the checkpoint stays, and holds the hole
    mark = read_watermark(world.lake, EXPIRY_CHECK_KEY)
    assert mark is not None and mark.at == end and mark.holes == ((NOW - hours(80), end),)


def test_with_no_checkpoint_a_hole_is_recorded_from_the_epoch(world: World) -> None:
    # given no expiry checkpoint yet (a lake from before the checks, or its file deleted)
    assert read_watermark(world.lake, EXPIRY_CHECK_KEY) is None
    # when the expiry check runs with a hole: nothing says what was read before it
    check = check_expiry(world.lake, world.hot, world.settings, now=NOW, window_since=SINCE,
                         run_id="s1", hole=(NOW - hours(80), NOW - hours(67)))
    # then the hole runs from the epoch: an item TTL is later than usual to delete, ingested
    # before the band's start, is not vouched for when its REMOVE comes
    recorded = (EPOCH, band_end(NOW, world.settings))
    assert check.hole == recorded
    mark = read_watermark(world.lake, EXPIRY_CHECK_KEY)
    assert mark is not None and mark.holes == (recorded,)


def test_an_item_ttl_deleted_during_the_check_stops_the_checkpoint_exactly_at_it(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given two orders the lake lacks, both expiring within the margin, and TTL deleting the
    # later one (its id holds a `#`, as the index key's separator) between the check's index
    # read and its fetch
    world.ingest(["kept"], NOW - hours(70))
    doomed = NOW - hours(67)
    world.ingest(["order#doomed"], doomed)
    real = world.hot.fetch

    def delete_then_fetch(event_ids: Any) -> Any:
        world.clients.dynamodb.delete_item(TableName=world.settings.table,
                                           Key={"event_id": {"S": "order#doomed"}})
        return real(event_ids)

    monkeypatch.setattr(world.hot, "fetch", delete_then_fetch)
    vanished: list[Item] = []
    # when the expiry check runs
    check = check_expiry(world.lake, world.hot, world.settings, now=NOW, window_since=SINCE,
                         run_id="s1", vanished=vanished)
    # then it archives the one still there, hands the gone one to the guard
    assert world.stored_rows() == Counter(["kept"]) and check.beyond_skew == 1
    assert [entry["event_id"]["S"] for entry in vanished] == ["order#doomed"]
    # and moves the checkpoint up to the gone item's ingestion time, not past it (its REMOVE
    # is checked) and not short of it (what was checked before it is vouched for)
    mark = read_watermark(world.lake, EXPIRY_CHECK_KEY)
    assert mark is not None and mark.at == doomed


def test_events_the_last_check_passed_are_not_read_again(world: World) -> None:
    # given an order the expiry check archived 5 minutes before the checkpoint it moved to
    first_end = band_end(NOW, world.settings)
    world.ingest(["checked"], first_end - timedelta(minutes=5))
    first = check_expiry(world.lake, world.hot, world.settings, now=NOW, window_since=SINCE,
                         run_id="s1")
    assert first.beyond_skew == 1
    # (in a file named as the expiry check's own, over its band: not taken for a foreign file)
    [written] = first.counts.files
    assert written.path.rsplit("/", 1)[-1].startswith(
        window_name("expiry", first.since, first.until) + "-")
    # when the next check runs an hour later
    later = check_expiry(world.lake, world.hot, world.settings, now=NOW + hours(1),
                         window_since=SINCE + hours(1), run_id="s2")
    # then its band starts at the checkpoint itself (no clock-skew look-back: the sweep's
    # window has one, the check reads each event once) and reads nothing again
    assert (later.since, later.until) == (first_end, first_end + hours(1))
    assert later.counts.read == 0


def test_the_sample_of_events_archived_beyond_the_skew_holds_at_most_sample_ids(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given 30 orders about to expire that no sweep archived, written in chunks of 19 (the
    # sample is filled chunk by chunk; the real chunk is 50,000 rows, too many for a test)
    world.ingest([f"late-{i:02d}" for i in range(30)], NOW - hours(70))
    monkeypatch.setattr(expiry, "archive_items", partial(archive_items, chunk_rows=19))
    # when the expiry check archives them
    check = check_expiry(world.lake, world.hot, world.settings, now=NOW, window_since=SINCE,
                         run_id="s1")
    # then it counts all 30 and names SAMPLE_IDS of them (the report and its warning stay short)
    assert check.beyond_skew == 30 and len(check.counts.files) == 2
    assert len(check.beyond_skew_ids) == SAMPLE_IDS


def test_past_max_holes_the_two_closest_are_joined_wherever_they_are() -> None:
    # given MAX_HOLES + 1 holes, the gaps between them shrinking: the closest pair is the
    # last one (a 1-hour gap), the last hole 30 hours long (their ends are far apart)
    starts, at = [], NOW - hours(400)
    for gap in range(MAX_HOLES + 1, 0, -1):
        starts.append(at)
        at += hours(1 + gap)
    holes = [(start, start + hours(1)) for start in starts]
    holes[-1] = (holes[-1][0], holes[-1][0] + hours(30))
    # when they are merged
    kept = merge_holes(holes)
    # then only the last two are joined, over the gap between them: the others stay as narrow
    # as they were (a wider hole sends more REMOVEs to the lake to be checked)
    assert kept == (*holes[:-2], (holes[-2][0], holes[-1][1]))
