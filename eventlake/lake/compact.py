"""Compaction: merge each dt partition's small files into a few large ones, each event once.

    1. plan     inputs = every file of the partition when together they fit in one
                `target_bytes` file (the partition becomes one file), else only its small files
                (the large ones, earlier outputs, stay as they are) and the large files that
                share an event_id with another large file; a partition below `min_files` is
                taken anyway when its files share an event_id (their event_id columns are
                read), so a plain scan of the lake counts each event once
    2. choose   one copy per event_id (`dedup.first_copies`: the earliest `ingested_at`);
                a dropped copy whose `content_hash` differs (an event_id reused) goes to the
                quarantine, rule `event.id_reused`, before anything is written or deleted
    3. record   `_eventlake/compaction/dt=<dt>`: these inputs are replaced by these outputs
    4. write    `compacted-<digest of the input names>-<k>-of-<n>.parquet`, sorted, zstd, atomic
    5. delete   the inputs, only once every output is written
    6. verify   `disjoint.verify` of the partition, its outputs in place and its inputs gone:
                outputs proven disjoint are named in its manifest, and readers read them bare

Readers and compaction, one partition over time (readers follow `dedup.read_distinct`:
de-duplicate a partition only while it has more than one file):

    files     s1 s2 s3 s4 --write--> s1 s2 s3 s4 C --delete--> C
    reader    several files: dedupe  several files: dedupe     one file: read as it is
              a file vanishing between listing and reading -> list again (its rows are in C)

Crashes leave copies, never gaps, and the next run removes them:
    during 4    the inputs are all there: their digest names the outputs of this very plan,
                which is run again and rewrites the same outputs, then deletes
    during 5    the record's outputs all exist: the inputs it names are deleted
    before 6    the manifest names the inputs (gone: ignored, as a file is named by name, size
                and time) or nothing; readers de-duplicate the outputs until the next verify
                (the sweep's, or the next run's: a partition left with several files is
                verified when compaction looks at it for copies)
A manifest is only ever written by `verify`, by compare-and-swap, naming files it read the ids
of: whichever step a crash interrupts, it names no two files sharing an event_id.
Concurrent runs need no lock: an input vanishing while being read means another run is
compacting the partition, and this one leaves it alone (`CompactReport.raced`). A file that
cannot be read (corrupt, or not the lake's schema) leaves its partition alone too, reported in
`CompactReport.failed` by file; the other partitions are compacted.

Step 1 is `compactplan`, steps 2 to 5 `compactmerge`, the record `compactrecord`. This module is
the run: the partitions in range, their crash recovery, the report, and the housekeeping of
crashed writers' temp files.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import pyarrow.fs as pafs

from eventlake.errors import ConfigError
from eventlake.events.times import as_utc
from eventlake.lake.compactmerge import (
    PartitionCompaction,
    RacedError,
    find_copies,
    merge_partition,
    raced_on_vanish,
)
from eventlake.lake.compactplan import (
    DEFAULT_MIN_FILES,
    DEFAULT_SMALL_FILE_BYTES,
    DEFAULT_TARGET_BYTES,
    needs_compaction,
    plan_partition,
)
from eventlake.lake.compactrecord import finish_interrupted, read_record, recorded_inputs
from eventlake.lake.dedup import read_distinct
from eventlake.lake.disjoint import IdCache, VerifyReport, verify_logged
from eventlake.lake.layout import EVENTS_DIR, QUARANTINE_DIR, STATE_DIR, dt_filter, dt_of_dir
from eventlake.lake.store import (
    Lake,
    LakeDataError,
    LakeFile,
    LakeFileError,
)

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
    verified: VerifyReport = field(default_factory=VerifyReport)
    """The verify of the partitions it rewrote (`disjoint.verify`, after their inputs went):
    which files readers now read bare. A failure there is reported in `verified.skipped`,
    not raised: the rewrite is done, and readers are correct without it."""

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
                "verified": self.verified.to_dict(), "duration_s": round(self.duration_s, 3)}


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
    now = as_utc(now or datetime.now(UTC))
    lake.require_exists()  # a wrong lake URI is not "0 partitions compacted"
    report = CompactReport([], 0, 0.0)
    report.temp_files_removed = remove_stale_temp_files(lake, start=start, end=end, now=now)
    by_dt: dict[str, list[LakeFile]] = defaultdict(list)
    for f in lake.list_files(start, end):
        by_dt[f.dt].append(f)
    for dt, files in sorted(by_dt.items()):
        record = read_record(lake, dt, files)
        left = finish_interrupted(lake, dt, files, record)
        report.leftovers_removed += len(left)
        files = [f for f in files if f not in left]
        ids = IdCache()  # event_id columns read for this partition, so verify reads them once
        try:
            with raced_on_vanish():
                plan = plan_partition(files, min_files=min_files,
                                      small_file_bytes=small_file_bytes,
                                      target_bytes=target_bytes, now=now,
                                      min_age_seconds=min_age_seconds,
                                      holds_copies=partial(find_copies, lake, dt, now=now,
                                                           ids=ids),
                                      recorded=recorded_inputs(record, files))
            if plan is None:
                report.skipped += 1
                if left:  # an interrupted run's inputs just went: its outputs are new here
                    report.verified.add(_verify(lake, dt, now, ids))
                continue
            report.partitions.append(merge_partition(lake, dt, plan, target_bytes, now,
                                                     ids=ids))
            report.verified.add(_verify(lake, dt, now, ids))
        except RacedError as exc:
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


def _verify(lake: Lake, dt: str, now: datetime, ids: IdCache) -> VerifyReport:
    """Verify partition `dt` now that compaction's outputs are in place and its inputs gone
    (step 6): never raises, the rewrite is done."""
    return verify_logged(lake, [dt], now=now, ids=ids, caller="compaction")


# -- housekeeping ------------------------------------------------------------------------------

def remove_stale_temp_files(lake: Lake, *, start: date | None = None, end: date | None = None,
                            now: datetime | None = None,
                            older_than_s: float = STALE_TEMP_SECONDS) -> int:
    """Delete hidden temp files (`.<name>.tmp-<hex>`) older than `older_than_s` that crashed
    writers left in the event partitions in [start, end], and anywhere under the lake's state
    (`_eventlake/`) and quarantine (`_quarantine/`) folders, whatever the range: a writer
    killed between its temp file and the rename leaves one there too (a lease, a watermark,
    a quarantine batch). Returns how many. Local disk only: an S3 write is one PUT, which
    leaves nothing behind when it fails."""
    if lake.is_s3:
        return 0
    cutoff = as_utc(now or datetime.now(UTC)) - timedelta(seconds=older_than_s)
    keep = dt_filter(start, end, None)
    top = f"{lake.root}/{EVENTS_DIR}"

    def in_range(path: str) -> bool:
        parent = path.rpartition("/")[0]
        up, _, folder = parent.rpartition("/")
        dt = dt_of_dir(folder)
        return up == top and dt is not None and keep(dt)

    removed = 0
    for folder, wanted in ((top, in_range), (f"{lake.root}/{STATE_DIR}", None),
                           (f"{lake.root}/{QUARANTINE_DIR}", None)):
        stale = [info.path for info in _files_under(lake, folder)
                 if _TEMP.fullmatch(info.base_name) and info.mtime is not None
                 and info.mtime < cutoff and (wanted is None or wanted(info.path))]
        for path in stale:
            with suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
        if stale:
            _log.info("removed %d stale temp file(s) under `%s`", len(stale), folder)
    return removed


def _files_under(lake: Lake, folder: str) -> list[pafs.FileInfo]:
    """The files below local `folder`, recursively (none when it does not exist)."""
    for attempt in range(3):  # a temp renamed away between readdir and stat fails a listing
        try:
            infos = lake.fs.get_file_info(pafs.FileSelector(folder, recursive=True,
                                                            allow_not_found=True))
            return [info for info in infos if info.type == pafs.FileType.File]
        except FileNotFoundError:
            if attempt == 2:
                raise
    return []  # pragma: no cover - the loop returns or raises


# -- small helpers -----------------------------------------------------------------------------

def _check_args(*, min_files: int, small_file_bytes: int, target_bytes: int,
                min_age_seconds: float) -> None:
    for name, value, low in (("min_files", min_files, 1),
                             ("small_file_bytes", small_file_bytes, 0),
                             ("target_bytes", target_bytes, 1),
                             ("min_age_seconds", min_age_seconds, 0)):
        if value < low:
            raise ConfigError(f"compaction `{name}` is {value}; it must be at least {low}")

