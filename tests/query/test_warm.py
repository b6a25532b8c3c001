"""`EventLake.sql` keeps its connection between calls (eventlake/query/warm.py) and still
answers what a fresh connection would: new files, compaction, files rewritten in place, the
hot tier and the watermark moving, statements that would change the connection, threads,
forked children, and two lakes in one process."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from archive_support import World
from lake_support import day_rows

from eventlake import EventLake, Settings
from eventlake.lake.compact import compact
from eventlake.lake.store import Lake
from eventlake.query import views, warm

DAY = date(2024, 5, 1)
COUNT = "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM events"


def rows(first: int, n: int, day: date = DAY) -> pa.Table:
    """Events first..first+n-1 of `day`, as the lake stores them."""
    return day_rows(first, n, day)


def count(lake: EventLake, *, hot: bool = False) -> tuple[int, int]:
    (row,) = lake.sql(COUNT, hot=hot).to_pylist()
    return row["n"], row["ids"]


@pytest.fixture
def cold(tmp_path: Path) -> EventLake:
    """An EventLake whose local lake exists; only cold-only queries (no AWS is reached)."""
    lake = EventLake(Settings.from_env(table="events-test", lake_uri=str(tmp_path / "lake")))
    lake.cold.create_marker(table="events-test")
    return lake


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names the thread of each DuckDB connection opened from now on."""
    names: list[str] = []
    real = duckdb.connect

    def counting(*args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        names.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counting)
    return names


