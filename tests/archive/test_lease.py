"""Leases in lake state: one sweep at a time, expired leases taken over, races lost cleanly."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from archive_support import NOW, World, hours, race_two_sweeps
from clock_support import Clock

from eventlake.archive.lease import LeaseLostError, SweepLockedError, acquire_lease, read_lease
from eventlake.lake.store import Lake

T0 = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def state(world: World) -> Lake:
    return world.lake


def test_a_free_lease_is_taken_and_says_who_holds_it(state: Lake) -> None:
    lease = acquire_lease(state, "sweep", ttl_seconds=60, run_id="run-1", holder="host:1",
                          clock=Clock(T0))
    stored = read_lease(state, "sweep")
    assert stored is not None
    assert (stored.holder, stored.run_id, stored.released) == ("host:1", "run-1", False)
    assert stored.expires_at == T0 + timedelta(seconds=60) == lease.expires_at
    raw = json.loads(state.read_state("locks/sweep")[0])  # type: ignore[index]
    assert set(raw) == {"holder", "run_id", "acquired_at", "expires_at", "released"}


def test_a_held_lease_is_refused_naming_the_holder_and_its_expiry(state: Lake) -> None:
    acquire_lease(state, "sweep", ttl_seconds=60, run_id="run-1", holder="host:1",
                  clock=Clock(T0))
    with pytest.raises(SweepLockedError, match=r"`host:1` \(run `run-1`, until "
                                               r"2024-05-10T12:01:00.000000Z\)") as raised:
        acquire_lease(state, "sweep", ttl_seconds=60, run_id="run-2", holder="host:2",
                      clock=Clock(T0 + timedelta(seconds=59)))
    assert raised.value.holder == "host:1"
    assert raised.value.expires_at == T0 + timedelta(seconds=60)


def test_an_expired_lease_is_taken_over(state: Lake) -> None:
    acquire_lease(state, "sweep", ttl_seconds=60, run_id="crashed", clock=Clock(T0))
    lease = acquire_lease(state, "sweep", ttl_seconds=60, run_id="next",
                          clock=Clock(T0 + timedelta(seconds=60)))
    assert read_lease(state, "sweep").run_id == "next"  # type: ignore[union-attr]
    assert lease.expires_at == T0 + timedelta(seconds=120)


def test_a_released_lease_is_free_at_once(state: Lake) -> None:
    with acquire_lease(state, "sweep", ttl_seconds=900, run_id="one", clock=Clock(T0)):
        pass
    assert read_lease(state, "sweep").released  # type: ignore[union-attr]
    acquire_lease(state, "sweep", ttl_seconds=900, run_id="two", clock=Clock(T0))


def test_of_two_runs_taking_over_one_expired_lease_exactly_one_wins(
        state: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    acquire_lease(state, "sweep", ttl_seconds=1, run_id="crashed", clock=Clock(T0))
    # both read the expired lease before either writes
    both_read = threading.Barrier(2, timeout=10)
    real = state.read_state
    first_reads: set[int] = set()

    def read_state(key: str) -> Any:
        found = real(key)
        me = threading.get_ident()
        if me not in first_reads:
            first_reads.add(me)
            both_read.wait()
        return found

    monkeypatch.setattr(state, "read_state", read_state)
    outcomes: list[str] = []

    def take(run_id: str) -> None:
        try:
            acquire_lease(state, "sweep", ttl_seconds=60, run_id=run_id,
                          clock=Clock(T0 + timedelta(seconds=5)))
            outcomes.append("won")
        except SweepLockedError:
            outcomes.append("locked")

    threads = [threading.Thread(target=take, args=(f"run-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["locked", "won"]


def test_renewing_pushes_the_expiry_and_a_lost_lease_is_noticed(state: Lake) -> None:
    clock = Clock(T0)
    lease = acquire_lease(state, "sweep", ttl_seconds=90, run_id="slow", clock=clock)
    clock.at = T0 + timedelta(seconds=20)
    lease.renew_if_due()  # a third of the TTL not used up yet: nothing written
    assert read_lease(state, "sweep").expires_at == T0 + timedelta(seconds=90)  # type: ignore[union-attr]
    clock.at = T0 + timedelta(seconds=31)
    lease.renew_if_due()
    assert read_lease(state, "sweep").expires_at == T0 + timedelta(seconds=121)  # type: ignore[union-attr]
    # it stalls past its expiry and another run takes over
    acquire_lease(state, "sweep", ttl_seconds=90, run_id="next",
                  clock=Clock(T0 + timedelta(seconds=200)))
    clock.at = T0 + timedelta(seconds=201)
    with pytest.raises(LeaseLostError, match=r"taken over by .*run `next`"):
        lease.renew_if_due()
    lease.release()  # losing the release race leaves the new holder alone
    assert read_lease(state, "sweep").run_id == "next"  # type: ignore[union-attr]
    assert not read_lease(state, "sweep").released  # type: ignore[union-attr]


def test_two_sweeps_started_together_run_one_at_a_time(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.ingest([f"e-{i}" for i in range(5)], NOW - hours(1))
    # the sweep that gets the lease waits (inside it) until the other has tried
    reports, refusals = race_two_sweeps(world, monkeypatch, NOW)
    assert len(reports) == 1 and len(refusals) == 1
    assert "sweeper-" in str(refusals[0]) and "another run is in progress" in str(refusals[0])
    assert reports[0].counts.archived == 5
    assert sorted(world.stored_rows().elements()) == [f"e-{i}" for i in range(5)]
    # and the lease was released: the next sweep runs at once
    assert world.sweep(NOW + timedelta(minutes=1)).counts.read == 0


def test_a_sweep_takes_over_the_expired_lease_of_a_crashed_sweep(world: World) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    acquire_lease(world.lake, "sweep", ttl_seconds=60, run_id="crashed", holder="gone:1",
                  clock=Clock(past))
    world.ingest(["a"], NOW - hours(1))
    report = world.sweep(NOW)
    assert report.counts.archived == 1
    assert read_lease(world.lake, "sweep").run_id == report.run_id  # type: ignore[union-attr]


def test_a_sweep_refuses_to_run_while_a_live_lease_is_held(world: World) -> None:
    acquire_lease(world.lake, "sweep", ttl_seconds=600, run_id="busy", holder="other:7")
    world.ingest(["a"], NOW - hours(1))
    with pytest.raises(SweepLockedError, match="`other:7`"):
        world.sweep(NOW)
    assert world.stored_rows() == {}
