"""Hard kills, second round (tests/kill_support.py): replay, export, ingest, and the stream
handler on a local lake, each killed part-way (os._exit, as SIGKILL) and then run again as the
README tells users to.

- replay to a `jsonl:` file, killed before/after a checkpoint and with its last write torn in
  half, then resumed with the same command: each event in the file once, in order, every line
  whole JSON (README: "A JSONL file resumes exactly");
- replay to SQS (FIFO and standard) on the moto server, killed between a send and its
  checkpoint and in the middle of a batch's SendMessageBatch calls, then resumed: every event
  delivered at least once, in order, nothing skipped; copies only of the batch in flight
  (standard), none at all on a FIFO queue (its deduplication id is the event_id);
- export to a local folder and to an S3 prefix, new and `--overwrite`, killed around its rename
  or its upload: a reader never sees a half export as complete (a local `--out` whole or
  absent; on S3, `_SUCCESS` only over the whole new export), a re-run finishes it, temporaries
  are gone;
- `EventLake.put_many` and the ingest Lambda killed after some conditional PutItems, then the
  whole request sent again: every event stored once, the re-send all `created`/`duplicate`,
  never a `conflict` (events without event_id and without timestamp included);
- the stream handler on a local lake, killed while its temp file is half written, then the
  batch delivered again: each event once after compaction, no torn file read as data.

CI runs the points that matter (kept under ~45 s); EVENTLAKE_KILL_ALL=1 runs every N of each.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from kill_support import KILLED, plain_ids, run_child, state_problems
from lake_support import day_rows
from stream_support import lambda_event

from eventlake.api import EventLake
from eventlake.config import Settings
from eventlake.lake.store import Lake

pytestmark = pytest.mark.integration

ALL = os.environ.get("EVENTLAKE_KILL_ALL") == "1"
DAYS = [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
PER_DAY = 12
SAVE = "eventlake.replay.checkpoint:save"
JSONL_SEND = "eventlake.replay.targets:JsonlTarget.send"
SQS_PUT = "eventlake.replay.aws.sqs:SqsTarget.put"
PUBLISH_EXPORT = "eventlake.export.run:_publish"
REPLACE = "os:replace"
UPLOAD = "eventlake.export.s3:_upload_files"
S3_DELETE = "eventlake.export.s3:_delete"
HOT_PUT = "eventlake.hot.store:HotStore.put"
PUBLISH = "eventlake.lake.fs:LakeFS._publish"
FSYNC = "eventlake.lake.fs:_fsync"


def points(*spec: tuple[str, str, tuple[int, ...]]) -> list[tuple[str, str, int]]:
    """(function, when, N): the Ns given for CI; with EVENTLAKE_KILL_ALL=1, N = 1..12."""
    return [(target, when, n) for target, when, ns in spec
            for n in (range(1, 13) if ALL else ns)]


def kill(actions: list[list[str]], env: dict[str, str], target: str, when: str,
         n: int) -> bool:
    """Run `actions` killed at the N-th call of `target`; whether it was killed (an N past the
    last call lets it finish, only with EVENTLAKE_KILL_ALL=1)."""
    done = run_child(actions, env=env, kill=target, n=n, when=when)
    if done.returncode == KILLED:
        return True
    assert done.returncode == 0, done.stdout + done.stderr
    assert ALL, f"{target} is called fewer than {n} time(s): pick another kill point"
    return False


def recover(actions: list[list[str]], env: dict[str, str]) -> str:
    done = run_child(actions, env=env)
    assert done.returncode == 0, f"recovery failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# -- a local lake to replay and export ---------------------------------------------------------

def cold_lake(root: Path) -> list[str]:
    """A local lake of PER_DAY events a day over DAYS (two files a day); the ids in replay
    order (timestamp, event_id)."""
    lake = Lake(Settings(lake_uri=str(root)))
    lake.create_marker(table="events")
    for day in DAYS:
        half = PER_DAY // 2
        lake.write_partition(day.isoformat(), day_rows(0, half, day), "stream-0")
        lake.write_partition(day.isoformat(), day_rows(half, PER_DAY - half, day), "stream-1")
    return [f"{d}-{i:04d}" for d in DAYS for i in range(PER_DAY)]


SELECT = ["--cold-only", "--from", DAYS[0].isoformat(),
          "--to", (DAYS[-1] + timedelta(days=1)).isoformat()]


# -- replay to a JSONL file --------------------------------------------------------------------

JSONL_POINTS = points((JSONL_SEND, "torn", (3,)), (SAVE, "before", ()),
                      (REPLACE, "before", (2,)), (SAVE, "after", (2,)),
                      (JSONL_SEND, "before", ()))


@pytest.mark.parametrize(("target", "when", "n"), JSONL_POINTS)
def test_replay_to_jsonl_killed_then_resumed_holds_each_event_once_in_order(
        tmp_path: Path, target: str, when: str, n: int) -> None:
    root = tmp_path / "lake"
    expected = cold_lake(root)
    out, ckpt = tmp_path / "out.jsonl", tmp_path / "out.ckpt"
    replay = ["cli", "replay", *SELECT, "--target", f"jsonl:{out}", "--checkpoint", str(ckpt),
              "--batch-size", "5"]
    env = {"EVENTLAKE_LAKE_URI": str(root)}

    if kill([replay], env, target, when, n) and when == "torn":
        assert not out.read_bytes().endswith(b"\n")  # the kill left a torn last line

    recover([replay], env)

    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a whole line
    assert [json.loads(line)["event_id"] for line in lines[:-1]] == expected
    assert json.loads(ckpt.read_text())["count"] == len(expected)
    # a checkpoint's temp file, left by a kill before its rename, is gone too
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lake", "out.ckpt", "out.ckpt.lock", "out.jsonl"]


# -- replay to SQS on the moto server ----------------------------------------------------------

SQS_POINTS = [(fifo, *point) for fifo in (True, False) for point in points(
    (SAVE, "before", (2,) if fifo else ()), (SQS_PUT, "after", (4,)),
    (SAVE, "after", ()))]


@pytest.mark.parametrize(("fifo", "target", "when", "n"), SQS_POINTS)
def test_replay_to_sqs_killed_then_resumed_delivers_every_event_in_order(
        server_env: str, tmp_path: Path, fifo: bool, target: str, when: str, n: int) -> None:
    root = tmp_path / "lake"
    expected = cold_lake(root)
    sqs = boto3.client("sqs", endpoint_url=server_env)
    name = f"replay-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    ckpt = tmp_path / "sqs.ckpt"
    batch_size = 25  # SendMessageBatch calls of 10, 10 and 5: a kill can land mid-batch
    replay = ["cli", "replay", *SELECT, "--target", f"sqs:{name}", "--checkpoint", str(ckpt),
              "--batch-size", str(batch_size)]
    env = {"EVENTLAKE_LAKE_URI": str(root), "AWS_ENDPOINT_URL": server_env}

    killed = kill([replay], env, target, when, n)
    durable = json.loads(ckpt.read_text())["count"] if ckpt.exists() else 0
    recover([replay], env)

    got = received(sqs, url)
    if fifo or not killed:
        assert got == expected  # FIFO deduplicates on event_id: once each, in order
        return
    # standard: at least once, in order; the only copies are of the batch in flight (after
    # the last durable checkpoint, at most one batch: what the killed run sent unrecorded)
    assert sorted(set(got)) == sorted(expected)
    copies = [i for i in set(got) if got.count(i) > 1]
    assert all(expected.index(i) in range(durable, durable + batch_size) for i in copies), (
        durable, copies)
    first = sorted(set(got), key=got.index)
    assert first == expected
    resumed = got[len(got) - (len(expected) - durable):]
    assert resumed == expected[durable:]  # the resume sent from after its checkpoint, in order


def received(sqs: Any, url: str) -> list[str]:
    """Every message's event_id, in the order the queue gives them (all deleted)."""
    ids: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return ids
        for message in messages:
            ids.append(json.loads(message["Body"])["event_id"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


# -- export ------------------------------------------------------------------------------------

LOCAL_EXPORT_POINTS = [(overwrite, *point) for overwrite in (False, True) for point in points(
    (PUBLISH_EXPORT, "before", () if overwrite else (1,)),
    (REPLACE, "after", (1,) if overwrite else ()),
    (PUBLISH_EXPORT, "after", (1,) if overwrite else ()))]


@pytest.mark.parametrize(("overwrite", "target", "when", "n"), LOCAL_EXPORT_POINTS)
def test_local_export_killed_shows_no_half_export_and_a_rerun_finishes_it(
        tmp_path: Path, overwrite: bool, target: str, when: str, n: int) -> None:
    root = tmp_path / "lake"
    expected = cold_lake(root)
    dest = tmp_path / "exports" / "all"
    export = ["cli", "export", *SELECT, "--partition-by", "dt", "--out", str(dest)]
    env = {"EVENTLAKE_LAKE_URI": str(root)}
    if overwrite:
        recover([export], env)
        old = exported_ids(dest)
        assert old == sorted(expected)
        export.append("--overwrite")

    if kill([export], env, target, when, n) and (target, overwrite, n) == (REPLACE, True, 1):
        assert not dest.exists()  # the old export moved aside, the new one not yet in place
    # a reader: the destination is whole (the old export or the new one) or absent (a killed
    # overwrite between its two renames: put back by the next export)
    if dest.exists():
        assert exported_ids(dest) == sorted(expected)

    recover([export if overwrite or not dest.exists() else [*export, "--overwrite"]], env)
    assert exported_ids(dest) == sorted(expected)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["all"]  # no temporaries left


def exported_ids(dest: Path) -> list[str]:
    ids: list[str] = []
    for path in sorted(dest.rglob("*.parquet")):
        ids += pq.read_table(path, columns=["event_id"])["event_id"].to_pylist()
    return sorted(ids)


S3_EXPORT_POINTS = [(overwrite, *point) for overwrite in (False, True) for point in points(
    (UPLOAD, "after", () if overwrite else (1,)), (S3_DELETE, "after", (1,) if overwrite else ()),
    (S3_DELETE, "before", ()))]


@pytest.mark.parametrize(("overwrite", "target", "when", "n"), S3_EXPORT_POINTS)
def test_s3_export_killed_shows_no_half_export_as_complete_and_a_rerun_finishes_it(
        server_env: str, bucket: str, tmp_path: Path, overwrite: bool, target: str, when: str,
        n: int) -> None:
    root = tmp_path / "lake"
    expected = cold_lake(root)
    s3 = boto3.client("s3", endpoint_url=server_env)
    url = f"s3://{bucket}/exports/all"
    export = ["cli", "export", *SELECT, "--partition-by", "dt", "--out", url]
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"EVENTLAKE_LAKE_URI": str(root), "AWS_ENDPOINT_URL": server_env,
           "TMPDIR": str(temp)}
    if overwrite:
        recover([export], env)
        assert s3_export(s3, bucket) == sorted(expected)
        export.append("--overwrite")

    kill([export], env, target, when, n)
    complete = s3_export(s3, bucket)  # None: no _SUCCESS, a reader waits
    assert complete is None or complete == sorted(expected)

    # what a killed new export uploaded stays (no `finally` ran): the re-run overwrites it
    recover([export if overwrite else [*export, "--overwrite"]], env)
    assert s3_export(s3, bucket) == sorted(expected)
    assert list(temp.iterdir()) == [], "the killed export's local copy is left in TMPDIR"


def s3_export(s3: Any, bucket: str) -> list[str] | None:
    """The ids of the partitioned export under exports/all/ when `_SUCCESS` says it is
    complete; None when it is not."""
    import io

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="exports/all/")
            .get("Contents", [])]
    if "exports/all/_SUCCESS" not in keys:
        return None
    ids: list[str] = []
    for key in sorted(k for k in keys if k.endswith(".parquet")):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        ids += pq.read_table(io.BytesIO(body), columns=["event_id"])["event_id"].to_pylist()
    return sorted(ids)


