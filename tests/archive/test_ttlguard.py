"""The TTL guard, and TTL racing the sweep: what is promised (every event the sweep read is in
the lake; an unarchived event still in the table is reported, by count, id and hours left) and
what cannot be (an event TTL deleted before anything archived it is gone from every read)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from archive_support import NOW, World, hours, make_world

from eventlake import EventLake
from eventlake.archive.ttlguard import TtlGuardError, ttl_margin
from eventlake.archive.writer import archive_items
from eventlake.hot.store import shard_of
from eventlake.lake.watermark import read_watermark
from eventlake.local.stack import expire_ttl


@pytest.fixture
def world(lake: EventLake) -> World:
    """One day of retention, a 6-hour safety margin."""
    return make_world(lake, retention_days=1.0, ttl_safety_hours=6.0)


# --- the guard -------------------------------------------------------------------------------

def test_the_guard_fails_when_unarchived_events_are_too_close_to_expiry(lake: EventLake) -> None:
    # given 1 day of retention, a 23-hour safety margin, and events ingested 2 hours ago that a
    # sweep with a 3-hour settle lag leaves beyond the watermark
    world = make_world(lake, retention_days=1.0, ttl_safety_hours=23.0)
    world.ingest(["r-1", "r-2", "r-3"], NOW - hours(2))
    # when the sweep runs
    with pytest.raises(TtlGuardError) as raised:
        world.sweep(NOW, settle_seconds=3 * 3600)
    # then it fails saying how many events, how many hours remain, and what to do
    error = raised.value
    assert (error.at_risk, round(error.hours_left, 3)) == (3, 22.0)
    message = str(error)
    assert "3 unarchived event(s) are within 23 h of their TTL expiry" in message
    assert "the nearest expires in 22.0 h" in message
    assert "`r-1`" in message and "eventlake archive" in message
    # and the sweep's own work is done and reported
    assert error.report is not None
    assert error.report.watermark_after == NOW - hours(3)
    assert read_watermark(world.lake).at == NOW - hours(3)  # type: ignore[union-attr]
    assert sorted(error.event_ids) == ["r-1", "r-2", "r-3"]


def test_the_guard_passes_when_the_margin_is_large_enough(lake: EventLake) -> None:
    world = make_world(lake, retention_days=1.0, ttl_safety_hours=12.0)
    world.ingest(["r-1", "r-2", "r-3"], NOW - hours(2))
    report = world.sweep(NOW, settle_seconds=3 * 3600)
    assert (report.ttl.unarchived, report.ttl.at_risk) == (3, 0)
    assert report.ttl.hours_left == pytest.approx(22.0)


def test_the_guard_passes_once_the_events_are_archived(lake: EventLake) -> None:
    world = make_world(lake, retention_days=1.0, ttl_safety_hours=23.0)
    world.ingest(["r-1", "r-2", "r-3"], NOW - hours(2))
    report = world.sweep(NOW, settle_seconds=0)
    assert (report.ttl.unarchived, report.ttl.at_risk, report.ttl.hours_left) == (0, 0, None)


def test_events_the_stream_archived_are_not_unarchived(world: World) -> None:
    world.sweep(NOW - hours(2))
    items = [world.item(f"s-{i}", NOW - hours(1)) for i in range(3)]
    world.put_items(items)
    from eventlake.archive.writer import archive_items

    archive_items(world.lake, items[:2], name="stream-like")
    margin = ttl_margin(world.lake, world.hot, world.settings, now=NOW)
    assert (margin.unarchived, margin.at_risk, margin.checked) == (1, 0, 3)


# --- TTL racing the sweep --------------------------------------------------------------------

def test_events_swept_before_ttl_deletes_them_stay_in_the_lake(world: World) -> None:
    # given events archived by a sweep, then more ingested
    swept = world.ingest([f"a-{i}" for i in range(3)], NOW - hours(20))
    world.sweep(NOW)
    later = world.ingest(["b-1", "b-2"], NOW + hours(1))
    # when TTL deletes the first ones (they expire at NOW + 4 h) before the next sweep
    assert sorted(expire_ttl(world.clients, world.settings.table, now=NOW + hours(5))) == swept
    report = world.sweep(NOW + hours(5))
    # then every event is in the lake once: TTL never deletes from the lake
    assert world.stored_rows() == Counter([*swept, *later])
    assert report.counts.read == 2 and report.ttl.at_risk == 0


def ttl_after_first_partition(world: World, monkeypatch: pytest.MonkeyPatch,
                              read: list[str], deleted: list[str]) -> None:
    """TTL deletes every expired item right after the sweep's first index partition read."""
    real = world.hot._query_partition

    def query_then_ttl(*args: Any) -> Any:
        items = real(*args)
        if items and not read:
            read.extend(item["event_id"]["S"] for item in items)
            deleted.extend(expire_ttl(world.clients, world.settings.table, now=NOW))
        return items

    monkeypatch.setattr(world.hot, "_query_partition", query_then_ttl)


