"""Hard kills (os._exit, as SIGKILL) of real eventlake processes at the N-th call of a chosen
function, then the normal recovery in a fresh process (tests/kill_support.py).

Kill points: the lake's publish (`LakeFS._publish`: every Parquet file and every local state
write), the conditional S3 PUT (`LakeFS._put_object`: state, `if_absent` files), the state
compare-and-swap (`LakeState.write_state`: lease, shard record, watermark, expiry checkpoint,
compaction record, manifest, release), deletes (`Lake.delete`), and the local temp file cut in
half (`fs._fsync`, when="truncate"). After recovery: every accepted event is in `events` exactly
once with its content hash, a plain pyarrow read of the lake counts each once after compaction,
no temp file is read as data, and every state object parses.

CI runs the points that matter most (each function's first calls, before and after); set
EVENTLAKE_KILL_ALL=1 to enumerate every N of every function until the process survives.
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
import pyarrow.fs as pafs
import pytest
from kill_support import KILLED, plain_ids, run_child, state_problems
from lake_support import day_rows
from stream_support import lambda_event

from eventlake.api import EventLake
from eventlake.archive.lease import SweepLockedError, acquire_lease, read_lease
from eventlake.config import Settings
from eventlake.lake.store import Lake
from eventlake.lake.watermark import read_watermark

pytestmark = pytest.mark.integration

ALL = os.environ.get("EVENTLAKE_KILL_ALL") == "1"
PUBLISH = "eventlake.lake.fs:LakeFS._publish"
PUT = "eventlake.lake.fs:LakeFS._put_object"
STATE = "eventlake.lake.state:LakeState.write_state"
DELETE = "eventlake.lake.store:Lake.delete"
FSYNC = "eventlake.lake.fs:_fsync"
LEASE_TTL = 4.0
DAYS = [date(2026, 11, 1), date(2026, 11, 2)]


def points(*spec: tuple[str, str, tuple[int, ...]]) -> list[tuple[str, str, int]]:
    """(function, when, N) for the Ns given for CI; with EVENTLAKE_KILL_ALL=1, N = 1..12 of
    each (an N past the process's last call is skipped)."""
    return [(target, when, n) for target, when, ns in spec
            for n in (range(1, 13) if ALL else ns)]


def kill(actions: list[list[str]], env: dict[str, str], target: str, when: str, n: int,
         **kw: Any) -> None:
    """Run `actions` killed at the N-th call of `target`. A process that never gets there
    (an N past its last call) finishes: the checks after it must hold all the same. CI's
    points are all reached (asserted)."""
    done = run_child(actions, env=env, kill=target, n=n, when=when, **kw)
    if done.returncode != KILLED:
        assert done.returncode in (0, 1), done.stderr  # 1: e.g. an at-risk TTL margin
        assert ALL, f"{target} is called fewer than {n} time(s): pick another kill point"


def recover(actions: list[list[str]], env: dict[str, str]) -> None:
    done = run_child(actions, env=env)
    assert done.returncode == 0, f"recovery failed:\n{done.stdout}\n{done.stderr}"


# -- compaction on local disk ------------------------------------------------------------------

def local_lake(root: Path) -> list[tuple[str, str]]:
    """A lake of 4 small files a day over two days, with copies across files; its events."""
    lake = Lake(Settings(lake_uri=str(root)))
    lake.create_marker(table="events")
    for day in DAYS:
        for i, (first, count) in enumerate([(0, 6), (4, 6), (8, 6), (0, 3)]):
            lake.write_partition(day.isoformat(), day_rows(first, count, day), f"stream-{i}")
    expected = sorted({(f"{d}-{i:04d}", f"h{i}") for d in DAYS for i in range(14)})
    return expected


COMPACT_POINTS = points((PUBLISH, "before", (1, 2)), (PUBLISH, "after", (1, 2)),
                        (FSYNC, "truncate", (1,)), (DELETE, "before", (1,)),
                        (DELETE, "after", (1,)), (STATE, "before", (1,)), (STATE, "after", (1,)))


@pytest.mark.parametrize(("target", "when", "n"), COMPACT_POINTS)
def test_compaction_killed_on_local_disk_is_finished_by_the_next_run(
        tmp_path: Path, target: str, when: str, n: int) -> None:
    root = tmp_path / "lake"
    expected = local_lake(root)
    env = {"EVENTLAKE_LAKE_URI": str(root)}
    compact = ["cli", "compact", "--min-files", "2"]

    kill([compact], env, target, when, n)
    check_local(root)  # between the kill and the recovery, readers read no partial file

    recover([compact, compact], env)

    assert plain_ids(str(root / "events")) == expected
    assert events_view(Settings(lake_uri=str(root))) == expected
    check_local(root)


def check_local(root: Path) -> None:
    """No visible file in events/ but whole Parquet; every state object parses."""
    import pyarrow.parquet as pq

    for path in (root / "events").rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            assert path.suffix == ".parquet", path
            pq.read_metadata(path)  # a whole file: its footer is there
    state = {str(p.relative_to(root / "_eventlake")): p.read_bytes()
             for p in (root / "_eventlake").rglob("*") if p.is_file()}
    assert state_problems(state) == []


def events_view(settings: Settings, *, hot: bool = False) -> list[tuple[str, str]]:
    lake = EventLake(settings)
    try:
        rows = lake.sql("select event_id, content_hash from events", hot=hot)
    finally:
        lake.close()
    return sorted(zip(rows["event_id"].to_pylist(), rows["content_hash"].to_pylist(),
                      strict=True))


# -- the sweep and the stream on S3 (moto's server) --------------------------------------------

@pytest.fixture
def s3_env(server_env: str) -> dict[str, str]:
    """A table and an S3 lake on the moto server (`eventlake init`), with 24 events stored."""
    return stored_events(server_env, f"s3://lake-{uuid.uuid4().hex[:10]}/lake")


@pytest.fixture(params=["s3", "local"])
def any_env(request: pytest.FixtureRequest, server_env: str, tmp_path: Path) -> dict[str, str]:
    """`s3_env`, or the same table with a lake on local disk."""
    lake_uri = (f"s3://lake-{uuid.uuid4().hex[:10]}/lake" if request.param == "s3"
                else str(tmp_path / "lake"))
    return stored_events(server_env, lake_uri)


def stored_events(endpoint: str, lake_uri: str) -> dict[str, str]:
    name = uuid.uuid4().hex[:10]
    # A clock skew of 1 s and no settle: a sweep's window starts 1 s before the watermark, so
    # a watermark moved past events not yet in the lake would lose them (none hides in the
    # look-back: the events are stored more than a second before the first sweep).
    env = {"EVENTLAKE_TABLE": f"events-{name}", "EVENTLAKE_LAKE_URI": lake_uri,
           "EVENTLAKE_INDEX_SHARDS": "2", "EVENTLAKE_CLOCK_SKEW_SECONDS": "1",
           "EVENTLAKE_ARCHIVE_SETTLE_SECONDS": "0", "AWS_ENDPOINT_URL": endpoint}
    lake = EventLake(settings_of(env))
    lake.init()
    now = datetime.now(UTC)
    results = lake.put_many([{"event_id": f"evt-{i:03d}", "event_type": "order.placed",
                              "timestamp": (now - timedelta(hours=20 * i)).isoformat(),
                              "event_payload": {"n": i}} for i in range(24)])
    assert all(r.ok for r in results), results
    lake.close()
    time.sleep(1.5)
    return env


def settings_of(env: dict[str, str]) -> Settings:
    return Settings.from_env(table=env["EVENTLAKE_TABLE"], lake_uri=env["EVENTLAKE_LAKE_URI"],
                             index_shards=2, clock_skew_seconds=1, archive_settle_seconds=0)


def accepted(env: dict[str, str]) -> list[tuple[str, str]]:
    """(event_id, content_hash) of every item the table holds."""
    table = boto3.resource("dynamodb").Table(env["EVENTLAKE_TABLE"])
    items = table.scan()["Items"]
    return sorted((str(i["event_id"]), str(i["content_hash"])) for i in items)


def check_lake(env: dict[str, str], expected: list[tuple[str, str]]) -> None:
    """After recovery and compaction: the plain read and `events` count each event once, and
    every state object parses."""
    settings = settings_of(env)
    lake = Lake(settings)
    if not lake.is_s3:
        root = Path(env["EVENTLAKE_LAKE_URI"])
        assert plain_ids(str(root / "events")) == expected
        assert events_view(settings, hot=True) == expected
        check_local(root)
        read_watermark(lake)
        return
    bucket, _, prefix = env["EVENTLAKE_LAKE_URI"][len("s3://"):].partition("/")
    fs = pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"].split("://")[1],
                           scheme="http", region=settings.region)
    assert plain_ids(f"{bucket}/{prefix}/events", fs) == expected
    assert events_view(settings, hot=True) == expected
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    state = {k.split("/_eventlake/", 1)[1]: s3.get_object(Bucket=bucket, Key=k)["Body"].read()
             for k in keys if "/_eventlake/" in k}
    assert state_problems(state) == []
    read_watermark(lake)  # parses (raises StorageError otherwise)


