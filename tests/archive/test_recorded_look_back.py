"""End to end: an ingest process and the sweeps agree on the look-back through the table.

A write is stamped before its first attempt and may land up to its retry budget plus the last
attempt's timeouts later (skew + settle in all). A sweep that runs just before it lands moves
the watermark to `now - settle`; the next sweep re-reads `skew` before that. With the
producer's budget taken from the table's values, the late write is always in the next window.
"""

from __future__ import annotations

from datetime import timedelta

from archive_support import NOW, World, hours, make_world

from eventlake import EventLake, Settings
from eventlake.config import AWS_CONNECT_TIMEOUT_S, AWS_READ_TIMEOUT_S
from eventlake.events.model import Event, parse_event
from eventlake.hot.store import HotStore

LAST_ATTEMPT = timedelta(seconds=AWS_CONNECT_TIMEOUT_S + AWS_READ_TIMEOUT_S)


def producer_of(world: World, **settings: float) -> HotStore:
    """An ingest process on the world's table: its own Settings (none of the table's set
    unless given), the world's clients."""
    own = Settings.from_env(env={}, table=world.settings.table,
                            lake_uri=world.settings.lake_uri, **settings)
    return HotStore(own, world.clients)


def test_a_late_landing_write_of_a_producer_that_sets_no_skew_is_in_the_next_window(
        lake: EventLake) -> None:
    # given a table initialised with the sweeps' look-back: 300 s of skew, 60 s of settle
    world = make_world(lake, clock_skew_seconds=300.0, archive_settle_seconds=60.0)
    world.ingest(["early"], NOW - hours(2))
    world.sweep(NOW - hours(1), settle_seconds=None)
    # and an ingest process that sets neither (its own defaults would retry for 625 s)
    producer = producer_of(world)
    assert producer.settings.write_retry_seconds == 625
    budget = timedelta(seconds=producer.table_settings().write_retry_seconds)
    assert budget == timedelta(seconds=300 + 60) - LAST_ATTEMPT
    # when it stamps an event, and the write lands as late as that budget allows, just after
    # a sweep ran
    stamped = NOW - timedelta(minutes=30)
    lands = stamped + budget + LAST_ATTEMPT
    before_landing = world.sweep(lands - timedelta(seconds=1), settle_seconds=None)
    assert before_landing.counts.read == 0
    world.put_items([producer.to_item(_event(world, "late"), stamped)])
    # then the next sweep, 15 minutes on, re-reads far enough back to archive it
    report = world.sweep(lands + timedelta(minutes=15), settle_seconds=None)
    assert report.since <= stamped
    assert report.counts.archived == 1
    assert world.stored_rows() == {"early": 1, "late": 1}
    assert report.expiry is not None and report.expiry.beyond_skew == 0


def test_with_the_producers_own_larger_look_back_the_same_write_would_miss_every_window(
        lake: EventLake) -> None:
    """What recording the skew prevents: the same scenario with the producer's own 600 s."""
    world = make_world(lake, clock_skew_seconds=300.0, archive_settle_seconds=60.0)
    world.sweep(NOW - hours(1), settle_seconds=None)
    own = timedelta(seconds=producer_of(world).settings.write_retry_seconds)
    stamped = NOW - timedelta(minutes=30)
    lands = stamped + own + LAST_ATTEMPT
    world.sweep(lands - timedelta(seconds=1), settle_seconds=None)
    world.ingest(["late"], stamped)
    report = world.sweep(lands + timedelta(minutes=15), settle_seconds=None)
    assert report.since > stamped  # behind every later window: only the expiry check finds it
    assert world.stored_rows() == {}


def _event(world: World, event_id: str) -> Event:
    return parse_event({"event_id": event_id, "event_type": "order.placed",
                        "timestamp": (NOW - hours(1)).isoformat(),
                        "event_payload": {"id": event_id}}, now=NOW)
