"""JSONL on S3 and checkpoints on S3 (moto in-process): the object appears only when the
replay completes, a replay stopped between a part and its checkpoint (either side) resumes
exactly, an upload that is gone or differs starts over, a failure keeps the upload and says
how to abort it; checkpoints round-trip through S3 and refuse another selection."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from botocore.exceptions import ClientError

from eventlake import EventLake, Settings
from eventlake.aws import Clients
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.store import Lake
from eventlake.replay import checkpoint as checkpoints
from eventlake.replay import s3jsonl
from eventlake.replay.checkpoint import Checkpoint, CheckpointError
from eventlake.replay.resolve import target_for
from eventlake.replay.run import ReplayReport, replay
from eventlake.replay.s3jsonl import S3JsonlTarget
from eventlake.replay.select import Selection
from eventlake.replay.targets import DeliveryError, TargetError

START = datetime(2024, 5, 1, tzinfo=UTC)
EVENTS = 300
PART = 2048
"""The test's part size: about 13 events (each line is ~150 bytes)."""
BUCKET = "replays"
OUT = f"s3://{BUCKET}/out/events.jsonl"
SELECTION = Selection(START, START + timedelta(days=3), cold_only=True)


class Crash(Exception):
    """Stands for the process dying at a chosen point."""


@dataclass
class Setup:
    tiers: Any
    expected: list[str]
    clients: Clients
    checkpoint: str

    def target(self) -> S3JsonlTarget:
        return S3JsonlTarget(OUT, self.clients, part_size=PART)

    def run(self, **kwargs: Any) -> ReplayReport:
        return replay(self.tiers, SELECTION, self.target(), batch_size=5,
                      checkpoint=self.checkpoint, now=START + timedelta(days=30),
                      clients=self.clients, **kwargs)

    def object_ids(self) -> list[str]:
        body = self.clients.s3.get_object(Bucket=BUCKET, Key="out/events.jsonl")["Body"].read()
        return [json.loads(line)["event_id"] for line in body.decode().splitlines()]

    def object_exists(self) -> bool:
        listed = self.clients.s3.list_objects_v2(Bucket=BUCKET, Prefix="out/")
        return bool(listed.get("Contents"))

    def uploads(self) -> list[str]:
        listed = self.clients.s3.list_multipart_uploads(Bucket=BUCKET)
        return [u["UploadId"] for u in listed.get("Uploads", [])]

    def saved(self) -> dict[str, Any]:
        body = self.clients.s3.get_object(Bucket=BUCKET, Key="ckpt/replay.json")["Body"]
        data: dict[str, Any] = json.loads(body.read())
        return data


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts of 2 KiB: S3's 5 MiB minimum lowered for this test, ours and moto's alike."""
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1024)
    monkeypatch.setattr(s3jsonl, "MIN_PART_SIZE", 1024)


@pytest.fixture
def setup(mocked_aws: None, small_parts: None, tmp_path: Path) -> Iterator[Setup]:
    """EVENTS events over 3 days in a local lake (two files a day), a bucket, and an s3://
    checkpoint."""
    lake = Lake(Settings.from_env(table="unused", lake_uri=str(tmp_path / "lake")))
    rows = [{"event_id": f"id-{(n * 7919) % EVENTS:04d}", "event_type": ["click", "order"][n % 2],
             "timestamp": START + timedelta(seconds=n * 600 + (n % 3)), "ingested_at": START,
             "source": "shop", "subject": f"user/{n % 5}",
             "event_payload": json.dumps({"n": n, "pad": "x" * 30}), "content_hash": f"h{n}"}
            for n in range(EVENTS)]
    lake.write(pa.Table.from_pylist(rows[0::2], schema=EVENT_SCHEMA), "sweep-a")
    lake.write(pa.Table.from_pylist(rows[1::2], schema=EVENT_SCHEMA), "sweep-b")

    class ColdTiers:
        cold = lake
        hot = None

    clients = Clients(Settings.from_env(table="unused", lake_uri=str(tmp_path / "lake")))
    clients.s3.create_bucket(Bucket=BUCKET)
    expected = [r["event_id"] for r in sorted(rows, key=lambda r: (r["timestamp"],
                                                                     r["event_id"]))]
    yield Setup(ColdTiers(), expected, clients, f"s3://{BUCKET}/ckpt/replay.json")


def crash_on(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, call: int,
             *, after: bool) -> list[int]:
    """Make `owner.name` raise Crash on its `call`-th call (after doing its work when `after`);
    returns the list of calls made, for the test to look at."""
    real: Callable[..., Any] = getattr(owner, name)
    calls: list[int] = []

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(calls) + 1)
        if len(calls) == call and not after:
            raise Crash(name)
        result = real(*args, **kwargs)
        if len(calls) == call and after:
            raise Crash(name)
        return result

    monkeypatch.setattr(owner, name, wrapped)
    return calls


def test_the_object_appears_whole_only_when_the_replay_completes(setup: Setup,
                                                                 monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    # given: a look at the bucket after every part upload
    seen: list[bool] = []
    upload_part = setup.clients.s3.upload_part

    def watched(**kwargs: Any) -> Any:
        seen.append(setup.object_exists())
        return upload_part(**kwargs)

    monkeypatch.setattr(setup.clients.s3, "upload_part", watched)

    # when
    report = setup.run()

    # then: many parts, none visible until the end; then every event once, in order
    assert len(seen) > 10 and not any(seen)
    assert setup.object_ids() == setup.expected
    assert report.sent == EVENTS and setup.uploads() == []
    saved = setup.saved()
    assert saved["count"] == EVENTS and saved["target"]["completed"] is True
    assert saved["event_id"] == setup.expected[-1]
    head = setup.clients.s3.head_object(Bucket=BUCKET, Key="out/events.jsonl")
    assert head["ContentType"] == "application/x-ndjson"
    assert head["ContentLength"] == saved["target"]["bytes"]


def test_a_checkpoint_is_written_only_when_a_part_is_uploaded(setup: Setup,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    # given: the checkpoints as they are saved
    saved: list[Checkpoint] = []
    save = checkpoints.save
    monkeypatch.setattr(checkpoints, "save",
                        lambda path, ckpt, *a, **kw: (saved.append(ckpt),
                                                      save(path, ckpt, *a, **kw)))

    setup.run()

    # then: one per part (each naming all parts so far), and the completion
    parts = [len(c.target["parts"]) for c in saved[:-1] if c.target]
    assert parts == list(range(1, len(saved)))
    assert saved[-1].target is not None and saved[-1].target["completed"]
    assert len(saved) < EVENTS // 5  # not one per batch
    counts = [c.count for c in saved]
    assert counts == sorted(counts) and counts[-1] == EVENTS


@pytest.mark.parametrize(("where", "after"), [
    ("upload_part", False),  # killed with a part buffered, not uploaded
    ("upload_part", True),   # the part uploaded, its checkpoint not written
    ("save", True),          # the checkpoint written, the next part not begun
])
def test_a_replay_stopped_around_a_part_resumes_exactly(setup: Setup, where: str, after: bool,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    # given: a replay that dies at the 6th part upload or the 6th checkpoint
    owner = setup.clients.s3 if where == "upload_part" else checkpoints
    with monkeypatch.context() as patch:
        crash_on(patch, owner, where, 6, after=after)
        with pytest.raises(Crash):
            setup.run()
    stopped = setup.saved()
    [upload_id] = setup.uploads()
    listed = setup.clients.s3.list_parts(Bucket=BUCKET, Key="out/events.jsonl",
                                         UploadId=upload_id)["Parts"]
    checkpointed = len(stopped["target"]["parts"])
    assert len(listed) == checkpointed + (1 if (where, after) == ("upload_part", True) else 0)
    assert not setup.object_exists()

    # when: the same replay runs again
    report = setup.run()

    # then: it went on from the checkpoint, and the object holds every event once, in order
    assert report.resumed_after == stopped["count"] > 0
    assert report.sent == EVENTS - stopped["count"]
    assert setup.object_ids() == setup.expected
    assert setup.uploads() == []


@pytest.mark.parametrize("damage", ["aborted", "part replaced"])
def test_an_upload_gone_or_changed_is_aborted_and_the_replay_starts_over(
        setup: Setup, damage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a stopped replay whose upload then vanished (a lifecycle rule) or changed
    with monkeypatch.context() as patch:
        crash_on(patch, checkpoints, "save", 4, after=True)
        with pytest.raises(Crash):
            setup.run()
    [upload_id] = setup.uploads()
    where = {"Bucket": BUCKET, "Key": "out/events.jsonl", "UploadId": upload_id}
    if damage == "aborted":
        setup.clients.s3.abort_multipart_upload(**where)
    else:
        setup.clients.s3.upload_part(**where, PartNumber=2, Body=b"x" * 2048)

    # when
    report = setup.run()

    # then: from the first event, into a new upload; the old one is gone
    assert report.resumed_after == 0 and report.sent == EVENTS
    assert setup.object_ids() == setup.expected
    assert setup.uploads() == []


def test_a_failed_part_stops_the_replay_keeps_the_upload_and_says_how_to_abort_it(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: S3 refuses the 3rd part
    upload_part = setup.clients.s3.upload_part
    calls: list[int] = []

    def refuse_third(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}},
                              "UploadPart")
        return upload_part(**kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(setup.clients.s3, "upload_part", refuse_third)
        with pytest.raises(DeliveryError) as caught:
            setup.run()

    # then: the error names the events not made durable, the upload and how to abort it
    error = caught.value
    [upload_id] = setup.uploads()
    done = setup.saved()["count"]
    assert error.event_ids == setup.expected[done:done + len(error.event_ids)]
    assert error.event_ids and error.report.failed == len(error.event_ids)
    assert "UploadPart failed" in str(error) and "AccessDenied" in str(error)
    assert f"abort-multipart-upload --bucket {BUCKET} --key out/events.jsonl" in str(error)
    assert upload_id in str(error) and "AbortIncompleteMultipartUpload" in str(error)
    assert not setup.object_exists()

    # and: the same command then resumes the kept upload and completes it
    report = setup.run()
    assert report.resumed_after == done
    assert setup.object_ids() == setup.expected and setup.uploads() == []


def test_an_output_under_one_part_is_one_put_object(setup: Setup,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a part far larger than the output
    target = S3JsonlTarget(OUT, setup.clients, part_size=1024 * 1024)
    monkeypatch.setattr(setup.clients.s3, "create_multipart_upload", _forbidden)

    report = replay(setup.tiers, SELECTION, target, checkpoint=setup.checkpoint,
                    now=START + timedelta(days=30), clients=setup.clients)

    assert report.sent == EVENTS and setup.object_ids() == setup.expected
    size = setup.clients.s3.head_object(Bucket=BUCKET, Key="out/events.jsonl")["ContentLength"]
    assert setup.saved()["target"] == {"kind": "s3-multipart", "uri": OUT, "completed": True,
                                       "bytes": size}


def test_a_completed_replay_run_again_writes_nothing(setup: Setup,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    setup.run()
    first = setup.clients.s3.head_object(Bucket=BUCKET, Key="out/events.jsonl")["ETag"]
    monkeypatch.setattr(setup.clients.s3, "put_object", _forbidden)
    monkeypatch.setattr(setup.clients.s3, "create_multipart_upload", _forbidden)

    report = setup.run()

    assert report.sent == 0 and report.resumed_after == EVENTS
    assert setup.clients.s3.head_object(Bucket=BUCKET, Key="out/events.jsonl")["ETag"] == first


def test_an_s3_target_refuses_a_checkpoint_it_did_not_write(setup: Setup) -> None:
    local = Checkpoint(START, "id-0000", 10, offset=1234)
    with pytest.raises(TargetError, match="not written by a jsonl:s3:// target"):
        setup.target().resume(local)
    other = Checkpoint(START, "id-0000", 10, None,
                       {"kind": "s3-multipart", "uri": f"s3://{BUCKET}/other.jsonl",
                        "upload_id": "u", "parts": [], "bytes": 0})
    with pytest.raises(TargetError, match=re.escape("belongs to `jsonl:s3://replays/other.jsonl`")):
        setup.target().resume(other)
    malformed = Checkpoint(START, "id-0000", 10, None, {"kind": "s3-multipart", "uri": OUT})
    with pytest.raises(TargetError, match="malformed"):
        setup.target().resume(malformed)


def test_parts_under_s3s_minimum_are_refused_and_uris_are_checked(mocked_aws: None) -> None:
    clients = Clients(Settings.from_env(table="unused"))
    with pytest.raises(TargetError, match="under S3's minimum of 5242880"):
        S3JsonlTarget(OUT, clients, part_size=1024 * 1024)
    with pytest.raises(TargetError, match="expected s3://bucket/key"):
        target_for("jsonl:s3://bucket-only/", clients=clients)
    target = target_for(f"jsonl:{OUT}", clients=clients)
    assert isinstance(target, S3JsonlTarget) and target.part_size == 8 * 1024 * 1024
    assert (target.bucket, target.key) == (BUCKET, "out/events.jsonl")


# -- checkpoints on S3 -----------------------------------------------------------------------

def test_an_s3_checkpoint_round_trips_and_refuses_another_selection(setup: Setup) -> None:
    path = setup.checkpoint
    assert checkpoints.load(path, SELECTION, setup.clients) is None  # a first run
    saved = Checkpoint(START + timedelta(hours=1), "id-0042", 42, None,
                       {"kind": "s3-multipart", "uri": OUT, "upload_id": "u-1",
                        "parts": [[1, '"e1"']], "bytes": 2100})

    checkpoints.save(path, saved, SELECTION, setup.clients)

    assert checkpoints.load(path, SELECTION, setup.clients) == saved
    other = Selection(START, START + timedelta(days=3), event_types=("click",), cold_only=True)
    with pytest.raises(CheckpointError, match="written by another selection"):
        checkpoints.load(path, other, setup.clients)


def test_an_s3_checkpoint_has_the_local_format(setup: Setup, tmp_path: Path) -> None:
    saved = Checkpoint(START, "id-0001", 1, 77)
    checkpoints.save(setup.checkpoint, saved, SELECTION, setup.clients)
    checkpoints.save(tmp_path / "c.json", saved, SELECTION)

    assert setup.saved() == json.loads((tmp_path / "c.json").read_text())
    assert "target" not in setup.saved()


def test_an_unreadable_s3_checkpoint_or_a_missing_bucket_is_a_clear_error(setup: Setup
                                                                          ) -> None:
    setup.clients.s3.put_object(Bucket=BUCKET, Key="ckpt/replay.json", Body=b"{not json")
    with pytest.raises(CheckpointError, match="cannot read the checkpoint `s3://replays/ckpt"):
        checkpoints.load(setup.checkpoint, SELECTION, setup.clients)
    with pytest.raises(CheckpointError, match="bucket `nowhere` does not exist"):
        checkpoints.load("s3://nowhere/ckpt.json", SELECTION, setup.clients)
    with pytest.raises(CheckpointError, match="expected s3://bucket/key"):
        checkpoints.load("s3://replays/", SELECTION, setup.clients)


def test_a_local_jsonl_replay_resumes_from_an_s3_checkpoint(setup: Setup, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    out = tmp_path / "out.jsonl"

    def run() -> ReplayReport:
        return replay(setup.tiers, SELECTION, f"jsonl:{out}", batch_size=7,
                      checkpoint=setup.checkpoint, now=START + timedelta(days=30),
                      clients=setup.clients)

    with monkeypatch.context() as patch:
        crash_on(patch, checkpoints, "save", 9, after=False)
        with pytest.raises(Crash):
            run()
    report = run()

    assert report.resumed_after == 8 * 7
    got = [json.loads(line)["event_id"] for line in out.read_text().splitlines()]
    assert got == setup.expected


def _forbidden(**kwargs: Any) -> Any:
    raise AssertionError(f"no write expected ({kwargs.get('Key')})")


def test_eventlake_replay_names_an_s3_target_and_checkpoint(lake: EventLake) -> None:
    # given: three events in the hot tier, a bucket
    now = datetime.now(UTC)
    lake.put_many([{"event_id": f"e{n}", "event_type": "click",
                    "timestamp": (now - timedelta(minutes=10 - n)).isoformat(),
                    "event_payload": {"n": n}} for n in range(3)])
    lake.clients.s3.create_bucket(Bucket=BUCKET)
    selection = Selection(now - timedelta(hours=1), now + timedelta(minutes=1))

    # when: replayed by name (the default part size: one PutObject), then again
    first = lake.replay(selection, f"jsonl:{OUT}", checkpoint=f"s3://{BUCKET}/c.json")
    again = lake.replay(selection, f"jsonl:{OUT}", checkpoint=f"s3://{BUCKET}/c.json")

    # then
    body = lake.clients.s3.get_object(Bucket=BUCKET, Key="out/events.jsonl")["Body"].read()
    assert [json.loads(line)["event_payload"] for line in body.splitlines()] == [
        {"n": 0}, {"n": 1}, {"n": 2}]
    assert (first.sent, again.sent, again.resumed_after) == (3, 0, 3)
