"""Compaction's crash-safe path: guarantees that mutation testing found unchecked (mutants39,
docs/mutation-testing.md).

The record `_eventlake/compaction/dt=<dt>` says "these inputs are replaced by these outputs";
the next run deletes the inputs it names only when every output is there, and only the very
files that were merged (name, size and time), never another written later under a name or with
an input's size and time. A second compaction writes its own record over the first's; the run
ages files by UTC, removes temp files by its own clock and only in its range, verifies a day it
only finished, and its verify takes the ids the merge read.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clock_support import nine_hours_east_of_utc

from eventlake.config import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake import compactmerge
from eventlake.lake.compact import compact, read_distinct
from eventlake.lake.disjoint import verified_files
from eventlake.lake.store import Lake

DAY = date(2024, 3, 10)
DT = DAY.isoformat()
INGESTED = datetime(2024, 3, 11, 8, 30, tzinfo=UTC)


def event(n: int) -> dict[str, Any]:
    """Order event number `n` of DAY; the same n always gives the same content."""
    return {"event_id": f"{DT}-{n:04d}", "event_type": "order.created",
            "timestamp": datetime(2024, 3, 10, 9, tzinfo=UTC) + timedelta(seconds=n),
            "ingested_at": INGESTED, "source": "shop", "subject": f"order/{n}",
            "event_payload": json.dumps({"n": n, "total": 10 * n}),
            "content_hash": f"hash-{n:04d}"}


def table(numbers: range | list[int]) -> pa.Table:
    return pa.Table.from_pylist([event(n) for n in numbers], schema=EVENT_SCHEMA)


def ids(numbers: range | list[int]) -> list[str]:
    return sorted(f"{DT}-{n:04d}" for n in numbers)


def write_batches(lake: Lake, batches: list[range], prefix: str) -> list[str]:
    return [lake.write_partition(DT, table(batch), f"{prefix}-{DT}-{i:03d}").path
            for i, batch in enumerate(batches)]


def crash_while_deleting(lake: Lake, monkeypatch: pytest.MonkeyPatch, keep: int = 0) -> None:
    """Run compaction killed in step 5: it deletes `keep` of its inputs, then dies."""
    real_delete = lake.delete

    def delete_some_then_crash(paths: Any) -> None:
        real_delete(list(paths)[:keep])
        raise OSError("killed while deleting")

    with monkeypatch.context() as killed:
        killed.setattr(lake, "delete", delete_some_then_crash)
        with pytest.raises(OSError, match="killed"):
            compact(lake, min_files=2)


def rewrite_same_size(path: str, numbers: range, *, like: str | None = None,
                      later_ns: int = 60 * 10**9) -> None:
    """Write other events under `path`, padded through the footer's metadata to the very size
    of the file `like` (by default the one it replaces), modified `later_ns` after it."""
    size, mtime = os.stat(like or path).st_size, os.stat(like or path).st_mtime_ns
    rows = table(numbers)
    pad = 0
    for _ in range(20):
        tmp = path + ".new"
        with pq.ParquetWriter(tmp, rows.schema, compression="zstd", store_schema=False) as out:
            out.write_table(rows)
            out.add_key_value_metadata({"pad": "x" * pad})
        got = os.stat(tmp).st_size
        if got == size:
            os.replace(tmp, path)
            os.utime(path, ns=(mtime + later_ns, mtime + later_ns))
            return
        pad = max(0, pad + size - got)
    raise AssertionError("could not write a file of the same size")


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


def test_a_second_compaction_killed_while_deleting_is_finished_by_its_own_record(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a day compacted once (its record names that first compaction), then 4 new files
    write_batches(lake, [range(i * 5, i * 5 + 5) for i in range(4)], "stream")
    assert compact(lake, min_files=2).files_in == 4
    write_batches(lake, [range(20 + i * 5, 25 + i * 5) for i in range(4)], "late")

    # when the second compaction is killed after writing its output, before deleting anything
    crash_while_deleting(lake, monkeypatch)
    assert len(lake.list_files()) == 6  # the new output, the first output, the 4 late files

    # then the next run deletes the second compaction's 5 inputs by its record, merging nothing
    report = compact(lake, min_files=2)
    assert (report.leftovers_removed, report.files_in) == (5, 0)
    [file] = lake.list_files()
    assert sorted(pq.read_table(file.path)["event_id"].to_pylist()) == ids(range(40))


def test_a_file_written_again_under_an_input_name_with_the_same_size_is_not_deleted(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given four small files of orders 0-19, compacted by a run killed before any delete
    paths = write_batches(lake, [range(i * 5, i * 5 + 5) for i in range(4)], "stream")
    crash_while_deleting(lake, monkeypatch)

    # when another writer replaces the first input, under its name, with orders 100-104, in a
    # file of the very same size (only its modification time differs)
    before = os.stat(paths[0]).st_size
    rewrite_same_size(paths[0], range(100, 105))
    assert os.stat(paths[0]).st_size == before

    # then the next run deletes only the inputs that were merged: orders 100-104 are kept
    report = compact(lake, min_files=2)
    assert report.leftovers_removed == 3
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids([*range(20),
                                                                        *range(100, 105)])


def test_a_day_without_a_compaction_output_costs_no_read_of_a_compaction_record(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a day of four small stream files, never compacted, and a stale record of that day
    # left by an earlier lake (its outputs are gone)
    write_batches(lake, [range(i * 5, i * 5 + 5) for i in range(4)], "stream")
    lake.write_state(f"compaction/dt={DT}", b'{"inputs": [], "outputs": ["gone"]}',
                     expected=None)
    read: list[str] = []  # the state read before compaction records its own plan
    real_read, real_record = lake.read_state, compactmerge.write_record

    def counting_read(key: str) -> Any:
        read.append(key)
        return real_read(key)

    def record(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(lake, "read_state", real_read)
        real_record(*args, **kwargs)

    monkeypatch.setattr(lake, "read_state", counting_read)
    monkeypatch.setattr(compactmerge, "write_record", record)

    # when compaction runs
    report = compact(lake, min_files=2)

    # then it merged the day without reading the record: only a day holding an output of a
    # compaction can have one to finish (a state read per day and run saved, a GET on S3)
    assert report.files_in == 4
    assert [key for key in read if key.startswith("compaction/")] == []


def test_compactions_verify_takes_the_ids_of_a_held_file_from_the_merge_not_the_file(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a day of one large sweep file (orders 0-399) and four small late files (400-419)
    write_batches(lake, [range(400)], "sweep")
    write_batches(lake, [range(400 + i * 5, 405 + i * 5) for i in range(4)], "late")
    sizes = [f.size for f in lake.list_files()]
    reads: list[str] = []  # the files whose event_id column alone is read
    real = lake.read_file

    def counted(path: str, columns: Any = None, **kwargs: Any) -> pa.Table:
        if list(columns or []) == ["event_id"]:
            reads.append(path.rpartition("/")[2])
        return real(path, columns, **kwargs)

    monkeypatch.setattr(lake, "read_file", counted)

    # when compaction merges the small files into one output beside the large one, and its
    # verify proves the two disjoint
    report = compact(lake, min_files=2, small_file_bytes=max(sizes) - 1,
                     target_bytes=sum(sizes) - 1)

    # then the verify read the output's ids, not the large file's: the merge had read them
    # (to keep the small files' copies of its events out of the output)
    [output] = [out.path.rpartition("/")[2] for out in report.partitions[0].outputs]
    assert report.files_in == 4 and len(lake.list_files()) == 2
    assert sorted(report.verified.accepted[DT]) == [output, "sweep-2024-03-10-000.parquet"]
    assert reads == [output]
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(range(420))


@pytest.fixture
def host_nine_hours_east_of_utc() -> Iterator[None]:
    """This process's local time zone UTC+9 for the test."""
    with nine_hours_east_of_utc():
        yield


