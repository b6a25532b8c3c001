"""Control of a replay: the pace (`--rate`, a token bucket), progress after each acknowledged
batch, the count behind `--dry-run` and the progress bar's total, the summary line, and how
`eventlake replay` reports a target that stops it (exit 1, how to resume)."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from eventlake import EventLake
from eventlake.cli.main import main
from eventlake.cli.replay import ProgressLine, render
from eventlake.errors import ConfigError
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.replay import run as run_module
from eventlake.replay import shapes
from eventlake.replay.batch import Batch
from eventlake.replay.rate import TokenBucket
from eventlake.replay.run import ReplayReport, replay
from eventlake.replay.select import Selection
from eventlake.replay.targets import DeliveryError, Target

ROOT = Path(__file__).parents[2]

START = datetime(2024, 5, 1, tzinfo=UTC)
EVENTS = 12  # over three days, four a day
ALL = Selection(START, START + timedelta(days=3), cold_only=True)


class FakeClock:
    """A clock that only moves when the code under test sleeps (or a test advances it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Recording(Target):
    """Acknowledges every batch (recording its event_ids) until batch number `fail_at`, which
    it refuses after its 'retries'."""

    def __init__(self, fail_at: int | None = None, clock: FakeClock | None = None) -> None:
        self.sent: list[list[str]] = []
        self.at: list[float] = []
        self.fail_at = fail_at
        self.clock = clock

    def send(self, batch: Batch) -> int | None:
        ids = [e["event_id"] for e in batch.events]
        if len(self.sent) + 1 == self.fail_at:
            raise DeliveryError("recording", ids[1:], "throttled after 8 tries")
        self.sent.append(ids)
        if self.clock is not None:
            self.at.append(self.clock.now)
        return None


@pytest.fixture
def el(mocked_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> EventLake:
    """A lake (also the one `eventlake` finds in the environment) holding EVENTS events, four
    a day, two types."""
    monkeypatch.setenv("EVENTLAKE_TABLE", "control-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    lake = EventLake.from_env()
    lake.init()
    rows: list[dict[str, Any]] = [
        {"event_id": f"e-{n:02d}", "event_type": ("click", "order")[n % 3 == 0],
         "timestamp": START + timedelta(hours=6 * n), "ingested_at": START + timedelta(days=4),
         "source": "shop", "subject": f"user/{n % 2}", "event_payload": json.dumps({"n": n}),
         "content_hash": f"h{n}"} for n in range(EVENTS)]
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "sweep-a")
    return lake


IDS = [f"e-{n:02d}" for n in range(EVENTS)]


# --- the token bucket ---------------------------------------------------------------------------

def test_a_first_batch_leaves_at_once_and_the_next_waits_for_its_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 5, clock=clock, sleep=clock.sleep)

    assert bucket.take(5) == 0  # the burst: one batch
    assert bucket.take(5) == pytest.approx(0.5)  # 5 tokens at 10/s
    clock.now += 0.2  # the target took 0.2 s: 2 tokens came back meanwhile
    assert bucket.take(5) == pytest.approx(0.3)
    assert clock.slept == pytest.approx([0.5, 0.3])


def test_the_average_never_exceeds_the_rate_however_the_target_responds() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, 10, clock=clock, sleep=clock.sleep)
    start, sent = clock.now, 0
    for n in range(200):
        clock.now += (n % 7) * 0.013  # the target's own (varying) response time
        bucket.take(10)
        sent += 10
        # at most one burst ahead of the rate, at every moment
        assert sent <= 10 + 100 * (clock.now - start) + 1e-6
    assert sent / (clock.now - start) == pytest.approx(100, rel=0.01)


def test_an_idle_bucket_refills_one_burst_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 5, clock=clock, sleep=clock.sleep)
    bucket.take(5)
    clock.now += 3600  # idle for an hour: still one burst, not 36,000 events at once

    assert bucket.take(5) == 0
    assert bucket.take(5) == pytest.approx(0.5)


def test_a_batch_larger_than_the_burst_waits_for_its_whole_deficit() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 5, clock=clock, sleep=clock.sleep)

    assert bucket.take(25) == pytest.approx(2.0)  # 5 in the bucket, 20 more at 10/s
    assert bucket.take(5) == pytest.approx(0.5)


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf")])
def test_a_rate_must_be_a_positive_number(rate: float) -> None:
    with pytest.raises(ConfigError, match="must be a positive number of events per second"):
        TokenBucket(rate, 10)


# --- rate and progress in the replay loop -------------------------------------------------------

def test_a_replay_at_a_rate_spaces_its_batches_out(el: EventLake) -> None:
    clock = FakeClock()
    target = Recording(clock=clock)

    report = replay(el, ALL, target, batch_size=4,
                    rate=TokenBucket(2, 4, clock=clock, sleep=clock.sleep))

    # 12 events at 2/s, bursts of one batch (4): the 2nd and 3rd batches wait 2 s each
    assert [ids for batch in target.sent for ids in batch] == IDS
    assert [t - target.at[0] for t in target.at] == pytest.approx([0, 2, 4])
    assert report.rate_wait_s == pytest.approx(4.0)
    assert "waiting for the rate" in report.summary()


