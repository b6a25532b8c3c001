"""Records without sequence numbers (`stream-x` files, named by content) against the overlap
check (review19): mixed batches across partitions, footers without statistics, and what one
batch reads on a partition of many stream-x files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from archive_support import NOW, World, hours
from stream_support import lambda_event
from test_adversary_archive import once_everywhere

from eventlake.archive.stream import archive_event
from eventlake.lake.store import Lake


def _without_sequence(records: list[dict[str, Any]], *, every: int = 1) -> None:
    for n, record in enumerate(records):
        if n % every == 0:
            del record["dynamodb"]["SequenceNumber"]


def test_mixed_batches_over_two_days_redelivered_in_other_splits_add_no_copies(
        world: World) -> None:
    # given records over two days, every other one without a sequence number
    items = [world.item(f"m{i}", NOW - hours(1) + hours(i / 100),
                        timestamp=NOW - hours(24 * (i % 2) + 1)) for i in range(8)]
    records = lambda_event(items)["Records"]
    _without_sequence(records, every=2)
    # when they are delivered in three different splits
    archive_event(world.lake, {"Records": records[:5]})
    archive_event(world.lake, {"Records": records[3:]})
    archive_event(world.lake, {"Records": records[1:7]})
    # then each event is stored once, for every reader
    once_everywhere(world, [f"m{i}" for i in range(8)])


def test_a_stream_x_file_without_statistics_is_read(world: World) -> None:
    # given a stream-x file whose footer has no statistics (an older writer, or by hand)
    items = [world.item(f"s{i}", NOW - hours(1) + hours(i / 100)) for i in range(6)]
    records = lambda_event(items)["Records"]
    _without_sequence(records)
    archive_event(world.lake, {"Records": records[:4]})
    [path] = [p for p in Path(world.lake.root, "events").rglob("*.parquet")]
    assert path.name.startswith("stream-x")
    pq.write_table(pq.read_table(path), path, write_statistics=False)
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).statistics is None
    # when the records are re-delivered in another split, to a lake that never saw the file
    lake = Lake(world.settings, clients=world.clients)
    archive_event(lake, {"Records": records[2:]})
    # then the file was read: no copies
    once_everywhere(world, [f"s{i}" for i in range(6)])


def test_what_one_sequence_less_batch_reads_on_a_partition_of_many_stream_x_files(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a day of 12 sequence-less batches, one stream-x file each, ingested an hour apart
    files = 12
    for b in range(files):
        item = world.item(f"b{b}", NOW - hours(files + 1 - b), timestamp=NOW - hours(13))
        records = lambda_event([item])["Records"]
        _without_sequence(records)
        archive_event(world.lake, {"Records": records})
    footers: list[str] = []
    read: list[str] = []
    ranges, read_ids = Lake.ingested_range, Lake.read_ids_of

    def counting_range(self: Lake, f: Any) -> Any:
        if (f.path, f.size) not in self._ranges:  # not remembered: the footer is read
            footers.append(f.path)
        return ranges(self, f)

    def counting_ids(self: Lake, paths: list[str]) -> set[str]:
        read.extend(paths)
        return read_ids(self, paths)

    monkeypatch.setattr(Lake, "ingested_range", counting_range)
    monkeypatch.setattr(Lake, "read_ids_of", counting_ids)
    # when the next batch comes, through a lake object that has not seen the files (a cold
    # start), then again through the same one
    item = world.item("next", NOW - hours(0.5), timestamp=NOW - hours(13))
    records = lambda_event([item])["Records"]
    _without_sequence(records)
    lake = Lake(world.settings, clients=world.clients)
    archive_event(lake, {"Records": records})
    cold_start = len(footers)
    item = world.item("after", NOW - hours(0.4), timestamp=NOW - hours(13))
    records = lambda_event([item])["Records"]
    _without_sequence(records)
    archive_event(lake, {"Records": records})
    # then a cold start opens every stream-x footer of the day (it grows with the day), a
    # warm one only the file written since; no file's ids are read (no range meets)
    assert cold_start == files
    assert len(footers) - cold_start == 1
    assert read == []
    once_everywhere(world, [*(f"b{b}" for b in range(files)), "next", "after"])
