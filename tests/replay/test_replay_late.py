"""Late events behind a replay's position are reported by identity, not only by count: a
checkpoint records the digest of what was sent (a late event and a vanished one no longer cancel
out on resume), and every run recounts behind its last position at the end (events that arrived
during the run, which its snapshot lacked, are named with the range to replay again)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import operator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from archive_support import NOW, World, hours
from replay_support import ColdTiers

from eventlake import EventLake
from eventlake.cli.main import main
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.replay import checkpoint as checkpoints
from eventlake.replay import count as count_module
from eventlake.replay.batch import Batch
from eventlake.replay.checkpoint import CheckpointError
from eventlake.replay.run import ReplayReport, replay
from eventlake.replay.select import IDENTITY_SQL, Selection, identity_of
from eventlake.replay.targets import DeliveryError, Target

START = datetime(2024, 5, 1, tzinfo=UTC)
SELECTION = Selection(START, START + timedelta(days=2), cold_only=True)


def plant(tiers: ColdTiers, name: str, events: dict[str, float]) -> None:
    """A lake file `name` holding `events` (event_id -> minutes after START)."""
    rows = [{"event_id": e, "event_type": "click",
             "timestamp": START + timedelta(minutes=m), "ingested_at": START,
             "source": "shop", "subject": None, "event_payload": '{"n":1}',
             "content_hash": sha(e)} for e, m in events.items()]
    tiers.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), name)


def drop(root: Path, name: str) -> None:
    """Delete the lake file `name` (events vanish)."""
    files = list(root.rglob(f"{name}*.parquet"))
    assert files
    for file in files:
        file.unlink()


def two_files(root: Path) -> ColdTiers:
    """File a: a0..a3 (minutes 0, 20, 40, 60), file b: b0..b3 (10, 30, 50, 70)."""
    tiers = ColdTiers(root)
    plant(tiers, "a", {f"a{i}": 20 * i for i in range(4)})
    plant(tiers, "b", {f"b{i}": 20 * i + 10 for i in range(4)})
    return tiers


def go(tiers: Any, target: Any, **kw: Any) -> ReplayReport:
    return replay(tiers, kw.pop("selection", SELECTION), target,
                  now=START + timedelta(days=30), **kw)


def digest(*event_ids: str) -> int:
    return functools.reduce(operator.xor, (identity_of(e, sha(e)) for e in event_ids), 0)


def sha(event_id: str) -> str:
    """A content_hash for a planted event: 64 hex digits, as eventlake's writers store."""
    return hashlib.sha256(event_id.encode()).hexdigest()


# --- the identity -------------------------------------------------------------------------------

def test_duckdbs_identity_is_the_content_hash_prefix_python_computes() -> None:
    # the digest outlives DuckDB versions: the content_hash's first 16 hex digits (a SHA-256 of
    # the event, id included), or for a content_hash that is not hex (planted) an MD5
    rows = [("e-1", "0123456789abcdef" * 4), ("é/ü 😀", "0" * 64), ("x|y", None), ("", ""),
            ("p", "not a hash"), ("q", "ABCDEF0123456789" + "0" * 48)]
    got = duckdb.sql(f"SELECT {IDENTITY_SQL} FROM (VALUES " + ", ".join(
        f"('{e}', {'NULL' if h is None else repr(h)})" for e, h in rows)
        + ") AS t(event_id, content_hash)").fetchall()
    assert [g for (g,) in got] == [identity_of(e, h) for e, h in rows]
    # pinned: the prefix itself, and the MD5 fallback
    assert got[0] == (0x0123456789abcdef,) and got[5] == (0xABCDEF0123456789,)
    import hashlib
    assert got[4] == (int(hashlib.md5(b"p|not a hash").hexdigest()[:16], 16),)
    assert identity_of("a", "b") != identity_of("a", "c") != identity_of("b", "b")


# --- the checkpoint format ----------------------------------------------------------------------

def test_a_checkpoint_records_its_version_and_the_digest_of_what_was_sent(
        tmp_path: Path) -> None:
    tiers = two_files(tmp_path / "lake")
    ckpt = tmp_path / "ckpt"

    go(tiers, lambda events: None, checkpoint=ckpt, batch_size=3)

    data = json.loads(ckpt.read_text())
    assert (data["version"], data["count"]) == (checkpoints.VERSION, 8)
    assert data["digest"] == f"{digest(*[f'{x}{i}' for x in 'ab' for i in range(4)]):016x}"


