"""The replay flow on Prefect's real engine (the session's one temporary server): parameters
as a deployment gives them (ISO strings), a JSONL target, the run's artifact; and the retry
rule: a task retry resumes from a checkpoint, and never resends to a target without one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from flow_support import artifact

import flows.replay as replay_flow
from eventlake import EventLake
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.replay import run as run_module
from eventlake.replay.batch import Batch
from eventlake.replay.checkpoint import Checkpoint
from eventlake.replay.targets import DeliveryError, Target
from flows.common import IO_RETRIES

START = datetime(2024, 5, 1, tzinfo=UTC)
IDS = [f"r-{n:02d}" for n in range(10)]


@pytest.fixture
def replay_lake(mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EventLake:
    """The lake the flow builds from EVENTLAKE_*, with ten events over two days; task retries
    without their 10-90 s waits."""
    monkeypatch.setenv("EVENTLAKE_TABLE", "replay-flow-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    env_lake = EventLake.from_env()
    env_lake.init()
    rows: list[dict[str, Any]] = [
        {"event_id": event_id, "event_type": ("click", "order")[n % 2],
         "timestamp": START + timedelta(hours=5 * n), "ingested_at": START + timedelta(days=3),
         "source": "shop", "subject": None, "event_payload": json.dumps({"n": n}),
         "content_hash": f"h{n}"} for n, event_id in enumerate(IDS)]
    env_lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "sweep-a")
    monkeypatch.setattr(replay_flow, "IO_RETRY_DELAYS", [0.0] * IO_RETRIES)
    return env_lake


class Flaky(Target):
    """A non-file target whose connection drops once, at its `drop_at`-th batch."""

    def __init__(self, drop_at: int | None = None, refuse: bool = False) -> None:
        self.received: list[str] = []
        self.starts: list[int | None] = []
        self.calls = 0
        self.drop_at = drop_at
        self.refuse = refuse

    def start(self, checkpoint: Checkpoint | None) -> None:
        self.starts.append(None if checkpoint is None else checkpoint.count)

    def send(self, batch: Batch) -> int | None:
        self.calls += 1
        ids = [e["event_id"] for e in batch.events]
        if self.refuse:
            raise DeliveryError("sqs:orders", ids, "AWS.SimpleQueueService.NonExistentQueue")
        if self.calls == self.drop_at:
            raise ConnectionResetError("connection reset by peer")
        self.received += ids
        return None


def use_target(monkeypatch: pytest.MonkeyPatch, target: Target) -> None:
    monkeypatch.setattr(run_module, "target_for", lambda *args: target)


@pytest.mark.slow
def test_the_replay_flow_run_writes_the_selection_in_order_and_reports_it(
        prefect_server: None, replay_lake: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"

    # parameters as `prefect deployment run -p ...` gives them: strings
    state = replay_flow.replay(from_ts="2024-05-01T00:00:00Z",  # type: ignore[arg-type]
                               to_ts="2024-05-03T00:00:00+00:00",  # type: ignore[arg-type]
                               target=f"jsonl:{out}", types=["click"], cold_only=True,
                               batch_size=2, return_state=True)

    assert state.is_completed()
    clicks = IDS[0::2]
    assert [json.loads(line)["event_id"] for line in out.read_text().splitlines()] == clicks
    result = state.result()
    assert (result["sent"], result["failed"], result["batches"], result["per_type"]) \
        == (5, 0, 3, {"click": 5})
    rows, _ = artifact("eventlake-replay")
    assert (rows["events sent"], rows["failed"], rows["target"], rows["checkpoint"]) \
        == ("5", "0", f"`jsonl:{out}`", "none")
    assert rows["selection"] == ("[2024-05-01T00:00:00+00:00, 2024-05-03T00:00:00+00:00); "
                                 "types `click`; cold only")


@pytest.mark.slow
def test_with_a_checkpoint_a_dropped_connection_is_retried_from_the_last_acknowledged_batch(
        prefect_server: None, replay_lake: EventLake, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    target = Flaky(drop_at=3)
    use_target(monkeypatch, target)

    state = replay_flow.replay(START, START + timedelta(days=3), "sqs:orders", cold_only=True,
                               batch_size=2, checkpoint=str(tmp_path / "ckpt"),
                               return_state=True)

    assert state.is_completed()
    assert target.starts == [None, 4]  # the retry resumed after the two acknowledged batches
    assert target.received == IDS  # each once, in order
    assert state.result()["resumed_after"] == 4


@pytest.mark.slow
def test_without_a_checkpoint_a_non_file_target_is_never_resent_by_a_retry(
        prefect_server: None, replay_lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    target = Flaky(drop_at=3)
    use_target(monkeypatch, target)

    state = replay_flow.replay(START, START + timedelta(days=3), "sqs:orders", cold_only=True,
                               batch_size=2, return_state=True)

    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), ConnectionResetError)
    assert (target.starts, target.received) == ([None], IDS[:4])


@pytest.mark.slow
def test_a_refused_delivery_fails_the_run_after_reporting_it(
        prefect_server: None, replay_lake: EventLake, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    target = Flaky(refuse=True)
    use_target(monkeypatch, target)

    state = replay_flow.replay(START, START + timedelta(days=3), "sqs:orders", cold_only=True,
                               batch_size=4, checkpoint=str(tmp_path / "ckpt"),
                               return_state=True)

    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), DeliveryError)
    assert target.starts == [None]  # final: the target already retried with backoff
    rows, markdown = artifact("eventlake-replay")
    assert (rows["events sent"], rows["failed"]) == ("0", "4")
    assert "**Delivery failed:** sqs:orders: 4 event(s) not delivered (`r-00`" in markdown
    assert "re-run with the same checkpoint to resume" in markdown


@pytest.mark.parametrize(("target", "checkpoint", "retries"), [
    ("jsonl:/data/out.jsonl", None, IO_RETRIES),  # rewritten from the start: safe
    ("sqs:orders", "/data/orders.ckpt", IO_RETRIES),  # resumes after the checkpoint
    ("sqs:orders", None, 0),  # would receive everything again
    ("https://example.com/hook", None, 0),
    ("stdout", None, 0),
])
def test_task_retries_only_where_a_retry_cannot_resend_everything(
        target: str, checkpoint: str | None, retries: int) -> None:
    assert replay_flow.retries_for(target, checkpoint) == retries