def test_events_ttl_deletes_between_the_index_read_and_the_fetch_are_reported_lost(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given expired events spread over both index shards, read one partition at a time
    world = make_world(lake, retention_days=1.0, put_concurrency=1)
    ids = world.ingest([f"e-{i}" for i in range(8)], NOW - hours(25))
    assert {shard_of(i, 2) for i in ids} == {0, 1}
    read: list[str] = []
    deleted: list[str] = []
    ttl_after_first_partition(world, monkeypatch, read, deleted)
    # when TTL deletes them after the index listed some, before their items were fetched
    with pytest.raises(TtlGuardError) as caught:
        world.sweep(NOW)
    # then the ones it listed are reported lost to DynamoDB, by name; nothing half-written
    assert sorted(deleted) == sorted(ids) and 0 < len(read) < len(ids)
    margin = caught.value.margin
    assert margin.vanished == len(read) == margin.at_risk
    assert sorted(margin.at_risk_ids) == sorted(read)
    assert (f"{len(read)} of them were deleted from the table (TTL) after the index listed "
            "them") in str(caught.value)
    assert world.stored_rows() == Counter()


def test_an_event_deleted_before_the_fetch_but_archived_by_the_stream_is_not_reported(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an expired event that the stream archives while TTL deletes it under the sweep
    world = make_world(lake, retention_days=1.0, put_concurrency=1)
    [event_id] = world.ingest(["e-0"], NOW - hours(25))
    [item] = world.hot.read_ingested(NOW - hours(26), NOW)
    real = world.hot.fetch

    def stream_then_fetch(event_ids: Any) -> Any:
        archive_items(world.lake, [item], name="stream-000-001")
        expire_ttl(world.clients, world.settings.table, now=NOW)
        return real(event_ids)

    monkeypatch.setattr(world.hot, "fetch", stream_then_fetch)
    # when the sweep runs, then it finds the item gone but the lake holding it: no alarm
    report = world.sweep(NOW)
    assert report.ttl.at_risk == 0 and report.ttl.vanished == 0
    assert world.stored_rows() == Counter([event_id])


def test_an_event_past_expiry_but_still_in_the_table_is_at_risk_until_swept(
        world: World) -> None:
    # given an event that expired an hour ago (DynamoDB deletes lazily: it is still there)
    world.ingest(["overdue"], NOW - hours(25))
    # the guard reports it at risk, with negative hours left
    margin = ttl_margin(world.lake, world.hot, world.settings, now=NOW)
    assert (margin.unarchived, margin.at_risk, margin.at_risk_ids) == (1, 1, ["overdue"])
    assert margin.hours_left == pytest.approx(-1.0)
    # the sweep still reads it, archives it and counts the rescue
    report = world.sweep(NOW)
    assert world.stored_rows() == Counter(["overdue"])
    assert report.rescued == 1 and report.ttl.at_risk == 0


def test_while_the_sweep_fails_the_guard_names_the_events_before_ttl_deletes_them(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given events 4 hours from expiry, and a lake that refuses writes
    world.ingest(["urgent-1", "urgent-2"], NOW - hours(20))
    world.ingest(["fresh"], NOW - hours(1))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("access denied")

    monkeypatch.setattr(world.lake, "write", refuse)
    # when the sweep runs, it fails loudly: the guard, caused by the write error
    with pytest.raises(TtlGuardError) as raised:
        world.sweep(NOW)
    error = raised.value
    assert isinstance(error.__cause__, OSError)
    assert (error.at_risk, sorted(error.event_ids)) == (2, ["urgent-1", "urgent-2"])
    assert error.hours_left == pytest.approx(4.0)
    assert "The sweep failed (OSError: access denied)" in str(error)
    assert error.margin.unarchived == 3
    assert error.report is not None and "access denied" in (error.report.error or "")
    assert read_watermark(world.lake) is None


def test_a_failed_sweep_with_nothing_near_expiry_raises_its_own_error(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.ingest(["fresh"], NOW - hours(1))
    monkeypatch.setattr(world.lake, "write", lambda *a, **k: (_ for _ in ()).throw(
        OSError("disk full")))
    with pytest.raises(OSError, match="disk full") as raised:
        world.sweep(NOW)
    assert any("none is within 6 h" in note for note in raised.value.__notes__)


def test_an_event_ttl_deleted_before_anything_archived_it_is_beyond_any_guard(
        world: World) -> None:
    # given an event whose expiry passed 6 hours ago, with no sweep and no stream running
    world.ingest(["lost"], NOW - hours(30))
    # while it is still in the table the guard reports it ...
    assert ttl_margin(world.lake, world.hot, world.settings, now=NOW).at_risk_ids == ["lost"]
    # ... but once TTL deletes it, no read of the table can: this is what the guard is for
    assert expire_ttl(world.clients, world.settings.table, now=NOW) == ["lost"]
    report = world.sweep(NOW)
    assert report.counts.read == 0 and report.ttl.at_risk == 0
    assert world.stored_rows() == Counter()


def test_the_guards_message_hides_the_endpoint_password_of_the_failure() -> None:
    from eventlake.archive.report import TtlMargin
    from eventlake.archive.ttlguard import TtlGuardError

    margin = TtlMargin(1, 1, None, -1.0, at_risk_ids=["o-1"], safety_hours=24)
    failure = ConnectionError('Could not connect to "http://admin:hunter2@db.internal:8000/"')

    message = str(TtlGuardError(margin, failure=failure))

    assert "hunter2" not in message and "http://***@db.internal:8000/" in message