# -- ingest ------------------------------------------------------------------------------------

def ingest_env(endpoint: str, tmp_path: Path) -> dict[str, str]:
    name = uuid.uuid4().hex[:10]
    env = {"EVENTLAKE_TABLE": f"events-{name}", "EVENTLAKE_LAKE_URI": str(tmp_path / "lake"),
           "EVENTLAKE_INDEX_SHARDS": "2", "AWS_ENDPOINT_URL": endpoint}
    EventLake(Settings.from_env(env)).init()
    return env


def request_events() -> list[dict[str, Any]]:
    """20 events: 12 with ids, 4 without an id, 4 without an id or a timestamp (their ids from
    their content, their timestamp the ingestion time), one sent twice within the request."""
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = [
        {"event_id": f"evt-{i:03d}", "event_type": "order.placed",
         "timestamp": (now - timedelta(minutes=i)).isoformat(), "event_payload": {"n": i}}
        for i in range(12)]
    events += [{"event_type": "click", "timestamp": (now - timedelta(seconds=i)).isoformat(),
                "event_payload": {"i": i}} for i in range(4)]
    events += [{"event_type": "view", "event_payload": {"i": i}} for i in range(4)]
    events.append(dict(events[3]))
    return events


def stored(env: dict[str, str]) -> list[tuple[str, str]]:
    table = boto3.resource("dynamodb").Table(env["EVENTLAKE_TABLE"])
    items = table.scan(ConsistentRead=True)["Items"]
    return sorted((str(i["event_id"]), str(i["content_hash"])) for i in items)


