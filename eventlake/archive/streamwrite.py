"""One `dt` partition of a stream batch -> at most one file, holding only what the lake lacks.

    repeats in the batch   one row per event_id, the earliest record's (`write_partition`)
    name                   the rows' sequence range and ids digest (archive/streamfiles.py)
    overlap check          event_ids already in the partition's files that may hold these
                           rows are dropped (`ids_in_overlapping_files`), and the file is
                           named from what is left

So a partly failed batch re-delivered, a batch the sweep archived first, or one re-delivered
after compaction merged it, adds no copies. `listing` lists every partition of a batch at
once; the batch itself (archive/stream.py) decides which partitions to write and reports.
"""

from __future__ import annotations

import logging
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.archive.removed import REMOVED_NAME
from eventlake.archive.streamfiles import Sequences, content_name, file_name, name_range
from eventlake.lake.dedup import first_of_each
from eventlake.lake.store import Lake, LakeFile, WrittenFile
from eventlake.lake.vanish import retry_on_vanish

_log = logging.getLogger("eventlake.archive.stream")


def write_partition(lake: Lake, dt: str, part: pa.Table, part_order: pa.Array,
                    sequences: Sequences, repeats: bool, listed: list[LakeFile] | None
                    ) -> tuple[WrittenFile | None, int]:
    """Write partition `dt`'s rows `part` (sorted, `part_order` their batch record indexes)
    that the lake does not hold yet: one row per event_id when the batch has `repeats`, less
    the event_ids found by `ids_in_overlapping_files` (`listed` as there). Returns the file
    written (None when every row was there) and how many rows were not written."""
    repeated = 0
    if repeats:
        part, part_order, repeated = _one_per_event(part, part_order)
    seq_range = sequences.range_of(part_order)
    if seq_range is None:  # no sequence numbers (e.g. Kinesis-wrapped): name by content
        name = content_name(part)
        present = ids_in_overlapping_files(lake, dt, None, None, name, part, listed)
    else:
        name = file_name(*seq_range, part)
        present = ids_in_overlapping_files(lake, dt, int(seq_range[0]), int(seq_range[1]),
                                           name, part, listed)
    if not present:
        return lake.write_partition(dt, part, name, presorted=True), repeated
    keep = pc.invert(pc.is_in(part.column("event_id"),
                              value_set=pa.array(sorted(present), pa.string())))
    kept = part.filter(keep)
    skipped = part.num_rows - kept.num_rows
    if kept.num_rows == 0:
        return None, skipped + repeated
    kept_range = sequences.range_of(part_order.filter(keep))
    name = content_name(kept) if kept_range is None else file_name(*kept_range, kept)
    return lake.write_partition(dt, kept, name, presorted=True), skipped + repeated


def _one_per_event(part: pa.Table, part_order: pa.Array) -> tuple[pa.Table, pa.Array, int]:
    """The partition with one row per event_id, the one of the earliest record: Lambda
    re-delivers a record inside a batch (retries, resharding), and the overlap check only
    looks at files already written. Also returns how many rows were dropped."""
    ids = part.column("event_id")
    if pc.count_distinct(ids).as_py() == part.num_rows:  # the usual batch: nothing repeated
        return part, part_order, 0
    keep = first_of_each(ids, part_order)
    kept = part.filter(keep)
    return kept, part_order.filter(keep), part.num_rows - kept.num_rows


def ids_in_overlapping_files(lake: Lake, dt: str, lo: int | None, hi: int | None, own: str,
                             part: pa.Table, listed: list[LakeFile] | None = None
                             ) -> set[str]:
    """event_ids already in this partition's files that may hold rows of this batch:

        stream-<a>-<b>-...     sequence range [a, b] meets [lo, hi] (an earlier, partly failed
                               delivery of the same records); our own name is excluded:
                               rewriting it is the idempotent retry of an identical batch.
                               Rows without sequence numbers (`lo`, `hi` None): as below
        stream-x...            named by content, no range (records without sequence numbers,
                               re-delivered in another split): the footer's `ingested_at`
                               range meets the batch's, as below; our own name excluded
        backfill-, removed-... always read (their `ingested_at` may be the scan's or the
                               deletion's time)
        anything else          sweep, expiry, compacted, repair: the footer's `ingested_at`
                               range meets the batch's; a file without that statistic is read.
                               Not the window a sweep or expiry file is named after: an item
                               TTL deleted after the index read and sent again before the
                               fetch comes back ingested later, outside it

    Only the event_id column of those files is read. The usual batch, on a partition of
    sequence-named stream files only, reads nothing. Each other file's footer is read once
    per Lake object (`Lake.ingested_range` remembers it): a warm Lambda reads the footers of
    the files written since its last batch, a cold start those of every such file of the
    partition (a day of Kinesis-wrapped batches: one stream-x footer per batch so far, until
    compaction merges them). `listed`: the partition's files as the batch listed
    them (`listing`), used by the first attempt. A file vanishing under the check
    (compaction merged it) makes it list again: its rows are in the merged file, which must
    be looked at too.
    """
    first = [listed]  # serves the first attempt only: after a vanished file, list again

    def check() -> set[str]:
        files = first.pop() if first else None
        if files is None:
            files = lake.list_files(dts=[dt])
        overlapping, others = [], []
        for f in files:
            base = f.path.rsplit("/", 1)[-1]
            if base == f"{own}.parquet":
                continue
            seqs = name_range(base)
            if seqs is not None and lo is not None and hi is not None:
                if seqs[0] <= hi and lo <= seqs[1]:
                    overlapping.append(f.path)
            else:
                others.append(f)
        if others:
            low, high = (v.as_py() for v in pc.min_max(part["ingested_at"]).values())
            overlapping += [f.path for f in others if _may_hold(lake, f, low, high)]
        return lake.read_ids_of(overlapping) if overlapping else set()

    return retry_on_vanish(check)


def _may_hold(lake: Lake, f: LakeFile, low: datetime, high: datetime) -> bool:
    """Whether file `f` may hold events ingested in [low, high] (see
    `ids_in_overlapping_files`)."""
    base = f.path.rsplit("/", 1)[-1]
    if base.startswith(("backfill-", f"{REMOVED_NAME}-")):
        # A backfill stamps other producers' items (no `ingested_at`) with its scan time, a
        # REMOVE's rescue with the deletion's, the stream with the record's creation time:
        # their ranges need not meet. Always read (rescue files are rare: archive/removed.py).
        return True
    found = lake.ingested_range(f)
    return found is None or (found.low <= high and low <= found.high)


def listing(lake: Lake, dts: list[str]) -> dict[str, list[LakeFile]]:
    """The files of partitions `dts`, by dt, from one listing of the lake (not one per
    partition: each would list the `events/` folder again). When that listing fails, {}:
    each partition then lists its own, and a failure is reported for that partition, as a
    failed write is."""
    try:
        files = lake.list_files(dts=dts)
    except Exception:
        _log.info("listing partitions %s failed; each lists its own", dts, exc_info=True)
        return {}
    listed: dict[str, list[LakeFile]] = {dt: [] for dt in dts}
    for f in files:
        listed[f.dt].append(f)
    return listed
