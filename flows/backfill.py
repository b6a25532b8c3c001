"""The backfill flow: archive every item of the table with a parallel Scan (tables written
before streams existed, other producers' items). Idempotent; run on demand."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from eventlake.archive.report import BackfillReport, SweepNeedsAttentionError
from flows.common import (
    IO_RETRIES,
    IO_RETRY_DELAYS,
    lake,
    publish,
    retry_transient,
)


@task(retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_transient)
def scan_and_archive(segments: int) -> BackfillReport:
    """One library call: eventlake.archive.backfill.backfill."""
    return lake().backfill(segments=segments)


@flow(name="eventlake-backfill", log_prints=True)
def backfill(segments: int = 4) -> dict[str, Any]:
    """Scan the table in `segments` parallel segments and archive what the lake lacks."""
    report = scan_and_archive(segments)
    problem = report.counts.problem()
    publish("eventlake-backfill", "eventlake backfill run", {
        "segments": report.segments, "items scanned": report.scanned,
        "archived (new)": report.counts.archived, "already in lake": report.counts.already,
        "quarantined": report.counts.quarantined,
        "event_ids reused (quarantined)": report.counts.conflicts,
        "files written": len(report.counts.files),
        "duration": f"{report.duration_s:.1f} s"}, problem and f"**{problem}**")
    print(f"scanned {report.scanned} items, archived {report.counts.archived} new, "
          f"{report.counts.conflicts} event_id(s) reused with other content (quarantined)")
    if problem:  # archived, but the producer must be told: the run fails after its report
        raise SweepNeedsAttentionError(report, [problem])
    return {"segments": report.segments, "scanned": report.scanned,
            "archived": report.counts.archived, "already": report.counts.already,
            "quarantined": report.counts.quarantined, "conflicts": report.counts.conflicts}