@pytest.fixture
def installs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of files each installation of the views listed."""
    seen: list[int] = []
    real = views.install

    def counting(con: Any, lake: Lake, snapshot: Any, **kwargs: Any) -> None:
        seen.append(len(snapshot.files))
        real(con, lake, snapshot, **kwargs)

    monkeypatch.setattr(views, "install", counting)
    return seen


# -- reuse, and noticing what changed --------------------------------------------------------

def test_a_second_call_over_an_unchanged_lake_reuses_the_connection_and_its_views(
        cold: EventLake, opened: list[str], installs: list[int]) -> None:
    cold.cold.write(rows(0, 10), "sweep-a")

    assert count(cold) == (10, 10)
    assert count(cold) == (10, 10)
    assert count(cold) == (10, 10)

    assert len(opened) == 1
    assert installs == [1]


def test_files_written_between_calls_are_counted_new_partition_and_new_file_alike(
        cold: EventLake, opened: list[str]) -> None:
    cold.cold.write(rows(0, 10), "sweep-a")
    assert count(cold) == (10, 10)

    cold.cold.write(rows(10, 5), "sweep-b")  # a second file in the same partition
    assert count(cold) == (15, 15)

    cold.cold.write(rows(0, 3, date(2024, 5, 2)), "sweep-c")  # a new partition
    assert count(cold) == (18, 18)
    assert len(opened) == 1  # the views were installed again on the same connection


def test_a_copy_written_between_calls_is_still_counted_once(cold: EventLake) -> None:
    cold.cold.write(rows(0, 10), "sweep-a")
    assert count(cold) == (10, 10)

    cold.cold.write(rows(0, 10), "sweep-copy")

    assert count(cold) == (10, 10)


def test_compaction_between_calls_leaves_each_event_once(cold: EventLake) -> None:
    for k in range(4):
        cold.cold.write(rows(10 * k, 10), f"sweep-{k}")
    cold.cold.write(rows(0, 10), "sweep-copy")
    assert count(cold) == (40, 40)

    report = compact(cold.cold, min_files=2)

    assert report.partitions  # it did merge (and delete) files under the kept connection
    assert len(cold.cold.list_files()) == 1
    assert count(cold) == (40, 40)


def test_a_file_rewritten_in_place_is_read_again_on_a_new_connection(
        cold: EventLake, opened: list[str]) -> None:
    (written,) = cold.cold.write(rows(0, 10), "sweep-a")
    assert count(cold) == (10, 10)

    (again,) = cold.cold.write(rows(0, 4), "sweep-a")  # same name, other bytes

    assert again.path == written.path
    assert count(cold) == (4, 4)
    assert len(opened) == 2  # DuckDB's cache of the old bytes went with the old connection


def test_a_file_vanishing_under_a_kept_connection_lists_again(
        cold: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    cold.cold.write(rows(0, 10), "sweep-a")
    assert count(cold) == (10, 10)
    real = views.take_snapshot
    moved: list[bool] = []

    def then_compacted(lake: Any, **kwargs: Any) -> Any:
        snapshot = real(lake, **kwargs)  # lists sweep-a ...
        if not moved:  # ... which is then replaced by a merged file before the query runs
            moved.append(True)
            cold.cold.write(rows(0, 10), "compacted-1")
            cold.cold.delete([snapshot.files[0].path])
        return snapshot

    monkeypatch.setattr(views, "take_snapshot", then_compacted)

    assert count(cold) == (10, 10)
    assert moved


def test_the_snapshot_row_of_a_reused_connection_says_when_this_call_looked(
        cold: EventLake) -> None:
    cold.cold.write(rows(0, 10), "sweep-a")
    query = "SELECT taken_at, cold_files FROM eventlake_snapshot"
    (first,) = cold.sql(query, hot=False).to_pylist()

    (second,) = cold.sql(query, hot=False).to_pylist()

    assert second["taken_at"] > first["taken_at"]
    assert second["cold_files"] == first["cold_files"] == 1


# -- statements that would change the connection ---------------------------------------------

@pytest.mark.parametrize("statement", [
    "CREATE VIEW mine AS SELECT 1 AS x",
    "CREATE TABLE mine AS SELECT 1 AS x",
    "SET TimeZone = 'America/New_York'",
    "DROP VIEW events",
    "SELECT 1; CREATE VIEW mine AS SELECT 1 AS x",
])
def test_a_statement_that_changes_a_connection_does_not_outlive_its_call(
        cold: EventLake, statement: str) -> None:
    cold.cold.write(rows(0, 10), "sweep-a")
    before = cold.sql("SELECT min(timestamp)::VARCHAR AS t FROM events", hot=False)

    cold.sql(statement, hot=False)

    with pytest.raises(duckdb.CatalogException):
        cold.sql("SELECT * FROM mine", hot=False)
    assert cold.sql("SELECT min(timestamp)::VARCHAR AS t FROM events", hot=False) == before
    assert count(cold) == (10, 10)


def test_a_sql_error_leaves_the_kept_connection_usable(cold: EventLake,
                                                       opened: list[str]) -> None:
    cold.cold.write(rows(0, 10), "sweep-a")
    assert count(cold) == (10, 10)

    with pytest.raises(duckdb.BinderException):
        cold.sql("SELECT no_such_column FROM events", hot=False)
    with pytest.raises(duckdb.ParserException):
        cold.sql("SELEKT 1", hot=False)

    assert count(cold) == (10, 10)
    assert len(opened) == 1


def test_close_lets_the_kept_connection_go(cold: EventLake, opened: list[str]) -> None:
    cold.cold.write(rows(0, 10), "sweep-a")
    assert count(cold) == (10, 10)

    cold.close()

    assert count(cold) == (10, 10)
    assert len(opened) == 2


# -- threads, processes, lakes ---------------------------------------------------------------

def test_threads_each_use_their_own_connection_and_see_files_written_meanwhile(
        cold: EventLake, opened: list[str]) -> None:
    cold.cold.write(rows(0, 10), "sweep-0")
    seen: dict[str, list[tuple[int, int]]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(5, timeout=30)

    def reader() -> None:
        start.wait()
        mine = seen.setdefault(threading.current_thread().name, [])
        try:
            for _ in range(15):
                mine.append(count(cold))
        except BaseException as exc:  # reported below, with the thread's answers
            errors.append(exc)

    threads = [threading.Thread(target=reader, name=f"reader-{i}") for i in range(4)]
    for t in threads:
        t.start()
    start.wait()
    for k in range(1, 6):
        cold.cold.write(rows(10 * k, 10), f"sweep-{k}")
    for t in threads:
        t.join()

    assert not errors
    for name, answers in seen.items():
        assert all(n == ids for n, ids in answers), name  # never a copy, never a torn view
        assert [n for n, _ in answers] == sorted(n for n, _ in answers), name  # never back
        assert opened.count(name) == 1  # one connection per thread, kept
    assert count(cold) == (60, 60)


def _count_in_child(lake: EventLake, opened: list[str], out: Any) -> None:
    try:
        before = len(opened)
        out.send((count(lake), len(opened) - before, len(warm._inherited)))
    except BaseException as exc:  # the parent asserts on what it receives
        out.send(repr(exc))
    finally:
        out.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(
        cold: EventLake, opened: list[str]) -> None:
    cold.cold.write(rows(0, 10), "sweep-a")
    assert count(cold) == (10, 10)
    cold.cold.write(rows(10, 5), "sweep-b")
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    child = context.Process(target=_count_in_child, args=(cold, opened, send))
    child.start()
    answer = receive.recv()
    child.join(timeout=30)

    assert answer[:2] == ((15, 15), 1)  # its own, new connection, and the new file counted
    assert answer[2] >= 1  # the parent's connection was set aside, not used
    assert count(cold) == (15, 15)  # the parent's connection still works after the child


def test_two_lakes_in_one_thread_never_share_a_connection(cold: EventLake,
                                                          tmp_path: Path) -> None:
    other = EventLake(Settings.from_env(table="events-test", lake_uri=str(tmp_path / "other")))
    other.cold.create_marker(table="events-test")
    cold.cold.write(rows(0, 10), "sweep-a")
    other.cold.write(rows(0, 3), "sweep-a")

    answers = [count(cold), count(other), count(cold), count(other)]

    assert answers == [(10, 10), (3, 3), (10, 10), (3, 3)]


def test_a_lake_whose_tiers_were_replaced_reads_the_new_ones(cold: EventLake,
                                                             tmp_path: Path) -> None:
    other = Settings.from_env(table="events-test", lake_uri=str(tmp_path / "other"))
    Lake(other).create_marker(table="events-test")
    Lake(other).write(rows(0, 3), "sweep-a")
    cold.cold.write(rows(0, 10), "sweep-a")
    assert count(cold) == (10, 10)

    cold.settings = other
    del cold.cold  # the cached tiers are built again from the new settings
    del cold.hot

    assert count(cold) == (3, 3)


def test_typed_views_come_with_a_query_that_names_them_and_see_new_types(
        cold: EventLake) -> None:
    cold.cold.write(rows(0, 10), "sweep-a")
    assert count(cold) == (10, 10)
    assert cold.sql("SELECT count(*) AS n FROM ev_order", hot=False).to_pylist() == [{"n": 10}]
    refund = rows(10, 2).set_column(1, "event_type", pa.array(["refund"] * 2))
    cold.cold.write(refund, "sweep-b")

    assert cold.sql("SELECT count(*) AS n FROM ev_refund", hot=False).to_pylist() == [{"n": 2}]
    assert count(cold) == (12, 12)


# -- the hot tier ----------------------------------------------------------------------------

@pytest.fixture
def both(world: World) -> EventLake:
    """An EventLake over the world's two tiers (2 index shards, 3 days' retention)."""
    return EventLake(world.settings, clients=world.clients)


def test_hot_events_written_between_calls_are_counted(world: World, both: EventLake,
                                                      opened: list[str]) -> None:
    now = datetime.now(UTC)
    world.ingest(["a", "b"], now - timedelta(minutes=2))
    assert count(both, hot=True) == (2, 2)
    assert count(both, hot=True) == (2, 2)

    world.ingest(["c"], now - timedelta(minutes=1))

    assert count(both, hot=True) == (3, 3)
    assert len(opened) == 1


def test_archiving_between_calls_moves_the_watermark_and_counts_each_event_once(
        world: World, both: EventLake) -> None:
    now = datetime.now(UTC)
    world.ingest(["a", "b", "c"], now - timedelta(minutes=10))
    assert count(both, hot=True) == (3, 3)
    watermark: Callable[[], Any] = lambda: both.sql(  # noqa: E731
        "SELECT watermark, cold_files FROM eventlake_snapshot").to_pylist()[0]
    assert watermark()["watermark"] is None

    world.sweep(now - timedelta(minutes=1))

    assert count(both, hot=True) == (3, 3)  # cold now, and none read twice at the seam
    assert watermark()["watermark"] == now - timedelta(minutes=1)
    assert watermark()["cold_files"] >= 1
    assert count(both, hot=False) == (3, 3)


# -- a lake on S3 (the moto server: pyarrow datasets, not DuckDB's reader) ------------------

@pytest.fixture
def s3_cold(bucket: str) -> EventLake:
    """An EventLake whose lake is on the moto server's S3; cold-only queries."""
    lake = EventLake(Settings.from_env(table="events-test", lake_uri=f"s3://{bucket}/lake"))
    lake.cold.create_marker(table="events-test")
    return lake


