"""What keeps a resumed replay honest: a checkpoint resumed only by its own selection, target
and shape; a JSONL file checked before it is appended to; malformed checkpoint values refused by
name; late (and vanished) events before the checkpoint reported; an unwritable checkpoint
refused before anything is sent; every failure mid-run carrying the report; the command after a
failure, a closed stdout and an absurd --rate. (Each was a probe of the review of issue 10.)"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from archive_support import NOW, World, hours
from replay_support import ColdTiers

from eventlake import EventLake
from eventlake.cli.main import main
from eventlake.errors import ConfigError
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.replay import checkpoint as checkpoints
from eventlake.replay import run as run_module
from eventlake.replay.batch import Batch
from eventlake.replay.checkpoint import CheckpointError
from eventlake.replay.rate import MAX_SLEEP_S, TokenBucket
from eventlake.replay.run import ReplayReport, replay
from eventlake.replay.select import Selection
from eventlake.replay.targets import DeliveryError, JsonlTarget, Target, TargetError

ROOT = Path(__file__).parents[2]
START = datetime(2024, 5, 1, tzinfo=UTC)
SELECTION = Selection(START, START + timedelta(days=2), cold_only=True)


def cold_lake(root: Path, ids: list[str], name: str = "a", *, step_s: float = 60,
              offset_s: float = 0) -> ColdTiers:
    """A lake at `root` with one file `name` holding `ids`, `step_s` apart from START +
    `offset_s`."""
    tiers = ColdTiers(root)
    rows = [{"event_id": e, "event_type": "click",
             "timestamp": START + timedelta(seconds=offset_s + n * step_s),
             "ingested_at": START, "source": "shop", "subject": None,
             "event_payload": '{"n":1}', "content_hash": f"h{e}"} for n, e in enumerate(ids)]
    tiers.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), name)
    return tiers


def ids(n: int) -> list[str]:
    return [f"e{i:04d}" for i in range(n)]


class Boom(Exception):
    pass


class CrashingJsonl(JsonlTarget):
    """A JSONL file target whose process "dies" after `batches` batches."""

    def __init__(self, path: Path, batches: int) -> None:
        super().__init__(path)
        self.left = batches

    def send(self, batch: Batch) -> int | None:
        if self.left == 0:
            raise Boom()
        self.left -= 1
        return super().send(batch)


def go(tiers: Any, target: Any, **kw: Any) -> ReplayReport:
    return replay(tiers, kw.pop("selection", SELECTION), target,
                  now=START + timedelta(days=30), **kw)


def half_done_jsonl(tmp_path: Path, n: int = 6) -> tuple[ColdTiers, Path, Path]:
    """A lake of `n` events, a JSONL replay of it stopped after one batch of 3."""
    tiers = cold_lake(tmp_path / "lake", ids(n))
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.jsonl"
    with pytest.raises(Boom):
        go(tiers, CrashingJsonl(out, 1), batch_size=3, checkpoint=ckpt)
    return tiers, ckpt, out


# --- 1. another target, another shape -----------------------------------------------------------

def test_a_checkpoint_is_refused_by_another_target_naming_both(tmp_path: Path) -> None:
    tiers, ckpt, out = half_done_jsonl(tmp_path)
    got: list[str] = []

    with pytest.raises(CheckpointError) as err:
        go(tiers, lambda events: got.extend(e["event_id"] for e in events), batch_size=3,
           checkpoint=ckpt)

    assert f"written for the target `jsonl:{out}`, not `callable:" in str(err.value)
    assert "<lambda>" in str(err.value)
    assert got == []  # nothing sent: not e0003.. after a position it never saw


def test_a_checkpoint_is_refused_by_another_shape_naming_both(tmp_path: Path) -> None:
    tiers, ckpt, out = half_done_jsonl(tmp_path)
    before = out.read_bytes()

    with pytest.raises(CheckpointError, match="written for the shape `seed`, not "
                                              "`cloudevents`"):
        go(tiers, f"jsonl:{out}", batch_size=3, checkpoint=ckpt, shape="cloudevents")

    assert out.read_bytes() == before  # the file is untouched


def test_the_same_target_and_shape_resume_every_event_once(tmp_path: Path) -> None:
    tiers, ckpt, out = half_done_jsonl(tmp_path)

    report = go(tiers, f"jsonl:{out}", batch_size=3, checkpoint=ckpt)

    assert (report.resumed_after, report.sent, report.warnings) == (3, 3, [])
    assert [json.loads(x)["event_id"] for x in out.read_text().splitlines()] == ids(6)
    saved = json.loads(ckpt.read_text())
    assert (saved["sink"], saved["shape"]) == (f"jsonl:{out.resolve()}", "seed")


def test_the_same_file_spelled_another_way_resumes(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tiers, ckpt, out = half_done_jsonl(tmp_path)
    monkeypatch.chdir(out.parent)

    report = go(tiers, f"jsonl:./{out.name}", batch_size=3, checkpoint=ckpt)

    assert (report.resumed_after, report.sent) == (3, 3)
    assert [json.loads(x)["event_id"] for x in out.read_text().splitlines()] == ids(6)


def test_a_target_url_is_recorded_without_its_password(tmp_path: Path) -> None:
    tiers = cold_lake(tmp_path / "lake", ids(2))
    ckpt = tmp_path / "ckpt"
    checkpoints.save(ckpt, checkpoints.Checkpoint(START, "e0000", 1), SELECTION,
                     sink=run_module.sink_name("https://user:s3cret@example.com/hook"),
                     shape="seed")

    assert "s3cret" not in ckpt.read_text()
    with pytest.raises(CheckpointError, match=r"target `https://\*\*\*@example.com/hook`"):
        go(tiers, lambda events: None, checkpoint=ckpt)


def test_a_checkpoint_without_target_and_shape_is_refused(tmp_path: Path) -> None:
    tiers, ckpt, out = half_done_jsonl(tmp_path)
    data = json.loads(ckpt.read_text())
    del data["sink"], data["shape"]
    ckpt.write_text(json.dumps(data))

    with pytest.raises(CheckpointError, match="does not say which target it was written for"):
        go(tiers, f"jsonl:{out}", batch_size=3, checkpoint=ckpt)


# --- 2. a JSONL file changed between runs -------------------------------------------------------

@pytest.mark.parametrize("change", ["replaced", "last byte changed", "shortened then padded"])
def test_a_jsonl_file_changed_between_runs_is_refused_before_truncating(
        tmp_path: Path, change: str) -> None:
    tiers, ckpt, out = half_done_jsonl(tmp_path)
    data = out.read_bytes()
    changed = {"replaced": b"X" * (len(data) + 100),
               "last byte changed": data[:-2] + b" \n",
               "shortened then padded": data[:-10] + b"{}\n" + b" " * 7}[change]
    out.write_bytes(changed)

    with pytest.raises(TargetError) as err:
        go(tiers, f"jsonl:{out}", batch_size=3, checkpoint=ckpt)

    assert f"`{out}` is not the file the checkpoint belongs to" in str(err.value)
    assert "delete the checkpoint (and the file) to replay from the start" in str(err.value)
    assert out.read_bytes() == changed  # not truncated, not appended to


def test_the_digest_covers_bytes_written_by_earlier_batches(tmp_path: Path) -> None:
    # given: batches of one small line each, so the last 4096 bytes span many batches
    tiers = cold_lake(tmp_path / "lake", ids(100))
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.jsonl"
    with pytest.raises(Boom):
        go(tiers, CrashingJsonl(out, 60), batch_size=1, checkpoint=ckpt)
    state = json.loads(ckpt.read_text())["target"]
    assert state["tail_bytes"] == JsonlTarget.TAIL_BYTES
    data = bytearray(out.read_bytes())
    data[-3000] ^= 1  # a byte of a line written ~20 batches before the checkpoint
    out.write_bytes(bytes(data))

    with pytest.raises(TargetError, match="is not the file the checkpoint belongs to"):
        go(tiers, f"jsonl:{out}", batch_size=1, checkpoint=ckpt)


def test_a_partly_written_batch_after_the_checkpoint_is_still_dropped(tmp_path: Path) -> None:
    tiers, ckpt, out = half_done_jsonl(tmp_path)
    with out.open("ab") as f:  # killed after writing, before the checkpoint
        f.write(b'{"event_id":"e0003"}\n{"event_id":"e00')

    go(tiers, f"jsonl:{out}", batch_size=3, checkpoint=ckpt)

    assert [json.loads(x)["event_id"] for x in out.read_text().splitlines()] == ids(6)


# --- 5. malformed values ------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("event_id", None), ("event_id", ""), ("event_id", 7),
    ("count", -1), ("count", "3"), ("count", 2.5), ("count", True), ("count", None),
    ("offset", -5), ("offset", "12"), ("offset", 1.0),
    ("timestamp", "2024-04-30T23:59:59.999999Z"),  # before --from
    ("timestamp", "2024-05-03T00:00:00.000000Z"),  # at --to (excluded)
    ("timestamp", "yesterday"), ("timestamp", 1714521600),
    ("target", "s3-multipart"),
])
def test_a_malformed_checkpoint_value_is_refused_naming_the_field(
        tmp_path: Path, field: str, value: Any) -> None:
    tiers, ckpt, out = half_done_jsonl(tmp_path)
    data = json.loads(ckpt.read_text())
    data[field] = value
    ckpt.write_text(json.dumps(data))
    before = out.read_bytes()

    with pytest.raises(CheckpointError, match=f"is malformed: `{field}` is {value!r}, expected"):
        go(tiers, f"jsonl:{out}", batch_size=3, checkpoint=ckpt)

    assert out.read_bytes() == before


def test_a_checkpoint_at_the_first_and_last_instant_of_the_selection_is_accepted(
        tmp_path: Path) -> None:
    for moment in (SELECTION.from_ts, SELECTION.to_ts - timedelta(microseconds=1)):
        text = checkpoints.dumps(checkpoints.Checkpoint(moment, "x", 0, 0), SELECTION)
        assert checkpoints.parse(text, SELECTION, "here").timestamp == moment


# --- 3. late and vanished events before the checkpoint ------------------------------------------

@pytest.fixture
def el(world: World) -> EventLake:
    return EventLake(world.settings, clients=world.clients)


def test_a_late_event_before_the_checkpoint_is_reported_by_the_resumed_run(
        world: World, el: EventLake, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # given: four hot events, a JSONL replay stopped after the first batch (a, b)
    ten_ago = NOW - hours(10)
    world.put_items([world.item(i, NOW - hours(5), timestamp=ten_ago + timedelta(minutes=n))
                     for n, i in enumerate("abcd")])
    sel = Selection(NOW - timedelta(days=1), NOW)
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.jsonl"
    with pytest.raises(Boom):
        replay(el, sel, CrashingJsonl(out, 1), batch_size=2, checkpoint=ckpt, now=NOW)
    # and: a late event (ingested now) sorting between a and b, before the checkpoint
    world.put_items([world.item("late", NOW - hours(0.1),
                                timestamp=ten_ago + timedelta(seconds=30))])

    with caplog.at_level(logging.WARNING, logger="eventlake.replay.run"):
        report = replay(el, sel, f"jsonl:{out}", batch_size=2, checkpoint=ckpt, now=NOW)

    assert [json.loads(x)["event_id"] for x in out.read_text().splitlines()] == list("abcd")
    assert (report.missed_before_resume, report.vanished_before_resume) == (1, 0)
    checkpoint_at = "2024-05-10T02:01:00.000000Z"  # b's timestamp
    hint = (f"1 events with timestamps before the checkpoint arrived after it was written and "
            f"were not sent: replay [2024-05-09T12:00:00.000000Z, {checkpoint_at}] again")
    assert hint in report.summary()
    assert "--to 2024-05-10T02:01:00.000001Z" in report.summary()
    assert hint in caplog.text
    assert report.to_dict()["missed_before_resume"] == 1


def test_events_vanished_before_the_checkpoint_raise_a_lost_event_alarm(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # given: two files; a replay stopped after the first batch, which read from both
    root = tmp_path / "lake"
    tiers = cold_lake(root, ["a0", "a1", "a2"], "a", step_s=120)
    cold_lake(root, ["b0", "b1", "b2"], "b", step_s=120, offset_s=60)
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.jsonl"
    with pytest.raises(Boom):
        go(tiers, CrashingJsonl(out, 1), batch_size=4, checkpoint=ckpt)
    # and: file b gone (a lost file)
    for file in root.rglob("b*.parquet"):
        file.unlink()

    with caplog.at_level(logging.ERROR, logger="eventlake.replay.run"):
        report = go(tiers, f"jsonl:{out}", batch_size=4, checkpoint=ckpt)

    assert (report.vanished_before_resume, report.missed_before_resume) == (2, 0)
    assert "2 of the 4 events the checkpoint counted" in report.summary()
    assert "lost-event alarm" in caplog.text


def test_a_fresh_run_does_not_count_first_and_warns_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # (no tally before sending; the recount at the end is `through` and `count_after`)
    tiers = cold_lake(tmp_path / "lake", ids(4))

    def no_count(*args: Any) -> None:
        raise AssertionError("counted")

    monkeypatch.setattr(run_module, "count", no_count)

    report = go(tiers, lambda events: None, checkpoint=tmp_path / "ckpt")

    assert (report.sent, report.warnings, report.missed_before_resume) == (4, [], 0)


# --- 4a. a checkpoint that cannot be written ----------------------------------------------------

def test_a_checkpoint_in_a_missing_folder_is_refused_before_anything_is_sent(
        tmp_path: Path) -> None:
    tiers = cold_lake(tmp_path / "lake", ids(4))
    ckpt = tmp_path / "missing" / "ckpt"
    got: list[Any] = []

    with pytest.raises(CheckpointError) as err:
        go(tiers, got.extend, checkpoint=ckpt)

    assert f"cannot write the checkpoint `{ckpt}`" in str(err.value)
    assert "does not exist" in str(err.value)
    assert got == []


def test_a_checkpoint_in_a_folder_without_write_permission_is_refused_before_sending(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiers = cold_lake(tmp_path / "lake", ids(4))
    folder = tmp_path / "ro"
    folder.mkdir()
    ckpt = folder / "ckpt"
    if os.geteuid() == 0:  # root writes anywhere: refuse creation as a read-only mount would
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(checkpoints.tempfile, "TemporaryFile", refused)
    else:
        folder.chmod(0o500)
    got: list[Any] = []

    try:
        with pytest.raises(CheckpointError) as err:
            go(tiers, got.extend, checkpoint=ckpt)
    finally:
        folder.chmod(0o700)

    assert f"cannot write the checkpoint `{ckpt}` (Permission denied)" in str(err.value)
    assert ".tmp" not in str(err.value)
    assert got == []


def test_a_checkpoint_that_cannot_be_saved_mid_run_names_it_and_carries_the_report(
        tmp_path: Path) -> None:
    tiers = cold_lake(tmp_path / "lake", ids(6))
    folder = tmp_path / "ckpts"
    folder.mkdir()
    ckpt = folder / "ckpt"
    seen: list[int] = []

    def target(events: list[Any]) -> None:
        seen.append(len(events))
        if len(seen) == 2:  # the folder goes away under the replay
            for file in folder.iterdir():
                file.unlink()
            folder.rmdir()

    with pytest.raises(CheckpointError) as err:
        go(tiers, target, batch_size=3, checkpoint=ckpt)

    assert f"cannot write the checkpoint `{ckpt}`" in str(err.value)
    assert ".tmp" not in str(err.value)
    report = err.value.report  # type: ignore[attr-defined]
    assert isinstance(report, ReplayReport) and report.sent == 3  # the durable batch only


def test_any_error_after_sending_began_carries_the_report(tmp_path: Path) -> None:
    tiers = cold_lake(tmp_path / "lake", ids(6))
    ckpt = tmp_path / "ckpt"

    with pytest.raises(Boom) as err:
        go(tiers, CrashingJsonl(tmp_path / "out.jsonl", 1), batch_size=3, checkpoint=ckpt)

    report = err.value.report  # type: ignore[attr-defined]
    assert (report.sent, report.batches, report.failed) == (3, 1, 0)


def test_an_error_before_sending_carries_no_report(tmp_path: Path) -> None:
    tiers, ckpt, out = half_done_jsonl(tmp_path)
    out.write_bytes(b"")

    with pytest.raises(TargetError) as err:
        go(tiers, f"jsonl:{out}", batch_size=3, checkpoint=ckpt)

    assert not hasattr(err.value, "report")


# --- 4b, 4c, 4d. the command ---------------------------------------------------------------------

@pytest.fixture
def cli_lake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    cold_lake(root, ids(6))
    monkeypatch.setenv("EVENTLAKE_TABLE", "unused")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(root))
    return root


def args(*more: str) -> list[str]:
    return ["replay", "--from", "2024-05-01", "--to", "2024-05-03", "--cold-only", *more]


def test_the_command_prints_the_summary_and_resume_hint_before_a_non_delivery_error(
        cli_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    target = CrashingJsonl(tmp_path / "out.jsonl", 1)
    monkeypatch.setattr(run_module, "target_for", lambda *a: target)
    ckpt = tmp_path / "ckpt"

    code = main(args("--target", f"jsonl:{tmp_path / 'out.jsonl'}", "--batch-size", "3",
                     "--checkpoint", str(ckpt)))

    captured = capsys.readouterr()
    assert code == 2
    assert "replay: sent 3 events in 1 batch, 0 failed" in captured.out
    err = captured.err.splitlines()
    assert err[0] == (f"eventlake: the checkpoint `{ckpt}` holds the last acknowledged batch "
                      "(3 events): re-run the same command with the same --checkpoint to "
                      "resume right after it")
    assert err[1].startswith("eventlake: error: Boom")


def test_the_command_refuses_an_unwritable_checkpoint_before_sending(
        cli_lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, ckpt = tmp_path / "out.jsonl", tmp_path / "nowhere" / "ckpt"

    code = main(args("--target", f"jsonl:{out}", "--checkpoint", str(ckpt)))

    assert code == 2
    assert f"cannot write the checkpoint `{ckpt}`" in capsys.readouterr().err
    assert not out.exists()


class ClosedPipe:
    """A stdout whose reader went away."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("no file descriptor")


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_closed_stdout_ends_the_command_quietly(
        cli_lake: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], dry_run: bool) -> None:
    monkeypatch.setattr(sys, "stdout", ClosedPipe())

    code = main(args(*(["--dry-run"] if dry_run else [])))

    assert code == 141
    assert capsys.readouterr().err == ""


