"""Helpers of the export tests: the small `shop` lake, the selection the tests export, and what
`eventlake sql` gives for it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from eventlake import EventLake, Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.replay.select import Selection

START = datetime(2024, 5, 1, tzinfo=UTC)
COLUMNS = list(EVENT_SCHEMA.names)
SALT = "pepper"
SELECTION = Selection(START, START + timedelta(days=2), cold_only=True)
"""Two days of the shop lake: events e-001..e-006 (e-007 on falls after it)."""


def row(n: int, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": f"e-{n:03d}", "event_type": event_type,
            "timestamp": START + timedelta(hours=7 * n), "ingested_at": START + timedelta(days=3),
            "source": "shop", "subject": f"s{n % 2}", "event_payload": json.dumps(payload),
            "content_hash": f"h{n}"}


def shop_lake(folder: Path) -> EventLake:
    """A local lake at `folder`/lake holding ten events of two types (one without
    `customer.email`) in one file. Call it under moto (`mocked_aws`). The tests read the
    Parquet lake only (cold-only selections), so the lake gets its marker but no DynamoDB
    table: provisioning one would cost most of each test."""
    lake = EventLake(Settings.from_env(table="events-test", lake_uri=str(folder / "lake")))
    lake.cold.create_marker(table=lake.settings.table)
    return write_shop(lake)


def write_shop(lake: EventLake) -> EventLake:
    """Ten events of two types in one lake file: nested fields, a list (a JSON column; JSON
    null in every third event), one event without `customer.email`."""
    rows = [row(n, "order.placed" if n % 2 else "page.viewed",
                {"n": n, "customer": {"email": f"c{n}@x.com", "tier": n}, "price": 1.5 * n,
                 "items": [{"sku": f"k{n}"}] if n % 3 else None})
            for n in range(1, 10)]
    rows.append(row(10, "order.placed", {"n": 10, "customer": {"tier": 0}}))  # no email
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "sweep-a")
    return lake


def expected(lake: EventLake, selection: Selection = SELECTION) -> list[dict[str, Any]]:
    """The selection's events as `eventlake sql` gives them, in (timestamp, event_id) order."""
    names = ", ".join(f'"{c}"' for c in COLUMNS)
    types = ""
    if selection.event_types:
        types = " AND event_type IN (" + ", ".join(f"'{t}'" for t in selection.event_types) + ")"
    table = lake.sql(f"SELECT {names} FROM events WHERE timestamp >= $a AND timestamp < $b"
                     f"{types} ORDER BY timestamp, event_id",
                     {"a": selection.from_ts, "b": selection.to_ts}, hot=False)
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
