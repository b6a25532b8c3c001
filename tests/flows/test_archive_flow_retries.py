"""The archive flow under a hostile review (review20): a task retried after failing half way,
and a second sweep started while one runs. On Prefect's engine (the session's server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventlake import EventLake
from eventlake.archive.lease import SweepLockedError, acquire_lease
from eventlake.archive.sweep import SWEEP_LOCK
from eventlake.lake.store import Lake


def events(n: int) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [{"event_id": f"r20-{i:04d}", "event_type": "a",
             "timestamp": (now - timedelta(days=i % 3, minutes=i)).isoformat(),
             "event_payload": {"i": i}} for i in range(n)]


@pytest.mark.slow
def test_a_sweep_task_failing_half_way_is_retried_and_archives_each_event_once(
        prefect_server: None, env_lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.archive as module

    # given 30 events over three days, and a lake whose second partition write fails once
    env_lake.put_many(events(30))
    real = Lake._write_sorted
    calls: list[str] = []

    def write_sorted(self: Lake, dt: str, *args: Any) -> Any:
        calls.append(dt)
        if len(calls) == 2:
            raise OSError(104, "Connection reset by peer")
        return real(self, dt, *args)

    monkeypatch.setattr(Lake, "_write_sorted", write_sorted)
    monkeypatch.setattr(module, "sweep_events",
                        module.sweep_events.with_options(retry_delay_seconds=0))

    # when the archive flow runs on the engine
    state = module.archive(settle_seconds=0, return_state=True)

    # then the task was retried (a partition written before the failure is written again, or
    # skipped), the run completed, and every event is in the lake's files exactly once
    assert state.is_completed(), state
    assert len(calls) > 3
    ids = env_lake.cold.read(columns=["event_id"]).column("event_id").to_pylist()
    assert sorted(ids) == [f"r20-{i:04d}" for i in range(30)]
    result = state.result()
    assert result["counts"]["archived"] + result["counts"]["already"] == 30


@pytest.mark.slow
def test_a_manual_sweep_while_another_holds_the_lease_fails_naming_the_holder(
        prefect_server: None, env_lake: EventLake) -> None:
    import flows.archive as module

    env_lake.put_many(events(5))
    # given a sweep running elsewhere (its lease held)
    with acquire_lease(env_lake.cold, SWEEP_LOCK, ttl_seconds=600, run_id="scheduled-run"):
        # when a manual run starts
        state = module.archive(settle_seconds=0, return_state=True)

    # then it fails (not Completed with nothing done), saying who holds the lease, and wrote
    # nothing
    assert state.is_failed()
    with pytest.raises(SweepLockedError, match=r"is held by .*run `scheduled-run`"):
        state.result()
    assert env_lake.cold.list_files() == []
