"""A producer process whose clock really runs 4 minutes slow (libfaketime shifts every clock
call of the process; botocore signs with it), writing to the moto server after a sweep moved
the watermark: after the next sweep every event it wrote is in the lake.

    correction on   every stamp within seconds of real time: the process reads the settings
                    recorded on the table (DescribeTable, ListTagsOfResource) before its first
                    write, and those responses' `Date` measured its offset
    correction off  every stamp is 4 min behind: the sweep's 10-minute look-back catches them
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from archive_support import World

from eventlake.archive.sweep import sweep

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
SLOW = timedelta(seconds=240)
SLACK = timedelta(seconds=5)
PRODUCER = """
import json, sys
from eventlake import EventLake

lake = EventLake.from_env()
events = [{"event_id": i, "event_type": "order.placed", "source": "shop", "subject": "user-7",
           "event_payload": {"order": i}} for i in sys.argv[1:]]
results = [lake.put(events[0]), *lake.put_many(events[1:])]
print(json.dumps([r.outcome.value for r in results]))
"""


@pytest.fixture
def faketime() -> str:
    found = shutil.which("faketime")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("faketime is missing: CI must install it (.ci/run: apt-get install "
                        "faketime); without it the slow-clock guarantee is untested")
        pytest.skip("needs libfaketime to run a producer with a slow clock: "
                    "`apt-get install faketime` (CI installs it and fails without it)")
    return found


def run_slow_producer(faketime: str, s3_world: World, ids: list[str], *, correction: bool
                      ) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EVENTLAKE_TABLE": s3_world.settings.table,
           "EVENTLAKE_LAKE_URI": s3_world.settings.lake_uri,
           "EVENTLAKE_INDEX_SHARDS": str(s3_world.settings.index_shards),
           "EVENTLAKE_RETENTION_DAYS": str(s3_world.settings.retention_days),
           "EVENTLAKE_CLOCK_CORRECTION": "true" if correction else "false"}
    done = subprocess.run([faketime, "-f", f"-{SLOW.seconds}s", sys.executable, "-c", PRODUCER,
                           *ids], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    outcomes: list[str] = json.loads(done.stdout)
    return outcomes


def stamps(s3_world: World) -> dict[str, datetime]:
    items = s3_world.clients.dynamodb.scan(TableName=s3_world.settings.table)["Items"]
    return {i["event_id"]["S"]: datetime.fromisoformat(i["ingested_at"]["S"]) for i in items}


@pytest.mark.parametrize("correction", [True, False], ids=["corrected", "uncorrected"])
def test_a_producer_four_minutes_slow_loses_no_event(faketime: str, s3_world: World,
                                                     correction: bool) -> None:
    # given a table and an S3 lake on the moto server, and a sweep (this process's clock is
    # right) that moved the watermark to now
    first = sweep(s3_world.lake, s3_world.hot, s3_world.settings, settle_seconds=0)
    # when a producer process whose clock runs 4 minutes slow writes 20 events
    ids = [f"order-{i:02d}" for i in range(20)]
    started = datetime.now(UTC)
    assert run_slow_producer(faketime, s3_world, ids, correction=correction) == ["created"] * 20
    ended = datetime.now(UTC)
    # then its stamps are 4 minutes behind, or (corrected) none of them
    stamped = stamps(s3_world)
    behind = [i for i in ids if started - SLOW - SLACK <= stamped[i] <= ended - SLOW + SLACK]
    on_time = [i for i in ids if started - SLACK <= stamped[i] <= ended + SLACK]
    if correction:
        assert behind == [] and on_time == ids
    else:
        assert behind == ids and on_time == []
    if not correction:
        assert stamped[ids[0]] < first.watermark_after  # behind the watermark the sweep set
    # and the next sweep archives every one of them, from its look-back (a few seconds later:
    # a corrected stamp may be up to a second ahead of real time, the settle lag's business)
    report = sweep(s3_world.lake, s3_world.hot, s3_world.settings, settle_seconds=0,
                   now=ended + SLACK)
    assert s3_world.stored_rows() == Counter(ids)
    assert (report.counts.archived, report.beyond_skew, report.ttl.unarchived) == (20, 0, 0)
