"""The reconcile flow: every hot event older than the watermark must be in the lake with the
same content hash. Daily in prefect.yaml; fails when anything is lost or different."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from prefect import flow, task

from eventlake.archive.reconcile import ReconcileReport
from eventlake.errors import EventLakeError
from flows.common import IO_RETRIES, IO_RETRY_DELAYS, lake, publish, retry_transient


class ReconcileFailed(EventLakeError):
    """Hot events missing from the lake (after any repair) or stored with another hash."""


@task(retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_transient)
def reconcile_days(start: date, end: date, repair: bool) -> ReconcileReport:
    """One library call: eventlake.archive.reconcile.reconcile."""
    return lake().reconcile(start=start, end=end, repair=repair)


@flow(name="eventlake-reconcile", log_prints=True)
def reconcile(start: date | None = None, end: date | None = None, days: int = 2,
              repair: bool = True) -> dict[str, Any]:
    """Reconcile ingestion days [start, end] (default: the last `days` days up to today);
    `repair` re-archives what is missing. Fails when events are lost or different."""
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=days - 1)
    report = reconcile_days(start, end, repair)
    rows: dict[str, Any] = {"days": f"{start} .. {end}", "repaired": report.repaired,
                            "lost": report.lost, "different": report.different}
    for day in report.days:
        rows[str(day.day)] = (f"hot {day.hot}, cold {day.cold}, missing {day.missing}, "
                              f"different {day.different}")
    publish("eventlake-reconcile", "eventlake reconciliation", rows)
    print(f"reconciled {start}..{end}: lost {report.lost}, different {report.different}, "
          f"repaired {report.repaired}")
    if not report.ok:
        raise ReconcileFailed(
            f"{report.lost} event(s) missing from the lake and {report.different} stored with "
            f"another content hash (first ids: {report.missing_ids[:5]} "
            f"{report.different_ids[:5]})")
    return report.to_dict()
