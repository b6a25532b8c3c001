"""The export flow: one day (or a few) of events to a file for BI tools (eventlake.export).
Daily in prefect.yaml: yesterday's events (UTC) to `<out_dir>/events-<day>.<format>`; `out_dir`
is a local folder or an `s3://bucket/prefix`.

The export is atomic and a run rewrites its own file (overwrite), so a retried task or a re-run
of a day gives the same file, never a half-written one: the task retries I/O trouble. The hash
salt of `hash_fields` comes from EVENTLAKE_EXPORT_SALT in the worker's environment."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from eventlake.export.run import ExportReport
from eventlake.replay.select import Selection
from flows.common import IO_RETRIES, IO_RETRY_DELAYS, lake, publish, retry_transient

SUFFIX = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl", "duckdb": ".duckdb"}
"""The file name's suffix per format (a partitioned Parquet export is a folder: none)."""


@task(cache_policy=NO_CACHE, retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS,
      retry_condition_fn=retry_transient)
def write_export(selection: Selection, out: str, format: str, partition_by: str | None,
                 redact: list[str], hash_fields: list[str]) -> ExportReport:
    """One library call: eventlake.export.run.export (through EventLake.export)."""
    return lake().export(selection, out, format=format, partition_by=partition_by,
                         redact=redact, hash_=hash_fields, overwrite=True)


def out_path(out_dir: str, first: date, days: int, format: str, partitioned: bool) -> str:
    """`<out_dir>/events-<first day>[-<days>d]<suffix>`; `out_dir` a local folder or an
    `s3://bucket/prefix` (joined as text: a Path would fold `s3://` into `s3:/`)."""
    name = f"events-{first.isoformat()}" + (f"-{days}d" if days > 1 else "")
    name += "" if partitioned else SUFFIX.get(format, "")
    if out_dir.startswith("s3://"):
        return f"{out_dir.rstrip('/')}/{name}"
    return str(Path(out_dir) / name)


@flow(name="eventlake-export", log_prints=True)
def export(out_dir: str, format: str = "parquet", day: date | None = None, days: int = 1,
           types: list[str] | None = None, partition_by: str | None = None,
           redact: list[str] | None = None, hash_fields: list[str] | None = None,
           cold_only: bool = False) -> dict[str, Any]:
    """Export the events of `days` UTC days from `day` (default: yesterday) of `types` (all
    when empty) to `<out_dir>/events-<day>...` as `format` (parquet, csv, jsonl, duckdb),
    dropping the payload fields `redact` and hashing `hash_fields` (dotted paths)."""
    first = day or datetime.now(UTC).date() - timedelta(days=1)
    start = datetime.combine(first, time(), tzinfo=UTC)
    selection = Selection(start, start + timedelta(days=days), tuple(types or ()),
                          cold_only=cold_only)
    out = out_path(out_dir, first, days, format, partition_by is not None)
    report = write_export(selection, out, format, partition_by, list(redact or ()),
                          list(hash_fields or ()))
    publish("eventlake-export", "eventlake export run", {
        "days": f"{first.isoformat()} + {days}", "format": format, "out": f"`{out}`",
        "events": report.rows, "files": len(report.files), "bytes": f"{report.bytes:,}",
        "redacted": ", ".join(redact or ()) or "-", "hashed": ", ".join(hash_fields or ()) or "-",
        "duration": f"{report.seconds:.1f} s"})
    print(report.summary())
    return {"out": out, "rows": report.rows, "bytes": report.bytes, "files": report.files}