def test_on_s3_compaction_and_new_files_between_calls_leave_each_event_once(
        s3_cold: EventLake, opened: list[str]) -> None:
    for k in range(3):
        s3_cold.cold.write(rows(10 * k, 10), f"sweep-{k}")
    s3_cold.cold.write(rows(0, 10), "sweep-copy")
    assert count(s3_cold) == (30, 30)

    assert compact(s3_cold.cold, min_files=2).partitions  # inputs deleted under the connection
    assert count(s3_cold) == (30, 30)
    s3_cold.cold.write(rows(30, 5), "sweep-3")
    assert count(s3_cold) == (35, 35)
    assert len(opened) == 1


def test_on_s3_a_file_rewritten_in_place_is_read_again(s3_cold: EventLake) -> None:
    s3_cold.cold.write(rows(0, 10), "sweep-a")
    assert count(s3_cold) == (10, 10)

    s3_cold.cold.write(rows(0, 4), "sweep-a")  # same name, other bytes

    assert count(s3_cold) == (4, 4)


def test_on_s3_a_file_vanishing_under_a_kept_connection_lists_again(
        s3_cold: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    s3_cold.cold.write(rows(0, 10), "sweep-a")
    s3_cold.cold.write(rows(10, 10), "sweep-b")
    assert count(s3_cold) == (20, 20)
    real = views.take_snapshot
    moved: list[bool] = []

    def then_compacted(lake: Any, **kwargs: Any) -> Any:
        snapshot = real(lake, **kwargs)
        if not moved:  # the listed files are replaced by a merged one before the query runs
            moved.append(True)
            s3_cold.cold.write(pa.concat_tables([rows(0, 10), rows(10, 10)]), "compacted-1")
            s3_cold.cold.delete([f.path for f in snapshot.files])
        return snapshot

    s3_cold.cold.write(rows(20, 1), "sweep-c")  # so the next call installs the views again
    monkeypatch.setattr(views, "take_snapshot", then_compacted)

    assert count(s3_cold) == (20, 20)
    assert moved


def test_manifests_accepting_and_refusing_files_between_calls_leave_each_event_once(
        cold: EventLake, installs: list[int]) -> None:
    from eventlake.lake.disjoint import verify

    later = datetime.now(UTC) + timedelta(hours=1)
    for k in range(3):  # a stream day: disjoint files, not yet verified (read by pattern)
        cold.cold.write(rows(10 * k, 10), f"stream-{k:06d}-{k:06d}-d{k:02d}")
    assert count(cold) == (30, 30)

    assert verify(cold.cold, [DAY.isoformat()], now=later).accepted  # now read bare
    assert count(cold) == (30, 30)
    cold.cold.write(rows(5, 10), "stream-000009-000009-d09")  # overlaps two verified files
    assert count(cold) == (30, 30)
    verify(cold.cold, [DAY.isoformat()], now=later)  # the overlapping file is refused
    assert count(cold) == (30, 30)
    compact(cold.cold, min_files=2)
    assert count(cold) == (30, 30)
    # installed again when the files or the verified set changed (a refusal changes neither)
    assert installs == [3, 3, 4, 1]
