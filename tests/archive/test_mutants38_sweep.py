"""Found by mutation testing the sweep (mutants38, docs/mutation-testing.md): guarantees of
archive/sweep.py that no test checked.

The window read runs on to `now` inclusive (`_through`): the TTL guard judges its entries
instead of querying [new watermark - skew, now] again, so an event ingested at the sweep's very
`now` must be among them, or the guard's count of what is not archived yet misses it."""

from __future__ import annotations

from datetime import timedelta

from archive_support import NOW, World, hours

from eventlake.lake.watermark import read_watermark


def test_an_event_ingested_at_the_sweeps_now_is_counted_unarchived(world: World) -> None:
    # given an event ingested an hour before the sweep and one ingested at the very instant it runs
    world.ingest(["evt-old"], NOW - hours(1))
    world.ingest(["evt-now"], NOW)
    # when the sweep runs at that instant (settle 0: its window is [since, now))
    report = world.sweep(NOW)
    # then the window archives the older one and the guard counts the other as not archived yet
    assert world.stored_rows().keys() == {"evt-old"}
    assert (report.ttl.unarchived, report.ttl.at_risk) == (1, 0), report.to_dict()
    # and the next sweep archives it
    world.sweep(NOW + hours(1))
    assert world.stored_rows().keys() == {"evt-old", "evt-now"}


def test_a_window_starting_at_the_first_unexpired_ingestion_time_is_not_overdue(
        world: World) -> None:
    # given a watermark, and the window the next sweep starts (the watermark less its look-back)
    world.sweep(NOW)
    mark = read_watermark(world.lake)
    assert mark is not None
    since = mark.at - timedelta(seconds=max(world.settings.clock_skew_seconds, mark.skew_seconds))
    retention = timedelta(seconds=world.settings.retention_seconds)
    # when the next sweep runs when an item ingested at `since` has just not expired yet
    # (expires_at = int(ingested_at) + retention: it expires one second later)
    in_time = world.sweep(since + retention - timedelta(seconds=1))
    # then nothing of its window expired unread: no overdue stretch, no hole recorded
    assert in_time.since == since and in_time.overdue_until is None, in_time.to_dict()
    assert in_time.expiry is not None and in_time.expiry.hole is None


def test_a_window_starting_one_second_too_late_is_overdue_by_that_second(world: World) -> None:
    # given the same watermark, when the next sweep runs one second later than in time
    world.sweep(NOW)
    mark = read_watermark(world.lake)
    assert mark is not None
    since = mark.at - timedelta(seconds=max(world.settings.clock_skew_seconds, mark.skew_seconds))
    late = world.sweep(since + timedelta(seconds=world.settings.retention_seconds))
    # then the second whose items expired unread is the overdue stretch
    assert late.since == since and late.overdue_until == since + timedelta(seconds=1)


def test_a_first_sweep_whose_settle_covers_the_whole_window_moves_nothing(world: World) -> None:
    # given an event, and no sweep yet
    world.ingest(["evt-1"], NOW - hours(1))
    # when the first sweep runs with a settle longer than the retention period and TTL's
    # lateness (its window, [now - retention - 2 days, now - settle), is empty)
    report = world.sweep(NOW, settle_seconds=hours(24 * 10).total_seconds())
    # then it reports the empty window, writes no watermark, and counts the event unarchived
    assert report.watermark_before is None and report.watermark_after == report.since
    assert report.until == report.since and read_watermark(world.lake) is None
    assert world.stored_rows() == {} and report.ttl.unarchived == 1
    # and a sweep with the usual settle archives it
    world.sweep(NOW + hours(1))
    assert world.stored_rows().keys() == {"evt-1"}
