"""Compaction: merge each dt partition's small files into a few large ones, each event once.

    1. plan     inputs = every file of the partition when together they fit in one
                `target_bytes` file (the partition becomes one file), else only its small files
                (the large ones, earlier outputs, stay as they are) and the large files that
                share an event_id with another large file; a partition below `min_files` is
                taken anyway when its files share an event_id (their event_id columns are
                read), so a plain scan of the lake counts each event once
    2. choose   one copy per event_id (`distinct.first_copies`: the earliest `ingested_at`);
                a dropped copy whose `content_hash` differs (an event_id reused) goes to the
                quarantine, rule `event.id_reused`, before anything is written or deleted
    3. record   `_eventlake/compaction/dt=<dt>`: these inputs are replaced by these outputs
    4. write    `compacted-<digest of the input names>-<k>-of-<n>.parquet`, sorted, zstd, atomic
    5. delete   the inputs, only once every output is written

Readers and compaction, one partition over time (readers follow `distinct.read_distinct`:
de-duplicate a partition only while it has more than one file):

    files     s1 s2 s3 s4 --write--> s1 s2 s3 s4 C --delete--> C
    reader    several files: dedupe  several files: dedupe     one file: read as it is
              a file vanishing between listing and reading -> list again (its rows are in C)

Crashes leave copies, never gaps, and the next run removes them:
    during 4    the inputs are all there: their digest names the outputs of this very plan,
                which is run again and rewrites the same outputs, then deletes
    during 5    the record's outputs all exist: the inputs it names are deleted
Concurrent runs need no lock: an input vanishing while being read means another run is
compacting the partition, and this one leaves it alone (`CompactReport.raced`). A file that
cannot be read (corrupt, or not the lake's schema) leaves its partition alone too, reported in
`CompactReport.failed` by file; the other partitions are compacted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from eventlake.errors import ConfigError
from eventlake.events.schema import SORT_KEYS
from eventlake.lake.compactplan import (
    DEFAULT_MIN_FILES,
    DEFAULT_SMALL_FILE_BYTES,
    DEFAULT_TARGET_BYTES,
    NO_COPIES,
    Copies,
    Plan,
    base_name,
    is_output,
    needs_compaction,
    plan_partition,
)
from eventlake.lake.dedup import KEY_COLUMNS, first_copies, read_distinct
from eventlake.lake.layout import EVENTS_DIR, dt_filter, dt_of_dir
from eventlake.lake.store import (
    Lake,
    LakeDataError,
    LakeFile,
    LakeFileError,
    QuarantineEntry,
    StateConflictError,
    WrittenFile,
    projection,
)
from eventlake.lake.vanish import file_vanished

__all__ = [
    "DEFAULT_MIN_FILES",
    "DEFAULT_SMALL_FILE_BYTES",
    "DEFAULT_TARGET_BYTES",
    "CompactReport",
    "CompactionFailedError",
    "PartitionCompaction",
    "compact",
    "needs_compaction",
    "read_distinct",
    "remove_stale_temp_files",
]

_log = logging.getLogger("eventlake.lake.compact")

STALE_TEMP_SECONDS = 3600.0
"""A writer's hidden temp file older than this was left by a crash (writes take seconds)."""
_TEMP = re.compile(r"\..+\.tmp-[0-9a-f]+")


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