@pytest.mark.parametrize(("field", "value"), [("digest", "12"), ("digest", 12),
                                               ("digest", "G" * 16), ("version", 0),
                                               ("version", "2")])
def test_a_malformed_digest_or_version_is_refused_by_name(field: str, value: Any) -> None:
    text = checkpoints.dumps(checkpoints.Checkpoint(START, "x", 1, digest=5), SELECTION)
    data = {**json.loads(text), field: value}
    with pytest.raises(CheckpointError, match=f"`{field}` is"):
        checkpoints.parse(json.dumps(data), SELECTION, "here")


def test_a_checkpoint_of_a_newer_format_is_refused() -> None:
    text = checkpoints.dumps(checkpoints.Checkpoint(START, "x", 1), SELECTION)
    data = {**json.loads(text), "version": checkpoints.VERSION + 1}
    with pytest.raises(CheckpointError, match="newer than this eventlake reads"):
        checkpoints.parse(json.dumps(data), SELECTION, "here")


def old_format(ckpt: Path) -> None:
    """Rewrite the checkpoint at `ckpt` as version 1 wrote it: no version, no digest."""
    data = json.loads(ckpt.read_text())
    del data["version"], data["digest"]
    ckpt.write_text(json.dumps(data, sort_keys=True) + "\n")


class Stopping(Target):
    """Takes `left` batches, then refuses the next one (a DeliveryError)."""

    def __init__(self, left: int, during: Any = None) -> None:
        self.left = left
        self.during = during
        self.sent: list[str] = []

    def describe(self) -> str:
        return "stopping"

    def send(self, batch: Batch) -> int | None:
        if self.during is not None:
            self.during()
            self.during = None
        if self.left == 0:
            raise DeliveryError("stopping", [e["event_id"] for e in batch.events], "refused")
        self.left -= 1
        self.sent.extend(e["event_id"] for e in batch.events)
        return None


def test_an_old_format_checkpoint_still_resumes_by_its_count(tmp_path: Path) -> None:
    # given: a replay stopped after one batch of 3, its checkpoint rewritten as version 1
    tiers = two_files(tmp_path / "lake")
    ckpt = tmp_path / "ckpt"
    with pytest.raises(DeliveryError):
        go(tiers, Stopping(1), checkpoint=ckpt, batch_size=3)
    old_format(ckpt)
    # and: a late event before the position
    plant(tiers, "late", {"late": 5})

    sink = Stopping(99)
    report = go(tiers, sink, checkpoint=ckpt, batch_size=3)
    got = sink.sent

    # then it resumes after a1, counts the late one, and writes what it knows: no digest
    assert got == ["b1", "a2", "b2", "a3", "b3"]
    assert (report.resumed_after, report.missed_before_resume) == (3, 1)
    data = json.loads(ckpt.read_text())
    assert (data["version"], data["count"], "digest" in data) == (checkpoints.VERSION, 8, False)


def test_an_old_format_checkpoint_cannot_see_a_late_event_and_a_vanished_one_cancel(
        tmp_path: Path) -> None:
    # the limit the digest lifts, kept for checkpoints that lack it: counts only
    tiers = two_files(tmp_path / "lake")
    ckpt = tmp_path / "ckpt"
    with pytest.raises(DeliveryError):
        go(tiers, Stopping(1), checkpoint=ckpt, batch_size=4)  # a0 b0 a1 b1
    old_format(ckpt)
    drop(tmp_path / "lake", "b")
    plant(tiers, "late", {"late1": 5, "late2": 15, "b2": 50, "b3": 70})

    report = go(tiers, Stopping(99), checkpoint=ckpt, batch_size=4)

    assert (report.missed_before_resume, report.vanished_before_resume) == (0, 0)
    assert not report.late_and_vanished_before_resume


# --- 1. between runs: late and vanished events that cancel out in a count -----------------------

