"""The archive flow: sweep what the stream path may have missed, then guard the TTL margin.

    sweep  ── events ingested in [watermark - skew, now - settle) -> lake (anti-join), watermark
              moves; the expiry check archives what is about to expire and no window reached
    guard  ── unarchived events within EVENTLAKE_TTL_SAFETY_HOURS of expiry -> the run fails

Scheduled every 15 minutes (prefect.yaml), one run at a time (deployment concurrency 1, and a
lease in the lake so a manual run cannot overlap either).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from eventlake.archive.report import SweepNeedsAttentionError, SweepReport
from eventlake.archive.ttlguard import TtlGuardError
from eventlake.config import redact
from flows.common import (
    IO_RETRIES,
    IO_RETRY_DELAYS,
    lake,
    publish,
    retry_transient,
)


@task(retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_transient)
def sweep_events(settle_seconds: float | None) -> SweepReport:
    """One library call: eventlake.archive.sweep.sweep (raises TtlGuardError after archiving)."""
    return lake().archive(settle_seconds=settle_seconds)


@flow(name="eventlake-archive", log_prints=True)
def archive(settle_seconds: float | None = None) -> dict[str, Any]:
    """Sweep and guard. `settle_seconds`: leave events this recent to the stream path
    (default EVENTLAKE_ARCHIVE_SETTLE_SECONDS; 0 archives everything ingested so far)."""
    try:
        report = sweep_events(settle_seconds)
    except TtlGuardError as exc:
        if exc.report is not None:
            _publish(exc.report, f"**TTL guard failed:** {redact(str(exc))}")
        raise
    problems = report.problems()
    _publish(report, "\n\n".join(f"**{p}**" for p in problems) or None)
    counts = report.counts
    print(f"archived {counts.archived:,} new events ({counts.already:,} already in the lake, "
          f"{counts.conflicts:,} event_id(s) reused with other content, quarantined); "
          f"watermark {report.watermark_after}")
    # Archived, but an operator must look: the run fails after its report is published, so a
    # scheduled run does not show green while events were quarantined or found by the last look.
    if problems:
        raise SweepNeedsAttentionError(report, problems)
    return report.to_dict()


def _publish(report: SweepReport, note: str | None = None) -> None:
    margin = report.ttl
    publish("eventlake-archive", "eventlake archive run", {
        "window": f"{report.since.isoformat()} .. {report.until.isoformat()}",
        "events read": report.counts.read,
        "archived (new)": report.counts.archived,
        "already in lake": report.counts.already,
        "quarantined": report.counts.quarantined,
        "event_ids reused (quarantined)": report.counts.conflicts,
        "files written": len(report.counts.files),
        "watermark": report.watermark_after.isoformat(),
        "beyond the clock skew (expiry check)": report.beyond_skew,
        "unarchived now": margin.unarchived,
        "smallest TTL margin": "n/a" if margin.hours_left is None
        else f"{margin.hours_left:.1f} h",
        "duration": f"{report.duration_s:.1f} s",
    }, note)
