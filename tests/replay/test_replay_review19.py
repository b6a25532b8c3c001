"""Replay (and export) when compaction deletes listed files under the read: ties on the
timestamp, events moving from hot to cold, late events, the checkpoint after the fresh
listing, cold-only selections and an S3 lake."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from archive_support import NOW, World, hours

from eventlake import EventLake
from eventlake.export import run as export_run
from eventlake.local.stack import expire_ttl
from eventlake.query import views
from eventlake.replay import read
from eventlake.replay import run as replay_run
from eventlake.replay.run import replay
from eventlake.replay.select import Selection

TIE = NOW - hours(2)
"""The one timestamp of every event of the second day."""


def _two_days(world: World) -> EventLake:
    """Day 1: two archived files. Day 2: ten events at one timestamp, six archived over two
    files, four still hot."""
    el = EventLake(world.settings, clients=world.clients)
    day1 = NOW - timedelta(days=1)
    for f in range(2):
        world.ingest([f"a{f}{i}" for i in range(2)], day1 + hours(f),
                     timestamp=day1 - hours(2 - f))
        world.sweep(day1 + hours(f + 0.5))
    for f in range(2):
        world.ingest([f"t{f}{i}" for i in range(3)], TIE + hours(0.1 + 0.2 * f), timestamp=TIE)
        world.sweep(TIE + hours(0.2 + 0.2 * f))
    world.ingest([f"t9{i}" for i in range(4)], NOW - hours(0.25), timestamp=TIE)
    return el


def _keys(got: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["timestamp"], e["event_id"]) for e in got]


def test_ties_across_a_fresh_listing_hot_moving_cold_and_late_events(
        world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # given a day of ties, partly hot, read one day per query, batches of 3 (a boundary
    # inside the tie)
    el = _two_days(world)
    expected = sorted(world.hot_ids())
    monkeypatch.setattr(read, "WINDOW_BYTES", 1)
    reopened = _count_reopens(monkeypatch)
    got: list[dict[str, Any]] = []
    again: list[str] = []
    resuming = False

    def target(events: list[dict[str, Any]]) -> None:
        if resuming:
            again.extend(e["event_id"] for e in events)
            return
        if not got:  # after day 1's first batch: archive, compact, expire, and late events
            world.sweep(NOW + hours(1))
            assert el.compact(min_files=2).partitions
            expire_ttl(world.clients, world.settings.table, now=NOW + timedelta(days=30))
            world.ingest(["a000-late"], NOW + hours(1.5),  # before the position: skipped
                         timestamp=NOW - timedelta(days=1) - hours(3))
            world.ingest(["t00-late", "s-late"], NOW + hours(1.5), timestamp=TIE)
        got.extend(events)

    ckpt = tmp_path / "ckpt"
    report = replay(el, Selection(NOW - timedelta(days=3), NOW + hours(1)), target,
                    batch_size=3, now=NOW + hours(2), checkpoint=ckpt)
    # then the read listed again once (and the recount at the end once more), sent every
    # event once, in order, the late ones after the position included
    assert reopened == [1, 1]
    ids = [e["event_id"] for e in got]
    assert sorted(ids) == sorted([*expected, "t00-late", "s-late"])
    assert _keys(got) == sorted(_keys(got))
    assert report.sent == len(ids)
    # and the late event behind the position is named by the run itself
    assert (report.missed_during_run, report.vanished_during_run) == (1, 0)
    # and the checkpoint written after the fresh listing, resumed, sends nothing again and
    # names the late event it could not send
    resuming = True
    resumed = replay(el, Selection(NOW - timedelta(days=3), NOW + hours(1)), target,
                     batch_size=3, now=NOW + hours(2), checkpoint=ckpt)
    assert again == []
    assert (resumed.resumed_after, resumed.missed_before_resume) == (len(ids), 1)


def test_a_cold_only_replay_reads_on_after_compaction(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    el = _two_days(world)
    archived = sorted(world.stored_rows())
    monkeypatch.setattr(read, "WINDOW_BYTES", 1)
    got: list[dict[str, Any]] = []

    def target(events: list[dict[str, Any]]) -> None:
        if not got:
            assert el.compact(min_files=2).partitions
        got.extend(events)

    replay(el, Selection(NOW - timedelta(days=3), NOW + hours(1), cold_only=True), target,
           batch_size=2, now=NOW)
    assert sorted(e["event_id"] for e in got) == archived
    assert _keys(got) == sorted(_keys(got))


def test_an_export_whose_listed_files_compaction_deleted_is_written_whole(
        world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # given an export whose reader was opened just before compaction merged the lake
    el = _two_days(world)
    expected = sorted(world.stored_rows())
    opened = export_run.open_reader

    def open_then_compact(*args: Any, **kwargs: Any) -> Any:
        con = opened(*args, **kwargs)
        if not getattr(open_then_compact, "done", False):
            open_then_compact.done = True  # type: ignore[attr-defined]
            assert el.compact(min_files=2).partitions
        return con

    monkeypatch.setattr(export_run, "open_reader", open_then_compact)
    out = tmp_path / "out.parquet"
    # (cold-only: the hot read on the wall clock of 2026 takes seconds on moto)
    report = el.export(Selection(NOW - timedelta(days=3), NOW + hours(1), cold_only=True), out)
    # then it listed again and wrote every event once
    assert getattr(open_then_compact, "done", False)
    assert report.rows == len(expected)
    assert sorted(pq.read_table(out)["event_id"].to_pylist()) == expected


def test_a_replay_over_an_s3_lake_reads_on_after_compaction(
        s3_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the two days on an S3 lake (moto server), read cold-only, one day per query
    el = _two_days(s3_world)
    archived = sorted(s3_world.stored_rows())
    monkeypatch.setattr(read, "WINDOW_BYTES", 1)
    reopened = _count_reopens(monkeypatch)
    got: list[dict[str, Any]] = []

    def target(events: list[dict[str, Any]]) -> None:
        if not got:  # compaction deletes the second day's listed objects
            assert el.compact(min_files=2).partitions
        got.extend(events)

    # when it is replayed, then it lists again and sends each event once, in order
    replay(el, Selection(NOW - timedelta(days=3), NOW + hours(1), cold_only=True), target,
           batch_size=2, now=NOW)
    assert reopened == [1, 1]  # the read's, then the recount's at the end
    assert sorted(e["event_id"] for e in got) == archived
    assert _keys(got) == sorted(_keys(got))


def test_compaction_deleting_files_between_the_fresh_listing_and_its_views_reads_on(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given three days of two files each, read one day per query
    el = EventLake(world.settings, clients=world.clients)
    days = [NOW - timedelta(days=2), NOW - timedelta(days=1), NOW - hours(3)]
    for d, day in enumerate(days):
        for f in range(2):
            world.ingest([f"d{d}{f}{i}" for i in range(2)], day + hours(f),
                         timestamp=day - hours(2 - f))
            world.sweep(day + hours(f + 0.5))
    archived = sorted(world.stored_rows())
    monkeypatch.setattr(read, "WINDOW_BYTES", 1)
    taken = views.take_snapshot
    snapshots: list[int] = []

    def snapshot_then_compact_the_last_day(*args: Any, **kwargs: Any) -> Any:
        snapshot = taken(*args, **kwargs)
        snapshots.append(1)
        if len(snapshots) == 2:  # the fresh listing: compaction goes on to the last day
            assert el.compact(start=days[2].date(), min_files=2).partitions
        return snapshot

    monkeypatch.setattr(views, "take_snapshot", snapshot_then_compact_the_last_day)
    got: list[dict[str, Any]] = []

    def target(events: list[dict[str, Any]]) -> None:
        if not got:  # compaction merges the second day
            assert el.compact(start=days[1].date(), end=days[1].date(),
                              min_files=2).partitions
        got.extend(events)

    # when it is replayed, then the read lists again until the views install, and sends
    # each event once, in order
    replay(el, Selection(NOW - timedelta(days=3), NOW, cold_only=True), target, batch_size=2,
           now=NOW)
    assert len(snapshots) == 4  # the first, the fresh one, its retry, the recount's at the end
    assert sorted(e["event_id"] for e in got) == archived
    assert _keys(got) == sorted(_keys(got))


def test_a_dry_run_whose_listed_files_compaction_deleted_counts_on_a_fresh_listing(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a replay's reader opened just before compaction merged the lake
    el = _two_days(world)
    archived = len(world.stored_rows())
    opened = replay_run.open_reader

    def open_then_compact(*args: Any, **kwargs: Any) -> Any:
        con = opened(*args, **kwargs)
        assert el.compact(min_files=2).partitions
        return con

    monkeypatch.setattr(replay_run, "open_reader", open_then_compact)
    # when it counts, then it counts every event once, on a fresh listing
    report = replay(el, Selection(NOW - timedelta(days=3), NOW + hours(1), cold_only=True),
                    lambda events: None, dry_run=True, now=NOW)
    assert (report.sent, report.total) == (archived, archived)


def _count_reopens(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at each fresh listing a replay takes (`reopen_reader`)."""
    reopened: list[int] = []
    real_reopen = read.reopen_reader

    def counting_reopen(*args: Any, **kwargs: Any) -> None:
        reopened.append(1)
        real_reopen(*args, **kwargs)

    monkeypatch.setattr("eventlake.replay.run.reopen_reader", counting_reopen)
    return reopened
