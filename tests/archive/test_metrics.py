"""The sweep's CloudWatch metrics (archive/metrics.py): published only when asked, with the
values its report holds, under the names the template's alarms watch; never failing a sweep."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from archive_support import NOW, hours, make_world

from eventlake import EventLake
from eventlake.archive.metrics import ARCHIVE_LAG, NAMESPACE, TTL_MARGIN, publish_sweep
from eventlake.archive.ttlguard import TtlGuardError
from eventlake.config import Settings
from eventlake.errors import ConfigError


def _datapoints(lake: EventLake, name: str, table: str) -> list[dict[str, Any]]:
    """What CloudWatch (moto) holds of metric `name` for `table`, over all time."""
    answer = lake.clients.cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName=name, Dimensions=[{"Name": "Table", "Value": table}],
        StartTime=datetime.now(UTC) - timedelta(days=1),
        EndTime=datetime.now(UTC) + timedelta(days=1), Period=60,
        Statistics=["Minimum", "Maximum", "SampleCount"])
    points: list[dict[str, Any]] = answer["Datapoints"]
    return points


def test_a_sweep_publishes_nothing_by_default(lake: EventLake) -> None:
    # given a world whose settings leave EVENTLAKE_METRICS unset
    world = make_world(lake)
    assert world.settings.metrics == "off"
    world.ingest(["m-1"], NOW - hours(2))
    # when it sweeps
    world.sweep(NOW)
    # then CloudWatch holds no metric of eventlake's
    listed = lake.clients.cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
    assert listed == []


def test_a_sweep_publishes_its_archive_lag_and_ttl_margin(lake: EventLake) -> None:
    # given metrics on, a watermark 3 hours behind now and events ingested 2 hours ago that a
    # 3-hour settle lag leaves unarchived (1 day of retention: 22 h left)
    world = make_world(lake, metrics="cloudwatch", retention_days=1.0, ttl_safety_hours=6.0)
    first = world.sweep(NOW - hours(3))  # no watermark yet: its lag runs from its window
    world.ingest(["m-1", "m-2"], NOW - hours(2))
    # when the sweep runs at NOW
    report = world.sweep(NOW, settle_seconds=3 * 3600)
    # then each lag is the sweep's now less the watermark it started from (moto puts both
    # data, received within the same minute, in one datapoint), the margin its report's
    assert report.watermark_before == NOW - hours(3)
    [lag] = _datapoints(lake, ARCHIVE_LAG, world.settings.table)
    assert lag["SampleCount"] == 2 and lag["Unit"] == "Seconds"
    assert lag["Minimum"] == pytest.approx(3 * 3600.0)
    assert lag["Maximum"] == pytest.approx((NOW - hours(3) - first.since).total_seconds())
    assert report.ttl.hours_left == pytest.approx(22.0)
    [margin] = _datapoints(lake, TTL_MARGIN, world.settings.table)
    assert (margin["SampleCount"], margin["Unit"]) == (1, "None")
    assert margin["Minimum"] == pytest.approx(22.0)


def test_a_sweep_with_nothing_unarchived_publishes_no_margin(lake: EventLake) -> None:
    # given metrics on and every event ingested before the sweep's window end
    world = make_world(lake, metrics="cloudwatch")
    world.ingest(["m-1"], NOW - hours(2))
    # when it sweeps
    report = world.sweep(NOW)
    # then the lag is published, and no margin (there is none to measure)
    assert report.ttl.hours_left is None
    assert len(_datapoints(lake, ARCHIVE_LAG, world.settings.table)) == 1
    assert _datapoints(lake, TTL_MARGIN, world.settings.table) == []


def test_a_sweep_that_finds_events_at_risk_publishes_the_margin_before_failing(
        lake: EventLake) -> None:
    # given metrics on and unarchived events 22 h from expiry with a 23-hour safety margin
    world = make_world(lake, metrics="cloudwatch", retention_days=1.0, ttl_safety_hours=23.0)
    world.ingest(["m-1"], NOW - hours(2))
    # when the sweep fails its TTL guard
    with pytest.raises(TtlGuardError):
        world.sweep(NOW, settle_seconds=3 * 3600)
    # then the alarm's metric still got the margin
    margin = _datapoints(lake, TTL_MARGIN, world.settings.table)
    assert [p["Minimum"] for p in margin] == [pytest.approx(22.0)]


def test_a_failed_publish_is_logged_and_does_not_fail_the_sweep(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # given metrics on and CloudWatch refusing the call
    world = make_world(lake, metrics="cloudwatch")
    world.ingest(["m-1"], NOW - hours(2))

    def refuse(**_: Any) -> None:
        raise RuntimeError("AccessDenied: not allowed to cloudwatch:PutMetricData")

    monkeypatch.setattr(lake.clients.cloudwatch, "put_metric_data", refuse)
    # when it sweeps
    with caplog.at_level(logging.WARNING, logger="eventlake.archive.metrics"):
        report = world.sweep(NOW)
    # then the sweep's work stands and the warning says what to do
    assert report.counts.archived == 1
    assert "cloudwatch:PutMetricData" in caplog.text and "EVENTLAKE_METRICS=off" in caplog.text
    assert publish_sweep(report, world.settings, lake.clients, NOW) is False


def test_the_setting_names_its_variable_when_wrong() -> None:
    assert Settings.from_env({"EVENTLAKE_METRICS": "cloudwatch"}).metrics == "cloudwatch"
    with pytest.raises(ConfigError, match="EVENTLAKE_METRICS='statsd' is not valid: expected "
                                          "`off` or `cloudwatch`"):
        Settings.from_env({"EVENTLAKE_METRICS": "statsd"})
