"""review28: the replay's late-event checks must not cry wolf on an ordinary run (a sweep or a
compaction during the run, a live stream's tail), and must not miss what they promise."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from archive_support import NOW, World, hours
from test_replay_late import go, plant, two_files

from eventlake import EventLake
from eventlake.lake.compact import compact
from eventlake.replay.run import replay
from eventlake.replay.select import Selection


def test_a_sweep_archiving_the_selection_during_the_run_warns_nothing(world: World) -> None:
    # given: hot events; at the first batch a sweep archives them (each now in both tiers)
    el = EventLake(world.settings, clients=world.clients)
    ten_ago = NOW - hours(10)
    world.put_items([world.item(i, NOW - hours(5), timestamp=ten_ago + timedelta(minutes=n))
                     for n, i in enumerate("abcdef")])
    got: list[str] = []
    swept: list[Any] = []

    def target(events: list[dict[str, Any]]) -> None:
        if not got:
            swept.append(world.sweep(NOW))
        got.extend(e["event_id"] for e in events)

    report = replay(el, Selection(NOW - timedelta(days=1), NOW), target, batch_size=2, now=NOW)

    assert sum(world.stored_rows().values()) == 6  # the sweep did archive them meanwhile
    assert got == list("abcdef")
    assert report.warnings == []


def test_a_compaction_during_the_run_warns_nothing(tmp_path: Path) -> None:
    # given: two files of one day; at the first batch they are compacted into one
    root = tmp_path / "lake"
    tiers = two_files(root)
    got: list[str] = []
    compacted: list[Any] = []

    def target(events: list[dict[str, Any]]) -> None:
        if not got:
            compacted.append(compact(tiers.cold, min_files=2))
        got.extend(e["event_id"] for e in events)

    report = go(tiers, target, batch_size=2, checkpoint=tmp_path / "ckpt")

    assert len(list((root / "events").rglob("*.parquet"))) == 1  # compacted meanwhile
    assert len(got) == 8 and report.warnings == []


def test_a_live_streams_tail_arriving_during_the_run_is_no_warning(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    # given: a selection reaching past now (a live stream); events keep arriving at its head
    el = EventLake(world.settings, clients=world.clients)
    world.put_items([world.item(i, NOW - hours(1), timestamp=NOW - hours(2) + timedelta(
        minutes=n)) for n, i in enumerate("abcd")])
    got: list[str] = []

    def target(events: list[dict[str, Any]]) -> None:
        if not got:  # the stream's next event: after all the run's snapshot held
            world.put_items([world.item("next", NOW, timestamp=NOW - timedelta(seconds=1))])
        got.extend(e["event_id"] for e in events)

    with caplog.at_level(logging.INFO, logger="eventlake.replay.run"):
        report = replay(el, Selection(NOW - timedelta(days=1), NOW + timedelta(days=1)),
                        target, batch_size=2, now=NOW)

    # then: it is counted and said (INFO), but it is the stream going on, not a WARNING
    assert got == list("abcd")
    assert report.arrived_after_run == 1
    assert report.warnings == []
    assert "arrived during the run" in caplog.text


def test_a_file_replaced_with_the_same_size_and_time_is_still_recounted(tmp_path: Path) -> None:
    # given: during the run, file b is replaced by other events (g0..g3) of the same size, its
    # modification time set back (cp -p, rsync -t, a restore): the listing reads the same
    import os

    root = tmp_path / "lake"
    tiers = two_files(root)
    [old] = (root / "events").rglob("b.parquet")
    size, stamp = old.stat().st_size, old.stat().st_mtime_ns
    got: list[str] = []

    def target(events: list[dict[str, Any]]) -> None:
        if not got:
            old.unlink()
            plant(tiers, "b", {f"g{i}": 20 * i + 10 for i in range(4)})
            os.utime(old, ns=(stamp, stamp))
            assert old.stat().st_size == size  # the listing's (path, size, time): unchanged
        got.extend(e["event_id"] for e in events)

    report = go(tiers, target, batch_size=2, checkpoint=tmp_path / "ckpt")

    # then: what the run sent (b0..b3) is no longer there and g0..g3 were not sent: said
    assert "g0" not in got and report.warnings
    assert report.vanished_during_run or report.late_and_vanished_during_run
