"""The sweep on in-process moto: its window on ingestion time, exactly-once archiving, the
watermark, crashes at every step, catching up after an outage, late events (the backfill's own
tests: test_backfill.py)."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from archive_support import NOW, World, hours, make_world
from clock_support import Clock

from eventlake import EventLake
from eventlake.archive.backfill import backfill
from eventlake.archive.reconcile import reconcile
from eventlake.archive.writer import archive_items
from eventlake.errors import LakeNotFoundError, StorageError
from eventlake.events.model import parse_event
from eventlake.hot.results import Outcome
from eventlake.hot.store import HotStore
from eventlake.lake.watermark import (
    WATERMARK_KEY,
    WatermarkAheadError,
    WatermarkConflictError,
    advance_watermark,
    read_watermark,
)
from eventlake.local.stack import expire_ttl

# --- the window, exactly once ----------------------------------------------------------------

def test_a_sweep_archives_everything_in_its_window_exactly_once(world: World) -> None:
    # given events ingested over the last hours, none archived
    ids = [*world.ingest([f"a-{i}" for i in range(5)], NOW - hours(5)),
           *world.ingest([f"b-{i}" for i in range(5)], NOW - hours(1))]
    # when the first sweep runs
    report = world.sweep(NOW, settle_seconds=60)
    # then each is in the lake once, and the report says so
    assert world.stored_rows() == Counter(ids)
    assert (report.counts.read, report.counts.archived, report.counts.already) == (10, 10, 0)
    assert report.watermark_before is None
    assert report.since == NOW - timedelta(days=3 + 2)  # retention + TTL's lateness
    assert report.until == report.watermark_after == NOW - timedelta(seconds=60)
    assert report.ttl.unarchived == 0 and report.ttl.at_risk == 0
    assert {f.dt for f in report.counts.files} == {(NOW - hours(5)).date().isoformat()}


def test_the_settle_lag_leaves_the_newest_events_for_the_next_sweep(world: World) -> None:
    world.ingest(["old-1", "old-2"], NOW - timedelta(minutes=10))
    world.ingest(["new-1"], NOW - timedelta(seconds=30))
    report = world.sweep(NOW, settle_seconds=60)
    assert set(world.stored_rows()) == {"old-1", "old-2"}
    # the newest is still hot, counted by the guard as not archived yet (and far from expiry)
    assert report.ttl.unarchived == 1 and report.ttl.at_risk == 0
    # a minute later the next sweep picks it up
    later = world.sweep(NOW + timedelta(minutes=1), settle_seconds=60)
    # (re-reading the clock skew before the watermark: what is archived is counted `already`)
    assert later.watermark_before == report.watermark_after
    assert later.since == report.watermark_after - world.settings.clock_skew
    assert (later.counts.read, later.counts.archived, later.counts.already) == (3, 1, 2)
    assert world.stored_rows() == Counter(["old-1", "old-2", "new-1"])


def test_settle_zero_archives_everything_ingested_so_far(world: World) -> None:
    world.ingest(["just-now"], NOW - timedelta(microseconds=1))
    report = world.sweep(NOW, settle_seconds=0)
    assert world.stored_rows() == Counter(["just-now"])
    assert report.watermark_after == NOW and report.ttl.unarchived == 0


def test_the_default_settle_lag_comes_from_the_settings(lake: EventLake) -> None:
    world = make_world(lake, archive_settle_seconds=600)
    world.ingest(["in"], NOW - timedelta(minutes=11))
    world.ingest(["out"], NOW - timedelta(minutes=9))
    from eventlake.archive.sweep import sweep

    report = sweep(world.lake, world.hot, world.settings, now=NOW)
    assert report.until == NOW - timedelta(minutes=10)
    assert set(world.stored_rows()) == {"in"}


def test_a_second_sweep_writes_nothing(world: World) -> None:
    world.ingest([f"e-{i}" for i in range(6)], NOW - hours(2))
    world.sweep(NOW)
    files = world.lake.list_files()
    assert world.sweep(NOW + timedelta(minutes=1)).counts.read == 0
    # even over the same window again (the watermark lost: the worst case)
    _delete_watermark(world)
    again = world.sweep(NOW)
    assert (again.counts.read, again.counts.archived, again.counts.files) == (6, 0, [])
    assert again.counts.already == 6
    assert world.lake.list_files() == files


def test_the_watermark_advances_and_never_moves_backwards(world: World) -> None:
    world.ingest(["a"], NOW - hours(1))
    first = world.sweep(NOW)
    stored = read_watermark(world.lake)
    assert stored is not None and stored.at == NOW and stored.run_id == first.run_id
    # a sweep whose clock is hours behind is refused, and leaves the watermark alone
    world.ingest(["b"], NOW - hours(2))  # (ingested far "before" the watermark: not re-read)
    with pytest.raises(WatermarkAheadError):
        world.sweep(NOW - hours(3))
    assert read_watermark(world.lake) == stored
    # (a settle lag reaching before the watermark)
    lagging = world.sweep(NOW + hours(1), settle_seconds=2 * 3600)
    assert lagging.watermark_after == NOW and read_watermark(world.lake) == stored
    # a later sweep moves it on
    world.ingest(["c"], NOW + hours(1))
    later = world.sweep(NOW + hours(2))
    assert later.watermark_before == NOW and later.watermark_after == NOW + hours(2)
    assert read_watermark(world.lake).at == NOW + hours(2)  # type: ignore[union-attr]
    assert set(world.stored_rows()) == {"a", "c"}


def test_the_watermark_moves_only_by_compare_and_swap(world: World) -> None:
    first = advance_watermark(world.lake, NOW, expected=None, run_id="one")
    with pytest.raises(WatermarkConflictError, match="Another sweep ran"):
        advance_watermark(world.lake, NOW + hours(1), expected=None, run_id="two")
    second = advance_watermark(world.lake, NOW + hours(1), expected=first, run_id="three")
    with pytest.raises(WatermarkConflictError, match="run `three`"):
        advance_watermark(world.lake, NOW + hours(2), expected=first, run_id="four")
    assert advance_watermark(world.lake, NOW, expected=second, run_id="back") == second
    assert read_watermark(world.lake) == second


def test_an_unreadable_watermark_is_a_storage_error_that_says_what_to_do(world: World) -> None:
    world.lake.write_state(WATERMARK_KEY, b"not json", expected=None)
    with pytest.raises(StorageError, match="delete it"):
        read_watermark(world.lake)


# --- crashes -----------------------------------------------------------------------------------

def test_a_crash_after_the_files_but_before_the_watermark_loses_and_doubles_nothing(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = world.ingest([f"e-{i}" for i in range(8)], NOW - hours(2))
    ids += world.ingest(["late"], NOW - hours(1), timestamp=NOW - timedelta(days=4))

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise OSError("killed before the watermark moved")

    with monkeypatch.context() as killed:
        killed.setattr("eventlake.archive.sweep.advance_watermark", crash)
        with pytest.raises(OSError, match="killed") as raised:
            world.sweep(NOW)
    assert world.stored_rows() == Counter(ids)  # the files were written ...
    assert read_watermark(world.lake) is None  # ... the watermark did not move
    assert any("watermark stays" in note for note in raised.value.__notes__)
    # when it runs again (later: a new window name)
    world.ingest(["after"], NOW + timedelta(minutes=5))
    report = world.sweep(NOW + timedelta(minutes=10))
    # then nothing is lost and nothing doubled
    assert world.stored_rows() == Counter([*ids, "after"])
    assert (report.counts.archived, report.counts.already) == (1, 9)


def test_a_crash_after_the_watermark_moved_leaves_everything_before_it_in_the_lake(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = world.ingest([f"e-{i}" for i in range(4)], NOW - hours(2))

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise OSError("killed in the guard")

    with monkeypatch.context() as killed:
        killed.setattr("eventlake.archive.sweep.ttl_margin", crash)
        with pytest.raises(OSError, match="killed"):
            world.sweep(NOW)
    assert read_watermark(world.lake).at == NOW  # type: ignore[union-attr]
    assert world.stored_rows() == Counter(ids)
    again = world.sweep(NOW + timedelta(minutes=1))
    assert again.counts.read == 0 and world.stored_rows() == Counter(ids)


def test_a_crash_between_two_dates_is_repaired_by_the_next_sweep(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a window whose events fall on two dates, and a lake that fails the second write
    ids = world.ingest(["today-1", "today-2"], NOW - hours(1))
    ids += world.ingest(["yesterday"], NOW - hours(1), timestamp=NOW - timedelta(days=1))
    real = world.lake._write_sorted
    today = NOW.date().isoformat()

    def flaky(dt: str, *args: Any) -> Any:
        if dt == today:
            raise OSError("disk full")
        return real(dt, *args)

    with monkeypatch.context() as full:
        full.setattr(world.lake, "_write_sorted", flaky)
        with pytest.raises(OSError, match="disk full"):
            world.sweep(NOW)
    assert world.stored_rows() == Counter(["yesterday"]) and read_watermark(world.lake) is None
    world.sweep(NOW + timedelta(minutes=1))
    assert world.stored_rows() == Counter(ids)


# --- catching up ---------------------------------------------------------------------------

def test_one_sweep_catches_up_a_day_the_stream_archiver_was_down(lake: EventLake) -> None:
    world = make_world(lake)
    # given a sweep yesterday, then a day of events through the API with no archiver running
    world.sweep(NOW - timedelta(days=1))
    clock = Clock(NOW - timedelta(days=1))
    store = HotStore(world.settings, world.clients, clock=clock)
    ids = []
    for i in range(24):
        clock.at = NOW - timedelta(days=1) + hours(i) + timedelta(minutes=7)
        event = parse_event({"event_id": f"h-{i:02d}", "event_type": "page.viewed",
                             "event_payload": {"hour": i}}, now=clock.at)
        assert store.put(event).outcome is Outcome.CREATED
        ids.append(event.event_id)
    # when one sweep runs
    report = world.sweep(NOW + hours(1), settle_seconds=60)
    # then the whole day is archived, each once, under the dates of the events
    assert world.stored_rows() == Counter(ids)
    assert report.counts.archived == 24
    assert {f.dt for f in report.counts.files} == {"2024-05-09", "2024-05-10"}


def test_late_events_are_archived_under_their_own_dates(world: World) -> None:
    # given events stamped days ago but ingested now, after the last sweep
    world.sweep(NOW - hours(1))
    world.ingest(["late-1"], NOW - timedelta(minutes=30), timestamp=NOW - timedelta(days=9))
    world.ingest(["late-2"], NOW - timedelta(minutes=20), timestamp=NOW - timedelta(days=40))
    world.ingest(["now"], NOW - timedelta(minutes=10))
    # when the sweep runs (its window is on ingestion time)
    report = world.sweep(NOW)
    # then each is found and stored under the date of its timestamp
    by_dt = {f.dt for f in report.counts.files}
    assert by_dt == {"2024-05-01", "2024-03-31", "2024-05-10"}
    assert world.stored_rows() == Counter(["late-1", "late-2", "now"])


def test_events_the_stream_already_archived_are_not_written_again(world: World) -> None:
    items = [world.item(f"s-{i}", NOW - hours(1)) for i in range(6)]
    world.put_items(items)
    # the stream path wrote half of them
    archive_items(world.lake, items[:3], name="stream-like")
    report = world.sweep(NOW)
    assert (report.counts.archived, report.counts.already) == (3, 3)
    assert world.stored_rows() == Counter(f"s-{i}" for i in range(6))


# --- archive_items ---------------------------------------------------------------------------

def test_archive_items_quarantines_what_is_not_an_event_with_the_reason(world: World) -> None:
    good = world.item("good", NOW)
    no_type = {"event_id": {"S": "no-type"}, "timestamp": {"S": "2024-05-10T00:00:00Z"}}
    feb_30 = {**world.item("feb-30", NOW), "timestamp": {"S": "2024-02-30T00:00:00.000000Z"}}
    counts = archive_items(world.lake, [no_type, good, feb_30], name="mixed")
    assert (counts.read, counts.archived, counts.quarantined) == (3, 1, 2)
    entries = world.lake.read_quarantine()
    assert [e.record["event_id"]["S"] for e in entries] == ["no-type", "feb-30"]
    assert [e.rule for e in entries] == ["record.not_an_event", "record.bad_timestamp"]
    assert all(e.source == "sweep" for e in entries)
    # a second run rewrites the same quarantine file instead of adding one
    archive_items(world.lake, [no_type, good, feb_30], name="mixed")
    assert len(world.lake.list_quarantine()) == 1


def test_archive_items_works_in_bounded_chunks_with_deterministic_names(world: World) -> None:
    items = [world.item(f"c-{i}", NOW) for i in range(5)]
    counts = archive_items(world.lake, items, name="chunked", chunk_rows=2)
    names = sorted(f.path.rsplit("/", 1)[1] for f in counts.files)
    assert [n[:len("chunked-0000")] for n in names] == ["chunked-0000", "chunked-0001",
                                                        "chunked-0002"]
    assert [f.rows for f in sorted(counts.files, key=lambda f: f.path)] == [2, 2, 1]
    # pages in, the same as items in: nothing new to write
    again = archive_items(world.lake, [items[:3], items[3:]], name="chunked", chunk_rows=2)
    assert (again.archived, again.already, again.files) == (0, 5, [])


def test_archive_items_never_overwrites_a_file_with_fewer_rows(world: World) -> None:
    # given a chunk archived under a name, then the same name with one more event
    a, b, c = (world.item(i, NOW) for i in "abc")
    archive_items(world.lake, [a, b], name="same")
    counts = archive_items(world.lake, [a, b, c], name="same")
    # then the second run writes only the new event, to a file of its own
    assert counts.archived == 1 and len(world.lake.list_files()) == 2
    assert world.stored_rows() == Counter("abc")


def test_archive_items_writes_an_event_repeated_in_its_input_once(world: World) -> None:
    item = world.item("twice", NOW)
    counts = archive_items(world.lake, [item, item], name="repeat")
    assert (counts.archived, counts.already) == (1, 1)
    assert world.stored_rows() == Counter(["twice"])


def test_a_sweep_report_is_json_friendly(world: World) -> None:
    world.ingest(["a"], NOW - hours(1))
    report = world.sweep(NOW)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["counts"]["archived"] == 1 and data["watermark_after"].startswith("2024-05-10")
    assert data["ttl"]["unarchived"] == 0 and data["run_id"] == report.run_id


def _delete_watermark(world: World) -> None:
    os.remove(f"{world.lake.root}/_eventlake/{WATERMARK_KEY}")


# --- a lake that was never made ----------------------------------------------------------------

def test_a_sweep_into_a_lake_never_initialised_refuses_and_creates_nothing(
        world: World, tmp_path: Path) -> None:
    # given hot events, and a lake URI that points where no lake was made (a typo)
    world.ingest([f"o-{i}" for i in range(3)], NOW - hours(2))
    typo = tmp_path / "laek"
    elsewhere = make_world(EventLake(world.settings.with_(lake_uri=str(typo)),
                                     clients=world.clients))

    # when the sweep runs, then it refuses: archiving there would move a watermark nobody reads
    with pytest.raises(LakeNotFoundError, match="laek"):
        elsewhere.sweep(NOW)
    with pytest.raises(LakeNotFoundError, match="laek"):
        backfill(elsewhere.lake, elsewhere.hot, elsewhere.settings)
    assert not typo.exists()


# --- an event_id reused after TTL ------------------------------------------------------------

PLACED = NOW - timedelta(days=4)
ORDER_42 = {"event_id": "ord-42", "event_type": "order.placed", "timestamp": PLACED.isoformat(),
            "source": "shop.checkout", "event_payload": {"order_id": "ORD-42", "total": 10}}


def archived_then_expired(world: World) -> HotStore:
    """ORDER_42 stored, swept into the lake, then deleted by TTL; a store whose clock is now
    an hour before NOW, for the next put."""
    clock = Clock(PLACED + timedelta(minutes=1))
    store = HotStore(world.settings, world.clients, clock=clock)
    assert store.put(parse_event(ORDER_42, now=clock.at)).outcome is Outcome.CREATED
    assert world.sweep(PLACED + hours(1)).counts.archived == 1
    assert expire_ttl(world.clients, world.settings.table, now=PLACED + timedelta(days=3.1)) \
        == ["ord-42"]
    clock.at = NOW - hours(1)
    return store


def payloads(world: World, event_id: str) -> list[dict[str, Any]]:
    rows = world.lake.read(columns=["event_id", "event_payload"]).to_pylist()
    return [json.loads(r["event_payload"]) for r in rows if r["event_id"] == event_id]


def test_an_event_id_reused_after_ttl_with_new_content_is_quarantined_not_shadowed(
        world: World) -> None:
    # given ORDER_42 archived and then deleted from the table by TTL
    store = archived_then_expired(world)
    # when a producer sends the same event_id with other content
    reused = parse_event({**ORDER_42, "event_payload": {"order_id": "ORD-42", "total": 99}},
                         now=NOW)
    original_hash = parse_event(ORDER_42, now=NOW).content_hash
    # then the hot tier, which cannot see the lake, accepts it
    assert store.put(reused).outcome is Outcome.CREATED
    # and while it is hot, `events` shows the archived (first) copy, once
    lake = EventLake(world.settings, clients=world.clients)
    # a reader whose clock is the test's: on this machine's clock, the hot window would run
    # from 2024 to today, a Query per day and shard, longer every day the suite is run
    lake.hot = HotStore(world.settings, world.clients, clock=Clock(NOW))
    shown = lake.sql("select event_payload from events where event_id = 'ord-42'").to_pylist()
    assert [json.loads(r["event_payload"]) for r in shown] == [{"order_id": "ORD-42", "total": 10}]
    # when the sweep runs
    report = world.sweep(NOW)
    # then it quarantines the new item under a rule, loudly, instead of counting it archived
    counts = report.counts
    assert (counts.read, counts.archived, counts.already) == (1, 0, 0)
    assert counts.conflicts == 1
    assert counts.conflict_ids == ["ord-42"]
    assert report.to_dict()["counts"]["conflicts"] == 1
    [entry] = world.lake.read_quarantine()
    assert entry.rule == "event.id_reused" and entry.source == "sweep"
    assert entry.record["event_id"] == {"S": "ord-42"}
    assert entry.record["content_hash"] == {"S": reused.content_hash}
    assert f"`{original_hash[:12]}`" in entry.reason and f"`{reused.content_hash[:12]}`" \
        in entry.reason
    assert "events are immutable: send it under a new event_id" in entry.reason
    # and the lake and `events` still hold exactly one row for the id, the original
    assert payloads(world, "ord-42") == [{"order_id": "ORD-42", "total": 10}]
    shown = lake.sql("select event_payload from events where event_id = 'ord-42'").to_pylist()
    assert [json.loads(r["event_payload"]) for r in shown] == [{"order_id": "ORD-42", "total": 10}]
    # and a sweep over the same window again (the watermark lost) changes nothing more
    _delete_watermark(world)
    again = world.sweep(NOW)
    assert (again.counts.conflicts, again.counts.archived) == (1, 0)
    assert len(world.lake.list_quarantine()) == 1
    assert payloads(world, "ord-42") == [{"order_id": "ORD-42", "total": 10}]


def test_a_reused_event_id_is_logged_at_error_naming_it(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    store = archived_then_expired(world)
    store.put(parse_event({**ORDER_42, "event_payload": {"total": 99}}, now=NOW))
    with caplog.at_level(logging.WARNING, logger="eventlake.archive.writer"):
        world.sweep(NOW)
    [record] = [r for r in caplog.records if r.name == "eventlake.archive.writer"]
    assert record.levelno == logging.ERROR
    assert "`ord-42`" in record.getMessage() and "event.id_reused" in record.getMessage()


def test_an_identical_event_re_sent_after_ttl_is_already_archived(world: World) -> None:
    # given ORDER_42 archived and deleted by TTL
    store = archived_then_expired(world)
    # when the producer sends it again, unchanged
    assert store.put(parse_event(ORDER_42, now=NOW)).outcome is Outcome.CREATED
    report = world.sweep(NOW)
    # then the sweep counts it as already archived, and nothing is quarantined
    assert (report.counts.read, report.counts.already, report.counts.conflicts) == (1, 1, 0)
    assert world.lake.list_quarantine() == []
    assert payloads(world, "ord-42") == [{"order_id": "ORD-42", "total": 10}]


def test_backfill_quarantines_a_reused_event_id_too(world: World) -> None:
    store = archived_then_expired(world)
    store.put(parse_event({**ORDER_42, "event_payload": {"total": 99}}, now=NOW))
    report = backfill(world.lake, world.hot, world.settings, segments=2)
    assert (report.counts.read, report.counts.archived, report.counts.conflicts) == (1, 0, 1)
    assert [e.rule for e in world.lake.read_quarantine()] == ["event.id_reused"]
    assert [e.source for e in world.lake.read_quarantine()] == ["backfill"]
    assert report.to_dict()["counts"]["conflicts"] == 1
    assert payloads(world, "ord-42") == [{"order_id": "ORD-42", "total": 10}]


def test_reconcile_reports_a_reused_event_id_as_different_and_repairs_nothing(
        world: World) -> None:
    store = archived_then_expired(world)
    store.put(parse_event({**ORDER_42, "event_payload": {"total": 99}}, now=NOW))
    world.sweep(NOW)
    report = reconcile(world.lake, world.hot, world.settings, start=(NOW - hours(1)).date(),
                       end=NOW.date(), repair=True, now=NOW)
    assert (report.different, report.missing, report.repaired) == (1, 0, 0)
    assert report.different_ids == ["ord-42"]
    assert payloads(world, "ord-42") == [{"order_id": "ORD-42", "total": 10}]


def test_a_guard_failing_after_the_watermark_moved_says_what_the_sweep_did(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given events a sweep archives, and a TTL guard whose read fails after the watermark moved
    ids = world.ingest([f"g-{i}" for i in range(5)], NOW - hours(2))
    from eventlake.errors import TransientError

    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise TransientError("Query throttled (ProvisionedThroughputExceededException)")

    monkeypatch.setattr("eventlake.archive.sweep.ttl_margin", throttled)

    # when the sweep runs
    with pytest.raises(TransientError, match="throttled") as raised:
        world.sweep(NOW)

    # then the work done is kept and the error says so: archived, watermark moved, guard unchecked
    assert world.stored_rows() == Counter(ids)
    mark = read_watermark(world.lake)
    assert mark is not None and mark.at > NOW - hours(2)
    notes = " ".join(getattr(raised.value, "__notes__", []))
    assert "archived 5 event(s)" in notes and "watermark moved to" in notes, notes
    assert "TTL margin was not checked" in notes, notes
