"""The Parquet cold store on local disk: layout, exact round trips, atomicity, pruning, state."""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import eventlake.lake.store as lake_module
from eventlake.config import Settings
from eventlake.errors import LakeNotFoundError, StorageError, TransientError
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.store import (
    Lake,
    LakeDataError,
    LakeFile,
    LakeFileError,
    LakeFileExistsError,
    QuarantineEntry,
    StateConflictError,
)
from eventlake.lake.vanish import VANISH_ATTEMPTS, file_vanished, retry_on_vanish
from tests.lake.test_vanish import EVERY_PAUSE, pauses_recorded

MIDNIGHT = datetime(2024, 3, 10, tzinfo=UTC)
INGESTED = datetime(2024, 3, 11, 8, 30, 0, 123456, tzinfo=UTC)


def event(event_id: str, timestamp: datetime, event_type: str = "order.created",
          **fields: Any) -> dict[str, Any]:
    """One lake row; the fields not given get plain values."""
    row = {"event_id": event_id, "event_type": event_type, "timestamp": timestamp,
           "ingested_at": INGESTED, "source": "shop", "subject": f"order/{event_id}",
           "event_payload": json.dumps({"id": event_id}), "content_hash": f"hash-{event_id}"}
    row.update(fields)
    return row


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def day_rows(day: date, count: int = 3, prefix: str = "") -> list[dict[str, Any]]:
    start = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
    return [event(f"{prefix}{day.isoformat()}-{i}", start + timedelta(minutes=i))
            for i in range(count)]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


