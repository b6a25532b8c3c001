"""Issue 8, item 5: the lake's files hold each event once, so any engine reading the
Hive-partitioned Parquet (here DuckDB's bare `read_parquet`, no eventlake code) counts each
event once: after the sweep archived events before the stream delivered them, and after a
re-delivery that comes once compaction merged the stream's files.

Both paths write real files: the sweep through the index of a (moto) table, the stream from a
Lambda event built from the very items stored; the compaction is the hourly flow's
(`min_files=4`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pytest
from archive_support import NOW, World, make_world
from stream_support import lambda_event

from eventlake import EventLake
from eventlake.archive.stream import archive_event
from eventlake.lake.compact import compact

EVENTS = 60
HOURLY_MIN_FILES = 4  # flows/compact.py's default


def store(world: World, at: datetime) -> list[dict[str, Any]]:
    """EVENTS events over two UTC days, ingested at `at`; the items as stored."""
    items = [world.item(f"evt-{i:03d}", at, timestamp=at - timedelta(hours=i))
             for i in range(EVENTS)]
    world.put_items(items)
    return items


def plain_count(world: World) -> int:
    """count(*) over every file, as an engine that knows nothing of eventlake counts."""
    if world.lake.is_s3:  # DuckDB's httpfs is not available offline: pyarrow, same files
        paths = [world.lake.fs_path(f.path) for f in world.lake.list_files()]
        return int(ds.dataset(paths, format="parquet", filesystem=world.lake.fs).count_rows())
    return int(duckdb.sql(f"select count(*) from read_parquet('{world.lake.events_glob}')")
               .fetchall()[0][0])


def sweep_then_stream_then_compact(world: World) -> None:
    # given events stored an hour ago, archived by the sweep first (settle 0) ...
    items = store(world, NOW - timedelta(hours=1))
    world.sweep(now=NOW)
    assert plain_count(world) == EVENTS

    # ... when the stream delivers the same records afterwards (a lagging stream)
    report = archive_event(world.lake, lambda_event(items))

    # then nothing is written twice, and the scheduled compaction keeps it so
    assert (report.archived, report.already_archived) == (0, EVENTS)
    assert plain_count(world) == EVENTS
    compact(world.lake, min_files=HOURLY_MIN_FILES)
    assert plain_count(world) == EVENTS


def stream_then_compact_then_redeliver(world: World) -> None:
    # given the stream archived events in several batches, then the hourly compaction ran
    items = store(world, NOW - timedelta(hours=1))
    for start in range(0, EVENTS, 3):
        archive_event(world.lake, lambda_event(items[start:start + 3],
                                               first_seq=500000000000000000000 + start))
    compact(world.lake, min_files=HOURLY_MIN_FILES)
    files = world.lake.list_files()
    assert all("/compacted-" in f.path for f in files) and len(files) == 3
    assert plain_count(world) == EVENTS

    # when Lambda re-delivers a batch spanning several of the merged ones
    report = archive_event(world.lake, lambda_event(items[5:35],
                                                    first_seq=500000000000000000005))

    # then no row is written again: the same files, the same plain count
    assert report.archived == 0
    assert world.lake.list_files() == files
    assert plain_count(world) == EVENTS


def test_sweep_first_then_stream_then_compaction_count_each_event_once(
        lake: EventLake) -> None:
    sweep_then_stream_then_compact(make_world(lake))


def test_redelivery_after_compaction_counts_each_event_once(lake: EventLake) -> None:
    stream_then_compact_then_redeliver(make_world(lake))


def test_copies_written_in_a_race_are_removed_by_the_scheduled_compaction(
        lake: EventLake) -> None:
    # given the stream and the sweep both wrote the same events (racing: each checked the
    # lake before the other wrote)
    world = make_world(lake)
    items = store(world, NOW - timedelta(hours=1))
    archive_event(world.lake, lambda_event(items))
    for f in world.lake.list_files():  # the sweep's copy, as if written at the same moment
        world.lake.write_partition(f.dt, world.lake.read_file(f.path),
                                   "sweep-20240510T100000000000-20240510T120000000000-0000-"
                                   "0123456789ab")
    assert plain_count(world) == 2 * EVENTS

    # when the scheduled compaction runs, two files a day being below its min_files
    compact(world.lake, min_files=HOURLY_MIN_FILES)

    # then each event is counted once
    assert plain_count(world) == EVENTS


@pytest.mark.integration
def test_on_s3_sweep_first_then_stream_then_compaction_count_each_event_once(
        s3_world: World) -> None:
    sweep_then_stream_then_compact(s3_world)


@pytest.mark.integration
def test_on_s3_redelivery_after_compaction_counts_each_event_once(s3_world: World) -> None:
    stream_then_compact_then_redeliver(s3_world)