def test_a_late_event_and_a_vanished_one_before_the_checkpoint_are_both_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # given: a replay stopped after a0 b0 a1 b1
    root = tmp_path / "lake"
    tiers = two_files(root)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(DeliveryError):
        go(tiers, Stopping(1), checkpoint=ckpt, batch_size=4)
    # and: b0 and b1 vanish (file b lost) while two late events arrive before the position
    drop(root, "b")
    plant(tiers, "late", {"late1": 5, "late2": 15, "b2": 50, "b3": 70})

    with caplog.at_level(logging.WARNING, logger="eventlake.replay.run"):
        report = go(tiers, Stopping(99), checkpoint=ckpt, batch_size=4)

    # then the count is equal (4), yet the digest tells them apart
    assert (report.missed_before_resume, report.vanished_before_resume) == (0, 0)
    assert report.late_and_vanished_before_resume
    assert report.to_dict()["late_and_vanished_before_resume"] is True
    summary = report.summary()
    assert "as many events at or before 2024-05-01T00:30:00.000000Z as the checkpoint" in summary
    assert "the counts cannot tell how many" in summary
    assert ("--from 2024-05-01T00:00:00.000000Z --to 2024-05-01T00:30:00.000001Z"
            in summary)
    assert "eventlake reconcile" in summary and "eventlake reconcile" in caplog.text
    # and the run itself found nothing more behind its end (what it found, it accounted for)
    assert (report.missed_during_run, report.vanished_during_run, report.sent) == (0, 0, 4)


def test_a_late_event_alone_is_counted_and_an_unchanged_lake_warns_nothing(
        tmp_path: Path) -> None:
    root = tmp_path / "lake"
    tiers = two_files(root)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(DeliveryError):
        go(tiers, Stopping(1), checkpoint=ckpt, batch_size=4)
    # an unchanged lake: resumed, no warning
    report = go(tiers, Stopping(99), checkpoint=ckpt, batch_size=4)
    assert (report.sent, report.warnings) == (4, [])
    # a late event after that run (before its final position): counted, not "both"
    plant(tiers, "late", {"late": 5})
    report = go(tiers, Stopping(99), checkpoint=ckpt, batch_size=4)
    assert (report.missed_before_resume, report.late_and_vanished_before_resume) == (1, False)


# --- 2. during a run: events that arrived behind the position -----------------------------------

def test_a_late_event_planted_during_a_run_without_checkpoint_is_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # given: a target that, at its second batch, finds a late event planted before a0..b0
    root = tmp_path / "lake"
    tiers = two_files(root)
    got: list[str] = []

    def target(events: list[dict[str, Any]]) -> None:
        if len(got) == 2:
            plant(tiers, "late", {"late": 5})
        got.extend(e["event_id"] for e in events)

    with caplog.at_level(logging.WARNING, logger="eventlake.replay.run"):
        report = go(tiers, target, batch_size=2)

    # then it was not sent (the run's snapshot lacked it), and the run says so
    assert "late" not in got and len(got) == 8
    assert (report.missed_during_run, report.vanished_during_run) == (1, 0)
    assert report.to_dict()["missed_during_run"] == 1
    hint = ("1 events with timestamps at or before the last one sent "
            "(2024-05-01T01:10:00.000000Z) arrived during the run and were not sent")
    assert hint in report.summary() and hint in caplog.text
    assert ("--from 2024-05-01T00:00:00.000000Z --to 2024-05-01T01:10:00.000001Z, without a "
            "checkpoint" in report.summary())


def test_an_event_arriving_during_a_run_after_its_last_position_is_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # given: a target that, at the first run's second batch, finds events planted after b3
    # (the last event of the run's snapshot) but inside the selection
    root = tmp_path / "lake"
    tiers = two_files(root)
    got: list[str] = []
    planted: list[bool] = []

    def target(events: list[dict[str, Any]]) -> None:
        if len(got) == 2 and not planted:
            plant(tiers, "after", {"after1": 90, "after2": 24 * 60 + 5})  # next day too
            planted.append(True)
        got.extend(e["event_id"] for e in events)

    with caplog.at_level(logging.WARNING, logger="eventlake.replay.run"):
        report = go(tiers, target, batch_size=2, checkpoint=tmp_path / "ckpt")

    # then: not sent (the snapshot lacked them), and the run says so, with how to get them
    assert "after1" not in got and len(got) == 8
    assert (report.arrived_after_run, report.missed_during_run) == (2, 0)
    assert report.to_dict()["arrived_after_run"] == 2
    hint = ("2 selected events with timestamps after the last one sent "
            "(2024-05-01T01:10:00.000000Z) arrived during the run and were not sent")
    assert hint in report.summary() and hint in caplog.text
    # and the same replay again resumes from its checkpoint and sends exactly them
    report = go(tiers, target, batch_size=2, checkpoint=tmp_path / "ckpt")
    assert got[8:] == ["after1", "after2"] and report.arrived_after_run == 0


