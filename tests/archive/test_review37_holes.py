"""review37: two more ways an event's last copy could be dropped after an outage longer than
the retention period, each with its INSERT lost and its REMOVE delivered after the catch-up
sweep. The hole recorded on the expiry checkpoint now reaches back to the old checkpoint and
on to the band's end (archive/expiry.py)."""

from __future__ import annotations

from datetime import timedelta

from archive_support import NOW, World, hours
from stream_support import removal

from eventlake.archive.stream import archive_event
from eventlake.lake.watermark import EXPIRY_CHECK_KEY, read_watermark
from eventlake.local.stack import expire_ttl


def test_an_item_expiring_while_the_catch_up_sweep_runs_is_in_the_hole(world: World) -> None:
    retention = timedelta(seconds=world.settings.retention_seconds)
    world.sweep(NOW - retention - hours(3))  # the last sweep before the outage
    t = NOW - retention + timedelta(seconds=20)  # expires 20 s after the catch-up's `now`
    item = world.item("late-expirer", t)
    world.put_items([item])  # its INSERT record lost
    # by the time the catch-up's reads reach it, TTL has deleted it (simulated before the call)
    assert expire_ttl(world.clients, world.settings.table, now=NOW + timedelta(seconds=30)) == [
        "late-expirer"]
    report = world.sweep(NOW)
    assert report.overdue_until is not None and t >= report.overdue_until  # not reported...

    archive_event(world.lake, {"Records": [removal(item, 600000000000000000001)]})

    assert world.stored_rows()["late-expirer"] == 1  # ...but its REMOVE's old image is kept
    mark = read_watermark(world.lake, EXPIRY_CHECK_KEY)
    assert mark is not None and report.expiry is not None and report.expiry.hole is not None
    start, end = report.expiry.hole
    assert end > t and any(a <= start and end <= b for a, b in mark.holes)  # merged, or as is


def test_an_item_stamped_behind_the_skew_and_expired_in_the_outage_is_kept_and_named(
        world: World) -> None:
    retention = timedelta(seconds=world.settings.retention_seconds)
    last = NOW - retention - hours(3)
    world.sweep(last)
    t = last - hours(1)  # stamped 1 h behind the watermark: a clock slower than the skew
    item = world.item("slow-clock", t)
    world.put_items([item])  # its INSERT record lost
    assert expire_ttl(world.clients, world.settings.table, now=NOW - hours(1)) == [
        "slow-clock"]
    report = world.sweep(NOW)
    assert report.since > t  # outside the window's look-back: only the expiry check reads it
    assert report.expiry is not None and report.expiry.hole is not None
    assert report.expiry.hole[0] <= t and "stamped further behind the watermark" in \
        report.problems()[0]

    archive_event(world.lake, {"Records": [removal(item, 600000000000000000001)]})

    assert world.stored_rows()["slow-clock"] == 1


def test_after_the_outage_a_remove_of_a_later_event_reads_nothing(world: World) -> None:
    # the holes cost lake reads only for REMOVEs of items ingested in them
    retention = timedelta(seconds=world.settings.retention_seconds)
    world.sweep(NOW - retention - hours(3))
    world.sweep(NOW)  # the catch-up: a hole recorded
    t = NOW + hours(7)
    world.ingest(["after"], t)
    world.sweep(t + hours(1))
    world.sweep(t + retention - hours(5))  # the expiry check passes it
    report = archive_event(world.lake, {"Records": [removal(world.item("after", t), 7)]})
    assert report.removed_checked == 0
