"""Adversarial checks of the archive side (review17): each event once, for `events` and for a
plain Parquet reader, across writers that disagree, crashes between steps and re-deliveries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pytest
from archive_support import NOW, World, hours
from stream_support import lambda_event

from eventlake.archive.stream import archive_event
from eventlake.lake.compact import compact
from eventlake.lake.store import Lake
from eventlake.query.views import connect


def plain_count(lake: Lake) -> int:
    """What `read_parquet` of the lake's glob counts (0 when the glob matches nothing)."""
    if not duckdb.sql(f"select * from glob('{lake.events_glob}')").fetchall():
        return 0
    return int(duckdb.sql(f"select count(*) from read_parquet('{lake.events_glob}')")
               .fetchall()[0][0])


def dataset_count(lake: Lake) -> int:
    return int(ds.dataset(f"{lake.root}/events", format="parquet",
                          partitioning="hive").count_rows())


def view_ids(world: World) -> Counter[str]:
    tiers = SimpleNamespace(hot=world.hot, cold=world.lake)
    con = connect(tiers, hot=False)  # type: ignore[arg-type]
    try:
        return Counter(r[0] for r in con.sql("select event_id from events").fetchall())
    finally:
        con.close()


def once_everywhere(world: World, ids: list[str]) -> None:
    assert view_ids(world) == Counter(ids)
    assert world.stored_rows() == Counter(ids)
    assert plain_count(world.lake) == len(ids)
    assert dataset_count(world.lake) == len(ids)


def test_foreign_layout_timestamp_stream_then_sweep(world: World) -> None:
    item = world.item("f1", NOW - hours(2), timestamp=NOW.replace(hour=0, minute=30))
    item["timestamp"] = {"S": "2024-05-10T02:30:00+02:00"}
    item2 = world.item("f2", NOW - hours(2))
    item2["ingested_at"] = {"S": (NOW - hours(2)).isoformat()}
    world.put_items([item, item2])
    archive_event(world.lake, lambda_event([item, item2]))
    world.sweep(NOW - hours(1))
    once_everywhere(world, ["f1", "f2"])


def test_foreign_layout_timestamp_sweep_then_stream(world: World) -> None:
    item = world.item("f1", NOW - hours(2), timestamp=NOW.replace(hour=0, minute=30))
    item["timestamp"] = {"S": "2024-05-10T02:30:00+02:00"}
    world.put_items([item])
    world.sweep(NOW - hours(1))
    archive_event(world.lake, lambda_event([item]))
    once_everywhere(world, ["f1"])


def test_a_sweep_with_a_smaller_clock_skew_hides_a_late_landing_event(world: World) -> None:
    world.ingest(["a"], NOW - hours(2))
    world.sweep(NOW - hours(1))  # watermark: NOW - 1 h
    # a producer whose clock ran 5 minutes slow: stamped behind the watermark, landed after it
    world.ingest(["late"], NOW - hours(1) - timedelta(minutes=5))
    # (a table that records no skew: each sweep uses its own, as before it was recorded)
    ddb = world.clients.dynamodb
    arn = ddb.describe_table(TableName=world.settings.table)["Table"]["TableArn"]
    ddb.untag_resource(ResourceArn=arn, TagKeys=["eventlake:clock_skew_seconds"])
    narrow = World(world.lake, world.hot, world.settings.with_(clock_skew_seconds=0),
                   world.clients)
    narrow.sweep(NOW - timedelta(minutes=30))
    world.sweep(NOW)  # the usual sweep again, an hour on: its look-back no longer reaches it
    tiers = SimpleNamespace(hot=world.hot, cold=world.lake)
    con = connect(tiers, hot=True, now=NOW)  # type: ignore[arg-type]
    seen = {r[0] for r in con.sql("select event_id from events").fetchall()}
    assert "late" in seen


@contextmanager
def crashing(monkeypatch: pytest.MonkeyPatch, owner: object, step: str) -> Iterator[None]:
    """`owner.step` raises OSError("crash") inside the block (a process dying at that step),
    and is itself again after it."""
    def crash(*_: object, **__: object) -> None:
        raise OSError("crash")

    with monkeypatch.context() as patch:
        patch.setattr(owner, step, crash)
        yield


