"""Ten simulated days on moto: nothing lost, nothing doubled, whatever the stream path does.

    day      0   1   2   3   4   5   6   7   8   9
    stream   on  on  on  off off off on  on  on  on     (off: Lambda down; when it comes
    sweep    every simulated day (the archive flow)      back its backlog is gone: LATEST)
    TTL      expires_at = ingested_at + 4 days, emulated daily
    extra    re-sent duplicates every day; late events (days old) on day 7

At the end, after compaction: the lake holds exactly the accepted event_ids, each once, with
the content hashes they were accepted with.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from clock_support import Clock

from eventlake import EventLake, Outcome, Settings
from eventlake.archive.sweep import sweep
from eventlake.events.model import Event, parse_event
from eventlake.handlers import stream
from eventlake.lake.compact import compact
from eventlake.local.stack import StreamPoller, expire_ttl

# Its cost grows faster than the events a day (moto's index Query reads every item of the table
# per call, each sweep also reads its look-back and the expiry band, and the TTL emulation
# scans the table and deletes item by item); the timeout leaves room for a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

DAYS = 10
PER_DAY = 600  # every fault above, on a size that keeps the suite fast (was 5,000, then 1,500)
CHUNK = PER_DAY // 3  # a day's ingestion in three parts, spread over the day
BATCH = 400  # the stream's batch size: a day's records take more than one batch
STREAM_OFF = {3, 4, 5}
START = datetime(2026, 3, 1, tzinfo=UTC)


def day_events(day: int) -> Iterator[dict[str, Any]]:
    for i in range(PER_DAY):
        ts = START + timedelta(days=day, seconds=i * 86400 // PER_DAY)
        if day == 7 and i % 10 == 0:  # late: happened days ago, arrives now
            ts -= timedelta(days=3 + i % 3)
        yield {"event_id": f"d{day}-{i:05d}", "event_type": ("view", "cart", "order")[i % 3],
               "timestamp": ts.isoformat(), "source": "sim", "subject": f"u{i % 97}",
               "event_payload": {"day": day, "i": i, "amount": f"{i % 50}.{i % 100:02d}"}}


def load(lake: EventLake, events: list[Event], ingested_at: datetime) -> None:
    """Bulk-load fresh events as the hot store writes them (BatchWriteItem: ~10x faster on
    moto than conditional puts; the ids are new, so there is nothing to condition on)."""
    ddb = lake.clients.dynamodb
    for start in range(0, len(events), 25):
        requests: Any = [{"PutRequest": {"Item": lake.hot.to_item(e, ingested_at)}}
                         for e in events[start:start + 25]]
        while requests:
            response = ddb.batch_write_item(RequestItems={lake.settings.table: requests})
            requests = response.get("UnprocessedItems", {}).get(lake.settings.table, [])


def test_ten_days_with_the_stream_down_for_three_lose_and_double_nothing(
        mocked_aws: None, tmp_path: Path) -> None:
    settings = Settings.from_env(table="ten-days", lake_uri=str(tmp_path / "lake"),
                                 retention_days=4, ttl_safety_hours=24, index_shards=2,
                                 archive_settle_seconds=0)
    lake = EventLake(settings)
    lake.init()
    clock = Clock(START)
    lake.hot._clock = clock  # ingestion time is simulated
    cold = lake.cold
    stream.reset(cold)
    poller: StreamPoller | None = StreamPoller(lake.clients, settings.table, stream.handler,
                                               batch_size=BATCH)
    accepted: dict[str, str] = {}  # event_id -> content hash it was accepted with

    for day in range(DAYS):
        raw = list(day_events(day))
        events: list[Event] = []
        for chunk_start in range(0, PER_DAY, CHUNK):  # ingestion spread over the day
            clock.at = START + timedelta(days=day, seconds=chunk_start * 86400 // PER_DAY)
            chunk = [parse_event(r, now=clock.at + timedelta(days=1))
                     for r in raw[chunk_start:chunk_start + CHUNK]]
            load(lake, chunk, clock.at)
            events.extend(chunk)
        # producers retrying: 200 identical re-sends are duplicates, never new copies
        assert {r.outcome for r in lake.hot.put_many(events[:200])} == {Outcome.DUPLICATE}
        accepted.update({e.event_id: e.content_hash for e in events})

        if day in STREAM_OFF:
            poller = None  # Lambda is down; its stream backlog ages out
        else:
            if poller is None:
                poller = StreamPoller(lake.clients, settings.table, stream.handler,
                                      batch_size=BATCH, start="LATEST")
            poller.poll_once()

        end_of_day = START + timedelta(days=day + 1)
        report = sweep(cold, lake.hot, settings, now=end_of_day)
        assert report.ttl.at_risk == 0
        expire_ttl(lake.clients, settings.table, now=end_of_day)

    if poller is not None:
        poller.poll_once()  # the TTL REMOVE records: counted, never deleted from the lake
    compact(cold, min_files=2)

    rows: list[dict[str, Any]] = []
    for f in cold.list_files():  # raw rows of every file: no de-duplication here
        rows.extend(pq.read_table(f.path, columns=["event_id", "content_hash"]).to_pylist())
    ids = [r["event_id"] for r in rows]
    assert len(ids) == len(set(ids)), "an event is in the lake more than once"
    assert set(ids) == set(accepted), "the lake lost or invented events"
    assert all(accepted[r["event_id"]] == r["content_hash"] for r in rows)
    assert len(accepted) == DAYS * PER_DAY
