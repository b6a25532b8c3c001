"""The export flow on Prefect's real engine (the session's one temporary server): a day's events
to a file named after the day, parameters as a deployment gives them (strings), a re-run
rewriting the same file, the run's artifact."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flow_support import artifact

import flows.export as export_flow
from eventlake import EventLake
from eventlake.events.schema import EVENT_SCHEMA

START = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def export_lake(mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EventLake:
    """The lake the flow builds from EVENTLAKE_*: six events over two days."""
    monkeypatch.setenv("EVENTLAKE_TABLE", "export-flow-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    env_lake = EventLake.from_env()
    env_lake.init()
    rows: list[dict[str, Any]] = [
        {"event_id": f"x-{n}", "event_type": ("click", "order")[n % 2],
         "timestamp": START + timedelta(hours=9 * n), "ingested_at": START + timedelta(days=3),
         "source": "shop", "subject": None,
         "event_payload": json.dumps({"n": n, "email": f"u{n}@example.com"}),
         "content_hash": f"h{n}"} for n in range(6)]
    env_lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "sweep-a")
    return env_lake


def test_the_export_flow_writes_one_day_to_a_file_named_after_it_and_rewrites_it(
        prefect_server: None, export_lake: EventLake, tmp_path: Path) -> None:
    out_dir = tmp_path / "exports"

    # parameters as `prefect deployment run -p ...` gives them: strings
    state = export_flow.export(out_dir=str(out_dir), day="2024-05-01",  # type: ignore[arg-type]
                               redact=["email"], cold_only=True, return_state=True)
    again = export_flow.export(out_dir=str(out_dir), day="2024-05-01",  # type: ignore[arg-type]
                               redact=["email"], cold_only=True, return_state=True)

    assert state.is_completed() and again.is_completed()
    path = out_dir / "events-2024-05-01.parquet"
    assert state.result()["out"] == str(path) and again.result()["rows"] == 3
    table = pq.read_table(path)
    assert table.column("event_id").to_pylist() == ["x-0", "x-1", "x-2"]  # hours 0, 9, 18
    assert all("email" not in json.loads(p) for p in table.column("event_payload").to_pylist())
    assert sorted(p.name for p in out_dir.iterdir()) == ["events-2024-05-01.parquet"]
    rows, _ = artifact("eventlake-export")
    assert (rows["events"], rows["redacted"], rows["format"]) == ("3", "email", "parquet")


def test_the_export_file_is_named_after_its_days_and_format() -> None:
    day = START.date()
    assert export_flow.out_path("e", day, 1, "csv", False) == "e/events-2024-05-01.csv"
    assert export_flow.out_path("e", day, 7, "duckdb", False) == "e/events-2024-05-01-7d.duckdb"
    assert export_flow.out_path("e", day, 1, "parquet", True) == "e/events-2024-05-01"
    assert export_flow.out_path("s3://b/x/", day, 1, "csv", False) == (
        "s3://b/x/events-2024-05-01.csv")


def test_the_export_flow_writes_to_s3(prefect_server: None, export_lake: EventLake) -> None:
    s3 = export_lake.clients.s3
    s3.create_bucket(Bucket="bi-exports")

    state = export_flow.export(out_dir="s3://bi-exports/daily", day="2024-05-01",  # type: ignore[arg-type]
                               format="csv", cold_only=True, return_state=True)

    assert state.is_completed()
    assert state.result()["out"] == "s3://bi-exports/daily/events-2024-05-01.csv"
    body = s3.get_object(Bucket="bi-exports", Key="daily/events-2024-05-01.csv")["Body"].read()
    lines = body.decode().splitlines()
    assert lines[0].startswith("event_id,") and [x.split(",")[0] for x in lines[1:]] == [
        "x-0", "x-1", "x-2"]
