"""Resuming after a real process kill: a JSONL replay killed with SIGKILL at a random point,
then run again with the same checkpoint, leaves every selected event in the file once, in
order."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from eventlake import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.store import Lake

ROOT = Path(__file__).parents[2]
START = datetime(2024, 5, 1, tzinfo=UTC)
DAYS = 10
PER_DAY = 2_000

REPLAY = textwrap.dedent("""
    import sys, time
    from datetime import datetime, timedelta
    from eventlake import Settings
    from eventlake.lake.store import Lake
    from eventlake.replay import targets
    from eventlake.replay.run import replay
    from eventlake.replay.select import Selection

    lake_uri, out, ckpt, slow = sys.argv[1:5]
    if slow == "1":  # widen the gap between a batch written and its checkpoint
        send = targets.JsonlTarget.send
        def slow_send(self, events):
            offset = send(self, events)
            time.sleep(0.002)
            return offset
        targets.JsonlTarget.send = slow_send

    class ColdTiers:
        cold = Lake(Settings.from_env(table="unused", lake_uri=lake_uri))
        hot = None

    start = datetime.fromisoformat(sys.argv[5])
    selection = Selection(start, start + timedelta(days=int(sys.argv[6])), cold_only=True)
    report = replay(ColdTiers(), selection, "jsonl:" + out, checkpoint=ckpt, batch_size=50,
                    now=start + timedelta(days=30))
    print(report.summary())
""")


def write_lake(root: Path) -> list[str]:
    """DAYS days of PER_DAY events, every fourth pair sharing a timestamp (event_id breaks
    the tie, against the files' own sort), in two files per day; the expected order."""
    lake = Lake(Settings.from_env(table="unused", lake_uri=str(root)))
    rows = []
    for n in range(DAYS * PER_DAY):
        stamp = START + timedelta(seconds=(n // 2) * (86_400 * DAYS // (DAYS * PER_DAY) * 2))
        rows.append({"event_id": f"id-{(n * 7919) % (DAYS * PER_DAY):06d}",
                     "event_type": ["click", "order"][n % 2], "timestamp": stamp,
                     "ingested_at": START + timedelta(days=DAYS + 1), "source": "shop",
                     "subject": f"user/{n % 5}", "event_payload": json.dumps({"n": n}),
                     "content_hash": f"h{n}"})
    lake.write(pa.Table.from_pylist(rows[0::2], schema=EVENT_SCHEMA), "sweep-a")
    lake.write(pa.Table.from_pylist(rows[1::2], schema=EVENT_SCHEMA), "sweep-b")
    return [r["event_id"] for r in sorted(rows, key=lambda r: (r["timestamp"], r["event_id"]))]


def run_replay(root: Path, out: Path, ckpt: Path, *, slow: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", REPLAY, str(root), str(out), str(ckpt), "1" if slow else "0",
         START.isoformat(), str(DAYS)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_a_killed_jsonl_replay_resumes_with_each_event_once_in_order(tmp_path: Path) -> None:
    # given: 20,000 events in a local lake
    expected = write_lake(tmp_path / "lake")
    out, ckpt = tmp_path / "out.jsonl", tmp_path / "replay.ckpt"
    rng = random.Random()

    # when: a replay is killed (SIGKILL) at a random point, twice, then run to the end
    kills = []
    for low, high in ((500, 8_000), (9_000, 17_000)):
        threshold = rng.randint(low, high)
        process = run_replay(tmp_path / "lake", out, ckpt, slow=True)
        deadline = time.monotonic() + 120
        while lines(out) < threshold and process.poll() is None:
            assert time.monotonic() < deadline, "the replay made no progress"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL, "it finished before the kill"
        kills.append(json.loads(ckpt.read_text())["count"])
    final = run_replay(tmp_path / "lake", out, ckpt, slow=False)
    stdout, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr

    # then: the file holds every event once, in (timestamp, event_id) order
    got = [json.loads(line)["event_id"] for line in out.read_text().splitlines()]
    assert len(got) == len(set(got)) == len(expected) == DAYS * PER_DAY
    assert got == expected
    assert json.loads(ckpt.read_text())["count"] == len(expected)
    assert 0 < kills[0] < kills[1] < len(expected)
    assert f"resumed after {kills[1]}" in stdout
