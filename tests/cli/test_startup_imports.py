"""`eventlake sql --cold-only` on a local lake starts on DuckDB alone: neither pyarrow nor the
AWS SDK nor Prefect is imported (nor logging, concurrent.futures or fcntl, which only writers
and loggers use), which is what keeps it within 1.3x of a bare
`python -c 'import duckdb; duckdb.sql(...)'` (benchmarks/cli_startup.py times it; this test
holds the budget without timing anything). Reading the hot tier, or a result that is not of
plain types, still imports what it needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from eventlake.config import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.disjoint import verify
from eventlake.lake.store import Lake

HEAVY = ("pyarrow", "boto3", "botocore", "prefect", "eventlake.hot", "eventlake.codec")
WRITERS_ONLY = ("logging", "concurrent.futures", "fcntl")
"""What a reader that logs nothing and writes nothing does without (each costs 0.2-2 ms)."""
PROBE = """
import sys
from eventlake.cli.main import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("--modules--")
print("\\n".join(sorted(sys.modules)))
print(f"--exit {code}--")
"""


def events(n: int, start: datetime) -> pa.Table:
    return pa.table({
        "event_id": [f"e{i:05d}" for i in range(n)],
        "event_type": [f"type{i % 3}" for i in range(n)],
        "timestamp": [start + timedelta(hours=i) for i in range(n)],
        "ingested_at": [start + timedelta(hours=i, seconds=1) for i in range(n)],
        "source": ["shop"] * n, "subject": [None] * n,
        "event_payload": [json.dumps({"n": i}) for i in range(n)],
        "content_hash": [f"h{i}" for i in range(n)]}, schema=EVENT_SCHEMA)


@pytest.fixture(scope="module")
def local_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 events over 3 days: a verified two-file partition, an unverified two-file one (with
    a copy of an event planted in it), single-file ones."""
    root = tmp_path_factory.mktemp("startup") / "lake"
    lake = Lake(Settings.from_env(table="events", lake_uri=str(root)))
    lake.create_marker(table="events")
    table = events(60, datetime(2026, 1, 1, tzinfo=UTC))
    lake.write(table.slice(0, 20), "sweep-a")
    lake.write(table.slice(20, 40), "sweep-b")
    verify(lake, ["2026-01-01"])
    lake.write(table.slice(30, 1), "sweep-copy")  # dt=2026-01-02 gets a copy of e00030
    return root


def run(root: Path, *argv: str) -> tuple[str, set[str], int]:
    env = {**os.environ, "EVENTLAKE_TABLE": "events", "EVENTLAKE_LAKE_URI": str(root),
           "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True,
                          text=True, check=True)
    out, _, rest = done.stdout.partition("--modules--\n")
    modules, _, code = rest.rpartition("--exit ")
    return out, set(modules.split()), int(code.strip().strip("-"))


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.startswith(HEAVY)}


def test_cold_only_sql_on_a_local_lake_imports_no_pyarrow_aws_sdk_or_prefect(
        local_lake: Path) -> None:
    out, modules, code = run(local_lake, "sql", "--cold-only", "--format", "csv",
                             "SELECT event_type, count(*) AS n, min(timestamp) AS first "
                             "FROM events GROUP BY 1 ORDER BY 1")

    assert code == 0
    assert out == ("event_type,n,first\n"
                   "type0,20,2026-01-01T00:00:00.000000Z\n"
                   "type1,20,2026-01-01T01:00:00.000000Z\n"
                   "type2,20,2026-01-01T02:00:00.000000Z\n")  # the planted copy counted once
    assert "duckdb" in modules
    assert heavy(modules) == set()
    assert "eventlake.lake.compactplan" not in modules  # a reader needs no compaction plan
    assert {m for m in modules if m.startswith(WRITERS_ONLY)} == set()


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl"])
def test_every_text_format_of_a_plain_result_stays_off_pyarrow(local_lake: Path,
                                                                 fmt: str) -> None:
    out, modules, code = run(local_lake, "sql", "--cold-only", "--format", fmt,
                             "SELECT dt, count(*) AS n, sum(1.5) AS d FROM events_cold "
                             "WHERE dt = DATE '2026-01-03' GROUP BY dt")

    assert code == 0
    assert "2026-01-03" in out and "12" in out and "18.0" in out
    assert heavy(modules) == set()


def test_a_named_query_view_is_made_and_read_without_pyarrow(local_lake: Path) -> None:
    out, modules, code = run(local_lake, "sql", "--cold-only", "--format", "csv",
                             "SELECT count(*) AS days FROM events_per_type_per_day")

    assert code == 0
    assert out == "days\n9\n"  # 3 types x 3 days
    assert heavy(modules) == set()


def test_a_lake_whose_manifests_name_no_digest_is_read_without_the_digest_module(
        tmp_path: Path) -> None:
    root = tmp_path / "lake"
    lake = Lake(Settings.from_env(table="events", lake_uri=str(root)))
    lake.create_marker(table="events")
    table = events(4, datetime(2026, 1, 1, tzinfo=UTC))
    lake.write(table.slice(0, 2), "sweep-a")
    lake.write(table.slice(2, 2), "sweep-b")  # one partition, two files, never verified

    out, modules, code = run(root, "sql", "--cold-only", "--format", "csv",
                             "SELECT count(*) AS n FROM events")

    assert (code, out) == (0, "n\n4\n")
    assert "eventlake.lake.disjoint" in modules  # the manifest was looked up...
    assert "eventlake.lake.disjointids" not in modules  # ...and named no digest to check


