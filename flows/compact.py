"""The compaction flow: merge each partition's small files into large ones, duplicates out.
Hourly in prefect.yaml, one run at a time."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, task

from eventlake.lake.compact import CompactReport
from flows.common import IO_RETRIES, IO_RETRY_DELAYS, lake, publish, retry_transient


@task(retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_transient)
def compact_partitions(start: date | None, end: date | None, min_files: int,
                       target_mb: int) -> CompactReport:
    """One library call: eventlake.lake.compact.compact."""
    return lake().compact(start=start, end=end, min_files=min_files,
                          target_bytes=target_mb * 1024 * 1024)


@flow(name="eventlake-compact", log_prints=True)
def compact(start: date | None = None, end: date | None = None, min_files: int = 4,
            target_mb: int = 128) -> dict[str, Any]:
    """Compact partitions dt in [start, end] (default: all) that have `min_files` or more
    files, into files of about `target_mb`."""
    report = compact_partitions(start, end, min_files, target_mb)
    publish("eventlake-compact", "eventlake compaction run", {
        "partitions compacted": len(report.partitions),
        "partitions skipped": report.skipped,
        "files in": report.files_in,
        "files out": report.files_out,
        "duplicates dropped": report.duplicates_dropped,
        "copies quarantined (event_id reused)": report.quarantined,
        "partitions failed": len(report.failed),
        "duration": f"{report.duration_s:.1f} s",
    }, note="\n".join(f"- dt={f['dt']} not compacted: {f['reason']}" for f in report.failed)
       or None)
    print(f"compacted {len(report.partitions)} partition(s): {report.files_in} -> "
          f"{report.files_out} files, {report.duplicates_dropped} duplicates dropped")
    report.raise_if_failed()  # after publishing: the run fails, its report still readable
    return report.to_dict()
