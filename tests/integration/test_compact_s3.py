"""Compaction on S3 (moto's HTTP server): the same contract as on local disk."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from s3_support import keys

from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.compact import compact, read_distinct
from eventlake.lake.store import Lake

pytestmark = pytest.mark.integration

DAY = date(2024, 3, 10)


@pytest.fixture
def lake(s3_lake: Lake) -> Lake:
    return s3_lake


def event(n: int, day: date = DAY) -> dict[str, Any]:
    return {"event_id": f"{day.isoformat()}-{n:04d}", "event_type": f"type.{n % 3}",
            "timestamp": datetime(day.year, day.month, day.day, tzinfo=UTC)
            + timedelta(seconds=(n * 7919) % 86_400),
            "ingested_at": datetime(2024, 3, 12, tzinfo=UTC), "source": "shop", "subject": None,
            "event_payload": json.dumps({"n": n}), "content_hash": f"hash-{n}"}


def write_files(lake: Lake, batches: list[list[int]], day: date = DAY, prefix: str = "stream"
                ) -> None:
    for i, batch in enumerate(batches):
        rows = pa.Table.from_pylist([event(n, day) for n in batch], schema=EVENT_SCHEMA)
        lake.write_partition(day.isoformat(), rows, f"{prefix}-{i:03d}")


def ids(numbers: range | list[int], day: date = DAY) -> list[str]:
    return sorted(f"{day.isoformat()}-{n:04d}" for n in numbers)






def test_small_files_on_s3_become_one_file_with_each_event_once(
        lake: Lake, bucket: str, server_env: str) -> None:
    write_files(lake, [[0, 1, 2], [2, 3], [4, 5, 2], [6, 7]])

    report = compact(lake)

    [part] = report.partitions
    assert (part.inputs, part.rows_in, part.rows_out, part.duplicates_dropped) == (4, 10, 8, 2)
    [output] = part.outputs
    assert keys(bucket, server_env) == [
        "lake/_eventlake/compaction/dt=2024-03-10",
        f"lake/events/dt=2024-03-10/{output.path.rsplit('/', 1)[1]}"]
    rows = lake.read().to_pylist()
    assert rows == sorted((event(n) for n in range(8)),
                          key=lambda r: (r["event_type"], r["timestamp"], r["event_id"]))
    assert compact(lake, min_files=1).partitions == []


def test_a_crash_while_deleting_on_s3_is_finished_by_the_next_run(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    write_files(lake, [[i, i + 1] for i in range(0, 12, 2)])
    real_delete = lake.delete

    def delete_two_then_crash(paths: Any) -> None:
        real_delete(list(paths)[:2])
        raise OSError("killed while deleting")

    with monkeypatch.context() as killed:
        killed.setattr(lake, "delete", delete_two_then_crash)
        with pytest.raises(OSError, match="killed"):
            compact(lake)
    assert len(lake.list_files()) == 5
    assert sorted(read_distinct(lake)["event_id"].to_pylist()) == ids(range(12))

    report = compact(lake)

    assert report.leftovers_removed == 4
    assert len(lake.list_files()) == 1
    assert sorted(lake.read()["event_id"].to_pylist()) == ids(range(12))


def test_a_reader_on_s3_sees_each_event_once_while_compaction_runs(lake: Lake) -> None:
    write_files(lake, [[i, i + 1, i + 2] for i in range(0, 24, 3)])
    expected = ids(range(24))
    stop = threading.Event()
    reads: list[int] = []
    failures: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                got = sorted(read_distinct(lake)["event_id"].to_pylist())
                if got != expected:
                    failures.append(f"{len(got)} rows")
                reads.append(len(got))
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(3):
            write_files(lake, [[round_], [round_ + 5]], prefix=f"again{round_}")
            compact(lake, min_files=2)
    finally:
        stop.set()
        thread.join()

    assert failures == []
    assert len(reads) >= 2
    assert len(lake.list_files()) == 1


def test_fresh_files_on_s3_wait_for_min_age(lake: Lake) -> None:
    write_files(lake, [[1], [2], [3], [4]])
    [modified] = {f.modified is not None for f in lake.list_files()}
    assert modified  # S3's LastModified comes with the listing

    young = compact(lake, min_age_seconds=300)
    settled = compact(lake, min_age_seconds=300,
                      now=datetime.now(UTC) + timedelta(minutes=10))

    assert (young.partitions, young.skipped) == ([], 1)
    assert settled.files_in == 4 and len(lake.list_files()) == 1