INGEST_POINTS = points((HOT_PUT, "after", (7,)), (HOT_PUT, "before", ()))


@pytest.mark.parametrize("face", ["put", "ingest"])
@pytest.mark.parametrize(("target", "when", "n"), INGEST_POINTS)
def test_ingest_killed_mid_batch_then_resent_stores_each_event_once(
        server_env: str, tmp_path: Path, face: str, target: str, when: str, n: int) -> None:
    env = ingest_env(server_env, tmp_path)
    events = request_events()
    request = tmp_path / "request.json"
    request.write_text(json.dumps(events if face == "put" else {"events": events}))

    kill([[face, str(request)]], env, target, when, n)
    partial = stored(env)
    assert len(partial) <= 20

    time.sleep(0.01)  # the re-send's ingestion time is later
    out = recover([[face, str(request)]], env)
    if face == "put":
        results = [json.loads(line) for line in out.splitlines()]
    else:
        results = json.loads(out.splitlines()[-1])["results"]
    assert len(results) == len(events)
    assert {r["outcome"] for r in results} <= {"created", "duplicate"}, results
    created = [r["event_id"] for r in results if r["outcome"] == "created"]
    assert not {i for i, _ in partial} & set(created)  # stored before: duplicate now
    after = stored(env)
    assert len(after) == 20 and set(partial) <= set(after)  # once each, the first kept

    again = recover([[face, str(request)]], env)  # a third send: all duplicates
    results = ([json.loads(line) for line in again.splitlines()] if face == "put"
               else json.loads(again.splitlines()[-1])["results"])
    assert {r["outcome"] for r in results} == {"duplicate"}, results