@dataclass
class CompactReport:
    """What one `compact` run did, partition by partition."""

    partitions: list[PartitionCompaction]
    skipped: int
    """Partitions in range left alone: already compacted, or below the thresholds."""
    duration_s: float
    raced: list[str] = field(default_factory=list)
    """Partitions left alone because an input vanished: another run was compacting them."""
    leftovers_removed: int = 0
    """Inputs of an interrupted compaction deleted because its outputs were all there."""
    temp_files_removed: int = 0
    """Stale hidden temp files of crashed writers removed (local disk only)."""
    failed: list[dict[str, str]] = field(default_factory=list)
    """Partitions left alone because a file could not be read (corrupt, or not the lake's
    schema): `{dt, file, reason}` each. The other partitions were compacted; a run with any
    is not a success (the CLI exits 1, the flow fails after publishing its report)."""

    @property
    def ok(self) -> bool:
        """No partition failed."""
        return not self.failed

    def raise_if_failed(self) -> None:
        """Raise CompactionFailedError when a partition failed (after the report is out)."""
        if self.failed:
            raise CompactionFailedError(self)

    @property
    def files_in(self) -> int:
        return sum(p.inputs for p in self.partitions)

    @property
    def files_out(self) -> int:
        return sum(len(p.outputs) for p in self.partitions)

    @property
    def duplicates_dropped(self) -> int:
        return sum(p.duplicates_dropped for p in self.partitions)

    @property
    def conflicts(self) -> list[str]:
        return [c for p in self.partitions for c in p.conflicts]

    @property
    def quarantined(self) -> int:
        return sum(p.quarantined for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return {"partitions": [p.to_dict() for p in self.partitions], "skipped": self.skipped,
                "raced": self.raced, "leftovers_removed": self.leftovers_removed,
                "temp_files_removed": self.temp_files_removed, "files_in": self.files_in,
                "files_out": self.files_out,
                "bytes_in": sum(p.input_bytes for p in self.partitions),
                "bytes_out": sum(p.output_bytes for p in self.partitions),
                "duplicates_dropped": self.duplicates_dropped, "conflicts": self.conflicts,
                "quarantined": self.quarantined, "failed": self.failed,
                "duration_s": round(self.duration_s, 3)}


class CompactionFailedError(LakeDataError):
    """A compaction run left partitions alone because one of their files could not be read;
    `report` says which (the other partitions were compacted)."""

    def __init__(self, report: CompactReport) -> None:
        self.report = report
        first = report.failed[0]
        super().__init__(f"compaction left {len(report.failed)} partition(s) alone, e.g. "
                         f"dt={first['dt']}: {first['reason']}")


# -- compacting --------------------------------------------------------------------------------

def compact(lake: Lake, *, start: date | None = None, end: date | None = None,
            min_files: int = DEFAULT_MIN_FILES, small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES,
            target_bytes: int = DEFAULT_TARGET_BYTES, now: datetime | None = None,
            min_age_seconds: float = 0) -> CompactReport:
    """Compact the partitions with `start <= dt <= end` (see `needs_compaction` for which).

    Files younger than `min_age_seconds` (the store's modification time, against `now`) are
    neither merged nor deleted, so a stream writer's fresh files settle first. Partitions are
    compacted one at a time; memory holds about one output's worth of rows (plus the key
    columns of a partition that is split into several outputs).
    """
    _check_args(min_files=min_files, small_file_bytes=small_file_bytes,
                target_bytes=target_bytes, min_age_seconds=min_age_seconds)
    began = time.monotonic()
    now = _utc(now or datetime.now(UTC))
    lake.require_exists()  # a wrong lake URI is not "0 partitions compacted"
    report = CompactReport([], 0, 0.0)
    report.temp_files_removed = remove_stale_temp_files(lake, start=start, end=end, now=now)
    by_dt: dict[str, list[LakeFile]] = defaultdict(list)
    for f in lake.list_files(start, end):
        by_dt[f.dt].append(f)
    for dt, files in sorted(by_dt.items()):
        record = _read_record(lake, dt, files)
        left = _finish_interrupted(lake, dt, files, record)
        report.leftovers_removed += len(left)
        files = [f for f in files if f not in left]
        try:
            with _raced_on_vanish():
                plan = plan_partition(files, min_files=min_files,
                                      small_file_bytes=small_file_bytes,
                                      target_bytes=target_bytes, now=now,
                                      min_age_seconds=min_age_seconds,
                                      holds_copies=partial(_find_copies, lake, dt),
                                      recorded=_recorded_inputs(record, files))
            if plan is None:
                report.skipped += 1
                continue
            report.partitions.append(_compact_partition(lake, dt, plan, target_bytes, now))
        except _RacedError as exc:
            _log.warning("compaction of dt=%s left alone: %s", dt, exc)
            report.raced.append(dt)
        except LakeFileError as exc:
            # One bad file must not stop the others: leave its partition as it is, and say so.
            _log.error("compaction of dt=%s skipped: %s", dt, exc)
            report.failed.append({"dt": dt, "file": exc.path, "reason": str(exc)})
    report.duration_s = time.monotonic() - began
    _log.info("compacted %d partition(s): %d file(s) -> %d, %d duplicate(s) dropped, "
              "%d quarantined, %d skipped, %d raced, %d failed, %d leftover(s) and %d stale "
              "temp file(s) removed in %.2f s", len(report.partitions), report.files_in,
              report.files_out, report.duplicates_dropped, report.quarantined, report.skipped,
              len(report.raced), len(report.failed), report.leftovers_removed,
              report.temp_files_removed, report.duration_s)
    return report


def _find_copies(lake: Lake, dt: str, inputs: list[LakeFile], held: list[LakeFile]) -> Copies:
    """Whether an event_id is stored twice among `inputs` and `held` (reading only that
    column: a plain `read_parquet` over the partition would count it twice), and which held
    files store one another held file stores. Holds the ids of these files in memory at once,
    as a partition split into several outputs holds its key columns.

    Files found disjoint are remembered (`_eventlake/compaction/disjoint/dt=<dt>`: the files,
    by name, size and time), so the hourly run reads their ids again only once they change, not
    every hour for every closed day that kept two or three files, nor for the large files of a
    busy day: files among those remembered are disjoint too."""
    files = [*inputs, *held]
    if len(files) < 2:
        return NO_COPIES
    key = f"compaction/disjoint/dt={dt}"
    names = {_identity(f) for f in files}
    found = lake.read_state(key)
    if found is not None and names <= set(found[0].decode().split("\n")):
        return NO_COPIES
    tables = lake.read_each([f.path for f in files], ["event_id"])
    ids = pa.concat_tables(tables)["event_id"]
    if pc.count_distinct(ids).as_py() < len(ids):
        return Copies(True, _storing_twice(held, tables[len(inputs):]))
    with suppress(StateConflictError):  # best effort: another run remembered it meanwhile
        lake.write_state(key, "\n".join(sorted(names)).encode(),
                         expected=None if found is None else found[1])
    return NO_COPIES


def _storing_twice(files: list[LakeFile], tables: list[pa.Table]) -> tuple[LakeFile, ...]:
    """The `files` (whose event_id columns are `tables`) storing an event_id that one of them
    stores too."""
    if not files:
        return ()
    counts = pc.value_counts(pa.concat_tables(tables)["event_id"])
    twice = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if not len(twice):
        return ()
    return tuple(f for f, t in zip(files, tables, strict=True)
                 if pc.any(pc.is_in(t["event_id"], value_set=twice)).as_py())


class _RacedError(Exception):
    """An input vanished or changed: another run is compacting this partition."""


@contextmanager
def _raced_on_vanish() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if file_vanished(exc):
            raise _RacedError(f"an input vanished while being read ({exc})") from exc
        raise


def _compact_partition(lake: Lake, dt: str, plan: Plan, target_bytes: int, now: datetime
                       ) -> PartitionCompaction:
    groups = plan.groups(target_bytes)
    paths = [f.path for f in plan.inputs]
    whole: list[pa.Table] | None = None
    with _raced_on_vanish():
        if len(groups) == 1:  # the usual case: read everything once
            whole = lake.read_each(paths)
            keyed = [t.select(KEY_COLUMNS) for t in whole]
        else:  # choose on the key columns, then read one output's inputs at a time
            keyed = lake.read_each(paths, KEY_COLUMNS)
        held = _read_held(lake, plan.held)
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
        _write_record(lake, dt, plan.inputs, list(names.values()), now)
    outputs: list[WrittenFile] = []
    for k in filled:
        parts = []
        for i in groups[k]:
            if whole is not None:
                table = whole[i]
            else:
                with _raced_on_vanish():
                    table = lake.read_file(paths[i])
                if not table["event_id"].equals(keyed[i]["event_id"]):
                    raise _RacedError(f"`{paths[i]}` changed while being compacted")
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
        with _raced_on_vanish():
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


def _read_held(lake: Lake, held: list[LakeFile]) -> pa.Table:
    columns = ["event_id", "content_hash"]
    if not held:
        return projection(columns).empty_table()
    return pa.concat_tables(lake.read_each([f.path for f in held], columns))


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


# -- the record of a compaction, for finishing one interrupted while deleting --------------------

def _record_key(dt: str) -> str:
    return f"compaction/dt={dt}"


def _write_record(lake: Lake, dt: str, inputs: list[LakeFile], outputs: list[str],
                  now: datetime) -> None:
    """Best effort: without the record, a crash while deleting leaves copies for the next
    merge of the partition to remove (readers dedupe meanwhile), never a gap."""
    data = json.dumps({"inputs": sorted(_identity(f) for f in inputs), "outputs": outputs,
                       "at": now.isoformat()}).encode()
    for _ in range(3):
        current = lake.read_state(_record_key(dt))
        if current is not None and current[0] == data:
            return
        with suppress(StateConflictError):
            lake.write_state(_record_key(dt), data,
                             expected=None if current is None else current[1])
            return
    _log.warning("could not record the compaction of dt=%s (concurrent runs?)", dt)


_Record = tuple[set[str], set[str]]
"""A compaction record: its inputs (by `_identity`) and its outputs (by name)."""


def _read_record(lake: Lake, dt: str, files: list[LakeFile]) -> _Record | None:
    """The partition's last compaction record, when an output of one is among `files`."""
    if len(files) < 2 or not any(is_output(f) for f in files):
        return None
    found = lake.read_state(_record_key(dt))
    if found is None:
        return None
    try:
        record = json.loads(found[0])
        return set(record["inputs"]), set(record["outputs"])
    except (ValueError, KeyError, TypeError) as exc:
        _log.warning("ignoring unreadable compaction record of dt=%s: %s", dt, exc)
        return None


def _finish_interrupted(lake: Lake, dt: str, files: list[LakeFile], record: _Record | None
                        ) -> list[LakeFile]:
    """Delete the inputs of the partition's last compaction if all its outputs exist (it was
    interrupted while deleting); returns the files deleted."""
    if record is None:
        return []
    inputs, outputs = record
    present = {base_name(f.path): f for f in files}
    if not outputs or not outputs <= present.keys():
        return []
    # The very file that was merged (name, size and time), not one written again under its name
    left = [f for name, f in present.items() if _identity(f) in inputs and name not in outputs]
    if left:
        lake.delete([f.path for f in left])
        _log.info("dt=%s: deleted %d input(s) of an interrupted compaction", dt, len(left))
    return left


def _recorded_inputs(record: _Record | None, files: list[LakeFile]) -> list[LakeFile]:
    """The inputs of the partition's last compaction when every one is still there (the very
    files): it was interrupted while writing, and its plan may have taken held files too."""
    if record is None:
        return []
    named = [f for f in files if _identity(f) in record[0]]
    return named if len(named) == len(record[0]) else []


# -- housekeeping ------------------------------------------------------------------------------

def remove_stale_temp_files(lake: Lake, *, start: date | None = None, end: date | None = None,
                            now: datetime | None = None,
                            older_than_s: float = STALE_TEMP_SECONDS) -> int:
    """Delete hidden temp files (`.<name>.tmp-<hex>`) older than `older_than_s` that crashed
    writers left in the event partitions in [start, end]; returns how many. Local disk only:
    an S3 write is one PUT, which leaves nothing behind when it fails."""
    if lake.is_s3:
        return 0
    cutoff = _utc(now or datetime.now(UTC)) - timedelta(seconds=older_than_s)
    keep = dt_filter(start, end, None)
    top = f"{lake.root}/{EVENTS_DIR}"
    infos: list[pafs.FileInfo] = []
    for attempt in range(3):  # a temp renamed away between readdir and stat fails a listing
        try:
            infos = lake.fs.get_file_info(pafs.FileSelector(top, recursive=True,
                                                            allow_not_found=True))
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    removed = 0
    for info in infos:
        parent, _, base = info.path.rpartition("/")
        up, _, folder = parent.rpartition("/")
        dt = dt_of_dir(folder)
        if (up == top and dt is not None and keep(dt) and info.type == pafs.FileType.File
                and _TEMP.fullmatch(base) and info.mtime is not None and info.mtime < cutoff):
            with suppress(FileNotFoundError):
                os.unlink(info.path)
                removed += 1
    if removed:
        _log.info("removed %d stale temp file(s) under `%s`", removed, top)
    return removed


# -- small helpers -----------------------------------------------------------------------------

def _check_args(*, min_files: int, small_file_bytes: int, target_bytes: int,
                min_age_seconds: float) -> None:
    for name, value, low in (("min_files", min_files, 1),
                             ("small_file_bytes", small_file_bytes, 0),
                             ("target_bytes", target_bytes, 1),
                             ("min_age_seconds", min_age_seconds, 0)):
        if value < low:
            raise ConfigError(f"compaction `{name}` is {value}; it must be at least {low}")


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _identity(f: LakeFile) -> str:
    modified = f.modified.astimezone(UTC).isoformat() if f.modified else "?"
    return f"{base_name(f.path)} {f.size} {modified}"
