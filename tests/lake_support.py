"""Rows as the lake stores them, for tests that write lake files directly, and a reader of
the lake alone."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pyarrow as pa

from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.store import Lake


def day_rows(first: int, n: int, day: date) -> pa.Table:
    """Events first..first+n-1 of `day` (ids `<day>-<i>`, one a second from midnight, all
    ingested an hour after it), as the lake stores them."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return pa.Table.from_pylist([
        {"event_id": f"{day}-{i:04d}", "event_type": "order", "source": "shop",
         "timestamp": start + timedelta(seconds=i), "ingested_at": start + timedelta(hours=1),
         "subject": None, "event_payload": json.dumps({"n": i}), "content_hash": f"h{i}"}
        for i in range(first, first + n)], schema=EVENT_SCHEMA)


@dataclass
class ColdOnly:
    """The Tiers of a reader of the cold tier only (every read passes hot=False), whose clock
    says `now`."""

    cold: Lake
    now: datetime

    @property
    def hot(self) -> Any:
        return SimpleNamespace(now=lambda: self.now)