def test_a_result_of_other_types_still_prints_through_arrow(local_lake: Path) -> None:
    out, modules, code = run(local_lake, "sql", "--cold-only", "--format", "csv",
                             "SELECT INTERVAL 90 MINUTE AS i, [1, 2] AS l")

    assert code == 0
    assert out == 'i,l\nPT1H30M,"[1, 2]"\n'
    assert "pyarrow" in modules  # the path that renders these is Arrow's
    assert not heavy(modules) - {m for m in modules if m.startswith("pyarrow")}


def test_a_sql_error_is_one_line_and_imports_nothing_heavy(local_lake: Path) -> None:
    env = {**os.environ, "EVENTLAKE_TABLE": "events", "EVENTLAKE_LAKE_URI": str(local_lake)}
    done = subprocess.run([sys.executable, "-c", PROBE, "sql", "--cold-only",
                           "SELECT nope FROM events"], env=env, capture_output=True, text=True)

    assert "eventlake: SQL error:" in done.stderr and "nope" in done.stderr
    assert done.stdout.endswith("--exit 2--\n")
    assert heavy(set(done.stdout.split())) == set()


def test_only_the_named_queries_the_sql_uses_become_views(local_lake: Path) -> None:
    from eventlake.api import EventLake
    from eventlake.query import views

    lake = EventLake(Settings.from_env(table="events", lake_uri=str(local_lake)))
    sql = "SELECT count(*) FROM hourly_volume"
    con = views.connect(lake, hot=False, queries=views.queries_named(sql))
    try:
        made = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT "
                                          "internal ORDER BY 1").fetchall()]
    finally:
        con.close()
    assert made == ["events", "events_cold", "events_hot", "hourly_volume"]


def objects(con: object) -> set[str]:
    """The macros, tables and views of a connection (internal ones left out)."""
    rows = con.execute(  # type: ignore[attr-defined]
        "SELECT function_name FROM duckdb_functions() WHERE NOT internal "
        "AND function_type = 'table_macro' UNION ALL "
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE NOT internal "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    return {r[0] for r in rows}


def test_the_helpers_are_made_only_when_the_sql_names_them(local_lake: Path) -> None:
    from eventlake.api import EventLake
    from eventlake.query import views

    lake = EventLake(Settings.from_env(table="events", lake_uri=str(local_lake)))
    for sql, expected in [
            ("SELECT count(*) FROM events", set()),
            ("SELECT * FROM EVENTS_BETWEEN('2026-01-01', '2026-01-02')", {"events_between"}),
            ("SELECT cold_files FROM eventlake_snapshot", {"main.eventlake_snapshot"}),
            ("SELECT sum(bytes) FROM _eventlake.cold_partitions",
             {"_eventlake.cold_partitions"})]:
        queries = views.queries_named(sql)
        con = views.connect(lake, hot=False, queries=queries,
                            helpers=views.helpers_named(sql, queries))
        try:
            helpers = objects(con) - {"events", "events_cold", "events_hot"}
            assert helpers == expected, sql
            assert con.execute(sql).fetchall()  # and the SQL runs on what was made
        finally:
            con.close()


def test_a_named_query_gets_the_helpers_its_own_text_uses(
        local_lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventlake.query import views

    texts = {"between_days": "-- events of a day\nSELECT count(*) AS n FROM "
                             "events_between('2026-01-02', '2026-01-03')"}
    monkeypatch.setattr(views, "list_queries", lambda: sorted(texts))
    monkeypatch.setattr(views, "load_sql", texts.__getitem__)

    queries = views.queries_named("SELECT n FROM between_days")
    assert queries == ["between_days"]
    assert views.helpers_named("SELECT n FROM between_days", queries) == ["events_between"]


def test_sql_that_lists_the_catalog_gets_every_helper() -> None:
    from eventlake.query import views

    assert views.helpers_named("SHOW TABLES") == list(views.HELPERS)
    assert views.helpers_named("DESCRIBE events_cold") == list(views.HELPERS)
    assert views.helpers_named("SELECT function_name FROM duckdb_functions()") == list(
        views.HELPERS)  # the macro is listed there


def test_sql_listing_the_macros_on_the_command_line_sees_events_between(
        local_lake: Path) -> None:
    out, _, code = run(local_lake, "sql", "--cold-only", "--format", "csv",
                       "SELECT function_name FROM duckdb_functions() "
                       "WHERE function_type = 'table_macro' AND NOT internal")

    assert code == 0
    assert out.split() == ["function_name", "events_between"]


def test_sql_that_lists_the_catalog_sees_every_view(local_lake: Path) -> None:
    out, _, code = run(local_lake, "sql", "--cold-only", "--format", "csv",
                       "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1")

    assert code == 0
    from eventlake.api import EventLake
    from eventlake.query import views

    con = views.connect(EventLake(Settings.from_env(table="events", lake_uri=str(local_lake))),
                        hot=False)  # every view, as `lake.connect()` makes them
    try:
        every = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT "
                                           "internal ORDER BY 1").fetchall()]
    finally:
        con.close()
    assert "hourly_volume" in every
    assert out.split() == ["view_name", *every]
