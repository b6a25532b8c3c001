"""Resuming after a real process kill: a JSONL replay of 100,000 events killed with SIGKILL at
random points, then run again with the same checkpoint, leaves every selected event in the file
once, in order (issue 10's interrupted-replay test); the same for JSONL on S3 (a moto server),
with its checkpoint on S3 too."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from eventlake import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.store import Lake

ROOT = Path(__file__).parents[2]
START = datetime(2024, 5, 1, tzinfo=UTC)
DAYS = 10
PER_DAY = 10_000
PART = 256 * 1024
"""The S3 test's part size (S3's 5 MiB minimum lowered, in moto and in the replay)."""

REPLAY = textwrap.dedent("""
    import sys, time
    from datetime import datetime, timedelta
    from eventlake import Settings
    from eventlake.lake.store import Lake
    from eventlake.replay import s3jsonl, targets
    from eventlake.replay.run import replay
    from eventlake.replay.select import Selection

    lake_uri, target, ckpt, slow, start, days, part = sys.argv[1:8]
    kind = s3jsonl.S3JsonlTarget if target.startswith("jsonl:s3://") else targets.JsonlTarget
    if slow == "1":  # widen the gap between a batch written and its checkpoint
        send = kind.send
        def slow_send(self, events):
            offset = send(self, events)
            time.sleep(0.002)
            return offset
        kind.send = slow_send
    if kind is s3jsonl.S3JsonlTarget:
        from eventlake.aws import Clients
        s3jsonl.MIN_PART_SIZE = int(part)
        target = kind(target.removeprefix("jsonl:"), Clients(Settings.from_env()),
                      part_size=int(part))

    class ColdTiers:
        cold = Lake(Settings.from_env(table="unused", lake_uri=lake_uri))
        hot = None

    start = datetime.fromisoformat(start)
    selection = Selection(start, start + timedelta(days=int(days)), cold_only=True)
    report = replay(ColdTiers(), selection, target, checkpoint=ckpt, batch_size=50,
                    now=start + timedelta(days=30))
    print(report.summary())
""")


@dataclass(frozen=True)
class Built:
    root: Path
    expected: list[str]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The lake, built once for this module's tests."""
    root = tmp_path_factory.mktemp("resume") / "lake"
    return Built(root, write_lake(root))


def write_lake(root: Path) -> list[str]:
    """DAYS days of PER_DAY events, pairs sharing a timestamp (event_id breaks the tie,
    against the files' own sort), in two files per day; the expected order. Built as Arrow
    columns (no dict per event)."""
    total = DAYS * PER_DAY
    step = 86_400 * DAYS // total * 2  # seconds between pairs
    n = range(total)
    table = pa.table({
        "event_id": [f"id-{(i * 7919) % total:06d}" for i in n],  # 7919 is prime: a permutation
        "event_type": pa.array(["click", "order"] * (total // 2)),
        "timestamp": pa.array([START + timedelta(seconds=(i // 2) * step) for i in n],
                              pa.timestamp("us", tz="UTC")),
        "ingested_at": pa.array([START + timedelta(days=DAYS + 1)] * total,
                                pa.timestamp("us", tz="UTC")),
        "source": pa.array(["shop"] * total),
        "subject": [f"user/{i % 5}" for i in n],
        "event_payload": [f'{{"n":{i}}}' for i in n],
        "content_hash": [f"h{i}" for i in n],
    }).cast(EVENT_SCHEMA)
    lake = Lake(Settings.from_env(table="unused", lake_uri=str(root)))
    even = pa.array([i % 2 == 0 for i in n])
    lake.write(table.filter(even), "sweep-a")
    lake.write(table.filter(pc.invert(even)), "sweep-b")
    ordered = table.sort_by([("timestamp", "ascending"), ("event_id", "ascending")])
    return [str(e) for e in ordered.column("event_id").to_pylist()]


def run_replay(root: Path, target: str, ckpt: str, *, slow: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", REPLAY, str(root), target, ckpt, "1" if slow else "0",
         START.isoformat(), str(DAYS), str(PART)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_twice_then_finish(built: Built, target: str, ckpt: str,
                           checkpointed: Callable[[], int], *, slow: bool
                           ) -> tuple[list[int], str]:
    """Run the replay (`slow`: sleeping between each batch written and its checkpoint), SIGKILL
    it once the checkpoint passes a random count (twice, the second later than the first),
    then run it to the end; the counts checkpointed at each kill and the last run's output."""
    rng = random.Random()
    kills = []
    total = DAYS * PER_DAY
    for low, high in ((total // 40, total * 2 // 5), (total * 9 // 20, total * 17 // 20)):
        threshold = rng.randint(low, high)
        process = run_replay(built.root, target, ckpt, slow=slow)
        deadline = time.monotonic() + 120
        while checkpointed() < threshold and process.poll() is None:
            assert time.monotonic() < deadline, "the replay made no progress"
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.01))  # anywhere in a batch's write -> checkpoint cycle
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL, f"it finished before the kill: {stderr}"
        kills.append(checkpointed())
    final = run_replay(built.root, target, ckpt, slow=False)
    stdout, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    assert 0 < kills[0] < kills[1] < total
    return kills, stdout


def event_ids(jsonl: bytes) -> list[str]:
    return [json.loads(line)["event_id"] for line in jsonl.splitlines()]


@pytest.mark.slow
def test_a_killed_jsonl_replay_resumes_with_each_event_once_in_order(built: Built,
                                                                     tmp_path: Path) -> None:
    # given: 100,000 events in a local lake
    out, ckpt = tmp_path / "out.jsonl", tmp_path / "replay.ckpt"

    def checkpointed() -> int:  # written atomically: never half a file
        return int(json.loads(ckpt.read_text())["count"]) if ckpt.exists() else 0

    # when: a replay is killed (SIGKILL) at a random point, twice, then run to the end
    kills, stdout = kill_twice_then_finish(built, f"jsonl:{out}", str(ckpt), checkpointed,
                                           slow=True)

    # then: the file holds every event once, in (timestamp, event_id) order
    got = event_ids(out.read_bytes())
    assert len(got) == len(set(got)) == len(built.expected) == DAYS * PER_DAY
    assert got == built.expected
    assert checkpointed() == len(built.expected)
    assert f"resumed after {kills[1]}" in stdout


@pytest.mark.slow
@pytest.mark.integration
def test_a_killed_s3_jsonl_replay_resumes_with_each_event_once_in_order(
        built: Built, bucket: str, server_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: 100,000 events, and a moto server taking parts of PART bytes
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", PART)
    s3 = boto3.client("s3", endpoint_url=server_env)
    out, ckpt = f"s3://{bucket}/out/events.jsonl", f"s3://{bucket}/replay.ckpt"

    def checkpointed() -> int:
        try:
            body = s3.get_object(Bucket=bucket, Key="replay.ckpt")["Body"].read()
        except s3.exceptions.NoSuchKey:
            return 0
        return int(json.loads(body)["count"])

    def exists() -> bool:
        return bool(s3.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents"))

    # when: killed twice at random points, then run to the end
    # (not slowed: a part's upload already stands between its events and their checkpoint)
    kills, stdout = kill_twice_then_finish(built, f"jsonl:{out}", ckpt, checkpointed,
                                           slow=False)

    # then: the object holds every event once, in order; no upload is left behind
    got = event_ids(s3.get_object(Bucket=bucket, Key="out/events.jsonl")["Body"].read())
    assert len(got) == len(set(got)) == DAYS * PER_DAY
    assert got == built.expected
    assert exists() and not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert f"resumed after {kills[1]}" in stdout
