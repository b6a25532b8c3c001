"""A sweep after an outage longer than the retention period says that the safety net had a
hole: events ingested in [previous watermark, now - retention) reached their TTL expiry before any
sweep read them, and those DynamoDB deleted first are in the lake only if the stream path
archived them. The report, the CLI and the flows' error say so; a sweep in time says nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from archive_support import NOW, World, hours

from eventlake.archive.report import SweepNeedsAttentionError
from eventlake.cli.archive import _print_sweep
from eventlake.lake.watermark import EXPIRY_CHECK_KEY, read_watermark
from eventlake.local.stack import expire_ttl


def days(n: float) -> timedelta:
    return timedelta(days=n)


def test_a_sweep_after_more_than_the_retention_period_says_events_may_be_lost(
        world: World, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # given a sweep 5 days ago (retention 3 days), then no sweep and no stream path
    world.sweep(NOW - days(5))
    world.ingest(["gone-1", "gone-2"], NOW - days(4.5))  # expired 1.5 days ago
    world.ingest(["late-1"], NOW - days(4))  # expired a day ago, not deleted yet
    world.ingest(["new-1"], NOW - hours(1))
    assert sorted(expire_ttl(world.clients, world.settings.table, now=NOW - days(1.2))) == [
        "gone-1", "gone-2"]

    # when the sweeps come back
    report = world.sweep(NOW)

    # then what is still in the table is archived, and the report names the hole
    assert set(world.stored_rows()) == {"late-1", "new-1"}
    assert report.overdue_until == NOW - days(3) + timedelta(seconds=1)  # whole-second TTL
    assert report.watermark_before == NOW - days(5)
    assert report.since < report.watermark_before  # the look-back: a slow clock stamps there
    since = report.to_dict()["since"]
    assert f"[{since}, 2024-05-07T12:00:01.000000Z)" in report.problems()[0]
    # and the stretch is recorded on the expiry checkpoint: REMOVEs from it are checked
    mark = read_watermark(world.lake, EXPIRY_CHECK_KEY)
    assert mark is not None and any(a <= report.since and report.overdue_until <= b
                                    for a, b in mark.holes)
    assert report.to_dict()["overdue_until"] == "2024-05-07T12:00:01.000000Z"
    [problem] = report.problems()
    assert "the sweeps fell more than the retention period behind" in problem
    assert "2024-05-07T12:00:01.000000Z" in problem and "StreamFailures" in problem
    error = SweepNeedsAttentionError(report, report.problems())
    assert "events may be lost" in str(error) and "nothing is lost" not in str(error)
    assert any("fell more than the retention period behind" in r.getMessage()
               for r in caplog.records)
    _print_sweep(report, as_json=False)
    assert "overdue     events ingested" in capsys.readouterr().out


def test_sweeps_in_time_and_the_first_sweep_report_no_hole(world: World) -> None:
    world.ingest(["a-1"], NOW - days(4))  # before the first sweep: nothing was promised yet
    first = world.sweep(NOW - days(2))
    world.ingest(["b-1"], NOW - days(1))
    second = world.sweep(NOW)

    assert first.watermark_before is None and first.since < NOW - days(2) - days(3)
    assert first.overdue_until is None and second.overdue_until is None
    assert first.problems() == [] and second.problems() == []
    assert "nothing is lost" in str(SweepNeedsAttentionError(second, ["x"]))


def test_the_look_back_before_a_watermark_just_within_retention_is_in_the_hole(world: World
                                                                                ) -> None:
    # given a watermark one minute younger than the retention period: its look-back (where a
    # writer whose clock runs slow stamps after that sweep) reaches past it
    world.sweep(NOW - days(3) + timedelta(minutes=1))
    report = world.sweep(NOW)
    # then the look-back is reported: no sweep read what was stamped there
    assert report.since < NOW - days(3) < report.watermark_before  # type: ignore[operator]
    assert report.overdue_until == NOW - days(3) + timedelta(seconds=1)
    assert f"[{report.to_dict()['since']}, " in report.problems()[0]


def test_a_sweep_in_time_reports_no_hole_and_records_none(world: World) -> None:
    # the first sweep records what it could not have read (nothing was swept before it)
    world.sweep(NOW - hours(1))
    first = read_watermark(world.lake, EXPIRY_CHECK_KEY)
    assert first is not None and [a for a, _ in first.holes] == [datetime.fromtimestamp(0, UTC)]
    # a sweep in time adds none
    report = world.sweep(NOW)
    mark = read_watermark(world.lake, EXPIRY_CHECK_KEY)
    assert report.overdue_until is None and mark is not None and mark.holes == first.holes
    assert report.expiry is not None and report.expiry.hole is None
