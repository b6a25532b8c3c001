"""The sweep's CloudWatch metrics, for the alarms of infra/template.yaml.

Opt-in (EVENTLAKE_METRICS=cloudwatch; `off` by default, so tests and local runs stay quiet).
After each sweep that got as far as its TTL check, one PutMetricData call in namespace
`eventlake`, dimension `Table`:

    ArchiveLagSeconds  the sweep's `now` - the watermark it started from (its window's start
                       when there was none): how far ingestion had run ahead of the archive's
                       guarantee when the sweep began. Healthy: about the schedule's interval
                       plus the settle lag; after failed runs, the time since the last good
                       one. A sweep that fails before its TTL check publishes nothing, so the
                       template's alarm treats missing data as breaching: a dead sweep alarms.
    TtlMarginHours     hours until the earliest TTL expiry of an event no lake file holds;
                       not published when nothing unarchived expires (there is no margin to
                       measure).

Publishing never fails the sweep: the archive work is done by then, so an error is logged at
WARNING and the report returned as it is.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from eventlake.archive.report import SweepReport
from eventlake.aws import Clients
from eventlake.config import Settings, redact
from eventlake.events.times import as_utc

__all__ = ["ARCHIVE_LAG", "NAMESPACE", "TTL_MARGIN", "metric_data", "publish_sweep"]

NAMESPACE = "eventlake"
ARCHIVE_LAG = "ArchiveLagSeconds"
TTL_MARGIN = "TtlMarginHours"

_log = logging.getLogger("eventlake.archive.metrics")


def metric_data(report: SweepReport, table: str, now: datetime) -> list[dict[str, Any]]:
    """The MetricData entries of one sweep's report; `now` is the sweep's. No timestamp:
    CloudWatch stamps the datum when it arrives (a sweep run with an old `now` still counts)."""
    dimensions = [{"Name": "Table", "Value": table}]
    start = report.watermark_before or report.since
    lag = max(0.0, (as_utc(now) - as_utc(start)).total_seconds())
    data: list[dict[str, Any]] = [{"MetricName": ARCHIVE_LAG, "Dimensions": dimensions,
                                   "Value": lag, "Unit": "Seconds"}]
    if report.ttl.hours_left is not None:
        data.append({"MetricName": TTL_MARGIN, "Dimensions": dimensions,
                     "Value": report.ttl.hours_left, "Unit": "None"})
    return data


def publish_sweep(report: SweepReport, settings: Settings, clients: Clients,
                  now: datetime) -> bool:
    """Publish the metrics of `report` (a sweep run at `now`) when EVENTLAKE_METRICS is
    `cloudwatch`. True when published; False when metrics are off or publishing failed
    (logged at WARNING, never raised)."""
    if settings.metrics != "cloudwatch":
        return False
    try:
        clients.cloudwatch.put_metric_data(
            Namespace=NAMESPACE, MetricData=metric_data(report, settings.table, now))
    except Exception as exc:  # the sweep's work is done: a metric must not undo its success
        _log.warning("sweep %s: could not publish its metrics to CloudWatch namespace `%s` "
                     "(%s: %s); the template's alarms see no data for this run: allow "
                     "cloudwatch:PutMetricData, or set EVENTLAKE_METRICS=off",
                     report.run_id, NAMESPACE, type(exc).__name__, redact(str(exc)))
        return False
    return True