def test_a_run_stopped_by_its_target_does_not_report_what_it_had_not_reached(
        tmp_path: Path) -> None:
    # given: a target that takes two batches, then refuses: six events of the snapshot unsent
    tiers = two_files(tmp_path / "lake")
    got: list[str] = []

    def target(events: list[dict[str, Any]]) -> None:
        if len(got) == 2:
            raise DeliveryError("down", [e["event_id"] for e in events], "unavailable")
        got.extend(e["event_id"] for e in events)

    with pytest.raises(DeliveryError) as stopped:
        go(tiers, target, batch_size=2)
    # then: the events after its position were never reached, not "arrived during the run"
    report = stopped.value.report
    assert report is not None and report.sent == 2
    assert (report.arrived_after_run, report.missed_during_run, report.warnings) == (0, 0, [])


def test_a_late_event_and_a_vanished_one_during_a_run_are_both_reported(
        tmp_path: Path) -> None:
    root = tmp_path / "lake"
    tiers = two_files(root)
    got: list[str] = []

    def target(events: list[dict[str, Any]]) -> None:
        if len(got) == 4:  # after a0 b0 a1 b1: b vanishes, a late event and b's arrive
            drop(root, "b")
            plant(tiers, "late", {"late1": 5, "late2": 15, "b2": 50, "b3": 70})
        got.extend(e["event_id"] for e in events)

    report = go(tiers, target, batch_size=2, checkpoint=tmp_path / "ckpt")

    assert len(got) == 8
    assert (report.missed_during_run, report.vanished_during_run) == (0, 0)
    assert report.late_and_vanished_during_run
    assert "some arrived during the run and were not sent, and as many vanished" in (
        report.summary())


