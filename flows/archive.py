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

from eventlake.archive import SweepReport, TtlGuardError
from eventlake.config import redact
from flows.common import (
    IO_RETRIES,
    IO_RETRY_DELAYS,
    lake,
    publish,
    retry_transient,
    reused_note,
)


@task(retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_transient)
def sweep_events(settle_seconds: float | None) -> SweepReport:
    """One library call: eventlake.archive.sweep (raises TtlGuardError after archiving)."""
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
    _publish(report, reused_note(report.counts.conflicts, report.counts.conflict_ids))
    print(f"archived {report.counts.archived} new events "
          f"({report.counts.already} already in the lake, {report.counts.conflicts} event_id(s) "
          f"reused with other content, quarantined); watermark {report.watermark_after}")
    # Archived, but an operator must look: the run fails after its report is published, so a
    # scheduled run does not show green while events were quarantined or found by the last look.
    if report.counts.conflicts or report.beyond_skew:
        raise ArchiveNeedsAttentionError(report)
    return report.to_dict()


class ArchiveNeedsAttentionError(Exception):
    """The sweep archived everything it could, but found what an operator must look at."""

    def __init__(self, report: SweepReport) -> None:
        self.report = report
        parts = []
        if report.counts.conflicts:
            parts.append(f"{report.counts.conflicts} event_id(s) reused with other content were "
                         f"quarantined (rule event.id_reused), e.g. "
                         f"{', '.join(f'`{i}`' for i in report.counts.conflict_ids[:5])}: events "
                         "are immutable, the producer must send them under new ids")
        if report.beyond_skew:
            parts.append(f"{report.beyond_skew} event(s) were stamped further behind the "
                         "watermark than EVENTLAKE_CLOCK_SKEW_SECONDS and were archived only by "
                         "the expiry check: check the producers' clocks (NTP)")
        super().__init__("; ".join(parts) + f" (sweep {report.run_id}; nothing is lost)")


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
