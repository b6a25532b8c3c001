"""Compaction on local disk: merging, de-duplication, sizing, crashes, readers meanwhile."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from race_support import read_while

from eventlake.config import Settings
from eventlake.errors import ConfigError, LakeNotFoundError
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.compact import (
    CompactReport,
    compact,
    needs_compaction,
    read_distinct,
    remove_stale_temp_files,
)
from eventlake.lake.store import Lake, LakeFile

DAY = date(2024, 3, 10)
INGESTED = datetime(2024, 3, 11, 8, 30, tzinfo=UTC)
TYPES = ["order.created", "order.paid", "cart.viewed"]


def event(n: int, day: date = DAY, **fields: Any) -> dict[str, Any]:
    """Event number `n` of `day`: the same n always gives the same content (a true copy)."""
    row = {"event_id": f"{day.isoformat()}-{n:04d}", "event_type": TYPES[n % 3],
           "timestamp": datetime(day.year, day.month, day.day, tzinfo=UTC)
           + timedelta(seconds=(n * 7919) % 86_400, microseconds=n),
           "ingested_at": INGESTED, "source": "shop", "subject": f"order/{n}",
           "event_payload": json.dumps({"n": n, "note": "x" * (n % 50)}),
           "content_hash": f"hash-{n}"}
    row.update(fields)
    return row


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def write_files(lake: Lake, batches: list[list[int]], day: date = DAY, prefix: str = "stream"
                ) -> list[str]:
    """One file per batch of event numbers; returns their full paths."""
    return [lake.write_partition(day.isoformat(), table([event(n, day) for n in batch]),
                                 f"{prefix}-{day.isoformat()}-{i:03d}").path
            for i, batch in enumerate(batches)]


def ids(day: date, numbers: range | list[int]) -> list[str]:
    return sorted(f"{day.isoformat()}-{n:04d}" for n in numbers)


def names(lake: Lake, day: date = DAY) -> list[str]:
    return [f.path.rsplit("/", 1)[1] for f in lake.list_files(dts=[day.isoformat()])]


def sort_key(row: dict[str, Any]) -> tuple[str, datetime, str]:
    return row["event_type"], row["timestamp"], row["event_id"]


def crash_after_one_write(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make `lake` write one file, then fail every write as a killed process would; returns
    the paths written (the one)."""
    real_write = lake.write_partition
    written: list[str] = []

    def write_one_then_crash(*args: Any, **kwargs: Any) -> Any:
        if written:
            raise OSError("killed while writing")
        result = real_write(*args, **kwargs)
        written.append(result.path)
        return result

    monkeypatch.setattr(lake, "write_partition", write_one_then_crash)
    return written


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


@pytest.fixture
def ten_small_files(lake: Lake) -> Lake:
    write_files(lake, [list(range(i * 5, i * 5 + 5)) for i in range(10)])
    return lake


# -- merging -----------------------------------------------------------------------------------

def test_many_small_files_become_one_sorted_zstd_file(ten_small_files: Lake) -> None:
    lake = ten_small_files
    sizes = sum(f.size for f in lake.list_files())

    report = compact(lake)

    [part] = report.partitions
    [output] = part.outputs
    assert (part.dt, part.inputs, part.rows_in, part.rows_out, part.duplicates_dropped) == (
        "2024-03-10", 10, 50, 50, 0)
    assert part.input_bytes == sizes
    assert names(lake) == [output.path.rsplit("/", 1)[1]]
    assert names(lake)[0].startswith("compacted-")
    stored = pq.read_table(output.path)
    assert stored.schema.remove_metadata() == EVENT_SCHEMA
    assert stored.to_pylist() == sorted((event(n) for n in range(50)), key=sort_key)
    metadata = pq.ParquetFile(output.path).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    assert [c.column_index for c in metadata.row_group(0).sorting_columns] == [1, 2, 0]
    assert (report.files_in, report.files_out, report.skipped) == (10, 1, 0)


def test_rows_interleaved_across_files_come_out_in_sort_order(lake: Lake) -> None:
    # given files that each hold every third event, so their ranges interleave
    write_files(lake, [list(range(start, 60, 4)) for start in range(4)])

    compact(lake)

    [file] = lake.list_files()
    rows = pq.read_table(file.path).to_pylist()
    assert rows == sorted(rows, key=sort_key)
    assert [r["event_id"] for r in sorted(rows, key=lambda r: r["event_id"])] == ids(
        DAY, range(60))


def test_copies_of_an_event_in_three_files_are_kept_once(lake: Lake) -> None:
    # given event 7 in three files (a stream redelivery and a sweep)
    write_files(lake, [[1, 2, 7], [3, 7], [4, 5], [7, 6]])

    report = compact(lake)

    [file] = lake.list_files()
    stored = pq.read_table(file.path)["event_id"].to_pylist()
    assert sorted(stored) == ids(DAY, [1, 2, 3, 4, 5, 6, 7])
    assert report.duplicates_dropped == 2
    assert report.partitions[0].conflicts == []


