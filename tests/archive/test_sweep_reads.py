"""What the sweep reads from DynamoDB: the window read runs on to `now` and the TTL guard judges
its entries against the lake after the writes instead of querying its range again (sweep.py's
`_Tail`, ttlguard.reuse_window_read). Each index entry is queried once per sweep, and the
guard still sees what it protects: events left to the settle range, items deleted between the
read and the guard, and (with a retention close to the safety margin) late stragglers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from archive_support import NOW, World, hours, make_world
from stream_support import removal

from eventlake import EventLake
from eventlake.archive.stream import archive_event
from eventlake.archive.ttlguard import TtlGuardError, reuse_window_read
from eventlake.hot.store import Item
from eventlake.lake.watermark import EXPIRY_CHECK_KEY, read_watermark


def count_queried(world: World, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """event_id -> how many times an index Query returned its entry."""
    seen: Counter[str] = Counter()
    real = world.hot._query_partition

    def counting(*args: Any) -> list[Item]:
        items = real(*args)
        seen.update(item["event_id"]["S"] for item in items)
        return items

    monkeypatch.setattr(world.hot, "_query_partition", counting)
    return seen


def after_window_read(world: World, monkeypatch: pytest.MonkeyPatch, then: Any) -> None:
    """Call `then()` once the sweep's window read (the first index read reaching NOW: the
    expiry check reads its band before) is exhausted."""
    real = world.hot.read_index_pages
    done: list[bool] = []

    def read(since: datetime, until: datetime) -> Iterator[list[Item]]:
        yield from real(since, until)
        if until > NOW and not done:
            done.append(True)
            then()

    monkeypatch.setattr(world.hot, "read_index_pages", read)


def delete_before_fetch(world: World, monkeypatch: pytest.MonkeyPatch, event_id: str) -> None:
    """Delete item `event_id` from the table (as TTL would) just before the sweep fetches."""
    real = world.hot.fetch

    def delete_then_fetch(event_ids: Any) -> Any:
        world.clients.dynamodb.delete_item(TableName=world.settings.table,
                                           Key={"event_id": {"S": event_id}})
        return real(event_ids)

    monkeypatch.setattr(world.hot, "fetch", delete_then_fetch)


@pytest.fixture
def world(lake: EventLake) -> World:
    """Three days of retention, a 6-hour margin; swept once already, an hour ago."""
    world = make_world(lake)
    world.sweep(NOW - hours(1))
    return world


def test_each_index_entry_is_queried_once_per_sweep(world: World,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # given events in the window, some within the clock skew of its end (the guard's range)
    ids = world.ingest([f"w-{i}" for i in range(6)], NOW - timedelta(minutes=40))
    ids += world.ingest([f"t-{i}" for i in range(6)], NOW - timedelta(minutes=3))
    queried = count_queried(world, monkeypatch)
    # when the sweep runs
    report = world.sweep(NOW)
    # then it archived them all, the guard checked the tail, and no entry was read twice
    assert world.stored_rows() == Counter(ids)
    assert queried == Counter(ids)
    assert (report.ttl.checked, report.ttl.unarchived, report.ttl.at_risk) == (6, 0, 0)


def test_events_left_to_the_settle_range_are_counted_unarchived(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given events ingested within the settle lag, which the sweep leaves to the next run
    archived = world.ingest(["old-1"], NOW - timedelta(minutes=30))
    settling = world.ingest(["new-1", "new-2"], NOW - timedelta(minutes=2))
    queried = count_queried(world, monkeypatch)
    # when the sweep runs with a 5-minute settle
    report = world.sweep(NOW, settle_seconds=300)
    # then the guard counts them as not archived yet, from the one read
    assert world.stored_rows() == Counter(archived)
    assert (report.ttl.unarchived, report.ttl.at_risk) == (2, 0)
    assert queried == Counter([*archived, *settling])
    # and the next sweep archives them
    world.sweep(NOW + hours(1))
    assert world.stored_rows() == Counter([*archived, *settling])


def test_an_item_deleted_between_the_window_read_and_the_guard_is_reported_lost(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an event in the settle range, deleted from the table right after the window read
    world.ingest(["doomed"], NOW - timedelta(minutes=2))
    ddb, table = world.clients.dynamodb, world.settings.table
    after_window_read(world, monkeypatch, lambda: ddb.delete_item(
        TableName=table, Key={"event_id": {"S": "doomed"}}))
    # when the sweep runs, then the guard names it: no copy is left anywhere
    with pytest.raises(TtlGuardError) as raised:
        world.sweep(NOW, settle_seconds=300)
    margin = raised.value.margin
    assert (margin.vanished, margin.at_risk, margin.at_risk_ids) == (1, 1, ["doomed"])
    assert "were deleted from the table" in str(raised.value)


def test_an_entry_that_vanished_before_its_fetch_is_counted_once(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an event in the guard's range whose item is deleted before the sweep fetches it
    world.ingest(["gone"], NOW - timedelta(minutes=3))
    delete_before_fetch(world, monkeypatch, "gone")
    # when the sweep runs, then it is reported lost once (the window read and the guard)
    with pytest.raises(TtlGuardError) as raised:
        world.sweep(NOW)
    margin = raised.value.margin
    assert (margin.vanished, margin.at_risk, margin.unarchived) == (1, 1, 1)


def test_an_item_ttl_deleted_during_the_expiry_check_is_left_to_its_remove(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an event the lake lacks (stamped far behind every sweep window) that expires within
    # the margin, and TTL deleting it between the expiry check's index read and its fetch
    # (the fixture swept an hour ago: the band this sweep checks is the last hour of its margin)
    ingested = NOW - timedelta(seconds=world.settings.retention_seconds) + hours(5.5)
    doomed = world.item("doomed", ingested)
    world.put_items([doomed])
    delete_before_fetch(world, monkeypatch, "doomed")
    # when the sweep runs (its guard names the loss)
    with pytest.raises(TtlGuardError):
        world.sweep(NOW)
    # then the expiry checkpoint stops before it, so its REMOVE is not taken as vouched for
    checkpoint = read_watermark(world.lake, EXPIRY_CHECK_KEY)
    assert checkpoint is not None and checkpoint.at <= ingested
    # and the stream archives it from the REMOVE's old image
    report = archive_event(world.lake, {"Records": [removal(doomed, 900)]})
    assert (report.removed_checked, report.removed_archived) == (1, 1)
    assert world.stored_rows() == Counter(["doomed"])


def test_a_straggler_after_the_window_read_is_archived_by_the_next_sweep(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an item that shows up in the index (ingested 2 minutes ago) after the window read
    late = world.item("late", NOW - timedelta(minutes=2))
    with monkeypatch.context() as straggling:
        after_window_read(world, straggling, lambda: world.put_items([late]))
        assert reuse_window_read(world.settings, NOW, NOW - world.settings.clock_skew)
        # when the sweep runs, its guard judges what the window read listed: no late item
        # there, and none could be near expiry (ingested after the guard's start: 3 days to go)
        report = world.sweep(NOW)
        assert (report.ttl.unarchived, report.ttl.at_risk) == (0, 0)
    # then the next sweep's window, which starts a clock skew before the watermark, has it
    world.sweep(NOW + timedelta(minutes=15))
    assert world.stored_rows() == Counter(["late"])


def test_with_a_retention_close_to_the_margin_the_guard_queries_again(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a retention of 1 day and a 23.9-hour margin: an event ingested just before `now`
    # could be near expiry, so the guard must see what appeared after the window read
    world = make_world(lake, retention_days=1.0, ttl_safety_hours=23.9)
    world.sweep(NOW - hours(1))
    assert not reuse_window_read(world.settings, NOW, NOW - world.settings.clock_skew)
    late = world.item("late", NOW - timedelta(minutes=2))
    after_window_read(world, monkeypatch, lambda: world.put_items([late]))
    # when the sweep runs, then its guard's own read counts the straggler
    report = world.sweep(NOW)
    assert (report.ttl.unarchived, report.ttl.at_risk) == (1, 0)


def test_reuse_window_read_needs_every_item_in_range_to_expire_after_the_margin(
        lake: EventLake) -> None:
    settings = make_world(lake, retention_days=1.0, ttl_safety_hours=6.0).settings
    # an item ingested at `since` expires 24 h later: after now + 6 h unless since is older
    assert reuse_window_read(settings, NOW, NOW - hours(17))
    assert not reuse_window_read(settings, NOW, NOW - hours(18))