def wait_out_lease(env: dict[str, str]) -> None:
    """Sleep until a lease left held by the killed run has expired (LEASE_TTL seconds)."""
    lease = read_lease(Lake(settings_of(env)), "sweep")
    if lease is not None and not lease.released:
        time.sleep(max(0.0, (lease.expires_at - datetime.now(UTC)).total_seconds()) + 0.2)


SWEEP_POINTS = points((STATE, "after", (1,)), (PUT, "after", ()), (PUBLISH, "before", ()),
                      (PUBLISH, "after", (1,)), (STATE, "before", ()))
ARCHIVE = ["cli", "archive", "--settle-seconds", "0"]
COMPACT = ["cli", "compact", "--min-files", "2"]


@pytest.mark.parametrize(("target", "when", "n"), SWEEP_POINTS)
def test_killed_sweep_is_finished_by_the_next_sweep(
        any_env: dict[str, str], target: str, when: str, n: int) -> None:
    env = any_env
    expected = accepted(env)
    assert len(expected) == 24

    kill([ARCHIVE], env, target, when, n, lease_ttl=LEASE_TTL)
    assert events_view(settings_of(env), hot=True) == expected  # hot covers the gap

    lake = Lake(settings_of(env))
    lease = read_lease(lake, "sweep")
    if lease is not None and lease.expires_at - datetime.now(UTC) > timedelta(seconds=1):
        with pytest.raises(SweepLockedError, match="is held by"):  # the killed run's, held
            acquire_lease(lake, "sweep", ttl_seconds=LEASE_TTL, run_id="probe")
    wait_out_lease(env)  # the killed run never released its lease: taken over after expiry
    recover([ARCHIVE, COMPACT], env)

    check_lake(env, expected)
    mark = read_watermark(Lake(settings_of(env)))
    assert mark is not None and mark.at > datetime.now(UTC) - timedelta(minutes=5)


STREAM_POINTS = points((PUBLISH, "before", (1,)), (PUBLISH, "after", (1,)),
                       (PUT, "after", ()), (STATE, "after", ()))


@pytest.mark.parametrize(("target", "when", "n"), STREAM_POINTS)
def test_stream_batch_killed_on_s3_is_archived_once_when_redelivered(
        s3_env: dict[str, str], tmp_path: Path, target: str, when: str, n: int) -> None:
    table = boto3.resource("dynamodb").Table(s3_env["EVENTLAKE_TABLE"])
    from boto3.dynamodb.types import TypeSerializer

    wire = TypeSerializer()
    items = [{k: wire.serialize(v) for k, v in item.items()} for item in table.scan()["Items"]]
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps(lambda_event(sorted(items, key=lambda i: i["event_id"]["S"]))))
    expected = accepted(s3_env)

    kill([["stream", str(batch)]], s3_env, target, when, n)

    # Lambda re-delivers the batch after the timeout; the hourly compaction runs later
    recover([["stream", str(batch)], COMPACT], s3_env)

    check_lake(s3_env, expected)