def test_an_event_vanished_during_a_run_is_a_lost_event_alarm(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "lake"
    tiers = two_files(root)
    plant(tiers, "c", {"c0": 1})
    seen: list[str] = []

    def target(events: list[dict[str, Any]]) -> None:
        if len(seen) == 3:
            drop(root, "c")
        seen.extend(e["event_id"] for e in events)

    with caplog.at_level(logging.ERROR, logger="eventlake.replay.run"):
        report = go(tiers, target, batch_size=3)

    assert (report.vanished_during_run, report.missed_during_run) == (1, 0)
    assert "1 of the 9 events at or before" in report.summary()
    assert "lost-event alarm" in caplog.text


def test_a_run_the_target_stops_counts_behind_what_it_made_durable(tmp_path: Path) -> None:
    # given: a target taking 2 batches of 2, a late event planted at its first batch, then
    # refusing the third batch
    root = tmp_path / "lake"
    tiers = two_files(root)
    sink = Stopping(2, during=lambda: plant(tiers, "late", {"late": 5}))

    with pytest.raises(DeliveryError) as stopped:
        go(tiers, sink, batch_size=2, checkpoint=tmp_path / "ckpt")

    report = stopped.value.report
    assert report is not None and sink.sent == ["a0", "b0", "a1", "b1"]
    assert (report.sent, report.missed_during_run) == (4, 1)
    assert "(2024-05-01T00:30:00.000000Z) arrived during the run" in report.summary()


def test_a_late_hot_event_during_a_run_is_reported(world: World) -> None:
    el = EventLake(world.settings, clients=world.clients)
    ten_ago = NOW - hours(10)
    world.put_items([world.item(i, NOW - hours(5), timestamp=ten_ago + timedelta(minutes=n))
                     for n, i in enumerate("abcd")])
    got: list[str] = []

    def target(events: list[dict[str, Any]]) -> None:
        if not got:  # a late event (hot, ingested now) sorting between a and b
            world.put_items([world.item("late", NOW - hours(0.1),
                                        timestamp=ten_ago + timedelta(seconds=30))])
        got.extend(e["event_id"] for e in events)

    report = replay(el, Selection(NOW - timedelta(days=1), NOW), target, batch_size=2, now=NOW)

    assert got == list("abcd")
    assert (report.missed_during_run, report.vanished_during_run) == (1, 0)


@pytest.mark.parametrize(("checkpoint", "identity"), [(True, "TRY_CAST("), (False, "0::UBIGINT")])
def test_the_recount_is_one_aggregate_query_not_a_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkpoint: bool, identity: str
) -> None:
    # (with a checkpoint, the identity it writes down: the content_hash's prefix; without,
    # the count alone: no identity is read)
    tiers = two_files(tmp_path / "lake")
    queries: list[tuple[bool, str | None]] = []
    window_sql = Selection.window_sql

    reads: list[str] = []

    def spy(self: Selection, *args: Any, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        queries.append((kwargs.get("ordered", True), kwargs.get("columns")))
        sql, params = window_sql(self, *args, **kwargs)
        if kwargs.get("ordered", True):
            reads.append(sql)
        return sql, params

    monkeypatch.setattr(Selection, "window_sql", spy)
    recounts: list[int] = []
    through = count_module.through

    def counted(*args: Any) -> Any:
        recounts.append(1)
        return through(*args)

    monkeypatch.setattr("eventlake.replay.run.through", counted)
    # as for a selection reading the hot tier: no listing says nothing changed
    monkeypatch.setattr("eventlake.replay.run._cold_listing", lambda *args: None)

    report = go(tiers, lambda events: None, batch_size=3,
                checkpoint=tmp_path / "ckpt" if checkpoint else None)

    assert (report.sent, report.warnings, recounts) == (8, [], [1])
    # the read carries each event's identity only when a checkpoint records the digest
    assert [("TRY_CAST(" in sql) for sql in reads] == [checkpoint]
    # the read, one aggregate up to the last position, one count of the days after it (the
    # events that arrived after it: `arrived_after_run`)
    assert [ordered for ordered, _ in queries] == [True, False, False]
    recount = queries[1][1] or ""
    assert identity in recount and "event_payload" not in recount


def test_a_cold_only_run_nothing_wrote_to_makes_no_recount(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: the selection's days list the same files before the run's snapshot and after it
    tiers = two_files(tmp_path / "lake")
    queries: list[bool] = []
    window_sql = Selection.window_sql

    def spy(self: Selection, *args: Any, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        queries.append(kwargs.get("ordered", True))
        return window_sql(self, *args, **kwargs)

    monkeypatch.setattr(Selection, "window_sql", spy)

    report = go(tiers, lambda events: None, batch_size=3, checkpoint=tmp_path / "ckpt")

    # then: the recount would find exactly what the run read: only the read's query ran
    assert (report.sent, report.warnings, queries) == (8, [], [True])


def test_a_recount_that_fails_is_a_warning_not_the_runs_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiers = two_files(tmp_path / "lake")

    def broken(*args: Any) -> Any:
        raise duckdb.IOException("disk gone")

    monkeypatch.setattr("eventlake.replay.run.through", broken)
    monkeypatch.setattr("eventlake.replay.run._cold_listing", lambda *args: None)  # recount

    report = go(tiers, lambda events: None, batch_size=3)

    assert report.sent == 8
    assert report.warnings == ["could not recount the selection after the run to find events "
                               "that arrived behind it: disk gone"]


def test_a_run_that_sent_nothing_recounts_nothing(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tiers = two_files(tmp_path / "lake")
    nothing = Selection(START + timedelta(days=1), START + timedelta(days=2), cold_only=True)

    def no_recount(*args: Any) -> None:
        raise AssertionError("recounted")

    monkeypatch.setattr("eventlake.replay.run.through", no_recount)

    assert go(tiers, lambda events: None, selection=nothing).sent == 0
    assert go(tiers, lambda events: None, dry_run=True).sent == 8


# --- the command --------------------------------------------------------------------------------

def test_the_command_prints_the_warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # given: the lake `eventlake` finds, and a JSONL target that plants a late event at its
    # first batch
    root = tmp_path / "lake"
    monkeypatch.setenv("EVENTLAKE_TABLE", "unused")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(root))
    tiers = two_files(root)
    from eventlake.replay.targets import JsonlTarget

    real_send = JsonlTarget.send

    def send(self: JsonlTarget, batch: Batch) -> int | None:
        if not list(root.rglob("late*.parquet")):
            plant(tiers, "late", {"late": 5})
        return real_send(self, batch)

    monkeypatch.setattr(JsonlTarget, "send", send)
    args = ["replay", "--from", "2024-05-01", "--to", "2024-05-03", "--cold-only",
            "--target", f"jsonl:{tmp_path / 'out.jsonl'}", "--batch-size", "3",
            "--checkpoint", str(tmp_path / "ckpt")]

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "replay: sent 8 events" in out
    assert "WARNING: 1 events with timestamps at or before the last one sent" in out
    assert "--from 2024-05-01T00:00:00.000000Z --to 2024-05-01T01:10:00.000001Z" in out

    # and: between runs, a late event and a vanished one before the checkpoint
    drop(root, "b")
    drop(root, "late")
    plant(tiers, "again", {"late2": 1, "late3": 2, "late4": 3, "late5": 4})
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "WARNING: the selection holds as many events at or before" in out
