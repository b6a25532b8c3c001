"""The Parquet cold store on S3 (moto's HTTP server): the same contract as on local disk."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from s3_support import keys

import eventlake.lake.store as lake_module
from eventlake.config import Settings
from eventlake.errors import StorageError, TransientError
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.store import (
    Lake,
    LakeFile,
    LakeFileExistsError,
    QuarantineEntry,
    StateConflictError,
)
from eventlake.local.stack import MotoServer

pytestmark = pytest.mark.integration

MIDNIGHT = datetime(2024, 3, 10, tzinfo=UTC)


@pytest.fixture
def lake(s3_lake: Lake) -> Lake:
    return s3_lake


def event(event_id: str, timestamp: datetime, **fields: Any) -> dict[str, Any]:
    row = {"event_id": event_id, "event_type": "order.created", "timestamp": timestamp,
           "ingested_at": MIDNIGHT + timedelta(days=2), "source": "shop", "subject": None,
           "event_payload": '{"note": "ünïcødé ✓"}', "content_hash": f"hash-{event_id}"}
    row.update(fields)
    return row


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def day_rows(day: date, count: int, prefix: str = "") -> list[dict[str, Any]]:
    start = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
    return [event(f"{prefix}{day.isoformat()}-{i}", start + timedelta(seconds=i, microseconds=i))
            for i in range(count)]






def test_written_rows_round_trip_through_s3(lake: Lake, bucket: str, server_env: str) -> None:
    rows = [event("a", MIDNIGHT - timedelta(microseconds=1), source=None),
            event("b", MIDNIGHT), event("c", MIDNIGHT + timedelta(hours=5, microseconds=3))]

    written = lake.write(table(rows), "shard-1-seq-1-3")

    assert [(w.path, w.dt, w.rows) for w in written] == [
        (f"s3://{bucket}/lake/events/dt=2024-03-09/shard-1-seq-1-3.parquet", "2024-03-09", 1),
        (f"s3://{bucket}/lake/events/dt=2024-03-10/shard-1-seq-1-3.parquet", "2024-03-10", 2)]
    assert keys(bucket, server_env) == ["lake/events/dt=2024-03-09/shard-1-seq-1-3.parquet",
                                        "lake/events/dt=2024-03-10/shard-1-seq-1-3.parquet"]
    back = lake.read()
    assert back.schema == EVENT_SCHEMA
    assert sorted(back.to_pylist(), key=lambda r: r["event_id"]) == rows
    assert [f.size for f in lake.list_files()] == [w.bytes for w in written]


def test_an_explicit_endpoint_in_settings_is_used_without_the_environment(
        moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # given no AWS_ENDPOINT_URL at all, only Settings.endpoint_url
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    name = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server.endpoint_url).create_bucket(Bucket=name)
    lake = Lake(Settings(lake_uri=f"s3://{name}", endpoint_url=moto_server.endpoint_url))

    # when writing and reading (a bucket-root lake, no prefix)
    lake.write(table(day_rows(date(2024, 3, 10), 2)), "batch-1")

    # then the moto server holds the file
    assert keys(name, moto_server.endpoint_url) == ["events/dt=2024-03-10/batch-1.parquet"]
    assert lake.read().num_rows == 2


def test_a_retried_write_replaces_itself(lake: Lake, bucket: str, server_env: str) -> None:
    batch = table(day_rows(date(2024, 3, 10), 4))

    first = lake.write(batch, "sweep-20240310T00-20240310T01")
    second = lake.write(batch, "sweep-20240310T00-20240310T01")

    assert first == second
    assert len(keys(bucket, server_env)) == 1
    assert lake.read().num_rows == 4


def test_a_crash_mid_write_uploads_nothing(lake: Lake, bucket: str, server_env: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # given a writer that dies after producing some bytes
    def dying_writer(t: pa.Table, sink: pa.NativeFile) -> None:
        sink.write(b"PAR1" + b"\0" * 4096)
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(lake_module, "_write_parquet", dying_writer)

    with pytest.raises(RuntimeError, match="killed"):
        lake.write(table(day_rows(date(2024, 3, 10), 3)), "batch-1")

    # then no object, and no multipart upload left open
    s3 = boto3.client("s3", endpoint_url=server_env)
    assert keys(bucket, server_env) == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert lake.list_files() == []


def test_if_absent_refuses_to_overwrite_on_s3(lake: Lake) -> None:
    lake.write(table(day_rows(date(2024, 3, 10), 2)), "batch-1", if_absent=True)

    with pytest.raises(LakeFileExistsError):
        lake.write(table(day_rows(date(2024, 3, 10), 5)), "batch-1", if_absent=True)

    assert lake.read().num_rows == 2


def test_pruning_listing_and_read_ids_on_s3(lake: Lake) -> None:
    for offset in range(4):
        day = date(2024, 3, 8) + timedelta(days=offset)
        lake.write(table(day_rows(day, 2, "a-")), "batch-a")
        lake.write(table(day_rows(day, 1, "b-")), "batch-b")

    files = lake.list_files(date(2024, 3, 9), date(2024, 3, 9))
    ids = lake.read_ids(["2024-03-11"])
    tables = list(lake.iter_tables(end=date(2024, 3, 8)))

    assert [(f.dt, f.path.rsplit("/", 1)[1]) for f in files] == [
        ("2024-03-09", "batch-a.parquet"), ("2024-03-09", "batch-b.parquet")]
    assert sorted(ids.to_pylist()) == ["a-2024-03-11-0", "a-2024-03-11-1", "b-2024-03-11-0"]
    assert [t.num_rows for t in tables] == [2, 1]
    assert lake.read(date(2024, 3, 10)).num_rows == 6
    assert len(lake.list_files()) == 8


def test_a_file_compacted_away_between_list_and_read_is_found_again(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    lake.write(table(day_rows(date(2024, 3, 10), 3, "a-")), "batch-a")
    lake.write(table(day_rows(date(2024, 3, 10), 2, "b-")), "batch-b")
    real_list = lake.list_files
    listings: list[int] = []

    def list_files(*args: Any, **kwargs: Any) -> list[LakeFile]:
        files = real_list(*args, **kwargs)
        listings.append(len(files))
        if len(listings) == 1:  # compaction: merged file first, then delete the originals
            merged = pa.concat_tables(
                pq.ParquetFile(lake.fs.open_input_file(f.path[5:])).read() for f in files)
            lake.write_partition("2024-03-10", merged, "compacted-0001")
            lake.delete([f.path for f in files])
        return files

    monkeypatch.setattr(lake, "list_files", list_files)

    ids = lake.read()["event_id"].to_pylist()

    assert listings == [2, 1]
    assert len(ids) == len(set(ids)) == 5


def test_delete_leaves_no_directory_markers(lake: Lake, bucket: str, server_env: str) -> None:
    written = lake.write(table(day_rows(date(2024, 3, 10), 2)), "batch-1")
    path = written[0].path

    lake.delete([path])
    lake.delete([path])  # already gone: fine

    assert lake.list_files() == []
    assert keys(bucket, server_env) == []


def test_quarantine_round_trips_on_s3(lake: Lake, bucket: str) -> None:
    entry = QuarantineEntry("undecodable", "codec.undecodable", {"raw": b"\x00\x01"})

    path = lake.quarantine([entry], "shard-1-seq-9", now=MIDNIGHT)
    back = lake.read_quarantine()

    assert path == f"s3://{bucket}/lake/_quarantine/dt=2024-03-10/shard-1-seq-9.jsonl"
    assert [(e.reason, e.rule, e.record) for e in back] == [
        ("undecodable", "codec.undecodable", {"raw": "AAE="})]


def test_quarantine_summary_counts_every_file_on_s3(lake: Lake, bucket: str) -> None:
    # given two days of quarantine files on S3
    lake.quarantine([QuarantineEntry("modified", "stream.modify", {"eventID": "a"}),
                     QuarantineEntry("no type", "record.not_an_event", {"eventID": "b"})],
                    "batch-1", now=MIDNIGHT)
    lake.quarantine([QuarantineEntry("modified", "stream.modify", {"eventID": "c"})],
                    "batch-2", now=MIDNIGHT + timedelta(days=1))

    summary = lake.summarize_quarantine()

    assert summary.where == f"s3://{bucket}/lake/_quarantine"
    assert (summary.files, summary.files_read, summary.records) == (2, 2, 3)
    assert [(r.rule, r.records) for r in summary.rules] == [
        ("stream.modify", 2), ("record.not_an_event", 1)]


def test_state_compare_and_swap_on_s3(lake: Lake, bucket: str, server_env: str) -> None:
    assert lake.read_state("watermark") is None

    v1 = lake.write_state("watermark", b"1", expected=None)
    with pytest.raises(StateConflictError):
        lake.write_state("watermark", b"x", expected=None)
    v2 = lake.write_state("watermark", b"2", expected=v1)
    with pytest.raises(StateConflictError):
        lake.write_state("watermark", b"x", expected=v1)
    with pytest.raises(StateConflictError):
        lake.write_state("missing", b"x", expected=v1)

    assert lake.read_state("watermark") == (b"2", v2)
    assert "lake/_eventlake/watermark" in keys(bucket, server_env)


def test_threads_racing_to_create_state_on_s3_have_exactly_one_winner(lake: Lake) -> None:
    for round_ in range(5):
        key = f"leases/round-{round_}"
        barrier = threading.Barrier(8)
        wins: list[str] = []
        losses: list[StateConflictError] = []

        def attempt(i: int, key: str = key, barrier: threading.Barrier = barrier,
                    wins: list[str] = wins, losses: list[StateConflictError] = losses) -> None:
            barrier.wait()
            try:
                wins.append(lake.write_state(key, str(i).encode(), expected=None))
            except StateConflictError as exc:
                losses.append(exc)

        workers = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

        assert (len(wins), len(losses)) == (1, 7)
        state = lake.read_state(key)
        assert state is not None and state[1] == wins[0]


def test_a_missing_bucket_says_to_run_init(server_env: str) -> None:
    lake = Lake(Settings.from_env(lake_uri=f"s3://missing-{uuid.uuid4().hex[:12]}/lake"))
    batch = table(day_rows(date(2024, 3, 10), 1))

    actions: list[Callable[[], object]] = [
        lambda: lake.list_files(), lambda: lake.write(batch, "batch-1"),
        lambda: lake.write(batch, "batch-1", if_absent=True),
        lambda: lake.read_state("watermark"),
        lambda: lake.write_state("watermark", b"1", expected=None)]
    for action in actions:
        with pytest.raises(StorageError, match="run `eventlake init`"):
            action()


def test_an_unreachable_endpoint_is_a_transient_error() -> None:
    # two attempts, not the default eight: pyarrow's S3 client (the listing's) sleeps its own
    # backoff between them, about 50 s for eight; the error it ends with is the same
    lake = Lake(Settings(lake_uri="s3://some-bucket/lake", endpoint_url="http://127.0.0.1:9",
                         aws_max_attempts=2))

    with pytest.raises(TransientError, match="safe to retry"):
        lake.list_files()
