"""Targets: naming them, a JSONL file resuming at its checkpoint's offset, the checkpoint
refusing another selection; and the `eventlake replay` command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from replay_support import batch_of, row

from eventlake import EventLake
from eventlake.cli.main import main
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.replay import checkpoint
from eventlake.replay.checkpoint import Checkpoint, CheckpointError
from eventlake.replay.resolve import target_for
from eventlake.replay.select import Selection
from eventlake.replay.targets import (
    CallableTarget,
    JsonlTarget,
    StdoutTarget,
    TargetError,
)

START = datetime(2024, 5, 1, tzinfo=UTC)
SELECTION = Selection(START, START + timedelta(days=1))


def test_targets_are_named_or_callables(tmp_path: Path) -> None:
    assert isinstance(target_for("stdout"), StdoutTarget)
    jsonl = target_for(f"jsonl:{tmp_path / 'x.jsonl'}")
    assert isinstance(jsonl, JsonlTarget) and jsonl.path == tmp_path / "x.jsonl"
    assert isinstance(target_for(print), CallableTarget)
    with pytest.raises(TargetError, match="unknown target `sqs`"):
        target_for("sqs")
    with pytest.raises(TargetError, match="a local path or s3://"):
        target_for("jsonl:gs://bucket/x.jsonl")


def test_a_resumed_jsonl_file_drops_what_follows_the_checkpointed_offset(tmp_path: Path
                                                                          ) -> None:
    path = tmp_path / "out.jsonl"
    first = JsonlTarget(path)
    first.start(None)
    sent = batch_of([row("a")])
    done = first.acknowledged(sent, 1, first.send(sent))
    first.close()
    with path.open("ab") as f:  # a batch written, the process killed before its checkpoint
        f.write(b'{"event_id":"b"}\n{"event_id":"c", "par')

    again = JsonlTarget(path)
    assert done is not None
    again.start(done)
    again.send(batch_of([row("b")]))
    again.close()

    assert [json.loads(line)["event_id"] for line in path.read_text().splitlines()] == [
        "a", "b"]


def test_a_jsonl_file_shorter_than_its_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text("")
    with pytest.raises(TargetError, match="holds 0 bytes but the checkpoint says 10"):
        JsonlTarget(path).start(Checkpoint(START, "a", 1, 10))


def test_a_checkpoint_is_written_atomically_and_refuses_another_selection(tmp_path: Path
                                                                          ) -> None:
    path = tmp_path / "ckpt.json"
    assert checkpoint.load(path, SELECTION) is None

    checkpoint.save(path, Checkpoint(START, "a", 3, 42), SELECTION)

    assert checkpoint.load(path, SELECTION) == Checkpoint(START, "a", 3, 42)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.json"]  # no temp file left
    with pytest.raises(CheckpointError, match="another selection"):
        checkpoint.load(path, Selection(START, START + timedelta(days=2)))


def test_stdout_target_writes_json_lines() -> None:
    stream = io.StringIO()
    StdoutTarget(stream).send(batch_of([row("a", payload='{"a":"x","b":1}')]))
    assert stream.getvalue() == (
        '{"event_id":"a","event_payload":{"a":"x","b":1},"event_type":"click",'
        '"source":"shop","subject":null,"timestamp":"2024-05-01T00:00:00.000000Z"}\n')


@pytest.fixture
def cli_env(mocked_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> EventLake:
    monkeypatch.setenv("EVENTLAKE_TABLE", "cli-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    lake = EventLake.from_env()
    lake.init()
    rows: list[dict[str, Any]] = [
        {"event_id": f"e-{n}", "event_type": "click", "timestamp": START + timedelta(hours=n),
         "ingested_at": START + timedelta(days=2), "source": None, "subject": None,
         "event_payload": "{}", "content_hash": f"h{n}"} for n in range(3)]
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "sweep-a")
    return lake


def test_the_replay_command_writes_jsonl_and_a_summary(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jsonl"

    code = main(["replay", "--from", "2024-05-01", "--to", "2024-05-01T02:00:00Z",
                 "--cold-only", "--target", f"jsonl:{out}", "--checkpoint",
                 str(tmp_path / "ckpt"), "--batch-size", "1"])

    assert code == 0
    assert [json.loads(line)["event_id"] for line in out.read_text().splitlines()] == [
        "e-0", "e-1"]
    assert "replay: sent 2 events in 2 batches" in capsys.readouterr().out


def test_the_replay_command_dry_run_prints_counts(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--from", "2024-05-01", "--to", "2024-05-02", "--type", "click",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert 'per type {"click": 3}' in out
    assert "replay: would send 3 events" in out


def test_the_replay_command_refuses_a_naive_time(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--from", "2024-05-01T00:00:00", "--to", "2024-05-02"])
    assert "has no UTC offset" in capsys.readouterr().err


def test_a_checkpoint_in_use_by_another_process_is_refused(tmp_path: Path) -> None:
    # given: another process holds the checkpoint (a replay running with it)
    path = tmp_path / "ckpt.json"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from eventlake.replay.checkpoint import held\n"
         "with held(sys.argv[1]):\n    print('held', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"

        # then: this one is refused, naming the checkpoint
        with (pytest.raises(CheckpointError, match="another replay is using the checkpoint"),
              checkpoint.held(path)):
            pass
    finally:
        holder.communicate("", timeout=30)

    # and: once the holder is gone (it exited), the checkpoint can be held again
    with checkpoint.held(path):
        pass
