"""Found by the pipeline model (model36): the overdue stretch started at the previous watermark,
but an event stamped behind that watermark by a clock within EVENTLAKE_CLOCK_SKEW_SECONDS,
ingested after that sweep ran, was read by no earlier sweep (the look-back exists for it). TTL
deleting it during an outage lost it outside the reported stretch: it starts at the window's
start (`since`) now."""

from __future__ import annotations

from datetime import timedelta

from archive_support import NOW, World

from eventlake.lake.watermark import EXPIRY_CHECK_KEY, read_watermark
from eventlake.local.stack import expire_ttl


def test_a_late_stamped_event_lost_in_an_outage_is_in_the_reported_stretch(world: World
                                                                          ) -> None:
    retention = timedelta(seconds=world.settings.retention_seconds)
    swept_at = NOW - retention - timedelta(hours=3)
    world.sweep(swept_at)  # the watermark: swept_at (settle 0)
    # after that sweep, a host whose clock runs 5 min behind (within the 10 min skew) stamps
    ingested = swept_at - timedelta(minutes=5)
    world.ingest(["late-stamp"], ingested)
    assert expire_ttl(world.clients, world.settings.table, now=NOW - timedelta(hours=1)) == [
        "late-stamp"]  # no stream path, no sweep: TTL deletes it unread
    report = world.sweep(NOW)
    assert report.overdue_until is not None
    assert report.since <= ingested < report.overdue_until, report.to_dict()
    assert f"[{report.to_dict()['since']}, " in report.problems()[0]
    mark = read_watermark(world.lake, EXPIRY_CHECK_KEY)  # REMOVEs from there are checked
    assert mark is not None and any(a <= ingested < b for a, b in mark.holes), mark
