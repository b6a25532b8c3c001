"""Batches for target tests, built the way the read builds them (DuckDB, SEED_LINE_SQL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from eventlake.config import Settings
from eventlake.lake.store import Lake
from eventlake.replay.batch import Batch
from eventlake.replay.select import COLUMNS, SEED_LINE_SQL

START = datetime(2024, 5, 1, tzinfo=UTC)
ROWS = pa.schema([("event_id", pa.string()), ("event_type", pa.string()),
                  ("timestamp", pa.timestamp("us", tz="UTC")), ("source", pa.string()),
                  ("subject", pa.string()), ("event_payload", pa.string()),
                  ("ingested_at", pa.timestamp("us", tz="UTC"))])


def row(event_id: str, *, event_type: str = "click", seconds: float = 0,
        source: str | None = "shop", subject: str | None = None,
        payload: str = "{}") -> dict[str, Any]:
    """One selected row (the read's columns), `seconds` after START."""
    return {"event_id": event_id, "event_type": event_type,
            "timestamp": START + timedelta(seconds=seconds), "source": source,
            "subject": subject, "event_payload": payload,
            "ingested_at": START + timedelta(seconds=seconds, minutes=5)}


def batch_of(rows: list[dict[str, Any]]) -> Batch:
    """A Batch of `rows` with `_line` built by DuckDB from SEED_LINE_SQL, as the read does."""
    table = pa.Table.from_pylist(
        [{"ingested_at": START, **row} for row in rows], schema=ROWS)
    con = duckdb.connect()
    try:
        con.sql("SET TimeZone = 'UTC'")
        con.register("selected", table)
        columns = ", ".join(f'"{c}"' for c in COLUMNS)
        relation = con.sql(f"SELECT {columns}, {SEED_LINE_SQL} AS _line FROM selected")
        assert relation is not None
        return Batch(relation.to_arrow_table())
    finally:
        con.close()


class ColdTiers:
    """A local lake alone (cold-only replays never read DynamoDB)."""

    def __init__(self, root: Path) -> None:
        self.cold = Lake(Settings.from_env(table="unused", lake_uri=str(root)))
        self.hot = None


EntryRefusal = Callable[[str, int], "dict[str, Any] | None"]
"""(event_id, call number) -> the ErrorCode/ErrorMessage an entry is refused with, or None."""


def refusing_put_events(events: Any, refuse: EntryRefusal) -> list[list[str]]:
    """Wrap an EventBridge client's `put_events` so that the entries `refuse` names come back
    refused (the rest are put); the event_ids of each call, in order, fill the list returned."""
    real = events.put_events
    calls: list[list[str]] = []

    def put_events(Entries: list[dict[str, Any]]) -> Any:
        ids = [json.loads(e["Detail"])["event_id"] for e in Entries]
        calls.append(ids)
        answer = real(Entries=Entries)
        for result, event_id in zip(answer["Entries"], ids, strict=True):
            how = refuse(event_id, len(calls))
            if how is not None:
                result.clear()
                result.update(how)
        answer["FailedEntryCount"] = sum(1 for r in answer["Entries"] if "ErrorCode" in r)
        return answer

    events.put_events = put_events
    return calls