# -- the stream handler on a local lake --------------------------------------------------------

STREAM_POINTS = points((FSYNC, "truncate", (1,)), (PUBLISH, "before", ()),
                       (PUBLISH, "after", ()))


@pytest.mark.parametrize(("target", "when", "n"), STREAM_POINTS)
def test_stream_batch_killed_on_local_disk_is_archived_once_when_redelivered(
        server_env: str, tmp_path: Path, target: str, when: str, n: int) -> None:
    env = ingest_env(server_env, tmp_path)
    lake = EventLake(Settings.from_env(env))
    results = lake.put_many(request_events()[:16])
    lake.close()
    assert all(r.ok for r in results), results
    from boto3.dynamodb.types import TypeSerializer

    wire = TypeSerializer()
    items = [{k: wire.serialize(v) for k, v in item.items()} for item in
             boto3.resource("dynamodb").Table(env["EVENTLAKE_TABLE"]).scan()["Items"]]
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps(lambda_event(sorted(items, key=lambda i: i["event_id"]["S"]))))
    expected = stored(env)

    kill([["stream", str(batch)]], env, target, when, n)
    root = Path(env["EVENTLAKE_LAKE_URI"])
    check_local(root)  # a torn temp file is not read as data

    recover([["stream", str(batch)], ["cli", "compact", "--min-files", "2"]], env)
    assert plain_ids(str(root / "events")) == expected
    check_local(root)


def check_local(root: Path) -> None:
    """No visible file in events/ but whole Parquet; every state object parses."""
    for path in (root / "events").rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            assert path.suffix == ".parquet", path
            pq.read_metadata(path)
    state = {str(p.relative_to(root / "_eventlake")): p.read_bytes()
             for p in (root / "_eventlake").rglob("*") if p.is_file()}
    assert state_problems(state) == []


def test_s3_export_staging_removes_only_dead_processes_folders_of_this_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    from eventlake.export import run

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / f"eventlake-export-{run._HOST}-{gone.stdout.strip()}-abc_123x"
    live = tmp_path / f"eventlake-export-{run._HOST}-{os.getpid()}-abc_123x"
    other = tmp_path / f"eventlake-export-otherhost0123456789-{gone.stdout.strip()}-abc_123x"
    for folder in (dead, live, other):
        (folder / "all").mkdir(parents=True)

    made = run._staging()

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name,
                                                                 made.name])
    assert made.name.startswith(f"eventlake-export-{run._HOST}-{os.getpid()}-")


def test_held_checkpoint_removes_only_the_temp_files_of_its_saves(tmp_path: Path) -> None:
    from eventlake.replay.checkpoint import held

    ckpt = tmp_path / "out.ckpt"
    names = [".out.ckpt.ab_12cd9.tmp",  # a killed save's (mkstemp's 8 characters)
             ".out.ckpt.notes.tmp", ".out.ckpt.x.ab_12cd9.tmp", ".other.ab_12cd9.tmp",
             ".out.ckpt.ab_12cd9.tmp.keep"]
    for name in names:
        (tmp_path / name).write_text("x")

    with held(ckpt):
        left = sorted(p.name for p in tmp_path.iterdir())

    assert left == sorted([*names[1:], "out.ckpt.lock"])
