"""A partitioned export of a selection that matches nothing: as a single-file export of nothing
(one Parquet file of 0 rows with the columns), the folder holds one Parquet file of 0 rows whose
columns are those a Hive reader sees in a non-empty export; so DuckDB's
`read_parquet('out/**/*.parquet', hive_partitioning=true)` (and Spark, pyarrow) read 0 rows
instead of failing on an empty folder. Locally and on S3 (moto), from the library and the CLI."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pytest
from export_support import COLUMNS, SELECTION, START, shop_lake

from eventlake.api import EventLake
from eventlake.cli.main import main
from eventlake.errors import ConfigError
from eventlake.export import SUCCESS
from eventlake.replay.select import Selection

NOTHING = Selection(START + timedelta(days=30), START + timedelta(days=31), cold_only=True)
"""A selection of the shop lake that matches no event."""
BUCKET = "exports"


@pytest.fixture
def shop(mocked_aws: None, tmp_path: Path) -> EventLake:
    return shop_lake(tmp_path)


def hive_read(folder: Path) -> tuple[list[tuple[str, str]], int]:
    """The columns (name, type) and the row count DuckDB reads from a Hive-partitioned folder,
    as its users write it."""
    pattern = str(folder / "**" / "*.parquet").replace("'", "''")
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{pattern}', hive_partitioning=true)")
    columns = [(name, str(kind)) for name, kind in zip(rel.columns, rel.types, strict=True)]
    [(rows,)] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}', "
                           "hive_partitioning=true)").fetchall()
    return columns, int(rows)


@pytest.mark.parametrize("key", ["dt", "event_type"])
def test_a_partitioned_export_of_nothing_reads_as_0_rows_with_the_columns_of_a_full_one(
        shop: EventLake, tmp_path: Path, key: str) -> None:
    # given an export of some events, partitioned by `key`, as a reader sees it
    full = tmp_path / "full"
    shop.export(SELECTION, full, partition_by=key)
    columns, rows = hive_read(full)
    assert rows > 0

    # when a selection that matches nothing is exported the same way
    report = shop.export(NOTHING, tmp_path / "none", partition_by=key)

    # then DuckDB reads the folder: 0 rows, the same columns in the same order and types
    assert hive_read(tmp_path / "none") == (columns, 0)
    assert report.rows == 0 and report.files == ["data_0.parquet"]
    assert report.bytes == (tmp_path / "none" / "data_0.parquet").stat().st_size
    assert "the selection is empty" in report.summary()
    # and pyarrow's Hive dataset too
    table = ds.dataset(tmp_path / "none", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 0 and set(COLUMNS) <= set(table.column_names)


def test_overwriting_with_an_export_of_nothing_replaces_the_old_export(
        shop: EventLake, tmp_path: Path) -> None:
    # given a partitioned export
    out = tmp_path / "parts"
    shop.export(SELECTION, out, partition_by="dt")

    # when the same destination gets a selection of nothing: refused without --overwrite
    with pytest.raises(ConfigError, match="exists"):
        shop.export(NOTHING, out, partition_by="dt")
    assert hive_read(out)[1] > 0
    # and replaced with it (as a single-file export of nothing replaces its file)
    shop.export(NOTHING, out, partition_by="dt", overwrite=True)

    # then the old partitions are gone: readers see the new export's 0 rows
    assert sorted(p.name for p in out.iterdir()) == ["data_0.parquet"]
    assert hive_read(out)[1] == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_cli_says_nothing_matched_and_exits_0(
        shop: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "none"
    code = main(["export", "--lake-uri", shop.settings.lake_uri, "--table",
                 shop.settings.table, "--from", "2024-06-01", "--to", "2024-06-02",
                 "--cold-only", "--partition-by", "event_type", "--out", str(out)])

    assert code == 0
    said = capsys.readouterr().out
    assert f"exported 0 events (the selection is empty) as parquet to {out}" in said
    assert "no partition" in said
    assert hive_read(out)[1] == 0


def test_a_partitioned_export_of_nothing_to_s3_is_one_empty_file_then_success(
        shop: EventLake, tmp_path: Path) -> None:
    s3: Any = shop.clients.s3
    s3.create_bucket(Bucket=BUCKET)

    report = shop.export(NOTHING, f"s3://{BUCKET}/parts", partition_by="dt")

    got = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert got == [f"parts/{SUCCESS}", "parts/data_0.parquet"]
    assert report.out == f"s3://{BUCKET}/parts" and report.rows == 0
    local = tmp_path / "download"
    local.mkdir()
    (local / "data_0.parquet").write_bytes(
        s3.get_object(Bucket=BUCKET, Key="parts/data_0.parquet")["Body"].read())
    columns, rows = hive_read(local)
    assert rows == 0 and [name for name, _ in columns] == [*COLUMNS, "dt"]


@pytest.mark.parametrize("key", ["dt", "event_type"])
def test_an_export_over_an_s3_export_of_nothing_leaves_no_empty_file_beside_its_partitions(
        shop: EventLake, tmp_path: Path, key: str) -> None:
    # given an S3 export of nothing (its one file of 0 rows), and what a full one reads as
    s3: Any = shop.clients.s3
    s3.create_bucket(Bucket=BUCKET)
    shop.export(NOTHING, f"s3://{BUCKET}/parts", partition_by=key)
    full = tmp_path / "full"
    shop.export(SELECTION, full, partition_by=key)

    # when events are exported there, overwriting it
    report = shop.export(SELECTION, f"s3://{BUCKET}/parts", partition_by=key, overwrite=True)

    # then the file of 0 rows is gone: the keys are the new partitions' and _SUCCESS, and a
    # download of them reads as the local export does (no stale schema beside the partitions)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    data = [k for k in keys if k != f"parts/{SUCCESS}"]
    assert "parts/data_0.parquet" not in keys and f"parts/{SUCCESS}" in keys
    assert sorted(f"parts/{f}" for f in report.files) == data and len(data) > 1
    local = tmp_path / "download"
    for k in data:
        (local / k).parent.mkdir(parents=True, exist_ok=True)
        (local / k).write_bytes(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())
    assert hive_read(local / "parts") == hive_read(full)
