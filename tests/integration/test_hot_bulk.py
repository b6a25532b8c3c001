"""A bulk EventLake.put_many against moto's HTTP server: each event stored once. (Its speed is
`python -m benchmarks bulk_put`'s business.)"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eventlake import EventLake, Outcome

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EVENTS = 2_000


def test_a_bulk_put_stores_each_event_exactly_once(server_env: str,
                                                          tmp_path: Path) -> None:
    # given a fresh table on the moto server, reached over HTTP through AWS_ENDPOINT_URL
    lake = EventLake.from_env(table=f"bulk-{uuid.uuid4().hex[:12]}",
                              lake_uri=str(tmp_path / "lake"))
    assert lake.settings.endpoint_url == server_env
    lake.init()
    batch = [{"event_type": "meter.reading", "source": f"meter/{i % 97}",
              "event_payload": {"meter": i % 97, "kwh": f"{i * 0.125:.3f}", "seq": i}}
             for i in range(EVENTS)]

    # when they are put in one call
    since = datetime.now(UTC) - timedelta(seconds=1)
    started = time.perf_counter()
    results = lake.put_many(batch)
    elapsed = time.perf_counter() - started
    until = datetime.now(UTC) + timedelta(seconds=1)
    print(f"\nput_many: {EVENTS:,} events in {elapsed:.1f} s = {EVENTS / elapsed:,.0f} events/s "
          f"(moto over HTTP, {lake.settings.put_concurrency} writers)")

    # then every event was created, under distinct ids, reported in input order
    assert [r.outcome for r in results] == [Outcome.CREATED] * EVENTS
    assert [r.position for r in results] == list(range(EVENTS))
    sent_ids = {r.event_id for r in results}
    assert len(sent_ids) == EVENTS

    # and the ingestion window holds exactly those events, each once
    started = time.perf_counter()
    read_ids = [item["event_id"]["S"] for item in lake.hot.read_ingested(since, until)]
    print(f"read_ingested: {len(read_ids):,} items in {time.perf_counter() - started:.1f} s")
    assert len(read_ids) == EVENTS
    assert set(read_ids) == sent_ids
