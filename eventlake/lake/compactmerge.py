"""Merging one partition: the inputs of a plan -> one copy per event_id -> outputs, then the
inputs deleted.

    choose      one copy per event_id (`dedup.first_copies`: the earliest `ingested_at`); a
                copy a held file stores already is dropped too
    quarantine  a dropped copy whose `content_hash` differs (an event_id reused), rule
                `event.id_reused`, before anything is written or deleted
    record      `compactrecord.write_record`: these inputs are replaced by these outputs
    write       the plan's outputs, sorted, zstd, atomic
    delete      the inputs, only once every output is written

An input vanishing or changing while being read means another run is compacting the partition:
`RacedError`, and the run leaves the partition alone.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.events.schema import SORT_KEYS
from eventlake.lake.compactplan import NO_COPIES, Copies, Plan, base_name
from eventlake.lake.compactrecord import write_record
from eventlake.lake.dedup import KEY_COLUMNS, first_copies
from eventlake.lake.disjoint import IdCache, all_verified, verify_logged
from eventlake.lake.names import is_own_file
from eventlake.lake.store import (
    Lake,
    LakeFile,
    LakeFileError,
    QuarantineEntry,
    WrittenFile,
    projection,
)
from eventlake.lake.vanish import file_vanished

__all__ = ["ID_REUSED_RULE", "PartitionCompaction", "RacedError", "find_copies",
           "merge_partition", "raced_on_vanish"]

_log = logging.getLogger("eventlake.lake.compact")


@dataclass
class PartitionCompaction:
    """One partition merged: `inputs` files of `input_bytes` became `outputs`."""

    dt: str
    inputs: int
    input_bytes: int
    outputs: list[WrittenFile]
    rows_in: int
    rows_out: int
    duplicates_dropped: int
    conflicts: list[str] = field(default_factory=list)
    """event_ids whose copies differ in `content_hash` (an event_id reused with new content:
    events are immutable). The copy with the earliest `ingested_at` was kept; each other copy
    was quarantined (rule `event.id_reused`) before the inputs were deleted."""
    quarantined: int = 0
    """Copies dropped that differed from the kept one, written to the quarantine."""

    @property
    def output_bytes(self) -> int:
        return sum(f.bytes for f in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "output_bytes": self.output_bytes}


def find_copies(lake: Lake, dt: str, inputs: list[LakeFile], held: list[LakeFile], *,
                now: datetime | None = None, ids: IdCache | None = None) -> Copies:
    """Whether an event_id is stored twice among `inputs` and `held` (a plain `read_parquet`
    over the partition would count it twice), and which held files store one another held
    file stores. Holds the ids of these files in memory at once, as a partition split into
    several outputs holds its key columns.

    The partition's disjoint-files manifest (`disjoint.py`) answers first: files it names are
    pairwise disjoint, so the hourly run reads nothing for a closed day that kept two or three
    files, nor for the large files of a busy day. When it does not name them all, the
    partition is verified (`disjoint.verify`, which records what it proves, so an old day
    nobody sweeps is read bare afterwards), and only when that leaves some out are the ids
    compared here (from `ids`, where verify left what it read).

    A lone file is asked about only when no writer of eventlake named it (`is_own_file`: those
    write each event_id once): a file planted by hand may hold one twice, which readers, who
    read a lone file bare, and plain scans would count twice until it is rewritten. Verify
    reads it once and names it in the manifest when it holds each id once."""
    files = [*inputs, *held]
    if (len(files) < 2 and all(is_own_file(base_name(f.path)) for f in files)) \
            or all_verified(lake, dt, files):
        return NO_COPIES
    cache = IdCache() if ids is None else ids
    verify_logged(lake, [dt], now=now or datetime.now(UTC), ids=cache, caller="compaction")
    if all_verified(lake, dt, files):
        return NO_COPIES
    missing = [f for f in files if cache.get(f) is None]
    for f, table in zip(missing, lake.read_each([f.path for f in missing], ["event_id"]),
                        strict=True):
        cache.put(f, table["event_id"].combine_chunks())
    columns: list[pa.Array] = []
    for f in files:
        got = cache.get(f)
        if isinstance(got, LakeFileError):
            raise got
        assert got is not None  # put above
        columns.append(got)
    every = pa.concat_arrays(columns)
    if pc.count_distinct(every).as_py() < len(every):
        return Copies(True, _storing_twice(held, columns[len(inputs):]))
    return NO_COPIES


def _storing_twice(files: list[LakeFile], columns: list[pa.Array]) -> tuple[LakeFile, ...]:
    """The `files` (whose event_id columns are `columns`) storing an event_id that one of
    them stores too."""
    if not files:
        return ()
    counts = pc.value_counts(pa.concat_arrays(columns))
    twice = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if not len(twice):
        return ()
    return tuple(f for f, c in zip(files, columns, strict=True)
                 if pc.any(pc.is_in(c, value_set=twice)).as_py())


class RacedError(Exception):
    """An input vanished or changed: another run is compacting this partition."""


@contextmanager
def raced_on_vanish() -> Iterator[None]:
    """A file vanishing in the block -> RacedError."""
    try:
        yield
    except OSError as exc:
        if file_vanished(exc):
            raise RacedError(f"an input vanished while being read ({exc})") from exc
        raise


def merge_partition(lake: Lake, dt: str, plan: Plan, target_bytes: int, now: datetime, *,
                    ids: IdCache | None = None) -> PartitionCompaction:
    """Carry out `plan` on partition `dt` (see the module docstring); RacedError when an input
    vanishes or changes meanwhile, LakeFileError when one cannot be read. The held files'
    event_id columns, read here anyway, go into `ids` (for the verify that follows)."""
    groups = plan.groups(target_bytes)
    paths = [f.path for f in plan.inputs]
    whole: list[pa.Table] | None = None
    with raced_on_vanish():
        if len(groups) == 1:  # the usual case: read everything once
            whole = lake.read_each(paths)
            keyed = [t.select(KEY_COLUMNS) for t in whole]
        else:  # choose on the key columns, then read one output's inputs at a time
            keyed = lake.read_each(paths, KEY_COLUMNS)
        held = _read_held(lake, plan.held, ids)
    keys = pa.concat_tables(keyed)
    keep, conflicts = first_copies(keys)
    if held.num_rows:
        keep, more = _drop_held(keys, keep, held)
        conflicts = sorted({*conflicts, *more})
    offsets = [0]
    for table in keyed:
        offsets.append(offsets[-1] + table.num_rows)
    quarantined = 0
    if conflicts:  # before anything is written or deleted: a crash then loses nothing
        quarantined = _quarantine_reused(lake, plan, keys, keep, held, conflicts, offsets,
                                         whole, now)

    def kept(i: int) -> pa.BooleanArray:
        return keep.slice(offsets[i], offsets[i + 1] - offsets[i])

    filled = [k for k, group in enumerate(groups) if any(pc.any(kept(i)).as_py() for i in group)]
    names = {k: plan.output_name(k, len(groups)) for k in filled}
    if names:
        write_record(lake, dt, plan.inputs, list(names.values()), now)
    outputs: list[WrittenFile] = []
    for k in filled:
        parts = []
        for i in groups[k]:
            if whole is not None:
                table = whole[i]
            else:
                with raced_on_vanish():
                    table = lake.read_file(paths[i])
                if not table["event_id"].equals(keyed[i]["event_id"]):
                    raise RacedError(f"`{paths[i]}` changed while being compacted")
            parts.append(table.filter(kept(i)))
        merged = pa.concat_tables(parts).sort_by(SORT_KEYS)
        outputs.append(lake.write_partition(dt, merged, names[k], presorted=True))

    # Every output is durable: only now may the files they replace go.
    written = {w.path for w in outputs}
    lake.delete([f.path for f in [*plan.inputs, *plan.leftovers] if f.path not in written])
    rows_out = sum(w.rows for w in outputs)
    result = PartitionCompaction(dt, len(plan.inputs), sum(f.size for f in plan.inputs),
                                 outputs, keys.num_rows, rows_out, keys.num_rows - rows_out,
                                 conflicts, quarantined)
    if conflicts:
        _log.warning("dt=%s: %d event_id(s) stored with different content (an event_id reused; "
                     "kept the earliest ingested copy, quarantined %d other(s)), e.g. %s", dt,
                     len(conflicts), quarantined, conflicts[:5])
    _log.info("compacted dt=%s: %d file(s), %d bytes -> %d file(s), %d bytes; %d duplicate(s) "
              "dropped", dt, result.inputs, result.input_bytes, len(outputs),
              result.output_bytes, result.duplicates_dropped)
    return result


ID_REUSED_RULE = "event.id_reused"


def _quarantine_reused(lake: Lake, plan: Plan, keys: pa.Table, keep: pa.BooleanArray,
                       held: pa.Table, conflicts: list[str], offsets: list[int],
                       whole: list[pa.Table] | None, now: datetime) -> int:
    """Quarantine, raw, every input copy compaction drops whose content differs from the copy
    it keeps (an event_id reused with new content): dropping it silently would lose an event.
    Named from the plan, so a run redone after a crash rewrites the same file. The count."""
    in_conflict = pc.indices_nonzero(pc.is_in(keys["event_id"], value_set=pa.array(conflicts)))
    rows = keys.take(in_conflict).to_pylist()
    kept_flags = keep.take(in_conflict).to_pylist()
    kept_hash = dict(zip(held["event_id"].to_pylist(), held["content_hash"].to_pylist(),
                         strict=True))
    kept_hash.update({r["event_id"]: r["content_hash"]
                      for r, kept in zip(rows, kept_flags, strict=True) if kept})
    dropped = [(position, row) for position, row, kept in zip(
        in_conflict.to_pylist(), rows, kept_flags, strict=True)
        if not kept and row["content_hash"] != kept_hash.get(row["event_id"])]
    if not dropped:
        return 0
    by_file: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for position, row in dropped:
        i = bisect_right(offsets, position) - 1
        by_file[i].append((position - offsets[i], kept_hash[row["event_id"]]))
    entries = []
    for i, wanted in sorted(by_file.items()):
        with raced_on_vanish():
            table = whole[i] if whole is not None else lake.read_file(plan.inputs[i].path)
        full = table.take(pa.array([r for r, _ in wanted], pa.int64())).to_pylist()
        for record, (_, kept) in zip(full, wanted, strict=True):
            entries.append(QuarantineEntry(
                f"event `{record['event_id']}` is stored twice with different content: "
                f"compaction kept the copy ingested first (content_hash `{kept}`) and "
                f"quarantined this one (content_hash `{record['content_hash']}`, file "
                f"`{plan.inputs[i].path}`); events are immutable: send it under a new event_id",
                ID_REUSED_RULE, record, source="compaction", quarantined_at=now))
    lake.quarantine(entries, f"compaction-{plan.digest}", now=now)
    return len(entries)


def _read_held(lake: Lake, held: list[LakeFile], ids: IdCache | None) -> pa.Table:
    columns = ["event_id", "content_hash"]
    if not held:
        return projection(columns).empty_table()
    tables = lake.read_each([f.path for f in held], columns)
    if ids is not None:
        for f, table in zip(held, tables, strict=True):
            ids.put(f, table["event_id"].combine_chunks())
    return pa.concat_tables(tables)


def _drop_held(keys: pa.Table, keep: pa.BooleanArray, held: pa.Table
               ) -> tuple[pa.BooleanArray, list[str]]:
    """Unmask rows whose event_id a held (untouched) file stores; report differing copies."""
    in_held = pc.is_in(keys["event_id"], value_set=held["event_id"].combine_chunks())
    if not pc.any(in_held).as_py():
        return keep, []
    again = keys.filter(in_held)
    held = held.filter(pc.is_in(held["event_id"], value_set=again["event_id"].combine_chunks()))
    stored = dict(zip(held["event_id"].to_pylist(), held["content_hash"].to_pylist(),
                      strict=True))
    conflicts = sorted({i for i, h in zip(again["event_id"].to_pylist(),
                                          again["content_hash"].to_pylist(), strict=True)
                        if stored[i] != h})
    return pc.and_(keep, pc.invert(in_held)), conflicts
