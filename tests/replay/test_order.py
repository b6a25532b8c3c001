"""Replay order across the tiers: (timestamp, event_id), each event once, late events in their
place, an event both hot and archived sent once, the `seed` shape."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from archive_support import NOW, World, hours

from eventlake import EventLake
from eventlake.archive.writer import archive_items
from eventlake.replay.select import Selection


@pytest.fixture
def el(world: World) -> EventLake:
    return EventLake(world.settings, clients=world.clients)


def replayed(el: EventLake, selection: Selection, **kwargs: Any) -> list[dict[str, Any]]:
    from eventlake.replay.run import replay

    got: list[dict[str, Any]] = []
    replay(el, selection, got.extend, now=NOW, **kwargs)
    return got


def test_events_of_both_tiers_come_in_total_order_each_once(world: World, el: EventLake
                                                             ) -> None:
    # given: archived events (cold), recent ones (hot), one both hot and archived, and a
    # late event (hot, ingested now) of a day archived long ago
    stamp = NOW - hours(6)  # "b" and "a" share a timestamp: event_id breaks the tie
    world.put_items([world.item(i, NOW - hours(5), timestamp=stamp) for i in ("b", "a")])
    world.put_items([world.item("c", NOW - hours(5), timestamp=stamp + timedelta(seconds=1))])
    world.sweep(NOW - hours(1))
    recent = [world.item(i, NOW - hours(0.5)) for i in ("e", "d")]
    world.put_items(recent)
    archive_items(world.lake, recent[:1], name="stream-000-001")  # "e": hot and cold
    late = world.item("late", NOW - hours(0.4), timestamp=NOW - timedelta(days=2, hours=3))
    old = world.item("old", NOW - hours(0.4), timestamp=NOW - timedelta(days=2, hours=4))
    world.put_items([late])
    archive_items(world.lake, [old], name="stream-000-002")

    # when
    events = replayed(el, Selection(NOW - timedelta(days=3), NOW + hours(1)), batch_size=2)

    # then
    assert [e["event_id"] for e in events] == ["old", "late", "a", "b", "c", "d", "e"]
    keys = [(e["timestamp"], e["event_id"]) for e in events]
    assert keys == sorted(keys)


def test_cold_only_reads_the_lake_alone(world: World, el: EventLake) -> None:
    world.ingest(["a"], NOW - hours(5))
    world.sweep(NOW - hours(1))
    world.ingest(["hot-only"], NOW - hours(0.5))

    selection = Selection(NOW - timedelta(days=1), NOW + hours(1), cold_only=True)

    assert [e["event_id"] for e in replayed(el, selection)] == ["a"]


def test_the_seed_shape_keeps_payload_numbers_exact(world: World, el: EventLake) -> None:
    big = "123456789012345678901234567890.000000000000000000001"
    item = world.item("n", NOW - hours(1), subject="user/1", source="shop",
                      event_payload=json.loads(f'{{"amount": {big}}}', parse_float=Decimal))
    world.put_items([item])

    [event] = replayed(el, Selection(NOW - timedelta(days=1), NOW))

    assert event == {"event_id": "n", "event_type": "order.placed",
                     "timestamp": (NOW - hours(1) - timedelta(seconds=1)).strftime(
                         "%Y-%m-%dT%H:%M:%S.%fZ"),
                     "event_payload": {"amount": Decimal(big)}, "source": "shop",
                     "subject": "user/1"}
