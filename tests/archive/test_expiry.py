"""Producers whose clocks run slow: within the tolerated skew the sweep's look-back archives
their events and every reader sees them; beyond it the expiry check archives them before TTL
does, loudly, and the guard reports them at risk while it cannot. A watermark edited ahead of
now is refused. (The store's own clock correction: test_clock.py; a real slow process:
tests/integration/test_clock_skew.py.)"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from archive_support import NOW, World, hours

from eventlake import EventLake
from eventlake.archive.expiry import band_end, unchecked_band
from eventlake.archive.ttlguard import TtlGuardError, ttl_margin
from eventlake.events.model import parse_event
from eventlake.hot.store import HotStore
from eventlake.lake.watermark import (
    EXPIRY_CHECK_KEY,
    WatermarkAheadError,
    advance_watermark,
    read_watermark,
    window_start,
)
from eventlake.query.views import connect


def producer(world: World, clock: Callable[[], datetime]) -> HotStore:
    """Another producer on the same table, its clock given (no correction measured: moto's
    `Date` is this host's own time)."""
    return HotStore(world.settings, world.clients, clock=clock)


def orders(ids: list[str], at: datetime) -> list[Any]:
    return [parse_event({"event_id": i, "event_type": "order.placed",
                         "timestamp": at.isoformat(), "source": "shop", "subject": "user-7",
                         "event_payload": {"order": i, "total": "12.50"}}, now=at)
            for i in ids]


def lake_of(world: World) -> EventLake:
    return EventLake(world.settings, clients=world.clients)


def ids_in_events(world: World, now: datetime | None = None) -> Counter[str]:
    con = connect(lake_of(world), now=now)
    try:
        rows = con.sql("SELECT event_id FROM events WHERE event_id LIKE 'slow-%'").fetchall()
    finally:
        con.close()
    return Counter(row[0] for row in rows)


# --- within the skew: the look-back --------------------------------------------------------

def test_events_of_a_producer_two_minutes_slow_are_seen_counted_and_archived(
        world: World) -> None:
    # given a sweep that moved the watermark to (real) now
    first = world.sweep(datetime.now(UTC))
    # and then a producer whose clock runs 2 minutes slow writes five orders
    slow = producer(world, lambda: datetime.now(UTC) - timedelta(minutes=2))
    ids = [f"slow-{i}" for i in range(5)]
    assert all(r.ok for r in slow.put_many(orders(ids, first.watermark_after)))
    stamps = {item["ingested_at"]["S"] for item in world.hot.read_ingested(
        first.watermark_after - hours(1), first.watermark_after + hours(1))}
    assert max(stamps) < first.watermark_after.isoformat()  # stamped behind the watermark
    # then status and the guard count them as not archived yet
    status = lake_of(world).status()
    assert status["unarchived"] == 5
    assert ttl_margin(world.lake, world.hot, world.settings).unarchived == 5
    # and `events` shows each once
    assert ids_in_events(world) == Counter(ids)
    # when the next sweep runs
    report = world.sweep(datetime.now(UTC))
    # then it archives them from the look-back, and nothing is unarchived any more
    assert report.counts.archived == 5 and report.beyond_skew == 0
    assert world.stored_rows() == Counter(ids)
    assert report.ttl.unarchived == 0 and lake_of(world).status()["unarchived"] == 0
    # and `events` still shows each once (the seam drops the hot copies before the watermark)
    assert ids_in_events(world) == Counter(ids)


def test_the_look_back_rereads_archived_events_and_writes_nothing_twice(world: World) -> None:
    world.ingest(["a", "b"], NOW - timedelta(minutes=5))
    world.sweep(NOW)
    again = world.sweep(NOW + timedelta(minutes=1))
    assert (again.counts.read, again.counts.already, again.counts.archived) == (2, 2, 0)
    assert again.counts.files == [] and world.stored_rows() == Counter(["a", "b"])


# --- beyond the skew: the expiry check -------------------------------------------------------

def test_events_stamped_an_hour_behind_are_archived_by_the_expiry_check_before_ttl(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    # given a watermark at NOW, and a producer an hour slow writing just after it
    world.sweep(NOW)
    slow = producer(world, lambda: NOW + timedelta(minutes=5) - hours(1))
    ids = [f"slow-{i}" for i in range(3)]
    assert all(r.ok for r in slow.put_many(orders(ids, NOW)))
    # the next sweeps' windows do not reach back that far: nothing archives them yet
    assert world.sweep(NOW + timedelta(minutes=15)).counts.archived == 0
    assert world.sweep(NOW + hours(12)).counts.archived == 0
    assert world.stored_rows() == Counter()
    # when a sweep runs once they are within the safety margin of their expiry
    # (expires_at = NOW - 55 min + 3 days; the margin is 6 h)
    caplog.set_level(logging.WARNING, "eventlake.archive.sweep")
    report = world.sweep(NOW + hours(72 - 6))
    # then the expiry check has archived them, and the sweep says so loudly
    assert world.stored_rows() == Counter(ids)
    assert report.beyond_skew == 3 and sorted(report.expiry.beyond_skew_ids) == ids  # type: ignore[union-attr]
    assert report.ttl.at_risk == 0 and report.to_dict()["beyond_skew"] == 3
    # and the run says an operator must look (the CLI exits 1, the flow fails after its report)
    [problem] = report.problems()
    assert problem.startswith("3 event(s) were stamped further behind the watermark") \
        and "`slow-0`" in problem and "NTP" in problem
    warning = next(r.getMessage() for r in caplog.records if "expiry check" in r.getMessage())
    assert "archived 3 event(s)" in warning and "`slow-0`" in warning
    assert "EVENTLAKE_CLOCK_SKEW_SECONDS=600" in warning and "NTP" in warning
    # and the checkpoint moved on: the next sweep does not read them again
    checkpoint = read_watermark(world.lake, EXPIRY_CHECK_KEY)
    assert checkpoint is not None and checkpoint.at == NOW  # now + 6 h - 3 days
    assert world.sweep(NOW + hours(67)).expiry.counts.read == 0  # type: ignore[union-attr]


def test_the_guard_says_at_risk_when_the_expiry_check_cannot_archive(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given events stamped an hour behind the watermark, beyond every sweep window
    world.sweep(NOW)
    world.ingest(["slow-1", "slow-2"], NOW - hours(1) + timedelta(minutes=5))
    world.sweep(NOW + hours(1))
    # and, once they are within the safety margin of expiry, a lake that refuses writes
    later = NOW + hours(72 - 4)
    with monkeypatch.context() as refusing:
        refusing.setattr(world.lake, "write", lambda *a, **k: (_ for _ in ()).throw(
            OSError("access denied")))
        # when the sweep runs, the guard fails it naming them
        with pytest.raises(TtlGuardError) as raised:
            world.sweep(later)
        assert sorted(raised.value.event_ids) == ["slow-1", "slow-2"]
        assert isinstance(raised.value.__cause__, OSError)
        # and the guard alone (what `status` runs) says the same: never 0 at risk
        margin = ttl_margin(world.lake, world.hot, world.settings, now=later)
        assert (margin.at_risk, sorted(margin.at_risk_ids)) == (2, ["slow-1", "slow-2"])
        assert margin.hours_left == pytest.approx(3 + 5 / 60)  # expires_at: NOW + 71 h 05
    # once the lake takes writes again, the next sweep archives them
    report = world.sweep(later + timedelta(minutes=15))
    assert report.beyond_skew == 2 and report.ttl.at_risk == 0
    assert world.stored_rows() == Counter(["slow-1", "slow-2"])


def test_the_first_expiry_check_leaves_what_the_first_sweep_window_reads_to_it(
        world: World) -> None:
    # given old events and no watermark yet: the sweep's window is the whole retention period
    world.ingest(["old"], NOW - hours(70))
    report = world.sweep(NOW)
    # then the expiry check reads nothing itself (no event is read twice), yet moves on
    assert report.expiry is not None and report.expiry.counts.read == 0
    assert (report.counts.archived, report.beyond_skew) == (1, 0)
    assert read_watermark(world.lake, EXPIRY_CHECK_KEY).at == NOW + hours(6) - hours(72)  # type: ignore[union-attr]


# --- a watermark ahead of now ------------------------------------------------------------------

def test_a_watermark_edited_into_the_future_is_refused_loudly(world: World) -> None:
    # given events not yet archived, and a watermark moved a day ahead by hand
    world.ingest(["hidden-1", "hidden-2"], NOW - hours(1))
    advance_watermark(world.lake, NOW + hours(24), expected=None, run_id="by-hand")
    # when the sweep runs, it refuses, naming both times and the fix
    with pytest.raises(WatermarkAheadError) as raised:
        world.sweep(NOW)
    message = str(raised.value)
    assert "`2024-05-11T12:00:00.000000Z`" in message and "`2024-05-10T12:00:00.000000Z`" in message
    assert "24.0 h ahead" in message and "delete it (safe" in message
    assert read_watermark(world.lake).at == NOW + hours(24)  # type: ignore[union-attr]


def test_status_shows_a_watermark_ahead_of_now_as_a_problem(world: World) -> None:
    advance_watermark(world.lake, datetime.now(UTC) + hours(24), expected=None, run_id="by-hand")
    status = lake_of(world).status()
    assert "ahead of now" in status["problem"] and "archive_lag" not in status


def test_a_watermark_within_the_skew_ahead_is_tolerated(world: World) -> None:
    advance_watermark(world.lake, NOW + timedelta(minutes=5), expected=None, run_id="fast")
    world.ingest(["a"], NOW - timedelta(minutes=2))
    report = world.sweep(NOW)
    assert report.watermark_after == NOW + timedelta(minutes=5)
    assert world.stored_rows() == Counter(["a"])


def test_events_hidden_by_an_edited_watermark_are_archived_before_they_expire(
        world: World) -> None:
    # given events behind a watermark moved ten days ahead by hand
    world.ingest(["hidden-1", "hidden-2"], NOW - hours(1))
    world.sweep(NOW - hours(2))  # (a sweep before they arrived: the checkpoint exists)
    advance_watermark(world.lake, NOW + hours(240), expected=read_watermark(world.lake),
                      run_id="by-hand")
    # when sweeps keep failing until the events near expiry
    with pytest.raises(WatermarkAheadError):
        world.sweep(NOW + hours(72 - 6))
    # then the expiry check ran first: they are in the lake, and the guard finds none at risk
    assert world.stored_rows() == Counter(["hidden-1", "hidden-2"])
    assert ttl_margin(world.lake, world.hot, world.settings, now=NOW + hours(66)).at_risk == 0


# --- the band ------------------------------------------------------------------------------

def test_the_band_starts_at_its_checkpoint_with_no_skew_look_back(world: World) -> None:
    oldest = window_start(None, NOW, world.settings)  # no checkpoint: what the table can hold
    assert unchecked_band(world.lake, NOW, world.settings, NOW)[0] == oldest

    checkpoint = NOW - timedelta(days=3)
    advance_watermark(world.lake, checkpoint, expected=None, run_id="t", key=EXPIRY_CHECK_KEY)

    start, stop = unchecked_band(world.lake, NOW, world.settings, NOW)
    assert start == checkpoint  # the sweep's window starts the clock skew before its mark
    assert stop == band_end(NOW, world.settings)