def all_files(root: Path) -> list[str]:
    """Every file under `root`, hidden ones included, relative to it."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- writing and reading back ------------------------------------------------------------------

def test_written_rows_read_back_with_exact_values(lake: Lake) -> None:
    # given rows with microsecond timestamps, unicode payloads and null source/subject
    rows = [
        event("a", MIDNIGHT + timedelta(hours=1, microseconds=1),
              event_payload=json.dumps({"name": "Zoë 🚀 東京", "n": 1}, ensure_ascii=False)),
        event("b", MIDNIGHT + timedelta(hours=2, microseconds=999_999), source=None,
              subject=None, event_payload="{}"),
        event("c", MIDNIGHT + timedelta(hours=3), event_type="ünïcode.type", subject=None),
    ]

    # when they are written and read back
    written = lake.write(table(rows), "batch-1")
    back = lake.read()

    # then one file holds them, and every value and type is exactly what was written
    assert [(w.dt, w.rows) for w in written] == [("2024-03-10", 3)]
    assert written[0].path == str(Path(lake.root) / "events/dt=2024-03-10/batch-1.parquet")
    assert written[0].bytes == os.path.getsize(written[0].path) > 0
    assert back.schema == EVENT_SCHEMA
    assert sorted(back.to_pylist(), key=lambda r: r["event_id"]) == rows


def test_rows_are_grouped_by_utc_date_across_midnight(lake: Lake) -> None:
    # given events on both sides of midnight UTC (one written in +02:00, the same instant)
    before = event("before", MIDNIGHT - timedelta(microseconds=1))
    at = event("at", MIDNIGHT)
    after = event("after", MIDNIGHT + timedelta(hours=23, minutes=59, seconds=59))

    # when they are written in one call
    written = lake.write(table([after, before, at]), "batch-1")

    # then each UTC date got its own file with its own rows
    assert [(w.dt, w.rows) for w in written] == [("2024-03-09", 1), ("2024-03-10", 2)]
    assert [f.dt for f in lake.list_files()] == ["2024-03-09", "2024-03-10"]
    assert lake.read(end=date(2024, 3, 9))["event_id"].to_pylist() == ["before"]
    assert sorted(lake.read(start=date(2024, 3, 10))["event_id"].to_pylist()) == ["after", "at"]


def test_each_file_is_sorted_by_type_then_timestamp_then_id(lake: Lake) -> None:
    # given rows in no particular order, with equal timestamps
    t0 = MIDNIGHT + timedelta(hours=5)
    rows = [event("z", t0, "b.type"), event("y", t0, "a.type"),
            event("x", t0 - timedelta(seconds=1), "b.type"), event("w", t0, "a.type"),
            event("v", t0 + timedelta(seconds=1), "a.type")]

    # when written
    [written] = lake.write(table(rows), "batch-1")

    # then the file itself is in (event_type, timestamp, event_id) order
    stored = pq.read_table(written.path)
    assert stored["event_id"].to_pylist() == ["w", "y", "v", "x", "z"]


def test_the_parquet_file_is_zstd_with_stats_and_dictionary_types(lake: Lake) -> None:
    [written] = lake.write(table(day_rows(date(2024, 3, 10))), "batch-1")

    metadata = pq.ParquetFile(written.path).metadata
    group = metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert {c.compression for c in columns.values()} == {"ZSTD"}
    assert columns["timestamp"].statistics.has_min_max
    assert "RLE_DICTIONARY" in columns["event_type"].encodings
    assert "RLE_DICTIONARY" not in columns["event_id"].encodings
    assert [c.column_index for c in group.sorting_columns] == [1, 2, 0]


def test_rewriting_the_same_name_replaces_the_file(lake: Lake, tmp_path: Path) -> None:
    # given a batch written once
    batch = table(day_rows(date(2024, 3, 10), 5))
    [first] = lake.write(batch, "shard-1-seq-100-200")
    content = Path(first.path).read_bytes()

    # when the same batch is retried under the same name
    [second] = lake.write(batch, "shard-1-seq-100-200")

    # then there is still one file, byte for byte the same, with the same rows
    assert second == first
    assert all_files(tmp_path / "lake") == ["events/dt=2024-03-10/shard-1-seq-100-200.parquet"]
    assert Path(second.path).read_bytes() == content
    assert lake.read().num_rows == 5


def test_if_absent_refuses_to_overwrite_and_keeps_the_old_file(lake: Lake, tmp_path: Path
                                                              ) -> None:
    old = table(day_rows(date(2024, 3, 10), 2))
    lake.write(old, "batch-1", if_absent=True)

    with pytest.raises(LakeFileExistsError, match="already exists"):
        lake.write(table(day_rows(date(2024, 3, 10), 4)), "batch-1", if_absent=True)

    assert lake.read().num_rows == 2
    assert all_files(tmp_path / "lake") == ["events/dt=2024-03-10/batch-1.parquet"]


def test_write_partition_takes_rows_of_one_date_and_sorts_them(lake: Lake) -> None:
    rows = day_rows(date(2024, 3, 10), 4)[::-1]

    written = lake.write_partition("2024-03-10", table(rows), "compacted-0001")

    assert (written.dt, written.rows) == ("2024-03-10", 4)
    assert pq.read_table(written.path)["event_id"].to_pylist() == [
        r["event_id"] for r in rows[::-1]]


def test_write_partition_refuses_rows_of_another_date(lake: Lake) -> None:
    rows = [*day_rows(date(2024, 3, 10), 2), event("late", MIDNIGHT + timedelta(days=1))]

    with pytest.raises(LakeDataError, match="dt=2024-03-10"):
        lake.write_partition("2024-03-10", table(rows), "compacted-0001")
    assert lake.list_files() == []


def test_an_empty_table_writes_nothing(lake: Lake) -> None:
    assert lake.write(table([]), "batch-1") == []
    assert lake.list_files() == []
    assert lake.read().num_rows == 0


# -- schema checks -----------------------------------------------------------------------------

def test_a_table_differing_only_in_nullability_and_metadata_is_cast(lake: Lake) -> None:
    loose = pa.schema([pa.field(f.name, f.type) for f in EVENT_SCHEMA],
                      metadata={b"pandas": b"{}"})
    rows = day_rows(date(2024, 3, 10))
    reordered = pa.Table.from_pylist(rows, schema=loose).select(EVENT_SCHEMA.names[::-1])

    lake.write(reordered, "batch-1")

    assert lake.read().to_pylist() == rows


def test_string_views_and_other_utc_timestamp_units_are_cast(lake: Lake) -> None:
    rows = day_rows(date(2024, 3, 10), 1)
    t = table(rows)
    t = t.set_column(0, "event_id", t["event_id"].cast(pa.large_string()))
    t = t.set_column(2, "timestamp", t["timestamp"].cast(pa.timestamp("ms", tz="UTC")))

    lake.write(t, "batch-1")

    assert lake.read().to_pylist() == rows


def test_a_planted_file_with_dictionary_encoded_strings_is_read_with_the_lakes_types(
        lake: Lake) -> None:
    # given a file another tool wrote with the lake's columns, its strings dictionary-encoded
    # (pandas categoricals, pyarrow's dictionary_encode), which plain readers read as text
    rows = day_rows(date(2024, 3, 10))
    t = table(rows)
    for name in ("event_type", "source"):
        i = t.schema.get_field_index(name)
        t = t.set_column(i, name, t[name].dictionary_encode())
    folder = Path(lake.root) / "events" / "dt=2024-03-10"
    folder.mkdir(parents=True)
    pq.write_table(t, folder / "restored.parquet")
    [planted] = lake.list_files()

    # then the lake takes it for one of its own: checked, read and typed as the lake's
    lake.check_foreign([planted])
    got = lake.read()
    assert got.schema == EVENT_SCHEMA and got.to_pylist() == rows
    assert lake.read_file(planted.path).to_pylist() == rows


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.drop_columns(["content_hash"]), r"missing \['content_hash'\]"),
    (lambda t: t.append_column("dt", pa.array(["x"] * t.num_rows)), r"unexpected \['dt'\]"),
    (lambda t: t.set_column(2, "timestamp", t["timestamp"].cast(pa.timestamp("us"))),
     "column `timestamp` is timestamp"),
    (lambda t: t.set_column(6, "event_payload", pa.array([1] * t.num_rows)),
     "column `event_payload` is int64, expected string"),
    (lambda t: pa.Table.from_arrays(
        [pa.array([None] * t.num_rows, pa.string()), *t.columns[1:]], schema=EVENT_SCHEMA),
     "column `event_id` has 3 null"),
])
def test_a_table_that_does_not_fit_the_schema_is_refused(lake: Lake, change: Any,
                                                         message: str) -> None:
    with pytest.raises(LakeDataError, match=message):
        lake.write(change(table(day_rows(date(2024, 3, 10)))), "batch-1")
    assert lake.list_files() == []


@pytest.mark.parametrize("name", ["", ".hidden", "_temp", "a/b", "../up", "x" * 201, "a b"])
def test_unsafe_file_names_are_refused(lake: Lake, name: str) -> None:
    with pytest.raises(LakeDataError, match="file name"):
        lake.write(table(day_rows(date(2024, 3, 10))), name)


# -- atomicity ---------------------------------------------------------------------------------

def test_a_crash_mid_write_leaves_nothing_visible(lake: Lake, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # given a file already in the partition, and a writer that dies after writing some bytes
    old = lake.write(table(day_rows(date(2024, 3, 10), 2)), "batch-1")[0]
    old_bytes = Path(old.path).read_bytes()
    seen_partial: list[list[str]] = []

    def dying_writer(t: pa.Table, sink: pa.NativeFile) -> None:
        sink.write(b"PAR1" + b"\0" * 4096)
        seen_partial.append(all_files(tmp_path / "lake"))
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(lake_module, "_write_parquet", dying_writer)

    # when a rewrite of that file and a new file both die mid-write
    with pytest.raises(RuntimeError, match="killed"):
        lake.write(table(day_rows(date(2024, 3, 10), 5)), "batch-1")
    with pytest.raises(RuntimeError, match="killed"):
        lake.write(table(day_rows(date(2024, 3, 10), 5)), "batch-2")

    # then while writing, the partial bytes were only in a hidden temp file ...
    assert any(Path(p).name.startswith(".batch-1.parquet.tmp-") for p in seen_partial[0])
    # ... which readers ignored, and afterwards only the old file is there, untouched
    assert all_files(tmp_path / "lake") == ["events/dt=2024-03-10/batch-1.parquet"]
    assert Path(old.path).read_bytes() == old_bytes
    assert lake.read().num_rows == 2


def test_readers_ignore_temp_hidden_and_foreign_files(lake: Lake, tmp_path: Path) -> None:
    # given a lake with one real file and the debris other tools (or a crash) leave
    lake.write(table(day_rows(date(2024, 3, 10))), "batch-1")
    events = tmp_path / "lake" / "events"
    for debris in ["dt=2024-03-10/.batch-2.parquet.tmp-abc123", "dt=2024-03-10/_SUCCESS",
                   "dt=2024-03-10/_tmp.parquet", "dt=2024-03-10/notes.txt",
                   "dt=garbage/x.parquet", "dt=2024-13-40/x.parquet", "loose.parquet",
                   "dt=2024-03-10/nested/deeper.parquet"]:
        (events / debris).parent.mkdir(parents=True, exist_ok=True)
        (events / debris).write_bytes(b"not parquet")

    # then only the real file is listed and read
    assert [Path(f.path).name for f in lake.list_files()] == ["batch-1.parquet"]
    assert lake.read().num_rows == 3


def foreign_files(lake: Lake, day: date) -> dict[str, Path]:
    """Files another tool dropped into a partition: not Parquet at all, a Parquet file of
    another schema (no `event_id`), and one whose `event_id` is a number."""
    folder = Path(lake.root) / "events" / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"corrupt": folder / "corrupt.parquet", "foreign": folder / "export.parquet",
             "mistyped": folder / "numbers.parquet"}
    files["corrupt"].write_bytes(b"PAR1 garbage, not parquet")
    pq.write_table(pa.table({"order": [1], "total": [9.5]}), files["foreign"])
    rows = table(day_rows(day, 1, "n-")).set_column(0, "event_id", pa.array([7], pa.int64()))
    pq.write_table(rows, files["mistyped"])
    return files


@pytest.mark.parametrize("kind", ["corrupt", "foreign", "mistyped"])
@pytest.mark.parametrize("read", ["read", "read_ids", "iter_tables"])
def test_a_file_that_is_not_the_lakes_is_refused_by_name_not_read_as_nulls(
        lake: Lake, kind: str, read: str) -> None:
    # given a partition with the lake's own file and one file of another kind
    day = date(2024, 3, 10)
    lake.write(table(day_rows(day)), "batch-1")
    bad = foreign_files(lake, day)[kind]
    for other in set(foreign_files(lake, day).values()) - {bad}:
        other.unlink()

    # when the partition is read
    with pytest.raises(LakeFileError) as caught:
        if read == "read":
            lake.read()
        elif read == "read_ids":
            lake.read_ids([day.isoformat()])
        else:
            list(lake.iter_tables())

    # then the error names the file and says what to do
    assert f"`{bad}`" in str(caught.value)
    assert "move it out" in str(caught.value)
    assert caught.value.path == str(bad)


# -- pruning -----------------------------------------------------------------------------------

@pytest.fixture
def five_days(lake: Lake) -> Lake:
    """Five partitions (2024-03-08 .. 12), two files each."""
    for offset in range(5):
        day = date(2024, 3, 8) + timedelta(days=offset)
        lake.write(table(day_rows(day, 2, "a-")), "batch-a")
        lake.write(table(day_rows(day, 1, "b-")), "batch-b")
    return lake


def corrupt_partitions(lake: Lake, keep: set[str]) -> None:
    """Overwrite every file outside `keep` with garbage: reading one would fail."""
    for file in lake.list_files():
        if file.dt not in keep:
            Path(file.path).write_bytes(b"garbage, not parquet")


def test_list_files_prunes_by_dt_from_directory_names(five_days: Lake) -> None:
    # given a lake where every file outside 03-09..03-10 is unreadable garbage
    corrupt_partitions(five_days, {"2024-03-09", "2024-03-10"})

    # when listing and reading an inclusive range
    files = five_days.list_files(date(2024, 3, 9), date(2024, 3, 10))
    rows = five_days.read(date(2024, 3, 9), date(2024, 3, 10))

    # then exactly those partitions' files were listed, and read without opening the others
    assert [(f.dt, Path(f.path).name) for f in files] == [
        ("2024-03-09", "batch-a.parquet"), ("2024-03-09", "batch-b.parquet"),
        ("2024-03-10", "batch-a.parquet"), ("2024-03-10", "batch-b.parquet")]
    assert all(isinstance(f, LakeFile) and f.size > 0 for f in files)
    assert rows.num_rows == 6
    assert {r[2:12] for r in rows["event_id"].to_pylist()} == {"2024-03-09", "2024-03-10"}


def test_open_ended_ranges_and_datetimes_select_utc_dates(five_days: Lake) -> None:
    assert [f.dt for f in five_days.list_files(start=date(2024, 3, 11))] == [
        "2024-03-11", "2024-03-11", "2024-03-12", "2024-03-12"]
    assert {f.dt for f in five_days.list_files(end=date(2024, 3, 8))} == {"2024-03-08"}
    evening_in_new_york = datetime(2024, 3, 9, 21, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert {f.dt for f in five_days.list_files(evening_in_new_york,
                                               evening_in_new_york)} == {"2024-03-10"}
    assert len(five_days.list_files()) == 10


def test_read_ids_reads_only_the_event_id_column_of_named_partitions(five_days: Lake) -> None:
    corrupt_partitions(five_days, {"2024-03-08", "2024-03-12"})

    ids = five_days.read_ids(["2024-03-08", "2024-03-12"])

    assert ids.type == pa.string()
    assert sorted(ids.to_pylist()) == sorted(
        [f"a-{d}-{i}" for d in ("2024-03-08", "2024-03-12") for i in range(2)]
        + [f"b-{d}-0" for d in ("2024-03-08", "2024-03-12")])
    assert five_days.read_ids([]).to_pylist() == []
    assert five_days.read_ids(["2030-01-01"]).to_pylist() == []


def test_read_ids_refuses_a_malformed_partition(lake: Lake) -> None:
    with pytest.raises(LakeDataError, match="YYYY-MM-DD"):
        lake.read_ids(["2024-3-8"])


def test_read_selects_columns(five_days: Lake) -> None:
    got = five_days.read(date(2024, 3, 8), date(2024, 3, 8), columns=["event_id", "timestamp"])

    assert got.schema == pa.schema([EVENT_SCHEMA.field("event_id"),
                                    EVENT_SCHEMA.field("timestamp")])
    assert got.num_rows == 3
    with pytest.raises(LakeDataError, match="unknown column"):
        five_days.read(columns=["dt"])


def test_read_ids_of_reads_the_named_files_and_lists_again_when_one_vanished(
        five_days: Lake) -> None:
    files = five_days.list_files(date(2024, 3, 9), date(2024, 3, 9))
    corrupt_partitions(five_days, {"2024-03-09"})

    assert five_days.read_ids_of([files[0].path]) == {"a-2024-03-09-0", "a-2024-03-09-1"}
    assert five_days.read_ids_of([]) == set()

    # a file compacted away meanwhile raises: a fresh listing (retry_on_vanish) finds the rest
    five_days.delete([files[1].path])
    with pytest.raises(FileNotFoundError):
        five_days.read_ids_of([f.path for f in files])
    listed = retry_on_vanish(lambda: five_days.read_ids_of(
        [f.path for f in five_days.list_files(date(2024, 3, 9), date(2024, 3, 9))]))
    assert listed == {"a-2024-03-09-0", "a-2024-03-09-1"}


def test_iter_tables_yields_one_table_per_file(five_days: Lake) -> None:
    tables = list(five_days.iter_tables(date(2024, 3, 9), date(2024, 3, 9),
                                        columns=["event_id"]))

    assert [t.num_rows for t in tables] == [2, 1]
    assert all(t.schema == pa.schema([EVENT_SCHEMA.field("event_id")]) for t in tables)


def test_reading_an_empty_or_missing_lake_gives_empty_results(tmp_path: Path) -> None:
    lake = Lake(Settings(lake_uri=str(tmp_path / "nowhere")))

    assert lake.list_files() == []
    assert lake.read().schema == EVENT_SCHEMA
    assert lake.read().num_rows == 0
    assert list(lake.iter_tables()) == []
    assert lake.list_quarantine() == []
    assert lake.read_state("watermark") is None


# -- files vanishing under readers (compaction) --------------------------------------------------

def compact_after_first_listing(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """After the first listing, do what compaction does: write the merged file, then delete
    the files it replaced. Returns a list counting the listings."""
    listings: list[int] = []
    real_list = lake.list_files

    def list_files(*args: Any, **kwargs: Any) -> list[LakeFile]:
        files = real_list(*args, **kwargs)
        listings.append(len(files))
        if len(listings) == 1:
            merged = pa.concat_tables(pq.ParquetFile(f.path).read() for f in files)
            lake.write_partition("2024-03-10", merged, "compacted-0001")
            lake.delete([f.path for f in files])
        return files

    monkeypatch.setattr(lake, "list_files", list_files)
    return listings


@pytest.fixture
def two_small_files(lake: Lake) -> Lake:
    lake.write(table(day_rows(date(2024, 3, 10), 3, "a-")), "batch-a")
    lake.write(table(day_rows(date(2024, 3, 10), 2, "b-")), "batch-b")
    return lake


@pytest.mark.parametrize("reader", ["read", "read_ids", "iter_tables"])
def test_a_file_compacted_away_between_list_and_read_does_not_fail_the_reader(
        two_small_files: Lake, monkeypatch: pytest.MonkeyPatch, reader: str) -> None:
    # given compaction replaces both files right after the reader listed them
    listings = compact_after_first_listing(two_small_files, monkeypatch)

    # when reading
    if reader == "read":
        ids = two_small_files.read()["event_id"].to_pylist()
    elif reader == "read_ids":
        ids = two_small_files.read_ids(["2024-03-10"]).to_pylist()
    else:
        ids = [i for t in two_small_files.iter_tables() for i in t["event_id"].to_pylist()]

    # then the reader listed once more and found every event, in the merged file
    assert listings == [2, 1]
    assert sorted(ids) == sorted([f"a-2024-03-10-{i}" for i in range(3)]
                                 + [f"b-2024-03-10-{i}" for i in range(2)])


def test_files_vanishing_twice_is_a_transient_error(two_small_files: Lake,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real_list = two_small_files.list_files
    ghost = LakeFile(two_small_files.root + "/events/dt=2024-03-10/ghost.parquet",
                     "2024-03-10", 1)
    monkeypatch.setattr(two_small_files, "list_files",
                        lambda *a, **k: [*real_list(*a, **k), ghost])

    pauses = pauses_recorded(monkeypatch)

    with pytest.raises(TransientError, match=f"vanished {VANISH_ATTEMPTS} times"):
        two_small_files.read()
    assert pauses == EVERY_PAUSE  # one listing after each


@pytest.mark.parametrize(("error", "vanished"), [
    (FileNotFoundError("gone"), True),
    (OSError("AWS Error NO_SUCH_KEY during GetObject operation"), True),
    # an object deleted between opening it (HEAD) and reading its ranges, as moto answers
    (OSError("Could not open Parquet input source 'b/k': AWS Error RESOURCE_NOT_FOUND during "
             "GetObject operation: "), True),
    (OSError("AWS Error ACCESS_DENIED during GetObject operation"), False),
])
def test_which_read_errors_mean_a_file_vanished(error: OSError, vanished: bool) -> None:
    assert file_vanished(error) is vanished


# -- files -------------------------------------------------------------------------------------

def test_delete_is_idempotent(two_small_files: Lake) -> None:
    paths = [f.path for f in two_small_files.list_files()]
    assert len(paths) == 2 and all(Path(p).is_file() for p in paths)

    two_small_files.delete(paths[:1])
    two_small_files.delete(paths[:1])  # already gone: fine

    assert not Path(paths[0]).exists()
    assert [f.path for f in two_small_files.list_files()] == paths[1:]


def test_delete_refuses_paths_outside_the_lake(lake: Lake, tmp_path: Path) -> None:
    outsider = tmp_path / "precious.txt"
    outsider.write_text("keep me")

    for path in [str(outsider), f"{lake.root}/../precious.txt", "s3://bucket/x.parquet"]:
        with pytest.raises(LakeDataError, match="not a file of lake"):
            lake.delete([path])
    assert outsider.read_text() == "keep me"


def test_a_file_uri_and_a_relative_path_are_the_same_local_lake(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Lake(Settings(lake_uri=f"file://{tmp_path}/lake")).write(
        table(day_rows(date(2024, 3, 10))), "batch-1")

    relative = Lake(Settings(lake_uri="./lake"))

    assert relative.root == str(tmp_path / "lake")
    assert relative.read().num_rows == 3
    assert relative.events_glob == f"{tmp_path}/lake/events/*/*.parquet"


def test_the_filesystem_is_built_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    lake = Lake.from_settings(Settings(lake_uri="s3://no-such-bucket-here/prefix",
                                       endpoint_url="http://127.0.0.1:9"))
    assert lake._fs is None
    assert lake.root == "s3://no-such-bucket-here/prefix"
    assert lake.events_glob == "s3://no-such-bucket-here/prefix/events/*/*.parquet"


@pytest.mark.parametrize(("message", "error", "words"), [
    ("When listing objects under key 'p/' in bucket 'b': AWS Error NO_SUCH_BUCKET during "
     "ListObjectsV2 operation: The specified bucket does not exist", StorageError,
     "run `eventlake init`"),
    ("AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate",
     TransientError, "safe to retry"),
    ("AWS Error UNKNOWN (HTTP status 503) during GetObject operation", TransientError,
     "safe to retry"),
    ("AWS Error ACCESS_DENIED during GetObject operation: Access Denied", StorageError,
     "credentials"),
])
def test_s3_errors_from_pyarrow_become_domain_errors(message: str, error: type[Exception],
                                                     words: str) -> None:
    lake = Lake(Settings(lake_uri="s3://bucket/prefix"))

    mapped = lake._arrow_error(OSError(message), "list `s3://bucket/prefix/events`")

    assert isinstance(mapped, error)
    assert words in str(mapped)
    assert lake._arrow_error(OSError("something else entirely"), "read") is None
    assert lake._arrow_error(FileNotFoundError(2, "Path does not exist"), "read") is None


# -- the lake needs no eventlake code to read ----------------------------------------------------

def test_pyarrow_reads_the_lake_as_a_hive_dataset_without_eventlake(lake: Lake) -> None:
    import pyarrow.dataset as ds

    rows = [*day_rows(date(2024, 3, 9)), *day_rows(date(2024, 3, 10), 2)]
    lake.write(table(rows), "batch-1")

    dataset = ds.dataset(f"{lake.root}/events", format="parquet", partitioning="hive")
    got = dataset.to_table()

    assert got.schema.names == [*EVENT_SCHEMA.names, "dt"]
    assert got.schema.types == [*EVENT_SCHEMA.types, pa.string()]
    assert sorted(got.drop_columns(["dt"]).to_pylist(), key=lambda r: r["event_id"]) == sorted(
        rows, key=lambda r: r["event_id"])
    assert sorted(set(got["dt"].to_pylist())) == ["2024-03-09", "2024-03-10"]


def test_duckdb_reads_the_lake_with_hive_partitioning_without_eventlake(lake: Lake) -> None:
    import duckdb

    rows = [*day_rows(date(2024, 3, 9)),
            event("µs", MIDNIGHT + timedelta(microseconds=7), source=None,
                  event_payload='{"text": "naïve ☃"}')]
    lake.write(table(rows), "batch-1")

    con = duckdb.connect()
    relation = con.sql(f"select * from read_parquet('{lake.root}/events/*/*.parquet', "
                       "hive_partitioning=true) order by event_id")
    types = dict(zip(relation.columns, [str(t) for t in relation.types], strict=True))
    got = relation.fetchall()

    assert types == {"event_id": "VARCHAR", "event_type": "VARCHAR",
                     "timestamp": "TIMESTAMP WITH TIME ZONE",
                     "ingested_at": "TIMESTAMP WITH TIME ZONE", "source": "VARCHAR",
                     "subject": "VARCHAR", "event_payload": "VARCHAR",
                     "content_hash": "VARCHAR", "dt": "DATE"}
    by_id = {r[0]: r for r in got}
    assert by_id["µs"][2] == MIDNIGHT + timedelta(microseconds=7)
    assert by_id["µs"][4] is None
    assert by_id["µs"][6] == '{"text": "naïve ☃"}'
    assert by_id["µs"][8] == date(2024, 3, 10)
    assert len(got) == 4


# -- quarantine --------------------------------------------------------------------------------

def test_quarantined_records_round_trip_raw_with_reason(lake: Lake) -> None:
    # given records of the awkward kinds a stream delivers
    now = datetime(2024, 3, 10, 23, 59, tzinfo=UTC)
    record = {"eventName": "MODIFY", "dynamodb": {
        "NewImage": {"blob": b"\x00\xff binary", "n": Decimal("1.10"),
                     "when": datetime(2024, 3, 10, 12, 0, 0, 5, tzinfo=UTC),
                     "tags": {"b", "a"}, "text": "Grüße ✓"}}}
    entries = [QuarantineEntry("MODIFY of an immutable event", "stream.modify", record),
               QuarantineEntry("not JSON", "codec.undecodable", "{broken", source="sweep",
                               quarantined_at=datetime(2024, 3, 10, 1, tzinfo=UTC))]

    # when quarantined and read back
    path = lake.quarantine(entries, "shard-1-seq-5-9", now=now)
    back = lake.read_quarantine()

    # then the file sits under today's UTC date, and each entry came back with its reason
    assert path == f"{lake.root}/_quarantine/dt=2024-03-10/shard-1-seq-5-9.jsonl"
    assert [(e.reason, e.rule, e.source) for e in back] == [
        ("MODIFY of an immutable event", "stream.modify", "stream"),
        ("not JSON", "codec.undecodable", "sweep")]
    assert [e.quarantined_at for e in back] == [now, datetime(2024, 3, 10, 1, tzinfo=UTC)]
    image = back[0].record["dynamodb"]["NewImage"]
    assert base64.b64decode(image["blob"]) == b"\x00\xff binary"
    assert image["n"] == "1.10"
    assert image["when"] == "2024-03-10T12:00:00.000005+00:00"
    assert image["tags"] == ["a", "b"]
    assert image["text"] == "Grüße ✓"
    assert back[1].record == "{broken"
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["record"]["eventName"] == "MODIFY"
    assert "Grüße ✓" in lines[0]


def test_a_retried_quarantine_batch_rewrites_its_file(lake: Lake) -> None:
    entry = QuarantineEntry("bad", "rule.x", {"id": 1})
    now = datetime(2024, 3, 10, tzinfo=UTC)

    lake.quarantine([entry], "batch-7", now=now)
    lake.quarantine([entry, QuarantineEntry("bad", "rule.x", {"id": 2})], "batch-7", now=now)

    assert [f.dt for f in lake.list_quarantine()] == ["2024-03-10"]
    assert len(lake.read_quarantine()) == 2
    assert lake.list_files() == []  # quarantine is not part of the events dataset


# -- state (compare-and-swap) ------------------------------------------------------------------

def test_state_is_created_once_and_swapped_only_from_the_current_version(lake: Lake) -> None:
    # create-only
    v1 = lake.write_state("watermark", b'{"at": 1}', expected=None)
    assert lake.read_state("watermark") == (b'{"at": 1}', v1)
    with pytest.raises(StateConflictError, match="already exists"):
        lake.write_state("watermark", b'{"at": 9}', expected=None)

    # swap from the current version
    v2 = lake.write_state("watermark", b'{"at": 2}', expected=v1)
    assert v2 != v1
    assert lake.read_state("watermark") == (b'{"at": 2}', v2)

    # a stale version loses and changes nothing
    with pytest.raises(StateConflictError, match="changed since"):
        lake.write_state("watermark", b'{"at": 3}', expected=v1)
    assert lake.read_state("watermark") == (b'{"at": 2}', v2)

    # swapping a key that does not exist is a conflict too
    with pytest.raises(StateConflictError):
        lake.write_state("leases/compact", b"x", expected=v2)


def test_state_keys_live_under_eventlake_and_are_validated(lake: Lake, tmp_path: Path) -> None:
    lake.write_state("leases/compact/dt=2024-03-10", b"me", expected=None)

    assert (tmp_path / "lake/_eventlake/leases/compact/dt=2024-03-10").read_bytes() == b"me"
    for bad in ["", "/abs", "a/../b", ".hidden", "a//b", "a/.lock"]:
        with pytest.raises(LakeDataError, match="state key"):
            lake.write_state(bad, b"x", expected=None)


def race(threads: int, attempt: Any) -> list[Any]:
    """Start `threads` calls of attempt() at the same instant; the results of the winners."""
    barrier = threading.Barrier(threads)
    wins: list[Any] = []
    losses: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            wins.append(attempt())
        except StateConflictError as exc:
            losses.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(wins) + len(losses) == threads
    return wins


def test_threads_racing_to_create_state_have_exactly_one_winner(tmp_path: Path) -> None:
    for round_ in range(10):
        lake = Lake(Settings(lake_uri=str(tmp_path / "lake")))
        key = f"leases/round-{round_}"
        counter = iter(range(100))

        def create(lake: Lake = lake, key: str = key, counter: Any = counter) -> str:
            return lake.write_state(key, f"{next(counter)}".encode(), expected=None)

        wins = race(8, create)

        assert len(wins) == 1
        state = lake.read_state(key)
        assert state is not None and state[1] == wins[0]


def test_threads_racing_to_swap_the_same_version_have_exactly_one_winner(lake: Lake) -> None:
    version = lake.write_state("watermark", b"0", expected=None)
    counter = iter(range(1, 100))

    wins = race(8, lambda: lake.write_state("watermark", f"{next(counter)}".encode(),
                                            expected=version))

    assert len(wins) == 1
    state = lake.read_state("watermark")
    assert state is not None and state[1] == wins[0]
    assert not [p for p in (Path(lake.root) / "_eventlake").iterdir() if ".tmp-" in p.name]


# -- does the lake exist? ------------------------------------------------------------------------

def test_a_lake_exists_once_initialised_and_the_marker_says_by_whom(tmp_path: Path) -> None:
    # given a lake root where nothing was ever made
    lake = Lake(Settings(lake_uri=str(tmp_path / "lake")))
    assert lake.lake_exists() is False
    with pytest.raises(LakeNotFoundError) as info:
        lake.require_exists()
    assert str(info.value) == (f"lake `{tmp_path / 'lake'}` does not exist: run `eventlake "
                               "init`, or point --lake-uri (or EVENTLAKE_LAKE_URI) at the "
                               "lake's root")

    # when it is initialised, twice
    first = lake.create_marker(table="orders-events")
    second = lake.create_marker(table="orders-events")

    # then it exists, the marker was written once and names the table and the version
    assert (first, second, lake.lake_exists()) == (True, False, True)
    lake.require_exists()
    marker = json.loads((tmp_path / "lake" / "_eventlake" / "lake.json").read_text())
    assert marker["table"] == "orders-events"
    assert set(marker) == {"table", "created_at", "eventlake_version"}


def test_a_lake_made_before_the_marker_exists_because_it_holds_events(lake: Lake) -> None:
    lake.write(table(day_rows(date(2024, 3, 10))), name="old-sweep")

    assert lake.lake_exists() is True


def test_a_lake_holding_only_foreign_files_does_not_exist(lake: Lake, tmp_path: Path) -> None:
    (tmp_path / "lake" / "events").mkdir(parents=True)
    (tmp_path / "lake" / "README.txt").write_text("not a lake")

    assert lake.lake_exists() is False


def test_quarantined_text_with_unicode_line_separators_reads_back_whole(lake: Lake) -> None:
    # given records whose text holds U+0085 (NEL) and U+2028 / U+2029, which the quarantine
    # writes raw (ensure_ascii=False) and which str.splitlines() would split a line on
    record = {"event_id": "evt-1", "note": "one\u0085two\u2028three\u2029four"}
    lake.quarantine([QuarantineEntry("bad \u2028 reason", "rule.x", record),
                     QuarantineEntry("second", "rule.y", {"n": 2})], "separators")

    # when read back
    back = lake.read_quarantine()

    # then both entries come back, their text untouched
    assert [e.record for e in back] == [record, {"n": 2}]
    assert back[0].reason == "bad \u2028 reason"


def test_the_s3_filesystem_gets_the_attempts_every_aws_call_gets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.fs as pafs

    made: list[dict[str, Any]] = []
    monkeypatch.setattr(pafs, "S3FileSystem", lambda **options: made.append(options))
    lake = Lake(Settings(lake_uri="s3://acme-lake/events", aws_max_attempts=5,
                         endpoint_url="http://user:secret@localhost:5000"))

    lake.fs  # noqa: B018  (built on first use)

    assert len(made) == 1
    options = made[0]
    assert options["retry_strategy"].max_attempts == 5
    assert (options["endpoint_override"], options["scheme"]) == ("localhost:5000", "http")


def test_listing_an_s3_lake_whose_bucket_is_missing_names_the_bucket(server_env: str) -> None:
    # given an S3 lake whose bucket was never made, and one whose bucket is empty
    missing = Lake(Settings.from_env(lake_uri=f"s3://no-such-{uuid.uuid4().hex[:8]}/lake"))
    empty = f"empty-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=server_env).create_bucket(Bucket=empty)
    # then listing the first fails naming its bucket and `eventlake init`, the second is empty
    with pytest.raises(LakeNotFoundError, match=r"bucket `no-such-\w+` .* `eventlake init`"):
        missing.list_files()
    assert Lake(Settings.from_env(lake_uri=f"s3://{empty}/lake")).list_files() == []
