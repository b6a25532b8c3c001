"""Shared by the sweep, lease and TTL tests: a hot table and a local lake on in-process moto,
items written with a chosen ingestion time, and readers that count every stored row.

Items go straight into the table (`HotStore.to_item` + BatchWriteItem), so a test decides when
each event was "ingested" and the sweep runs at a chosen `now`. Settings use 2 index shards
and a short retention: moto answers each index Query in time proportional to the table, and a
first sweep queries every (day, shard) pair of the retention period.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventlake import EventLake
from eventlake.archive.lease import SweepLockedError
from eventlake.archive.report import SweepReport
from eventlake.archive.sweep import sweep
from eventlake.aws import Clients
from eventlake.config import Settings
from eventlake.events.model import parse_event
from eventlake.hot.store import HotStore, Item
from eventlake.hot.tablesettings import tags_for
from eventlake.lake.store import Lake

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
TEST_SIZES: dict[str, Any] = {"index_shards": 2, "retention_days": 3.0, "ttl_safety_hours": 6.0}
"""The settings of every World unless a test says otherwise (see the module's docstring)."""


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@dataclass
class World:
    """The two tiers of one test, and a way to put events in at chosen ingestion times."""

    lake: Lake
    hot: HotStore
    settings: Settings
    clients: Clients

    def item(self, event_id: str, ingested_at: datetime, *, timestamp: datetime | None = None,
             **fields: Any) -> Item:
        stamp = timestamp or ingested_at - timedelta(seconds=1)
        event = parse_event({"event_id": event_id, "event_type": "order.placed",
                             "timestamp": stamp.isoformat(), "event_payload": {"id": event_id},
                             **fields}, now=ingested_at)
        return self.hot.to_item(event, ingested_at)

    def ingest(self, ids: Iterable[str], at: datetime, *, timestamp: datetime | None = None
               ) -> list[str]:
        """Store events as if ingested at `at` (their timestamps 1 s earlier by default)."""
        ids = list(ids)
        self.put_items([self.item(i, at, timestamp=timestamp) for i in ids])
        return ids

    def put_items(self, items: list[Item]) -> None:
        ddb = self.clients.dynamodb
        for start in range(0, len(items), 25):
            response = ddb.batch_write_item(RequestItems={self.settings.table: [
                {"PutRequest": {"Item": item}} for item in items[start:start + 25]]})
            assert not response.get("UnprocessedItems")

    def sweep(self, now: datetime, settle_seconds: float = 0, **kwargs: Any) -> SweepReport:
        return sweep(self.lake, self.hot, self.settings, now=now,
                     settle_seconds=settle_seconds, **kwargs)

    def stored_rows(self) -> Counter[str]:
        """event_id -> how many rows of the lake's files hold it (copies are not merged)."""
        return Counter(self.lake.read(columns=["event_id"])["event_id"].to_pylist())

    def hot_ids(self) -> set[str]:
        items = self.clients.dynamodb.scan(TableName=self.settings.table)["Items"]
        return {item["event_id"].get("S") or item["event_id"]["N"] for item in items}


def race_two_sweeps(world: World, monkeypatch: pytest.MonkeyPatch, now: datetime
                    ) -> tuple[list[SweepReport], list[SweepLockedError]]:
    """Start two sweeps of `world` together (threads `sweeper-0`, `sweeper-1`); the one that
    gets the lease waits, inside it, until the other has been refused. The reports and the
    refusals, in the order they came."""
    from eventlake.archive import sweep as archive

    loser_done = threading.Event()
    real = archive.read_watermark

    def slow_read_watermark(lake: Lake) -> Any:
        loser_done.wait(timeout=10)
        return real(lake)

    monkeypatch.setattr(archive, "read_watermark", slow_read_watermark)
    start = threading.Barrier(2, timeout=10)
    reports: list[SweepReport] = []
    refusals: list[SweepLockedError] = []

    def run() -> None:
        start.wait()
        try:
            reports.append(world.sweep(now))
        except SweepLockedError as exc:
            refusals.append(exc)
            loser_done.set()

    threads = [threading.Thread(target=run, name=f"sweeper-{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.setattr(archive, "read_watermark", real)
    return reports, refusals


def record_on_table(clients: Clients, settings: Settings) -> None:
    """Record `settings` on their table as `eventlake init` would have, replacing what is
    there: the fixture's table was initialised with the defaults, a test's table stands for
    one initialised with the test's settings (an empty table; live tables never change)."""
    ddb = clients.dynamodb
    arn = ddb.describe_table(TableName=settings.table)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=tags_for(settings))


def make_world(lake: EventLake, **settings: Any) -> World:
    """A World over the fixture's table (recorded as initialised with the world's settings)
    and lake directory, with test-sized settings."""
    changes: dict[str, Any] = {**TEST_SIZES, **settings}
    configured = lake.settings.with_(**changes)
    record_on_table(lake.clients, configured)
    return World(Lake(configured, clients=lake.clients), HotStore(configured, lake.clients),
                 configured, lake.clients)
