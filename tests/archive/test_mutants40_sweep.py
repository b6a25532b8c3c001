"""Found by mutation testing the rest of the sweep (mutants40, docs/mutation-testing.md):
guarantees of archive/sweep.py that no test checked.

`rescued` counts the events a sweep wrote that were already within ttl_safety_hours of their
TTL expiry (the stream path missed them): every such event once, over every file written, with
the guard's own boundary (expires_at <= now + safety is at risk). After a failed sweep the
guard's margin is the report's `ttl`, and an entry the failed sweep found deleted from the
table before its fetch is still reported lost."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from archive_support import NOW, World, hours, make_world

from eventlake import EventLake
from eventlake.archive import sweep as sweep_module
from eventlake.archive.ttlguard import TtlGuardError
from eventlake.archive.writer import archive_items
from eventlake.local.stack import expire_ttl


@pytest.fixture
def world(lake: EventLake) -> World:
    """One day of retention, a 6-hour safety margin."""
    return make_world(lake, retention_days=1.0, ttl_safety_hours=6.0)


def test_rescued_counts_every_event_near_expiry_over_all_files_and_no_other(
        world: World) -> None:
    # given events 4 h from expiry in two days' partitions, one exactly 6 h from expiry (the
    # guard's boundary: at risk), one a second beyond it, and one ingested an hour ago
    world.ingest(["near-today"], NOW - hours(20))
    world.ingest(["near-last-week"], NOW - hours(20), timestamp=NOW - hours(24 * 7))
    world.ingest(["at-the-margin"], NOW - hours(18))
    world.ingest(["beyond-the-margin"], NOW - hours(18) + timedelta(seconds=1))
    world.ingest(["fresh"], NOW - hours(1))
    # when the sweep archives them all
    report = world.sweep(NOW)
    assert world.stored_rows() == Counter(["near-today", "near-last-week", "at-the-margin",
                                           "beyond-the-margin", "fresh"])
    # then it counts the three it rescued, not the others, and nothing is left at risk
    assert report.rescued == 3, report.to_dict()
    assert report.to_dict()["rescued"] == 3 and report.ttl.at_risk == 0


def test_rescued_adds_up_over_the_chunks_the_sweep_writes(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given three events 4 h from expiry, and a sweep that writes one event per chunk
    world.ingest(["near-1", "near-2", "near-3"], NOW - hours(20))
    monkeypatch.setattr(sweep_module, "archive_items", partial(archive_items, chunk_rows=1))
    # when the sweep archives them, then each chunk's rescues are counted, not the last one's
    report = world.sweep(NOW)
    assert world.stored_rows() == Counter(["near-1", "near-2", "near-3"])
    assert report.rescued == 3, report.to_dict()


def test_a_sweep_of_fresh_events_rescues_none(world: World) -> None:
    # given events ingested an hour ago (23 h from expiry)
    world.ingest(["fresh-1", "fresh-2"], NOW - hours(1))
    # when the sweep archives them, then it reports no rescue
    report = world.sweep(NOW)
    assert world.stored_rows() == Counter(["fresh-1", "fresh-2"])
    assert report.rescued == 0, report.to_dict()


def _refuse_writes(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("access denied")

    monkeypatch.setattr(world.lake, "write", refuse)


def test_a_failed_sweeps_report_carries_the_guards_margin(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a sweep 21 h ago, then two events 4 h from expiry, one fresh, and a lake that
    # refuses writes
    first = world.sweep(NOW - hours(21))
    world.ingest(["urgent-1", "urgent-2"], NOW - hours(20))
    world.ingest(["fresh"], NOW - hours(1))
    _refuse_writes(world, monkeypatch)
    # when the sweep fails, then the guard raises, and its report says what the guard found
    with pytest.raises(TtlGuardError) as raised:
        world.sweep(NOW)
    report = raised.value.report
    assert report is not None and "access denied" in (report.error or "")
    assert (report.ttl.unarchived, report.ttl.at_risk) == (3, 2), report.to_dict()
    assert sorted(report.ttl.at_risk_ids) == ["urgent-1", "urgent-2"]
    # and the window it tried, the watermark that stays, what it read, and who it was
    assert report.since < first.watermark_after == report.watermark_before
    assert report.watermark_after == first.watermark_after and report.until == NOW
    assert report.counts.archived == 0 and report.rescued == 0
    assert report.run_id.startswith("sweep") and report.run_id != first.run_id
    assert report.expiry is not None and report.duration_s >= 0


def test_an_event_deleted_under_a_failed_sweep_is_reported_lost(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an expired event still in the table, a fresh one, and a lake that refuses writes
    world.ingest(["doomed"], NOW - hours(25))
    world.ingest(["fresh"], NOW - hours(1))
    _refuse_writes(world, monkeypatch)
    # and TTL deleting the expired one after the index listed it, before its fetch
    real = world.hot.fetch
    deleted: list[str] = []

    def ttl_then_fetch(event_ids: Any) -> Any:
        if not deleted:
            deleted.extend(expire_ttl(world.clients, world.settings.table, now=NOW))
        return real(event_ids)

    monkeypatch.setattr(world.hot, "fetch", ttl_then_fetch)
    # when the sweep fails, then the guard names the deleted event as lost, not only the failure
    with pytest.raises(TtlGuardError) as raised:
        world.sweep(NOW)
    assert deleted == ["doomed"]
    margin = raised.value.margin
    assert (margin.vanished, margin.at_risk, margin.at_risk_ids) == (1, 1, ["doomed"])
    assert isinstance(raised.value.__cause__, OSError)
