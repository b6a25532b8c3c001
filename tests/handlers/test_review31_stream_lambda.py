"""Review 31: the stream Lambda against what AWS does that the local stack does not show.

- a cold start whose EVENTLAKE_LAKE_URI is missing or mistyped must not archive into a lake
  nobody reads (./eventlake-data, or another deployment's lake) and report the batch done;
- ParallelizationFactor > 1: concurrent batches of one shard carry interleaved sequence numbers
  (their ranges overlap), each may fail and be re-delivered: nothing lost, nothing overwritten;
- the same batch delivered twice at once (at-least-once): each event once on disk.

"Each event once" is checked on raw rows (every row of every file), as in test_handlers_stream.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from stream_support import ARCHIVED_IN_BATCH, batch, handler_lake, new_lake, raw_rows, seq_of

from eventlake.config import Settings
from eventlake.errors import ConfigError, LakeNotFoundError
from eventlake.handlers import stream as stream_handler
from eventlake.lake.store import Lake


def invoke(event: Any) -> dict[str, Any]:
    return stream_handler.handler(event, SimpleNamespace(aws_request_id="req-31"))


@pytest.fixture
def from_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The handler builds its Lake from the environment, as on a cold start."""
    stream_handler.reset()
    yield
    stream_handler.reset()


def marked_lake(root: Path, table: str = "prod-events") -> Lake:
    """A lake as `eventlake init` leaves it: marked as `table`'s."""
    lake = new_lake(root)
    assert lake.create_marker(table=table)
    return lake


# --- a cold start with a missing or wrong lake ----------------------------------------------

def test_a_cold_start_without_the_lake_variable_fails_the_batch_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_env: None) -> None:
    # given a function deployed without EVENTLAKE_LAKE_URI, running in a writable folder
    monkeypatch.delenv("EVENTLAKE_LAKE_URI", raising=False)
    monkeypatch.chdir(tmp_path)

    # when a batch arrives, then it fails whole (Lambda retries it, then gives it to the
    # on-failure destination; the sweep archives it) naming the lake and what to do
    with pytest.raises(ConfigError, match="EVENTLAKE_LAKE_URI is not set"):
        invoke(batch())
    # and nothing was archived into a lake nobody reads
    assert list(tmp_path.iterdir()) == []


def test_a_mistyped_lake_uri_fails_the_batch_until_the_lake_is_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_env: None) -> None:
    # given a function whose EVENTLAKE_LAKE_URI names no lake
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.delenv("EVENTLAKE_TABLE", raising=False)
    with pytest.raises(LakeNotFoundError):
        invoke(batch())
    assert not (tmp_path / "lake" / "events").exists()

    # when `eventlake init` then marks the lake, the next invocation of the same (warm)
    # environment archives the re-delivered batch
    lake = marked_lake(tmp_path / "lake")
    assert invoke(batch()) == {"batchItemFailures": []}
    assert sorted(r["event_id"] for r in raw_rows(lake)) == sorted(ARCHIVED_IN_BATCH)


def test_a_lake_of_another_table_is_refused_when_the_function_names_its_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_env: None) -> None:
    # given staging's function (EVENTLAKE_TABLE staging-events) pointed at prod's lake
    lake = marked_lake(tmp_path / "lake", table="prod-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", lake.root)
    monkeypatch.setenv("EVENTLAKE_TABLE", "staging-events")

    # when a batch arrives, then it is refused naming both, and nothing is written
    with pytest.raises(ConfigError, match=r"prod-events.*staging-events"):
        invoke(batch())
    assert raw_rows(lake) == []


def test_the_lake_is_checked_once_per_execution_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_env: None) -> None:
    # given a marked lake and a function configured for it
    lake = marked_lake(tmp_path / "lake", table="prod-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", lake.root)
    monkeypatch.setenv("EVENTLAKE_TABLE", "prod-events")
    reads: list[str] = []
    real = Lake.read_state

    def counted(self: Lake, key: str) -> Any:
        reads.append(key)
        return real(self, key)

    monkeypatch.setattr(Lake, "read_state", counted)
    # when three batches arrive (the second and third as re-deliveries)
    for _ in range(3):
        assert invoke(batch()) == {"batchItemFailures": []}
    # then the marker was read on the cold start only
    assert reads.count("lake.json") == 1
    assert sorted(r["event_id"] for r in raw_rows(lake)) == sorted(ARCHIVED_IN_BATCH)


# --- ParallelizationFactor > 1 and concurrent deliveries (these held; pinned) ---------------

@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    """A fresh local lake that the handler uses instead of building one from the env."""
    with handler_lake(tmp_path / "lake") as made:
        yield made