def test_a_sweep_crashing_before_the_watermark_moves_then_again(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventlake.archive import sweep as module

    ids = world.ingest([f"e{i}" for i in range(5)], NOW - hours(2))
    with crashing(monkeypatch, module, "advance_watermark"), pytest.raises(OSError):
        world.sweep(NOW - hours(1))
    ids += world.ingest(["f0"], NOW - hours(1) - timedelta(minutes=1))
    world.sweep(NOW - hours(1))
    once_everywhere(world, ids)


def test_a_sweep_crashing_in_verify_then_again(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventlake.archive import sweep as module

    ids = world.ingest([f"e{i}" for i in range(5)], NOW - hours(2))
    archive_event(world.lake, lambda_event([world.item("s0", NOW - hours(2))]))
    ids.append("s0")
    with crashing(monkeypatch, module, "verify_recent"), pytest.raises(OSError):
        world.sweep(NOW - hours(1))
    world.sweep(NOW - timedelta(minutes=30))
    once_everywhere(world, ids)


def test_stream_partial_failure_then_redelivery_in_another_split(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    day1, day2 = NOW - timedelta(days=1), NOW
    items = [world.item(f"r{i}", NOW - hours(1), timestamp=(day1 if i % 2 else day2)
                        - hours(1)) for i in range(8)]
    first = lambda_event(items[:6])
    real = world.lake.write_partition
    bad = (day1 - hours(1)).date().isoformat()

    def failing(dt: str, *a: Any, **k: Any) -> Any:
        if dt == bad:
            raise OSError("timeout")
        return real(dt, *a, **k)

    monkeypatch.setattr(world.lake, "write_partition", failing)
    report = archive_event(world.lake, first)
    assert report.failed_from is not None
    monkeypatch.setattr(world.lake, "write_partition", real)
    whole = lambda_event(items)
    archive_event(world.lake, {"Records": whole["Records"][1:4]})
    archive_event(world.lake, {"Records": whole["Records"][2:8]})
    once_everywhere(world, [f"r{i}" for i in range(8)])


def test_compaction_crash_between_write_and_delete(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = []
    for k in range(4):
        batch = [world.item(f"c{k}-{i}", NOW - hours(2)) for i in range(3)]
        archive_event(world.lake, lambda_event(batch, first_seq=10**20 + 10 * k))
        ids += [f"c{k}-{i}" for i in range(3)]
    with crashing(monkeypatch, world.lake, "delete"), pytest.raises(OSError):
        compact(world.lake, min_files=2, now=NOW)
    assert view_ids(world) == Counter(ids)
    compact(world.lake, min_files=2, now=NOW)
    once_everywhere(world, ids)
    # the stream re-delivers the first batch after compaction: no copy
    archive_event(world.lake, lambda_event([world.item(f"c0-{i}", NOW - hours(2))
                                            for i in range(3)], first_seq=10**20))
    once_everywhere(world, ids)


@pytest.mark.parametrize("form", ["{p}/", "file://{p}", "file://{p}/", "{p}//"])
def test_lake_uri_forms_name_one_lake(world: World, form: str) -> None:
    other = Lake(world.settings.with_(lake_uri=form.format(p=world.lake.root)),
                 clients=world.clients)
    assert other.root == world.lake.root
    assert other.events_glob == world.lake.events_glob


def test_a_crashed_writers_temp_file_is_counted_by_no_plain_reader(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from eventlake.lake import fs as lakefs

    ids = world.ingest(["a", "b"], NOW - hours(2))
    with monkeypatch.context() as killed:
        killed.setattr(lakefs.LakeFS, "_publish", _crash_after_temp(lakefs.LakeFS._publish))
        with pytest.raises(OSError):
            world.sweep(NOW - hours(1))
    day = world.lake.root + "/events/dt=" + (NOW - hours(2)).date().isoformat()
    assert [n for n in os.listdir(day) if n.startswith(".")]  # the crash left a hidden temp
    assert plain_count(world.lake) == 0 and dataset_count(world.lake) == 0
    world.sweep(NOW - hours(1))
    once_everywhere(world, ids)


def _crash_after_temp(real: Any) -> Any:
    """`_publish` that leaves its filled temp file behind and raises, as a killed writer."""
    import shutil

    def publish(self: Any, path: str, fill: Any, if_absent: bool) -> int:
        if "/events/" not in path:
            return int(real(self, path, fill, if_absent))
        directory, _, base = path.rpartition("/")
        real(self, f"{directory}/.{base}.tmp-0badc0de", fill, if_absent)
        shutil.move(f"{directory}/.{base}.tmp-0badc0de", f"{directory}/.{base}.tmp-deadbeef")
        raise OSError("killed after the temp file")

    return publish


def test_records_without_sequence_numbers_redelivered_in_another_split_add_no_copies(
        world: World) -> None:
    items = [world.item(f"k{i}", NOW - hours(1)) for i in range(6)]
    whole = lambda_event(items)
    for record in whole["Records"]:
        del record["dynamodb"]["SequenceNumber"]  # e.g. delivered through Kinesis
    archive_event(world.lake, {"Records": whole["Records"][:4]})
    archive_event(world.lake, {"Records": whole["Records"][2:]})
    once_everywhere(world, [f"k{i}" for i in range(6)])


def test_a_verify_crashing_between_its_digest_and_its_manifest_then_the_next_sweep(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventlake.lake import disjoint

    ids = world.ingest([f"e{i}" for i in range(3)], NOW - hours(3))
    world.sweep(NOW - hours(2))
    batch = [world.item(f"s{i}", NOW - hours(2)) for i in range(2)]
    archive_event(world.lake, lambda_event(batch))
    archive_event(world.lake, lambda_event(batch[:1], first_seq=7 * 10**20))  # a copy of s0
    ids += ["s0", "s1"]
    real = world.lake.swap_state

    def crash_on_manifest(key: str, *a: Any, **k: Any) -> Any:
        if key.startswith("disjoint/"):
            raise OSError("killed before the manifest swap")
        return real(key, *a, **k)

    monkeypatch.setattr(world.lake, "swap_state", crash_on_manifest)
    with pytest.raises(OSError):
        disjoint.verify(world.lake, [(NOW - hours(2)).date().isoformat()], now=NOW)
    monkeypatch.setattr(world.lake, "swap_state", real)
    from pathlib import Path
    assert list(Path(world.lake.root, "_eventlake").rglob("*.ids.parquet"))  # the orphan
    assert view_ids(world) == Counter(ids)  # the orphan digest names nothing readers use
    world.sweep(NOW - hours(1))
    assert view_ids(world) == Counter(ids)
    compact(world.lake, now=NOW + hours(2))
    once_everywhere(world, ids)


@pytest.mark.parametrize(("uri", "root"), [("s3://b/p", "s3://b/p"), ("s3://b/p/", "s3://b/p"),
                                           ("s3://b//p//", "s3://b/p"), ("s3://b/", "s3://b")])
def test_s3_uri_forms_name_one_lake(uri: str, root: str) -> None:
    from eventlake.config import Settings

    assert Lake(Settings(lake_uri=uri)).root == root
