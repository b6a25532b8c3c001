"""The lake's Arrow schema: the one definition every writer and reader shares.

Files live at `<root>/events/dt=YYYY-MM-DD/<name>.parquet`; `dt` is the UTC date of `timestamp`
and lives only in the path (Hive partitioning), not in the files.
"""

from __future__ import annotations

import pyarrow as pa

UTC_MICROS = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema([
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("timestamp", UTC_MICROS, nullable=False),
    pa.field("ingested_at", UTC_MICROS, nullable=False),
    pa.field("source", pa.string()),
    pa.field("subject", pa.string()),
    pa.field("event_payload", pa.string(), nullable=False),
    pa.field("content_hash", pa.string(), nullable=False),
])
SORT_KEYS = [("event_type", "ascending"), ("timestamp", "ascending"), ("event_id", "ascending")]
"""Rows are sorted by (event_type, timestamp); event_id breaks ties so output is deterministic."""
