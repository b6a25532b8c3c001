"""Each event once: choosing one copy per event_id, and the lake's de-duplicating read.

The read contract (the query layer's SQL follows it too): a partition with one file is read as
it is, because every writer writes files without duplicates (the stream path dedupes a batch,
compaction its inputs); a partition with several files may hold copies of an event
(un-compacted writes, a compaction between writing its output and deleting its inputs) and is
de-duplicated by event_id. An event_id lives in one partition only: the date of its timestamp.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.store import Lake, _projection

__all__ = ["KEY_COLUMNS", "first_copies", "read_distinct"]

KEY_COLUMNS = ["event_id", "ingested_at", "content_hash"]
"""The columns that choose one copy per event."""


def first_copies(keys: pa.Table) -> tuple[pa.BooleanArray, list[str]]:
    """A mask over the rows of `keys` (KEY_COLUMNS at least) that keeps one copy per event_id,
    and the event_ids whose copies differ in `content_hash` (corruption: events are immutable).

    The kept copy is the earliest `ingested_at`, then the smallest `content_hash`, then the
    first in row order: compaction and readers pick the same one.
    """
    n = keys.num_rows
    if n == 0:
        return pa.array([], pa.bool_()), []
    order = pc.sort_indices(keys, sort_keys=[(c, "ascending") for c in KEY_COLUMNS])  # stable
    ids = keys["event_id"].take(order).combine_chunks()
    previous = pa.concat_arrays([pa.array([None], pa.string()), ids.slice(0, n - 1)])
    first = pc.fill_null(pc.not_equal(ids, previous), True)
    conflicts: list[str] = []
    if pc.sum(first).as_py() < n:  # copies exist: compare each with its group's kept copy
        hashes = keys["content_hash"].take(order).combine_chunks()
        group = pc.subtract(pc.cumulative_sum(pc.cast(first, pa.int64())), 1)
        kept_hash = hashes.take(pc.indices_nonzero(first).take(group))
        conflicts = sorted(pc.unique(ids.filter(pc.not_equal(hashes, kept_hash))).to_pylist())
    # back to row order: the inverse of a permutation is its sort order
    return first.take(pc.sort_indices(order)), conflicts


def read_distinct(lake: Lake, start: date | None = None, end: date | None = None, *,
                  columns: Sequence[str] | None = None) -> pa.Table:
    """Events of the partitions in [start, end], each event_id once, in no particular order.

    Partitions with one file are read as they are; those with several are de-duplicated (see
    the module docstring). When a file vanishes between listing and reading (compaction deleted
    it after writing its merged output) the read starts over from a fresh listing, like every
    reader of `Lake` (up to `VANISH_ATTEMPTS` listings, then TransientError).
    """
    schema = _projection(columns)
    wanted = set(schema.names) | set(KEY_COLUMNS)
    keyed = pa.schema([f for f in EVENT_SCHEMA if f.name in wanted])

    def read() -> pa.Table:
        files = lake.list_files(start, end)
        counts = Counter(f.dt for f in files)
        single = [f for f in files if counts[f.dt] == 1]
        several = [f for f in files if counts[f.dt] > 1]
        parts = [lake._read_files(single, schema)] if single else []
        if several:
            table = lake._read_files(several, keyed)
            keep, _ = first_copies(table)
            parts.append(table.filter(keep).select(schema.names))
        return pa.concat_tables(parts) if parts else schema.empty_table()

    return lake._vanish_safe(read)
