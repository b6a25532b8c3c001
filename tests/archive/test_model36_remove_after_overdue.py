"""Found by the pipeline model (model36): a REMOVE whose old image is an event's only copy is
dropped when it arrived after the sweep that followed an outage longer than retention.

The expiry checkpoint and the watermark moved past the outage's overdue stretch, whose items TTL
deleted before any sweep read them; archive/removed.py then counted a REMOVE from that stretch
as vouched for (`_vouched`: ingested before the checkpoint) and never looked at the lake. The
sweep now records the stretch as a hole on the checkpoint (lake/watermark.py)."""

from __future__ import annotations

from datetime import timedelta

from archive_support import NOW, World
from stream_support import removal

from eventlake.archive.stream import archive_event
from eventlake.local.stack import expire_ttl


def test_a_remove_after_the_overdue_sweep_still_archives_the_last_copy(world: World) -> None:
    retention = timedelta(seconds=world.settings.retention_seconds)
    start = NOW - retention - timedelta(hours=3)
    world.sweep(start)  # the last sweep before the outage
    [item] = [world.item("only-copy", start + timedelta(hours=1))]
    world.put_items([item])  # its INSERT record is lost (Lambda down past 24 h)
    assert expire_ttl(world.clients, world.settings.table, now=NOW - timedelta(hours=1)) == [
        "only-copy"]
    report = world.sweep(NOW)  # the schedule resumes: it reports the hole
    assert report.overdue_until is not None and report.problems()

    # the REMOVE (TTL's, with the whole item as old image) is delivered after that sweep
    archive_event(world.lake, {"Records": [removal(item, 600000000000000000001)]})

    assert world.stored_rows()["only-copy"] == 1, "the REMOVE's old image was not archived"