def test_a_replay_piped_into_head_exits_quietly(tmp_path: Path) -> None:
    # given: more output than a pipe buffers (so the writer meets the closed pipe)
    root = tmp_path / "lake"
    cold_lake(root, ids(3000), step_s=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EVENTLAKE_TABLE": "unused",
           "EVENTLAKE_LAKE_URI": str(root)}
    command = [sys.executable, "-c", "import sys; from eventlake.cli.main import main; "
               "sys.exit(main())", *args("--batch-size", "10")]

    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # `| head -1`
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)

    assert json.loads(first)["event_id"] == "e0000"
    assert (code, err) == (141, "")


@pytest.mark.parametrize("rate", ["1e-12", "0.0009"])
def test_an_absurdly_low_rate_is_a_usage_error(cli_lake: Path, rate: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args("--rate", rate))
    assert exit_.value.code == 2
    assert f"`{rate}` is below the slowest rate taken, 0.001 events per second" \
        in capsys.readouterr().err


def test_the_token_bucket_refuses_a_rate_below_the_floor_and_takes_the_floor() -> None:
    with pytest.raises(ConfigError, match="below the slowest rate taken"):
        TokenBucket(1e-12, 500)
    assert TokenBucket(0.001, 500).rate == 0.001


def test_a_wait_longer_than_a_sleep_can_take_is_slept_in_slices() -> None:
    slept: list[float] = []
    bucket = TokenBucket(0.001, 10_000_000, clock=lambda: 0.0, sleep=slept.append)
    bucket.take(10_000_000)  # the burst

    waited = bucket.take(10_000_000)  # 1e10 s: time.sleep alone overflows

    assert waited == pytest.approx(1e10)
    assert sum(slept) == pytest.approx(1e10)
    assert max(slept) <= MAX_SLEEP_S


def test_a_target_failing_to_close_after_a_refusal_leaves_the_refusal_and_its_report(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class RefusesThenCloseFails(Target):
        def send(self, batch: Batch) -> int | None:
            raise DeliveryError("test", ["e0000"], "refused")

        def close(self) -> None:
            raise OSError("close failed too")

    tiers = cold_lake(tmp_path / "lake", ids(3))

    with pytest.raises(DeliveryError) as err:
        go(tiers, RefusesThenCloseFails(), batch_size=3)

    assert err.value.report is not None and err.value.report.failed == 1
    assert "closing the target failed" in caplog.text
