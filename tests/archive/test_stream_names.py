"""The stream archiver's per-batch bookkeeping done column-wise: file names from a digest of
the event_ids (eventlake/archive/streamfiles.py), record indexes of the rows (stream.py). Both
are computed in Arrow; these tests pin them to their plain Python definitions, so a batch
archived by an earlier version gets its own file names back on re-delivery.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from stream_support import batch, lake_files, new_lake, seq_of

from eventlake.archive.stream import _record_indexes, archive_event
from eventlake.archive.streamfiles import file_name, ids_digest
from eventlake.events.canonical import digest
from eventlake.events.schema import EVENT_SCHEMA


def _part(ids: list[str], *, chunks: int = 1, skip: int = 0) -> pa.Table:
    """A table of `ids` (other columns empty text), in `chunks` chunks, sliced past `skip`
    leading rows: the shapes a partition of a sorted batch takes."""
    names = ["x"] * skip + ids
    columns = {f.name: [None] * len(names) for f in EVENT_SCHEMA}
    columns["event_id"] = names
    schema = pa.schema([pa.field(f.name, f.type) for f in EVENT_SCHEMA])
    table = pa.Table.from_pydict(columns, schema=schema)
    step = max(1, len(names) // chunks)
    table = pa.concat_tables([table.slice(i, step) for i in range(0, len(names), step)])
    return table.slice(skip)


def test_the_ids_digest_is_the_digest_of_the_ids_joined_by_newlines() -> None:
    ids = ["evt-1", "Zoë 🦊", "", "evt-\n-x", "a" * 300]

    for part in (_part(ids), _part(ids, chunks=3), _part(ids, skip=2, chunks=2)):
        assert ids_digest(part) == digest("\n".join(ids))[:24]


def test_a_stream_file_name_is_its_sequence_range_and_the_digest_of_its_ids() -> None:
    ids = [f"evt-{i}" for i in range(7)]

    assert file_name("100", "106", _part(ids, skip=3, chunks=2)) == \
        f"stream-100-106-{digest(chr(10).join(ids))[:12]}"


def test_a_re_delivered_batch_gets_the_names_it_had_when_first_archived(tmp_path: Path) -> None:
    # given a batch archived once
    lake = new_lake(tmp_path / "lake")
    event = batch()
    archive_event(lake, event)
    first = lake_files(lake)
    # (named by its sequence range and the digest of its ids, in the file's row order)
    nov1 = next(p for p in first if p.parent.name == "dt=2026-11-01")
    stored = pq.read_table(nov1)["event_id"].to_pylist()
    assert stored == ["evt-placed-midnight", "evt-seen"]
    assert nov1.name == (f"stream-{seq_of(event, 0)}-{seq_of(event, 2)}-"
                         f"{digest(chr(10).join(stored))[:12]}.parquet")

    # when it is delivered again
    archive_event(lake, batch())

    # then it rewrites its own files and adds none
    assert lake_files(lake) == first


def test_record_indexes_are_the_fast_rows_then_the_row_wise_ones() -> None:
    every = _record_indexes([0, 1, 2, 3], [], 4)
    mixed = _record_indexes([0, 2], [3, 1], 4)

    assert (every.type, every.to_pylist()) == (pa.int64(), [0, 1, 2, 3])
    assert (mixed.type, mixed.to_pylist()) == (pa.int64(), [0, 2, 3, 1])
    assert _record_indexes([], [], 0).to_pylist() == []