def test_copies_that_differ_keep_the_earliest_ingested_and_are_reported(
        lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    # given two different contents under one event_id (corruption), and two true copies
    later = event(1, ingested_at=INGESTED + timedelta(hours=1), content_hash="hash-late")
    for i, rows in enumerate([[event(0), later], [event(1)], [event(2)], [event(2)]]):
        lake.write_partition("2024-03-10", table(rows), f"batch-{i}")

    with caplog.at_level(logging.WARNING, logger="eventlake.lake.compact"):
        report = compact(lake)

    [file] = lake.list_files()
    stored = {r["event_id"]: r for r in pq.read_table(file.path).to_pylist()}
    assert stored[event(1)["event_id"]] == event(1)  # the earliest ingested copy
    assert len(stored) == 3
    assert report.conflicts == [event(1)["event_id"]]
    assert report.duplicates_dropped == 2
    assert "different content" in caplog.text


def test_a_tiny_target_splits_a_partition_into_several_outputs(ten_small_files: Lake) -> None:
    lake = ten_small_files
    total = sum(f.size for f in lake.list_files())

    report = compact(lake, target_bytes=total // 3 + 1)

    [part] = report.partitions
    assert len(part.outputs) == 3
    assert sorted(names(lake)) == sorted(w.path.rsplit("/", 1)[1] for w in part.outputs)
    assert all(n.endswith(f"-{k}-of-3.parquet") for k, n in enumerate(sorted(names(lake))))
    seen: list[str] = []
    for output in part.outputs:
        rows = pq.read_table(output.path).to_pylist()
        assert rows == sorted(rows, key=sort_key)
        seen += [r["event_id"] for r in rows]
    assert sorted(seen) == ids(DAY, range(50))  # each event in exactly one output

    # and a later run with a large target merges the outputs into one file
    again = compact(lake, min_files=2)
    assert again.files_in == 3 and again.files_out == 1


def test_a_second_run_changes_nothing(ten_small_files: Lake) -> None:
    lake = ten_small_files
    compact(lake)
    before = [(f.path, f.size, f.modified) for f in lake.list_files()]

    report = compact(lake, min_files=1)

    assert (report.partitions, report.skipped) == ([], 1)
    assert [(f.path, f.size, f.modified) for f in lake.list_files()] == before


def test_outputs_of_an_earlier_compaction_are_inputs_of_the_next(ten_small_files: Lake) -> None:
    lake = ten_small_files
    compact(lake)
    write_files(lake, [[100, 101], [102, 3], [103]], prefix="late")  # 3 is a copy

    report = compact(lake)

    assert report.files_in == 4 and report.duplicates_dropped == 1
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(
        DAY, [*range(50), 100, 101, 102, 103])
    assert len(lake.list_files()) == 1


def test_a_big_partition_merges_only_its_small_files(lake: Lake) -> None:
    # given two large files (earlier outputs) and four small ones, two holding copies
    write_files(lake, [list(range(0, 200)), list(range(200, 400))], prefix="large")
    large = {f.path: f.modified for f in lake.list_files()}
    write_files(lake, [[400], [401, 150], [402]])
    differing = event(151, content_hash="hash-other")  # corruption: reported, large copy kept
    lake.write_partition("2024-03-10", table([event(403), differing]), "stream-z")
    sizes = {f.path: f.size for f in lake.list_files()}
    small = max(size for path, size in sizes.items() if path not in large)
    assert min(sizes[path] for path in large) > small + 1

    # when the whole partition does not fit in one target
    report = compact(lake, small_file_bytes=small + 1, target_bytes=sum(sizes.values()) - 1)

    [part] = report.partitions
    assert (part.inputs, len(part.outputs), part.duplicates_dropped) == (4, 1, 2)
    assert part.conflicts == [event(151)["event_id"]]
    files = lake.list_files()
    assert {f.path: f.modified for f in files if f.path in large} == large  # untouched
    assert len(files) == 3
    merged = pq.read_table(part.outputs[0].path)["event_id"].to_pylist()
    assert sorted(merged) == ids(DAY, [400, 401, 402, 403])
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(DAY, range(404))


# -- what is compacted -------------------------------------------------------------------------

def files(*sizes: int) -> list[LakeFile]:
    return [LakeFile(f"/lake/events/dt=2024-03-10/f{i}.parquet", "2024-03-10", size)
            for i, size in enumerate(sizes)]


@pytest.mark.parametrize(("sizes", "min_files", "expected"), [
    ((5,), 1, False),                  # one file: compacted already
    ((5, 5, 5, 5), 4, True),           # enough small files
    ((5, 5, 5), 4, False),             # too few yet: let them gather
    ((5, 5, 5), 2, True),              # a closed day: its last few files become one
    ((50, 60, 70, 80), 4, False),      # all large: compacted already
    ((50, 5, 5, 5), 4, True),          # fits in one target: the large file joins the merge
    ((500, 500, 5), 2, False),         # too big to fit: one small file is nothing to merge
    ((500, 500, 5, 5), 2, True),       # ... two are (the large ones stay as they are)
    ((500, 500, 5, 5), 4, False),      # ... counted against min_files
])
def test_which_partitions_need_compaction(sizes: tuple[int, ...], min_files: int,
                                          expected: bool) -> None:
    assert needs_compaction(files(*sizes), min_files=min_files, small_file_bytes=10,
                            target_bytes=100) is expected


def test_compacted_and_young_partitions_are_skipped(lake: Lake) -> None:
    write_files(lake, [[1, 2, 3]], day=date(2024, 3, 8))                  # one file
    write_files(lake, [[1], [2], [3]], day=date(2024, 3, 9))              # below min_files
    write_files(lake, [[1], [2], [3], [4]], day=date(2024, 3, 10))        # fresh files
    before = sorted(f.path for f in lake.list_files())

    report = compact(lake, min_age_seconds=60)

    assert (report.partitions, report.skipped) == ([], 3)
    assert sorted(f.path for f in lake.list_files()) == before


def test_young_files_stay_while_the_settled_ones_merge(lake: Lake) -> None:
    old = write_files(lake, [[1], [2], [3], [4]])
    young = write_files(lake, [[5], [6]], prefix="fresh")
    now = datetime.now(UTC)
    for path in old:
        os.utime(path, (time.time() - 600, time.time() - 600))

    report = compact(lake, min_age_seconds=60, now=now)

    assert report.files_in == 4
    assert sorted(names(lake))[1:] == sorted(p.rsplit("/", 1)[1] for p in young)
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(DAY, range(1, 7))


def test_only_partitions_in_the_date_range_are_compacted(lake: Lake) -> None:
    days = [date(2024, 3, d) for d in (8, 9, 10, 11)]
    for day in days:
        write_files(lake, [[1], [2], [3], [4]], day=day)

    report = compact(lake, start=date(2024, 3, 9), end=date(2024, 3, 10))

    assert [p.dt for p in report.partitions] == ["2024-03-09", "2024-03-10"]
    assert [len(names(lake, day)) for day in days] == [4, 1, 1, 4]


def test_bad_thresholds_are_refused(lake: Lake) -> None:
    with pytest.raises(ConfigError, match="target_bytes"):
        compact(lake, target_bytes=0)
    with pytest.raises(ConfigError, match="min_age_seconds"):
        compact(lake, min_age_seconds=-1)


def test_the_report_is_plain_json(ten_small_files: Lake) -> None:
    report = compact(ten_small_files)

    data = json.loads(json.dumps(report.to_dict()))

    assert isinstance(report, CompactReport)
    assert (data["files_in"], data["files_out"], data["duplicates_dropped"]) == (10, 1, 0)
    assert data["partitions"][0]["outputs"][0]["rows"] == 50
    assert data["bytes_out"] == report.partitions[0].output_bytes > 0


# -- crashes -----------------------------------------------------------------------------------

def test_a_crash_while_deleting_the_inputs_is_finished_by_the_next_run(
        ten_small_files: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = ten_small_files
    real_delete = lake.delete

    def delete_three_then_crash(paths: Any) -> None:
        real_delete(list(paths)[:3])
        raise OSError("killed while deleting")

    with monkeypatch.context() as killed:
        killed.setattr(lake, "delete", delete_three_then_crash)
        with pytest.raises(OSError, match="killed"):
            compact(lake)

    # meanwhile: the output and 7 inputs, copies that readers de-duplicate
    assert len(lake.list_files()) == 8
    assert lake.read().num_rows > 50
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(DAY, range(50))

    report = compact(lake)

    assert report.leftovers_removed == 7
    [file] = lake.list_files()
    assert sorted(pq.read_table(file.path)["event_id"].to_pylist()) == ids(DAY, range(50))


def test_leftovers_without_a_record_are_merged_again(
        ten_small_files: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = ten_small_files
    real_delete = lake.delete
    with monkeypatch.context() as killed:
        killed.setattr(lake, "delete", lambda paths: (real_delete(list(paths)[:8]), 1 / 0))
        with pytest.raises(ZeroDivisionError):
            compact(lake)
    (Path(lake.root) / "_eventlake/compaction/dt=2024-03-10").unlink()

    report = compact(lake, min_files=2)

    assert report.leftovers_removed == 0 and report.files_in == 3
    [file] = lake.list_files()
    assert sorted(pq.read_table(file.path)["event_id"].to_pylist()) == ids(DAY, range(50))


def test_a_crash_while_writing_outputs_is_redone_with_the_same_names(
        ten_small_files: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = ten_small_files
    target = sum(f.size for f in lake.list_files()) // 3 + 1
    with monkeypatch.context() as killed:
        written = crash_after_one_write(lake, killed)
        with pytest.raises(OSError, match="killed"):
            compact(lake, target_bytes=target)
    assert len(lake.list_files()) == 11  # every input, and the first output

    report = compact(lake, target_bytes=target)

    [part] = report.partitions
    assert part.inputs == 10  # the same plan, not the first output merged again
    assert written[0] in [w.path for w in part.outputs]
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(DAY, range(50))
    assert len(lake.list_files()) == 3
    assert lake.read().num_rows == 50


# -- readers and other compactions meanwhile ---------------------------------------------------

def test_readers_in_a_loop_see_each_event_once_while_compaction_runs(lake: Lake) -> None:
    days = [date(2024, 3, 9), date(2024, 3, 10)]
    for day in days:
        write_files(lake, [list(range(i * 4, i * 4 + 4)) for i in range(12)], day=day)
    expected = sorted(i for day in days for i in ids(day, range(48)))

    def distinct() -> list[str]:
        got = read_distinct(lake)["event_id"].to_pylist()
        return [] if sorted(got) == expected else [f"{len(got)} rows, {len(set(got))} ids"]

    def plain() -> list[str]:  # copies allowed, no gaps
        got = set(lake.read()["event_id"].to_pylist())
        return [] if got == set(expected) else [f"{len(got)} ids"]

    def streamed() -> list[str]:
        got = {i for t in lake.iter_tables() for i in t["event_id"].to_pylist()}
        return [] if got == set(expected) else [f"{len(got)} ids"]

    def compactions() -> None:
        total = sum(f.size for f in lake.list_files(dts=["2024-03-10"]))
        for round_ in range(6):
            # copies of known events keep arriving; compaction alternates split and merge
            for day in days:
                write_files(lake, [[round_, 40 + round_], [round_ + 10]], day=day,
                            prefix=f"again{round_}")
            compact(lake, min_files=2, target_bytes=total // 2 if round_ % 2 else total * 4)
            time.sleep(0.01)

    reads, failures = read_while(compactions, {"read_distinct": distinct, "read": plain,
                                               "iter_tables": streamed})

    assert failures == []
    assert min(reads.values()) >= 3
    assert [len(names(lake, day)) for day in days] == [1, 1]


def test_two_compactions_at_once_lose_nothing(lake: Lake) -> None:
    write_files(lake, [list(range(i * 3, i * 3 + 3)) for i in range(16)])
    write_files(lake, [[0, 1], [5]], prefix="copy")
    reports: list[CompactReport] = []
    errors: list[BaseException] = []

    def run(target: int) -> None:
        try:
            reports.append(compact(lake, min_files=2, target_bytes=target))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in (10**9, 3000, 10**9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    compact(lake, min_files=2)  # whatever the race left, one more run settles it

    assert errors == []
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(DAY, range(48))
    [file] = lake.list_files()
    assert pq.read_table(file.path).num_rows == 48


# -- read_distinct -----------------------------------------------------------------------------

def test_read_distinct_dedupes_only_partitions_with_several_files(lake: Lake) -> None:
    write_files(lake, [[1, 2], [2, 3]], day=date(2024, 3, 9))
    # a single file of an eventlake writer is trusted: they never put two copies in one file
    lake.write_partition("2024-03-10", table([event(1), event(1)]), "stream-single")
    # a single file planted by hand is not
    lake.write_partition("2024-03-08", table([event(1, date(2024, 3, 8))] * 2), "restored")

    got = read_distinct(lake, columns=["event_id", "event_type"])

    assert got.schema.names == ["event_id", "event_type"]
    assert Counter(got["event_id"].to_pylist()) == Counter(
        [*ids(date(2024, 3, 8), [1]), *ids(date(2024, 3, 9), [1, 2, 3]), *ids(DAY, [1, 1])])
    assert read_distinct(lake, start=date(2024, 3, 9), end=date(2024, 3, 9)).num_rows == 3
    assert read_distinct(lake, start=date(2024, 4, 1)).schema == EVENT_SCHEMA


# -- housekeeping ------------------------------------------------------------------------------

def test_stale_temp_files_of_crashed_writers_are_removed(lake: Lake) -> None:
    write_files(lake, [[1]])
    write_files(lake, [[1]], day=date(2024, 3, 1))
    folder = Path(lake.root) / "events/dt=2024-03-10"
    stale = folder / ".stream-x.parquet.tmp-0123456789ab"
    fresh = folder / ".stream-y.parquet.tmp-ba9876543210"
    other = folder / ".keep-me"
    out_of_range = Path(lake.root) / "events/dt=2024-03-01/.stream-z.parquet.tmp-aaaaaaaaaaaa"
    for path in (stale, fresh, other, out_of_range):
        path.write_bytes(b"half a file")
    two_hours_ago = time.time() - 7200
    for path in (stale, other, out_of_range):
        os.utime(path, (two_hours_ago, two_hours_ago))

    report = compact(lake, start=date(2024, 3, 5))

    assert report.temp_files_removed == 1
    assert not stale.exists()
    assert fresh.exists() and other.exists() and out_of_range.exists()
    assert remove_stale_temp_files(lake) == 1  # the whole lake: the one out of range


def test_stale_temp_files_in_state_and_quarantine_are_removed_whatever_the_range(
        lake: Lake) -> None:
    # given temp files a killed writer left beside a lease, the watermark and a quarantine batch
    write_files(lake, [[1]])
    root = Path(lake.root)
    stale = [root / "_eventlake/locks/.sweep.tmp-0123456789ab",
             root / "_eventlake/.watermark.json.tmp-00112233aabb",
             root / "_quarantine/dt=2024-03-10/.stream-q.jsonl.tmp-ffeeddccbbaa"]
    fresh = root / "_eventlake/.watermark.json.tmp-abcdefabcdef"
    other = root / "_eventlake/.keep-me"
    for path in (*stale, fresh, other):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a state object")
    two_hours_ago = time.time() - 7200
    for path in (*stale, other):
        os.utime(path, (two_hours_ago, two_hours_ago))

    # when a compaction runs, over a range that holds no partition
    report = compact(lake, start=date(2030, 1, 1))

    # then the stale ones are gone, the fresh one (a writer may be renaming it) and others stay
    assert report.temp_files_removed == 3
    assert not any(path.exists() for path in stale)
    assert fresh.exists() and other.exists()


def test_compacting_a_lake_that_was_never_made_fails_naming_it(tmp_path: Path) -> None:
    # given a lake URI with a typo: nothing there, no marker
    typo = Lake(Settings(lake_uri=str(tmp_path / "laek")))

    # when compaction runs, then it fails instead of reporting 0 partitions compacted
    with pytest.raises(LakeNotFoundError, match="laek"):
        compact(typo)
    assert not (tmp_path / "laek").exists()


def test_compacting_an_initialised_empty_lake_compacts_nothing(lake: Lake) -> None:
    lake.create_marker(table="events")

    report = compact(lake)

    assert (report.partitions, report.files_in) == ([], 0)


# -- each event once in the files, whatever the file count (issue 8, item 5) -------------------

def test_a_partition_below_min_files_holding_copies_is_compacted(lake: Lake) -> None:
    # given a day whose sweep file and stream file both hold events 2 and 3 (the sweep ran
    # before the stream delivered them), and a day of two files without copies
    write_files(lake, [[1, 2, 3], [2, 3, 4]], prefix="sweep")
    other = date(2024, 3, 11)
    write_files(lake, [[1, 2], [3, 4]], day=other)

    # when the scheduled compaction runs (min_files=4, as the hourly flow calls it)
    report = compact(lake, min_files=4)

    # then the day with copies is one file holding each event once; the other is untouched
    [file] = lake.list_files(dts=[DAY.isoformat()])
    assert sorted(pq.read_table(file.path)["event_id"].to_pylist()) == ids(DAY, range(1, 5))
    assert ([p.dt for p in report.partitions], report.duplicates_dropped) == (["2024-03-10"], 2)
    assert len(names(lake, other)) == 2 and report.skipped == 1


def test_a_small_file_copying_a_large_held_file_is_rewritten_without_the_copies(
        lake: Lake) -> None:
    # given a large (already compacted) file and a small one re-delivering two of its events
    write_files(lake, [list(range(0, 40))], prefix="compacted-like")
    write_files(lake, [[5, 6, 99]], prefix="stream")
    sizes = {f.path: f.size for f in lake.list_files()}

    # when compacted with a target the large file alone fills
    report = compact(lake, min_files=4, small_file_bytes=min(sizes.values()) + 1,
                     target_bytes=max(sizes.values()))

    # then every event is stored once, the large file untouched
    stored = [i for f in lake.list_files() for i in pq.read_table(f.path)["event_id"].to_pylist()]
    assert sorted(stored) == ids(DAY, [*range(0, 40), 99])
    assert report.duplicates_dropped == 2


def test_a_partition_found_disjoint_is_not_read_again_until_its_files_change(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a closed day that kept two files without copies (below min_files)
    write_files(lake, [[1, 2], [3, 4]])
    reads: list[str] = []
    read_file = lake.read_file
    monkeypatch.setattr(lake, "read_file",
                        lambda path, columns=None, **kw: reads.append(path)
                        or read_file(path, columns, **kw))
    # when the hourly compaction runs twice
    first = compact(lake, min_files=4)
    read_first = len(reads)
    second = compact(lake, min_files=4)
    # then the first run read the ids of both files, the second nothing, and both left it
    assert (read_first, len(reads)) == (2, 2)
    assert (first.skipped, second.skipped, len(names(lake))) == (1, 1, 2)
    # when a re-delivery adds a file holding a copy of event 3
    write_files(lake, [[3, 5]], prefix="late")
    third = compact(lake, min_files=4)
    # then the changed partition is looked at again, and merged with each event once
    [file] = lake.list_files(dts=[DAY.isoformat()])
    assert sorted(pq.read_table(file.path)["event_id"].to_pylist()) == ids(DAY, range(1, 6))
    assert third.duplicates_dropped == 1


def test_young_files_holding_copies_still_wait(lake: Lake) -> None:
    write_files(lake, [[1, 2], [2, 3]])

    report = compact(lake, min_files=4, min_age_seconds=60)

    assert (report.partitions, report.skipped, len(names(lake))) == ([], 1, 2)


# -- large files holding copies of each other (issue 8, item 5) --------------------------------

def plain_count(lake: Lake) -> int:
    """count(*) over every file, as an engine that knows nothing of eventlake counts."""
    return int(duckdb.sql(f"select count(*) from read_parquet('{lake.events_glob}')")
               .fetchall()[0][0])


def test_two_large_files_holding_the_same_events_are_merged_whatever_the_file_count(
        lake: Lake) -> None:
    # given a partition too big for one target whose only two files are large and hold the
    # same 300 events (a backfill racing a sweep)
    write_files(lake, [list(range(300))], prefix="sweep")
    write_files(lake, [list(range(300))], prefix="backfill")
    size = min(f.size for f in lake.list_files())
    assert plain_count(lake) == 600

    # when the scheduled compaction runs (min_files=4), thresholds scaled to the data
    report = compact(lake, min_files=4, small_file_bytes=size // 2, target_bytes=size + 1)

    # then the partition is merged and a plain scan counts each event once
    assert ([p.dt for p in report.partitions], report.skipped) == (["2024-03-10"], 0)
    assert (report.files_in, report.duplicates_dropped, report.quarantined) == (2, 300, 0)
    assert plain_count(lake) == 300
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(DAY, range(300))


def test_a_small_copy_of_a_large_file_rewrites_neither_large_file(lake: Lake) -> None:
    # given two large disjoint files and one small file re-delivering an event of the first
    write_files(lake, [list(range(0, 200)), list(range(200, 400))], prefix="large")
    large = {f.path: f.modified for f in lake.list_files()}
    write_files(lake, [[5, 500]], prefix="stream")
    sizes = [f.size for f in lake.list_files()]

    report = compact(lake, min_files=4, small_file_bytes=min(sizes) + 1,
                     target_bytes=sum(sizes) - 1)

    # then only the small file is rewritten, and each event is stored once
    files = lake.list_files()
    assert {f.path: f.modified for f in files if f.path in large} == large
    assert (report.files_in, report.duplicates_dropped) == (1, 1)
    assert plain_count(lake) == 401
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(DAY, [*range(400), 500])


def test_only_the_large_files_sharing_events_are_merged_with_the_small_ones(lake: Lake) -> None:
    # given three large files, the first two sharing events 150..199 (a large sweep file
    # racing a compacted output), and four small files, one copying an event of the third
    write_files(lake, [list(range(0, 200)), list(range(150, 350)), list(range(400, 600))],
                prefix="large")
    [first, second, third] = sorted(lake.list_files(), key=lambda f: f.path)
    write_files(lake, [[450, 700], [701], [702], [703]], prefix="stream")
    sizes = [f.size for f in lake.list_files()]

    report = compact(lake, min_files=4, small_file_bytes=min(f.size for f in
                                                             (first, second, third)) - 1,
                     target_bytes=sum(sizes) - 1)

    # then the third large file is untouched; the first two are merged with the small files
    [part] = report.partitions
    assert (part.inputs, part.duplicates_dropped, part.quarantined) == (6, 51, 0)
    files = lake.list_files()
    assert third in files and third.modified == files[files.index(third)].modified
    assert first not in files and second not in files
    assert plain_count(lake) == 554
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(
        DAY, [*range(350), *range(400, 600), 700, 701, 702, 703])


def test_a_differing_copy_between_two_large_files_is_quarantined(lake: Lake) -> None:
    # given two large files sharing events, one of them under the same id with new content
    write_files(lake, [list(range(100))], prefix="sweep")
    reused = event(7, ingested_at=INGESTED + timedelta(days=1), content_hash="hash-reused")
    lake.write_partition(DAY.isoformat(), table([reused, *(event(n) for n in range(8, 100))]),
                         "backfill")
    size = min(f.size for f in lake.list_files())

    report = compact(lake, min_files=4, small_file_bytes=size // 2, target_bytes=size + 1)

    # then the copy ingested first is kept and the other is in the quarantine
    [entry] = lake.read_quarantine()
    assert entry.record["content_hash"] == "hash-reused" and "`hash-7`" in entry.reason
    assert (report.quarantined, report.conflicts) == (1, [event(7)["event_id"]])
    assert plain_count(lake) == 100


def test_large_files_found_disjoint_are_not_read_again_until_they_change(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a big partition of two large disjoint files, busy with small ones
    write_files(lake, [list(range(0, 400)), list(range(400, 800))], prefix="large")
    large = [f.path for f in lake.list_files()]
    small = min(f.size for f in lake.list_files()) // 2
    id_reads: list[str] = []
    read_file = lake.read_file

    def counting(path: str, columns: Sequence[str] | None = None, **kw: Any) -> pa.Table:
        if columns == ["event_id"]:
            id_reads.append(path)
        return read_file(path, columns, **kw)

    monkeypatch.setattr(lake, "read_file", counting)

    # when the hourly compaction merges new small files twice
    for round_ in range(2):
        write_files(lake, [[900 + round_ * 10 + i] for i in range(4)], prefix=f"s{round_}")
        report = compact(lake, min_files=4, small_file_bytes=small, target_bytes=small * 4)
        assert report.files_in >= 4

    # then the large files' ids were read for copies once, not every run
    assert sorted(p for p in id_reads if p in large) == sorted(large)
    assert plain_count(lake) == 808


def test_a_young_large_file_holding_copies_waits_until_it_settles(lake: Lake) -> None:
    # given a settled large file, and a fresh one holding the same events
    [settled] = write_files(lake, [list(range(300))], prefix="sweep")
    write_files(lake, [list(range(300))], prefix="backfill")
    os.utime(settled, (time.time() - 600, time.time() - 600))
    size = min(f.size for f in lake.list_files())
    thresholds: dict[str, Any] = {"min_files": 4, "small_file_bytes": size // 2,
                                  "target_bytes": size + 1, "min_age_seconds": 60}

    # when compacted while the fresh file is young, then once it has settled
    young = compact(lake, **thresholds)
    settled_report = compact(lake, **thresholds, now=datetime.now(UTC) + timedelta(minutes=5))

    # then the first run leaves both, the second merges them
    assert (young.partitions, young.skipped) == ([], 1)
    assert settled_report.files_in == 2
    assert plain_count(lake) == 300


def test_a_crash_while_deleting_merged_large_files_is_finished_by_the_next_run(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given two large files holding the same events, merged until a crash while deleting
    write_files(lake, [list(range(300))], prefix="sweep")
    write_files(lake, [list(range(300))], prefix="backfill")
    size = min(f.size for f in lake.list_files())
    thresholds: dict[str, Any] = {"min_files": 4, "small_file_bytes": size // 2,
                                  "target_bytes": size + 1}
    real_delete = lake.delete

    def delete_one_then_crash(paths: Any) -> None:
        real_delete(list(paths)[:1])
        raise OSError("killed while deleting")

    with monkeypatch.context() as killed:
        killed.setattr(lake, "delete", delete_one_then_crash)
        with pytest.raises(OSError, match="killed"):
            compact(lake, **thresholds)
    assert len(lake.list_files()) == 2  # the output, and one input it replaces

    # when the next scheduled run comes
    report = compact(lake, **thresholds)

    # then it deletes the input left over, and a plain scan counts each event once
    assert (report.leftovers_removed, report.partitions) == (1, [])
    [file] = lake.list_files()
    assert "compacted-" in file.path
    assert plain_count(lake) == 300


def test_a_crash_while_writing_merged_large_files_is_redone_with_the_same_names(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given two large files sharing half their events, merged into two outputs
    write_files(lake, [list(range(0, 300))], prefix="sweep")
    write_files(lake, [list(range(150, 450))], prefix="backfill")
    sizes = [f.size for f in lake.list_files()]
    thresholds: dict[str, Any] = {"min_files": 4, "small_file_bytes": min(sizes) // 2,
                                  "target_bytes": sum(sizes) // 2 + 1}
    with monkeypatch.context() as killed:
        written = crash_after_one_write(lake, killed)
        with pytest.raises(OSError, match="killed"):
            compact(lake, **thresholds)
    assert len(lake.list_files()) == 3  # both inputs, and the first output

    # when the next scheduled run comes
    report = compact(lake, **thresholds)

    # then it recognises the interrupted plan: the same inputs, the same output names
    [part] = report.partitions
    assert (part.inputs, len(part.outputs)) == (2, 2)
    assert written[0] in [w.path for w in part.outputs]
    assert sorted(f.path for f in lake.list_files()) == sorted(w.path for w in part.outputs)
    assert plain_count(lake) == 450
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(DAY, range(450))


# -- an event_id reused with new content (issue 8, item 6) -------------------------------------

def test_a_dropped_copy_with_other_content_is_quarantined_before_the_inputs_go(
        lake: Lake) -> None:
    # given event 1 stored, and later a second event under the same id with new content
    newer = event(1, ingested_at=INGESTED + timedelta(hours=1), content_hash="hash-new",
                  event_payload='{"n": 1, "note": "changed"}')
    for i, rows in enumerate([[event(0), event(1)], [newer, event(2)]]):
        lake.write_partition(DAY.isoformat(), table(rows), f"stream-{i}")
    inputs = [f.path for f in lake.list_files()]

    # when compacted
    report = compact(lake, min_files=2)

    # then the first copy is kept and the newer one is in the quarantine, raw, saying why
    [file] = lake.list_files()
    stored = {r["event_id"]: r for r in pq.read_table(file.path).to_pylist()}
    assert stored[event(1)["event_id"]] == event(1)
    [entry] = lake.read_quarantine()
    assert (entry.rule, entry.source) == ("event.id_reused", "compaction")
    assert entry.record["event_id"] == newer["event_id"]
    assert entry.record["event_payload"] == newer["event_payload"]
    assert entry.record["ingested_at"] == newer["ingested_at"].isoformat()
    for words in (f"`{newer['event_id']}`", "`hash-1`", "`hash-new`", inputs[1],
                  "events are immutable: send it under a new event_id"):
        assert words in entry.reason
    assert (report.quarantined, report.to_dict()["quarantined"]) == (1, 1)
    assert report.conflicts == [newer["event_id"]]


def test_a_copy_differing_from_a_held_file_is_quarantined(lake: Lake) -> None:
    # given a large file holding event 5, and a small file with other content under its id
    write_files(lake, [list(range(0, 40))], prefix="big")
    reused = event(5, ingested_at=INGESTED + timedelta(days=1), content_hash="hash-reused")
    lake.write_partition(DAY.isoformat(), table([reused, event(99)]), "stream-late")
    sizes = [f.size for f in lake.list_files()]

    report = compact(lake, min_files=1, small_file_bytes=min(sizes) + 1,
                     target_bytes=max(sizes))

    [entry] = lake.read_quarantine()
    assert entry.record["content_hash"] == "hash-reused" and "`hash-5`" in entry.reason
    assert report.quarantined == 1


def test_true_copies_are_dropped_without_quarantine(lake: Lake) -> None:
    write_files(lake, [[1, 2], [2, 3]])

    report = compact(lake, min_files=2)

    assert (report.duplicates_dropped, report.quarantined) == (1, 0)
    assert lake.read_quarantine() == []


# -- a file compaction cannot read (issue 8, item 12) ------------------------------------------

@pytest.mark.parametrize("kind", ["corrupt", "foreign", "mistyped"])
def test_an_unreadable_file_skips_its_partition_names_it_and_the_others_go_on(
        lake: Lake, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    # given three days of small files, the middle one holding a file that is not the lake's
    days = [date(2024, 3, d) for d in (9, 10, 11)]
    for day in days:
        write_files(lake, [[1], [2], [3], [4]], day=day)
    bad = Path(lake.root) / "events" / "dt=2024-03-10" / "zz-foreign.parquet"
    if kind == "corrupt":
        bad.write_bytes(b"PAR1 not really parquet")
    elif kind == "foreign":
        pq.write_table(pa.table({"order": [1], "total": [9.5]}), bad)
    else:
        pq.write_table(table([event(9)]).set_column(0, "event_id", pa.array([9])), bad)

    # when compacted
    with caplog.at_level(logging.ERROR, logger="eventlake.lake.compact"):
        report = compact(lake)

    # then the other days are compacted, the bad day is left as it was and reported by file
    assert [p.dt for p in report.partitions] == ["2024-03-09", "2024-03-11"]
    assert [len(names(lake, day)) for day in days] == [1, 5, 1]
    [failed] = report.failed
    assert (failed["dt"], failed["file"]) == ("2024-03-10", str(bad))
    assert f"`{bad}`" in failed["reason"] and not report.ok
    assert report.to_dict()["failed"] == [failed]
    assert f"`{bad}`" in caplog.text


# -- a lone file holding an event twice (review26) ---------------------------------------------

def test_a_lone_hand_planted_file_holding_an_event_twice_is_rewritten_once_each(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a day whose only file was planted by hand (a restore, another tool) and holds
    # events 2 and 3 twice, and a day whose lone planted file holds each event once
    other = date(2024, 3, 11)
    for day, numbers in ((DAY, [1, 2, 2, 3, 3, 4]), (other, [1, 2])):
        folder = Path(lake.root) / "events" / f"dt={day.isoformat()}"
        folder.mkdir(parents=True)
        pq.write_table(table([event(n, day) for n in numbers]), folder / "restored.parquet")
    assert plain_count(lake) == 8

    # when the scheduled compaction runs (min_files=4, as the hourly flow calls it)
    report = compact(lake, min_files=4)

    # then the day with copies is rewritten holding each event once (a plain scan counts
    # each once), and the day without copies is left as it is
    [file] = lake.list_files(dts=[DAY.isoformat()])
    assert sorted(pq.read_table(file.path)["event_id"].to_pylist()) == ids(DAY, range(1, 5))
    assert ([p.dt for p in report.partitions], report.duplicates_dropped) == (["2024-03-10"], 2)
    assert names(lake, other) == ["restored.parquet"] and plain_count(lake) == 6

    # and the next runs read neither lone file again (the verified one is in its manifest)
    reads: list[str] = []
    read_file = lake.read_file
    monkeypatch.setattr(lake, "read_file",
                        lambda path, columns=None, **kw: reads.append(path)
                        or read_file(path, columns, **kw))
    again = compact(lake, min_files=4)
    assert (again.partitions, again.skipped, reads) == ([], 2, [])


def test_a_lone_file_of_an_eventlake_writer_is_not_read_by_compaction(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a day whose only file a writer of eventlake wrote (writers write each id once)
    write_files(lake, [[1, 2, 3]], prefix="stream")
    reads: list[str] = []
    read_file = lake.read_file
    monkeypatch.setattr(lake, "read_file",
                        lambda path, columns=None, **kw: reads.append(path)
                        or read_file(path, columns, **kw))

    report = compact(lake, min_files=4)

    assert (report.partitions, report.skipped, reads) == ([], 1, [])