def test_progress_is_told_after_each_acknowledged_batch_with_the_counted_total(
        el: EventLake) -> None:
    seen: list[tuple[int, int | None, int]] = []

    report = replay(el, ALL, Recording(), batch_size=5, count_first=True,
                    progress=lambda r: seen.append((r.sent, r.total, r.batches)))

    assert seen == [(5, 12, 1), (10, 12, 2), (12, 12, 3)]
    assert (report.sent, report.total) == (12, 12)


def test_without_count_first_nothing_is_counted(el: EventLake,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def no_count(*args: Any) -> None:
        raise AssertionError("counted")

    monkeypatch.setattr(run_module, "count", no_count)
    seen: list[int | None] = []

    replay(el, ALL, Recording(), batch_size=5, progress=lambda r: seen.append(r.total))

    assert seen == [None, None, None]


def test_a_resumed_replay_counts_only_what_is_left(el: EventLake, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    with pytest.raises(DeliveryError):
        replay(el, ALL, Recording(fail_at=2), batch_size=5, checkpoint=ckpt)
    seen: list[tuple[int, int | None]] = []

    report = replay(el, ALL, Recording(), batch_size=5, checkpoint=ckpt, count_first=True,
                    progress=lambda r: seen.append((r.sent, r.total)))

    assert (report.resumed_after, report.total, report.sent) == (5, 7, 7)
    assert seen == [(5, 7), (7, 7)]


def test_a_refused_batch_stops_the_replay_with_the_report_and_no_progress_for_it(
        el: EventLake, tmp_path: Path) -> None:
    target, seen = Recording(fail_at=3), []
    ckpt = tmp_path / "ckpt"

    with pytest.raises(DeliveryError) as err:
        replay(el, ALL, target, batch_size=4, checkpoint=ckpt,
               progress=lambda r: seen.append(r.sent))

    report = err.value.report
    assert isinstance(report, ReplayReport)
    assert (report.sent, report.failed, seen) == (8, 3, [4, 8])
    assert "replay: sent 8 events in 2 batches, 3 failed" in report.summary()
    assert json.loads(ckpt.read_text())["count"] == 8  # the last acknowledged batch


# --- counting: the dry run and the progress bar's total ------------------------------------------

@pytest.mark.parametrize("selection", [
    ALL,
    Selection(START + timedelta(hours=7), START + timedelta(days=2, hours=1), cold_only=True),
    Selection(START, START + timedelta(days=3), ("order",), cold_only=True),
    Selection(START, START + timedelta(days=3), subject="user/1", cold_only=True),
    Selection(START, START + timedelta(days=3), where="json_extract(event_payload, '$.n')::INT"
                                                      " % 5 = 0", cold_only=True),
], ids=["all", "range", "type", "subject", "where"])
def test_the_dry_run_counts_what_the_replay_then_sends(el: EventLake,
                                                      selection: Selection) -> None:
    target = Recording()

    dry = replay(el, selection, target, batch_size=2, dry_run=True)
    sent = replay(el, selection, target, batch_size=2)

    assert dry.dry_run and dry.sent == sent.sent > 0
    assert (dry.batches, dry.per_type) == (sent.batches, sent.per_type)
    assert (dry.first_timestamp, dry.last_timestamp) == (sent.first_timestamp,
                                                         sent.last_timestamp)
    assert dry.summary().startswith(f"replay: would send {sent.sent} events in "
                                    f"{math.ceil(sent.sent / 2)} batches (dry run")


def test_a_dry_run_sends_nothing_and_writes_no_checkpoint(el: EventLake, tmp_path: Path) -> None:
    out, ckpt = tmp_path / "out.jsonl", tmp_path / "ckpt"

    report = replay(el, ALL, f"jsonl:{out}", dry_run=True, checkpoint=ckpt)

    assert (report.sent, out.exists(), ckpt.exists()) == (12, False, False)


def test_a_dry_run_refuses_an_unknown_shape(el: EventLake) -> None:
    with pytest.raises(shapes.ShapeError, match="unknown shape `avro`"):
        replay(el, ALL, "stdout", dry_run=True, shape="avro")


# --- the command --------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def replay_args(tmp_path: Path, *more: str) -> list[str]:
    return ["replay", "--from", "2024-05-01", "--to", "2024-05-04", "--cold-only",
            "--target", f"jsonl:{tmp_path / 'out.jsonl'}", *more]


def test_on_a_terminal_the_command_shows_progress_then_the_summary(
        el: EventLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)

    assert main(replay_args(tmp_path, "--batch-size", "5")) == 0

    shown = terminal.getvalue()
    assert "\r[" in shown and "12/12 events" in shown and "100%" in shown
    assert shown.endswith("\r")  # the line is erased before the summary
    summary = capsys.readouterr().out
    assert summary.startswith("replay: sent 12 events in 3 batches, 0 failed, ")
    assert summary.rstrip().endswith("events/s")


def test_piped_the_command_counts_nothing_and_prints_the_summary_only(
        el: EventLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def no_count(*args: Any) -> None:
        raise AssertionError("counted")

    monkeypatch.setattr(run_module, "count", no_count)

    assert main(replay_args(tmp_path)) == 0

    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith("replay: sent 12 events in 1 batch")


def test_a_delivery_failure_exits_1_with_the_summary_and_how_to_resume(
        el: EventLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    target = Recording(fail_at=2)
    monkeypatch.setattr(run_module, "target_for", lambda *args: target)
    ckpt = tmp_path / "ckpt"

    code = main(replay_args(tmp_path, "--batch-size", "4", "--checkpoint", str(ckpt)))

    captured = capsys.readouterr()
    assert code == 1
    assert "replay: sent 4 events in 1 batch, 3 failed" in captured.out
    assert "3 event(s) not delivered (`e-05`, `e-06`, `e-07`): throttled after 8 tries" \
        in captured.err
    assert (f"the checkpoint `{ckpt}` holds the last acknowledged batch (4 events): re-run the "
            "same command with the same --checkpoint to resume") in captured.err


def test_a_delivery_failure_without_a_checkpoint_says_a_rerun_starts_over(
        el: EventLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(run_module, "target_for", lambda *args: Recording(fail_at=1))

    assert main(replay_args(tmp_path)) == 1
    assert "no --checkpoint was given: re-running starts again from --from" \
        in capsys.readouterr().err


def test_the_dry_run_prints_count_first_and_last_and_per_type(
        el: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(replay_args(tmp_path, "--dry-run")) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "first 2024-05-01T00:00:00.000000Z  last 2024-05-03T18:00:00.000000Z"
    assert out[1] == 'per type {"click": 8, "order": 4}'
    assert out[2].startswith("replay: would send 12 events in 1 batch (dry run")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--batch-size", "0", "`0` must be at least 1"),
    ("--batch-size", "ten", "`ten` is not a whole number"),
    ("--rate", "0", "`0` must be a number above 0"),
    ("--rate", "-5", "`-5` must be a number above 0"),
    ("--rate", "nan", "`nan` must be a number above 0"),
    ("--shape", "avro", "invalid choice: 'avro'"),
])
def test_bad_flags_are_usage_errors(el: EventLake, tmp_path: Path, flag: str, value: str,
                                    message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(replay_args(tmp_path, flag, value))
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_the_help_lists_every_shape_and_target_the_registries_hold(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # the CLI writes the names down (building its parser imports no replay module): they must
    # stay what the registries hold
    from eventlake.cli import replay as cli_replay
    from eventlake.replay.resolve import KINDS

    assert tuple(shapes.SHAPES) == cli_replay.SHAPES
    assert cli_replay.KINDS == KINDS
    monkeypatch.setenv("COLUMNS", "2000")  # one help line per option

    with pytest.raises(SystemExit):
        main(["replay", "--help"])

    out = capsys.readouterr().out
    shape_line = next(line for line in out.splitlines() if "--shape" in line)
    assert all(name in shape_line for name in shapes.SHAPES)
    assert KINDS in out


def test_building_the_parser_imports_no_replay_module() -> None:
    code = ("import sys\nfrom eventlake.cli.main import main\n"
            "try:\n    main(['replay', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('eventlake.replay') "
            "or m == 'pyarrow'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_progress_line_shows_share_rate_and_eta() -> None:
    report = ReplayReport(sent=250, batches=1, duration_s=1.0, total=1000)
    assert render(report, 8) == ("[##------]  25%  250/1,000 events  250 events/s  "
                                 "ETA 0:00:03")
    assert render(ReplayReport(sent=3, duration_s=0.0)) == "replay: 3 events  0 events/s"
    assert render(ReplayReport(sent=0, total=5, duration_s=0.0)).endswith("ETA ?")


def test_the_progress_line_redraws_at_most_every_interval_and_always_at_the_end() -> None:
    clock, stream = FakeClock(), io.StringIO()
    line = ProgressLine(stream, clock=clock, interval=1.0)

    for sent in (1, 2, 3):  # no time passes: only the first is drawn
        line(ReplayReport(sent=sent, total=4, duration_s=1.0))
    line(ReplayReport(sent=4, total=4, duration_s=1.0))
    line.clear()

    assert stream.getvalue().count("\r[") == 2
    assert "1/4 events" in stream.getvalue() and "4/4 events" in stream.getvalue()
    assert "2/4" not in stream.getvalue()