@pytest.mark.usefixtures("host_nine_hours_east_of_utc")
def test_a_compaction_without_a_clock_ages_files_by_utc_on_a_host_east_of_utc(
        lake: Lake) -> None:
    # given four stream files written just now, and a writer's temp file of a minute ago
    write_batches(lake, [range(i * 5, i * 5 + 5) for i in range(4)], "stream")
    temp = Path(lake.root) / f"events/dt={DT}/.stream-x.parquet.tmp-0123456789ab"
    temp.write_bytes(b"half a file")
    os.utime(temp, (time.time() - 60, time.time() - 60))

    # when compaction runs with no `now`, files to settle for ten minutes
    report = compact(lake, min_files=2, min_age_seconds=600)

    # then nothing is merged nor removed: the files are seconds old in UTC, not nine hours
    assert (report.files_in, report.temp_files_removed) == (0, 0)
    assert len(lake.list_files()) == 4 and temp.exists()


def test_a_compaction_removes_temp_files_by_its_own_clock_and_only_in_its_range(
        lake: Lake) -> None:
    # given a writer's temp file in dt=2024-03-01 (a write of a past day killed before its
    # rename) and in dt=2024-03-10, both written just now
    write_batches(lake, [range(5)], "stream")
    temps = [Path(lake.root) / f"events/dt={dt}/.stream-x.parquet.tmp-0123456789ab"
             for dt in ("2024-03-01", DT)]
    for temp in temps:
        temp.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(b"half a file")

    # when a compaction of the days up to 2024-03-05 runs at a `now` two hours later
    report = compact(lake, end=date(2024, 3, 5), now=datetime.now(UTC) + timedelta(hours=2))

    # then by that clock the one in range is stale and removed; the one after `end` stays
    assert report.temp_files_removed == 1
    assert [temp.exists() for temp in temps] == [False, True]


