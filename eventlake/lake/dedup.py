"""Each event once: choosing one copy per event_id, and the lake's de-duplicating read.

One rule chooses the copy everywhere: the first of each event_id in an order the caller names
(`first_of_each`). Readers and compaction order by KEY_COLUMNS (`first_copies`: the earliest
`ingested_at`); the sweep's writer takes the first item it read, the stream the first record of
its batch.

The read contract (the query layer's SQL follows it too): a partition with one file is read as
it is when an eventlake writer named it (`names.is_own_file`), because every writer writes files
without duplicates (the stream path dedupes a batch, compaction its inputs; a lone file planted
by hand may not, and is de-duplicated like several); a partition with several files may hold
copies of an event (un-compacted writes, a compaction between writing its output and deleting
its inputs) and is de-duplicated by event_id. An event_id lives in one partition only: the
date of its timestamp.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from eventlake.lake.names import is_own_file
from eventlake.lake.store import Lake, LakeFile, projection
from eventlake.lake.vanish import retry_on_vanish

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["KEY_COLUMNS", "first_copies", "first_of_each", "read_distinct"]

KEY_COLUMNS = ["event_id", "ingested_at", "content_hash"]
"""The columns that choose one copy per event."""


def first_of_each(event_ids: pa.Array | pa.ChunkedArray,
                  *rank: pa.Array | pa.ChunkedArray) -> pa.BooleanArray:
    """A mask over rows (one per entry of `event_ids`) keeping one row per event_id: the first
    by the `rank` columns (ascending, one value per row), then in row order."""
    import pyarrow.compute as pc

    order, first = _first_in_order(event_ids, rank)
    # back to row order: the inverse of a permutation is its sort order
    return first.take(pc.sort_indices(order))


def first_copies(keys: pa.Table) -> tuple[pa.BooleanArray, list[str]]:
    """A mask over the rows of `keys` (KEY_COLUMNS at least) that keeps one copy per event_id,
    and the event_ids whose copies differ in `content_hash` (corruption: events are immutable).

    The kept copy is the earliest `ingested_at`, then the smallest `content_hash`, then the
    first in row order: compaction and readers pick the same one.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = keys.num_rows
    if n == 0:
        return pa.array([], pa.bool_()), []
    order, first = _first_in_order(keys["event_id"],
                                   [keys[c] for c in KEY_COLUMNS if c != "event_id"])
    conflicts: list[str] = []
    if pc.sum(first).as_py() < n:  # copies exist: compare each with its group's kept copy
        ids = keys["event_id"].take(order).combine_chunks()
        hashes = keys["content_hash"].take(order).combine_chunks()
        group = pc.subtract(pc.cumulative_sum(pc.cast(first, pa.int64())), 1)
        kept_hash = hashes.take(pc.indices_nonzero(first).take(group))
        conflicts = sorted(pc.unique(ids.filter(pc.not_equal(hashes, kept_hash))).to_pylist())
    return first.take(pc.sort_indices(order)), conflicts


def _first_in_order(event_ids: pa.Array | pa.ChunkedArray,
                    rank: Sequence[pa.Array | pa.ChunkedArray]
                    ) -> tuple[pa.Array, pa.BooleanArray]:
    """(the rows sorted by event_id then `rank` then row order, and along that order whether
    each row is the first of its event_id)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(event_ids)
    if n == 0:
        return pa.array([], pa.uint64()), pa.array([], pa.bool_())
    columns: dict[str, Any] = {"event_id": event_ids}
    columns.update({f"rank{i}": column for i, column in enumerate(rank)})
    table = pa.table(columns)
    order = pc.sort_indices(table, sort_keys=[(c, "ascending") for c in table.column_names])
    ids = table["event_id"].take(order).combine_chunks()  # the sort above is stable
    previous = pa.concat_arrays([pa.array([None], ids.type), ids.slice(0, n - 1)])
    return order, pc.fill_null(pc.not_equal(ids, previous), True)


def read_distinct(lake: Lake, start: date | None = None, end: date | None = None, *,
                  columns: Sequence[str] | None = None) -> pa.Table:
    """Events of the partitions in [start, end], each event_id once, in no particular order.

    Partitions with one file of an eventlake writer are read as they are; the others are
    de-duplicated (see the module docstring). When a file vanishes between listing and reading
    (compaction deleted it after writing its merged output) the read starts over from a fresh
    listing, like every reader of `Lake` (up to `VANISH_ATTEMPTS` listings, then TransientError).
    """
    import pyarrow as pa

    from eventlake.events.schema import EVENT_SCHEMA

    schema = projection(columns)
    wanted = set(schema.names) | set(KEY_COLUMNS)
    keyed = [f.name for f in EVENT_SCHEMA if f.name in wanted]

    def read() -> pa.Table:
        files = lake.list_files(start, end)
        counts = Counter(f.dt for f in files)
        single = [f for f in files if counts[f.dt] == 1 and is_own_file(_name(f))]
        several = [f for f in files if f not in single]
        parts = [lake.read_files(single, columns)]  # no files: an empty table of `schema`
        if several:
            table = lake.read_files(several, keyed)
            keep, _ = first_copies(table)
            parts.append(table.filter(keep).select(schema.names))
        return pa.concat_tables(parts)

    return retry_on_vanish(read)


def _name(f: LakeFile) -> str:
    return f.path.rpartition("/")[2]