def _only_inserts(event: dict[str, Any], positions: list[int]) -> dict[str, Any]:
    return {**event, "Records": [copy.deepcopy(event["Records"][p]) for p in positions]}


def test_interleaved_batches_of_one_shard_each_failing_once_land_each_event_once(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given one shard's INSERTs split as ParallelizationFactor 2 splits them (by partition
    # key): two batches whose sequence ranges overlap, each failing its first write
    event = batch()
    even, odd = _only_inserts(event, [0, 2, 4]), _only_inserts(event, [1, 3])
    real = lake.write_partition
    failed: set[str] = set()

    def once_failing(dt: str, table: Any, name: str, **kw: Any) -> Any:
        first = name.split("-")[1]
        if first not in failed:
            failed.add(first)
            raise OSError("SlowDown: HTTP status 503")
        return real(dt, table, name, **kw)

    monkeypatch.setattr(lake, "write_partition", once_failing)
    # when both are handled, and each re-delivered from the record it reports
    for part in (even, odd):
        reply = invoke(part)
        while reply["batchItemFailures"]:
            seq = reply["batchItemFailures"][0]["itemIdentifier"]
            records = part["Records"]
            at = [r["dynamodb"]["SequenceNumber"] for r in records].index(seq)
            reply = invoke({**part, "Records": records[at:]})
    # then every INSERT is in the lake once, and both batches' files are there (the overlap
    # of their ranges made neither overwrite nor skip the other's events)
    assert sorted(r["event_id"] for r in raw_rows(lake)) == sorted(ARCHIVED_IN_BATCH)
    assert failed  # the fault did fire


def test_the_same_batch_delivered_twice_at_once_lands_each_event_once(lake: Lake) -> None:
    # given the same batch delivered to two execution environments at the same moment
    event = batch()
    replies: list[dict[str, Any]] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        replies.append(invoke(copy.deepcopy(event)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then both succeed, and the lake holds each event once (both wrote the same names)
    assert replies == [{"batchItemFailures": []}] * 2
    assert sorted(r["event_id"] for r in raw_rows(lake)) == sorted(ARCHIVED_IN_BATCH)
    assert not [p for p in Path(lake.root).rglob("*.tmp-*")]


def test_the_item_identifier_is_the_records_sequence_number(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a lake that cannot write at all
    event = batch()
    monkeypatch.setattr(lake, "write_partition",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("HTTP status 503")))
    # then the failure names the SequenceNumber of the batch's first INSERT, as Lambda needs
    reply = invoke(event)
    assert reply == {"batchItemFailures": [{"itemIdentifier": seq_of(event, 0)}]}
    assert os.environ.get("EVENTLAKE_LAKE_URI") != lake.root  # the cached lake served it


def test_settings_default_lake_is_a_relative_path() -> None:
    # why the cold-start check matters: without the variable, the lake is ./eventlake-data
    assert not Path(Settings().lake_uri).is_absolute()


# --- S3: a partition listed past ListObjectsV2's 1,000 keys a page (held; pinned) -----------

def test_a_redelivery_finds_its_earlier_file_past_the_first_listing_page(s3_lake: Lake) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    import pyarrow.parquet as pq

    # given 1,001 files in the partition ahead of the stream's own in key order (other
    # shards' stream files, never read: their ranges do not meet this batch's)
    bucket, _, prefix = s3_lake.root.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    folder = f"{prefix}/events/dt=2026-11-01".lstrip("/")

    def filler(i: int) -> None:
        s3.put_object(Bucket=bucket, Key=f"{folder}/stream-0-0-{i:012x}.parquet", Body=b"")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(filler, range(1001)))
    stream_handler.reset(s3_lake)
    try:
        # when the INSERTs are archived, then re-delivered from the second record
        event = _only_inserts(batch(), [0, 1, 2, 3, 4])
        assert invoke(event) == {"batchItemFailures": []}
        assert invoke({**event, "Records": copy.deepcopy(event["Records"][1:])}) == {
            "batchItemFailures": []}
    finally:
        stream_handler.reset()
    # then the re-delivery found the first delivery's files (listed on a later page) and
    # wrote nothing again: each event once, raw rows
    ours = [f for f in s3_lake.list_files() if "/stream-0-0-" not in f.path]
    assert len(s3_lake.list_files()) == len(ours) + 1001
    rows = [i for f in ours for i in pq.read_table(
        s3_lake.fs_path(f.path), filesystem=s3_lake.fs, columns=["event_id"]
    )["event_id"].to_pylist()]
    assert sorted(rows) == sorted(ARCHIVED_IN_BATCH)