def test_a_run_finishing_two_days_interrupted_compactions_counts_and_verifies_both(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given two days, each with a large sweep file and four small late files, each compacted
    # by a run killed before deleting anything
    days = [DAY, DAY + timedelta(days=1)]
    for day in days:
        dt = day.isoformat()
        offset = timedelta(days=(day - DAY).days)
        rows = [{**event(n), "event_id": f"{dt}-{n:04d}",
                 "timestamp": event(n)["timestamp"] + offset} for n in range(420)]
        batches = [rows[:400], *(rows[400 + i * 5:405 + i * 5] for i in range(4))]
        for i, batch in enumerate(batches):
            lake.write_partition(dt, pa.Table.from_pylist(batch, schema=EVENT_SCHEMA),
                                 f"{'sweep' if i == 0 else 'late'}-{dt}-{i:03d}")
    late = max(f.size for f in lake.list_files() if "/late-" in f.path)
    knobs = {"min_files": 2, "small_file_bytes": late + 100,  # the sweep files are large
             "target_bytes": 4 * late + 200}  # the late files fit in one output, not the sweep
    for day in days:
        with monkeypatch.context() as killed:
            killed.setattr(lake, "delete", lambda paths: 1 / 0)
            with pytest.raises(ZeroDivisionError):
                compact(lake, start=day, end=day, **knobs)

    # when the next run looks at both days
    report = compact(lake, **knobs)

    # then it deleted the four merged inputs of each, and proved each day's two files
    # disjoint: readers read them bare
    assert (report.leftovers_removed, report.files_in) == (8, 0)
    assert report.verified.skipped == {}
    files = lake.list_files()
    assert len(files) == 4 and verified_files(lake, files) == {f.path for f in files}


def test_a_file_of_another_name_with_an_inputs_size_and_time_is_not_deleted(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given four small files of orders 0-19, compacted by a run killed before any delete
    paths = write_batches(lake, [range(i * 5, i * 5 + 5) for i in range(4)], "stream")
    crash_while_deleting(lake, monkeypatch)

    # when a backfill writes orders 100-104 beside them, in a file of the first input's very
    # size and modification time (S3 keeps times to the second: two writes can share one)
    backfill = paths[0].replace("stream-", "backfill-")
    rewrite_same_size(backfill, range(100, 105), like=paths[0], later_ns=0)

    # then the next run deletes only the inputs that were merged: orders 100-104 are kept
    report = compact(lake, min_files=2)
    assert report.leftovers_removed == 4
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids([*range(20),
                                                                        *range(100, 105)])
