"""A sweep run with a shorter settle than the table's (`eventlake archive --settle 0`, the demo)
moves the watermark closer to now than writers' retry budgets allow for (they retry for the
table's skew + settle). The next sweep must still re-read far enough back to find a write that
lands late just after it. The same holds when the settle recorded on the table is lowered
(CloudFormation edits the tag, which `init` would refuse) under warm writers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from archive_support import NOW, World, hours, make_world, record_on_table

from eventlake import EventLake, Settings
from eventlake.archive.sweep import SweepReport, sweep
from eventlake.config import AWS_CONNECT_TIMEOUT_S, AWS_READ_TIMEOUT_S
from eventlake.errors import StorageError
from eventlake.events.model import Event, parse_event
from eventlake.hot.store import HotStore
from eventlake.lake.watermark import WATERMARK_KEY, advance_watermark, read_watermark

LAST_ATTEMPT = timedelta(seconds=AWS_CONNECT_TIMEOUT_S + AWS_READ_TIMEOUT_S)


def producer_of(world: World) -> HotStore:
    """An ingest process on the world's table that sets none of the table's settings."""
    own = Settings.from_env(env={}, table=world.settings.table,
                            lake_uri=world.settings.lake_uri)
    return HotStore(own, world.clients)


def _event(event_id: str) -> Event:
    return parse_event({"event_id": event_id, "event_type": "order.placed",
                        "timestamp": (NOW - hours(1)).isoformat(),
                        "event_payload": {"id": event_id}}, now=NOW)


def test_a_late_write_after_a_settle_0_sweep_is_in_the_next_window(lake: EventLake) -> None:
    # given a table recording 300 s of skew and 60 s of settle, and a producer using them
    world = make_world(lake, clock_skew_seconds=300.0, archive_settle_seconds=60.0)
    world.sweep(NOW - hours(1), settle_seconds=None)
    producer = producer_of(world)
    budget = timedelta(seconds=producer.table_settings().write_retry_seconds)
    # when it stamps an event whose write lands as late as its budget allows, just after a
    # sweep run with --settle 0 (the watermark moves to that sweep's now)
    stamped = NOW - timedelta(minutes=30)
    lands = stamped + budget + LAST_ATTEMPT
    forced = world.sweep(lands - timedelta(seconds=1), settle_seconds=0)
    assert forced.counts.read == 0
    world.put_items([producer.to_item(_event("late"), stamped)])
    # then the next (ordinary) sweep still starts before it and archives it
    report = world.sweep(lands + timedelta(minutes=15), settle_seconds=None)
    assert report.since <= stamped
    assert world.stored_rows() == {"late": 1}
    assert report.expiry is not None and report.expiry.beyond_skew == 0


def test_a_settle_0_sweep_records_the_look_back_it_owes_and_a_normal_one_adds_nothing(
        lake: EventLake) -> None:
    world = make_world(lake, clock_skew_seconds=300.0, archive_settle_seconds=60.0)
    world.sweep(NOW - hours(1), settle_seconds=None)
    mark = read_watermark(world.lake)
    assert mark is not None and mark.skew_seconds == 300
    world.sweep(NOW - hours(1) + timedelta(minutes=15), settle_seconds=0)
    mark = read_watermark(world.lake)
    assert mark is not None and mark.skew_seconds == 300 + 60


def test_a_late_write_of_a_warm_producer_after_the_settle_was_lowered_is_in_the_next_window(
        lake: EventLake) -> None:
    """The stack's ArchiveSettleSeconds lowered on a live table (CloudFormation edits the tag;
    `init` would refuse): a warm producer keeps the old, longer budget."""
    world = make_world(lake, clock_skew_seconds=300.0, archive_settle_seconds=60.0)
    world.sweep(NOW - hours(1), settle_seconds=None)
    warm = producer_of(world)
    budget = timedelta(seconds=warm.table_settings().write_retry_seconds)
    assert budget == timedelta(seconds=360) - LAST_ATTEMPT
    # when the settle recorded on the table is lowered to 30 s and sweeps adopt it
    record_on_table(world.clients, world.settings.with_(archive_settle_seconds=30.0))
    # then the next sweep still starts before the warm producer's late write
    _late_write_is_in_the_next_window(world, warm, budget, NOW - timedelta(minutes=30))


def _late_write_is_in_the_next_window(world: World, warm: HotStore, budget: timedelta,
                                      stamped: datetime) -> None:
    """A write of `warm` stamped `stamped` lands as late as its `budget` lets it, just after a
    sweep: the next sweep's window starts before it, and archives it."""
    lands = stamped + budget + LAST_ATTEMPT
    assert _sweep(world, lands - timedelta(seconds=1)).counts.read == 0
    world.put_items([warm.to_item(_event("late"), stamped)])
    report = _sweep(world, lands + timedelta(minutes=15))
    assert report.since <= stamped
    assert world.stored_rows() == {"late": 1}


def _sweep(world: World, now: datetime) -> SweepReport:
    """A sweep process that sets none of the table's settings (it adopts the recorded ones)."""
    own = Settings.from_env(env={}, table=world.settings.table,
                            lake_uri=world.settings.lake_uri,
                            ttl_safety_hours=world.settings.ttl_safety_hours)
    return sweep(world.lake, HotStore(own, world.clients), own, now=now)


def test_the_watermark_carries_the_largest_settle_forward_and_refuses_a_garbage_one(
        lake: EventLake) -> None:
    world = make_world(lake)
    first = advance_watermark(world.lake, NOW - hours(2), expected=None, run_id="a",
                              skew_seconds=300, settle_seconds=60)
    second = advance_watermark(world.lake, NOW - hours(1), expected=first, run_id="b",
                               skew_seconds=300, settle_seconds=30)
    read = read_watermark(world.lake)
    assert read is not None and (read.skew_seconds, read.settle_seconds) == (300, 60)
    assert second.settle_seconds == 60
    world.lake.swap_state(WATERMARK_KEY, json.dumps(
        {"at": "2024-05-10T10:00:00Z", "updated_at": "2024-05-10T10:00:00Z", "run_id": "c",
         "skew_seconds": 300, "settle_seconds": "soon"}).encode(), expected=read.version)
    with pytest.raises(StorageError, match=r"`watermark.json` of lake .* is not readable "
                                           r"\(could not convert string to float: 'soon'\)"):
        read_watermark(world.lake)


def test_a_late_write_of_a_warm_producer_after_the_skew_was_lowered_is_in_the_next_window(
        lake: EventLake) -> None:
    """The stack's ClockSkewSeconds lowered (CloudFormation edits the tag; `init` would refuse):
    the watermark keeps the largest look-back of the sweeps that moved it."""
    world = make_world(lake, clock_skew_seconds=900.0, archive_settle_seconds=60.0)
    assert _sweep(world, NOW - hours(1)).counts.read == 0
    warm = producer_of(world)
    budget = timedelta(seconds=warm.table_settings().write_retry_seconds)
    record_on_table(world.clients, world.settings.with_(clock_skew_seconds=300.0))
    _late_write_is_in_the_next_window(world, warm, budget, NOW - timedelta(minutes=40))
