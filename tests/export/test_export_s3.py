"""Export to S3 (moto): one object per single-file export; a partitioned one's objects, then
`_SUCCESS` last; an existing destination refused unless overwritten, stale keys of the old
export removed; a failed upload leaves nothing behind."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from export_support import COLUMNS, SELECTION, START, expected, shop_lake

from eventlake.api import EventLake
from eventlake.cli.main import main
from eventlake.errors import ConfigError, StorageError
from eventlake.export import SUCCESS
from eventlake.replay.select import Selection

BUCKET = "exports"


@pytest.fixture
def shop(mocked_aws: None, tmp_path: Path) -> EventLake:
    return shop_lake(tmp_path)


@pytest.fixture
def s3(shop: EventLake) -> Any:
    """The lake's S3 client (moto, in-process), with the bucket the exports go to."""
    client = shop.clients.s3
    client.create_bucket(Bucket=BUCKET)
    return client


def keys(s3: Any, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def read_parquet(s3: Any, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(body)).to_pylist()
    return rows


def read_folder(s3: Any, prefix: str, into: Path) -> list[dict[str, Any]]:
    """The rows of a partitioned export (Hive folders under `prefix`), by event_id: downloaded
    into `into` and read as a Hive dataset, as a reader that saw `_SUCCESS` would."""
    for key in keys(s3, prefix + "/"):
        path = into / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    table = ds.dataset(into / prefix, format="parquet", partitioning="hive",
                       exclude_invalid_files=True).to_table(columns=COLUMNS)
    return sorted(table.to_pylist(), key=lambda r: r["event_id"])


def record_puts(s3: Any) -> list[str]:
    """The keys of every PutObject from now on, in the order they were sent."""
    puts: list[str] = []
    s3.meta.events.register("before-parameter-build.s3.PutObject",
                            lambda params, **_: puts.append(params["Key"]))
    return puts


def fail_puts(s3: Any, where: str) -> None:
    """PutObject of a key holding `where` fails, as S3 refusing it would."""
    def refuse(params: dict[str, Any], **_: Any) -> None:
        if where in params["Key"]:
            raise ClientError({"Error": {"Code": "InvalidRequest", "Message": "injected"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutObject")

    s3.meta.events.register("before-parameter-build.s3.PutObject", refuse)


def test_a_single_file_export_is_one_object_equal_to_eventlake_sql(shop: EventLake,
                                                                   s3: Any) -> None:
    report = shop.export(SELECTION, f"s3://{BUCKET}/exports/day.parquet")

    assert keys(s3) == ["exports/day.parquet"]  # no _SUCCESS: the object is whole or absent
    assert read_parquet(s3, "exports/day.parquet") == expected(shop)
    assert report.out == f"s3://{BUCKET}/exports/day.parquet"
    assert report.rows == len(expected(shop))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "duckdb"])
def test_every_format_uploads_as_one_object(shop: EventLake, s3: Any, fmt: str) -> None:
    report = shop.export(SELECTION, f"s3://{BUCKET}/day.{fmt}", format=fmt)

    [obj] = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert (obj["Key"], obj["Size"]) == (f"day.{fmt}", report.bytes)


def test_a_partitioned_export_uploads_every_file_then_success_last(
        shop: EventLake, s3: Any, tmp_path: Path) -> None:
    puts = record_puts(s3)
    report = shop.export(SELECTION, f"s3://{BUCKET}/parts", partition_by="dt")

    days = {str(r["timestamp"].date()) for r in expected(shop)}
    assert {k.split("/")[1] for k in keys(s3, "parts/") if k != f"parts/{SUCCESS}"} == {
        f"dt={d}" for d in days}
    assert puts[-1] == f"parts/{SUCCESS}" and puts.count(f"parts/{SUCCESS}") == 1
    assert read_folder(s3, "parts", tmp_path) == sorted(expected(shop), key=lambda r: r["event_id"])
    assert len(report.files) == len(days)


def test_an_existing_destination_is_refused(shop: EventLake, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="day.parquet", Body=b"keep me")
    s3.put_object(Bucket=BUCKET, Key="parts/dt=2020-01-01/old.parquet", Body=b"keep me too")

    with pytest.raises(ConfigError, match="exists"):
        shop.export(SELECTION, f"s3://{BUCKET}/day.parquet")
    with pytest.raises(ConfigError, match=r"exists \(1 object"):
        shop.export(SELECTION, f"s3://{BUCKET}/parts", partition_by="dt")
    assert keys(s3) == ["day.parquet", "parts/dt=2020-01-01/old.parquet"]
    assert s3.get_object(Bucket=BUCKET, Key="day.parquet")["Body"].read() == b"keep me"


def test_overwrite_replaces_the_export_and_removes_its_stale_keys(
        shop: EventLake, s3: Any, tmp_path: Path) -> None:
    out = f"s3://{BUCKET}/parts"
    shop.export(SELECTION, out, partition_by="dt")
    before = keys(s3)
    one_day = Selection(START, START + timedelta(days=1), cold_only=True)

    shop.export(one_day, out, partition_by="event_type", overwrite=True)

    after = keys(s3)
    assert not any("dt=" in k for k in after)  # the old partitions are gone
    assert {k.split("/")[1] for k in after} == {SUCCESS, "event_type=order.placed",
                                                "event_type=page.viewed"}
    assert before != after
    assert read_folder(s3, "parts", tmp_path) == sorted(expected(shop, one_day),
                                              key=lambda r: r["event_id"])


def test_overwrite_of_a_single_object_by_a_folder_deletes_the_object(shop: EventLake,
                                                                     s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="x", Body=b"old")
    shop.export(SELECTION, f"s3://{BUCKET}/x", partition_by="dt", overwrite=True)

    assert "x" not in keys(s3) and f"x/{SUCCESS}" in keys(s3)


@pytest.mark.parametrize("partition_by", [None, "dt"])
def test_a_failed_upload_leaves_nothing(shop: EventLake, s3: Any,
                                        partition_by: str | None) -> None:
    fail_puts(s3, "2024-05-02" if partition_by else "out")
    with pytest.raises(StorageError, match=r"S3 refused to upload the export .*injected"):
        shop.export(SELECTION, f"s3://{BUCKET}/out", partition_by=partition_by)

    assert keys(s3) == []


def test_a_failed_overwrite_leaves_no_success_marker(shop: EventLake, s3: Any) -> None:
    out = f"s3://{BUCKET}/parts"
    shop.export(SELECTION, out, partition_by="dt")
    fail_puts(s3, "2024-05-02")

    with pytest.raises(StorageError, match="injected"):
        shop.export(SELECTION, out, partition_by="dt", overwrite=True)
    assert f"parts/{SUCCESS}" not in keys(s3)  # readers see the folder as incomplete


def test_a_single_object_that_replaced_a_folder_stays_when_the_old_keys_cannot_go(
        shop: EventLake, s3: Any) -> None:
    out = f"s3://{BUCKET}/x"
    shop.export(SELECTION, out, partition_by="dt")
    old = keys(s3, "x/")

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "injected"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "DeleteObjects")

    s3.meta.events.register("before-parameter-build.s3.DeleteObjects", refuse)
    with pytest.raises(StorageError, match=r"the export is in place at `s3://exports/x`"):
        shop.export(SELECTION, out, overwrite=True)

    assert read_parquet(s3, "x") == expected(shop)  # the new export, whole
    assert keys(s3, "x/") == old  # the old folder's keys, named in the error


def test_a_missing_bucket_and_a_url_without_a_key_are_refused(shop: EventLake,
                                                              s3: Any) -> None:
    with pytest.raises(ConfigError, match="bucket `nope` does not exist"):
        shop.export(SELECTION, "s3://nope/day.parquet")
    for url in (f"s3://{BUCKET}", f"s3://{BUCKET}/", f"s3://{BUCKET}/folder/"):
        with pytest.raises(ConfigError, match="name the bucket and the object"):
            shop.export(SELECTION, url)
    assert keys(s3) == []


def test_cli_exports_to_s3(shop: EventLake, s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", "--lake-uri", shop.settings.lake_uri, "--from", "2024-05-01",
                 "--to", "2024-05-03", "--cold-only", "--partition-by", "dt",
                 "--out", f"s3://{BUCKET}/cli"])

    assert code == 0, capsys.readouterr().err
    assert f"to s3://{BUCKET}/cli (2 files)" in capsys.readouterr().out
    assert keys(s3) == ["cli/_SUCCESS", "cli/dt=2024-05-01/data_0.parquet",
                        "cli/dt=2024-05-02/data_0.parquet"]
