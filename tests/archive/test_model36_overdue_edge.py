"""Found by the pipeline model (model36): the overdue stretch a sweep reports after an outage
must hold every event TTL could have deleted unread. Items expire at `int(ingested_at) +
retention` (whole seconds, `hot.store.item_of`), so an event ingested up to a second after
`now - retention` has expired too; `overdue_until` must not end before it."""

from __future__ import annotations

from datetime import timedelta

from archive_support import NOW, World

from eventlake.local.stack import expire_ttl


def test_the_overdue_stretch_holds_an_event_expired_within_the_same_second(world: World
                                                                          ) -> None:
    retention = timedelta(seconds=world.settings.retention_seconds)
    # given a sweep, then an event ingested half a second into a second, then no sweep
    world.sweep(NOW - retention - timedelta(hours=1))
    ingested = NOW - retention + timedelta(milliseconds=500)
    world.ingest(["edge-1"], ingested)
    # when TTL deletes it at its expiry (int(ingested) + retention = NOW), before any sweep
    later = NOW + timedelta(milliseconds=200)
    assert expire_ttl(world.clients, world.settings.table, now=later) == ["edge-1"]
    report = world.sweep(later)

    # then the report's stretch names its ingestion time
    assert report.watermark_before is not None and report.overdue_until is not None
    assert report.watermark_before <= ingested < report.overdue_until, report.to_dict()


def test_a_watermark_within_the_second_of_expiry_is_overdue(world: World) -> None:
    # an event at the watermark itself, ingested 0.5 s after `now - retention`, has expired
    retention = timedelta(seconds=world.settings.retention_seconds)
    ingested = NOW - retention + timedelta(milliseconds=500)
    world.sweep(ingested)  # settle 0: the watermark is `ingested`
    world.ingest(["edge-2"], ingested)
    assert expire_ttl(world.clients, world.settings.table, now=NOW) == ["edge-2"]
    report = world.sweep(NOW)
    assert report.overdue_until is not None and ingested < report.overdue_until
