"""Rows as the lake stores them, for tests that write lake files directly."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from eventlake.events.schema import EVENT_SCHEMA


def day_rows(first: int, n: int, day: date) -> pa.Table:
    """Events first..first+n-1 of `day` (ids `<day>-<i>`, one a second from midnight, all
    ingested an hour after it), as the lake stores them."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return pa.Table.from_pylist([
        {"event_id": f"{day}-{i:04d}", "event_type": "order", "source": "shop",
         "timestamp": start + timedelta(seconds=i), "ingested_at": start + timedelta(hours=1),
         "subject": None, "event_payload": json.dumps({"n": i}), "content_hash": f"h{i}"}
        for i in range(first, first + n)], schema=EVENT_SCHEMA)
