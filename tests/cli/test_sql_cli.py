"""`eventlake sql`: SQL sources, output formats, parameters, errors and the prompt.

Most tests run the real command against a stand-in connection (DuckDB with an `events` view
over a few events built by the real event model); the last one runs it end to end on a lake.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_event

from eventlake import EventLake, Settings, parse_event
from eventlake.cli.main import main
from eventlake.events.schema import EVENT_SCHEMA

INGESTED = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
SIGNUP_PAYLOAD = '{"plan":"pro","price":19.9}'  # canonical JSON, as the lake stores it


def stand_in_events() -> pa.Table:
    """Three events as the lake stores them: an EventBridge event and two seed-shape ones."""
    events = [
        parse_event(load_event("eventbridge_order_shipped.json"), now=INGESTED),
        parse_event({"event_id": "e-1", "event_type": "signup",
                     "timestamp": "2026-03-14T09:00:00Z",
                     "event_payload": json.loads(SIGNUP_PAYLOAD, parse_float=Decimal)},
                    now=INGESTED),
        parse_event({"event_id": "e-2", "event_type": "signup",
                     "timestamp": "2026-03-13T23:59:59.5+00:00", "subject": "user/42",
                     "event_payload": {"note": "x" * 80}}, now=INGESTED),
    ]
    table = pa.Table.from_pylist([
        {"event_id": e.event_id, "event_type": e.event_type, "timestamp": e.timestamp,
         "ingested_at": INGESTED, "source": e.source, "subject": e.subject,
         "event_payload": e.payload, "content_hash": e.content_hash} for e in events
    ], schema=EVENT_SCHEMA)
    return table.append_column("dt", pa.array([e.timestamp.date() for e in events]))


def stand_in_connection() -> Any:
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    con.register("stand_in_events", stand_in_events())
    con.sql("CREATE VIEW events AS SELECT * FROM stand_in_events")
    con.sql("CREATE VIEW events_cold AS SELECT * FROM stand_in_events")
    return con


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    """`eventlake sql` on the stand-in connection; the list collects each connect's args."""
    calls: list[argparse.Namespace] = []

    def connect(args: argparse.Namespace, typed: bool = True, **_: Any) -> Any:
        calls.append(args)
        return stand_in_connection()

    monkeypatch.setattr("eventlake.cli.sql._connect", connect)
    return calls


@pytest.fixture
def sql(connects: list[argparse.Namespace], capsys: pytest.CaptureFixture[str]
        ) -> Callable[..., tuple[int, str, str]]:
    """Run `eventlake sql ARGS...`; returns (exit code, stdout, stderr)."""
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["sql", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


Sql = Callable[..., tuple[int, str, str]]
BY_TYPE = "SELECT event_type, count(*) AS n FROM events GROUP BY ALL ORDER BY event_type"


# --- table ------------------------------------------------------------------------------------

def test_table_aligns_columns_under_a_header_and_ends_with_a_row_count(sql: Sql) -> None:
    code, out, _ = sql(BY_TYPE)

    assert code == 0
    assert out.splitlines() == [
        "event_type     n",
        "-------------  -",
        "order.shipped  1",
        "signup         2",
        "(2 rows)",
    ]


def test_table_right_aligns_numbers_and_prints_null(sql: Sql) -> None:
    _, out, _ = sql("SELECT event_id, subject, length(event_payload) AS size FROM events "
                    "WHERE event_type = 'signup' ORDER BY event_id")

    header, _, *rows, footer = out.splitlines()
    assert header == "event_id  subject  size"
    assert rows == ["e-1       NULL       27",
                    "e-2       user/42    91"]
    assert footer == "(2 rows)"


def test_table_cuts_long_cells_with_an_ellipsis(sql: Sql) -> None:
    _, out, _ = sql("SELECT event_payload FROM events WHERE event_id = 'e-2'")

    cell = out.splitlines()[2]
    assert cell == '{"note":"' + "x" * 30 + "…"
    assert len(cell) == 40
    _, wide, _ = sql("--max-width", "0", "SELECT event_payload FROM events WHERE event_id = 'e-2'")
    assert '"' + "x" * 80 + '"}' in wide


def test_table_shows_max_rows_and_says_how_many_were_not_shown(sql: Sql) -> None:
    _, out, _ = sql("SELECT range AS i FROM range(250)")
    lines = [line.strip() for line in out.splitlines()]
    assert lines[:4] == ["i", "--", "0", "1"] and lines[-2] == "99"
    assert lines[-1] == "(250 rows, 150 not shown: --max-rows 0 shows all)"

    _, out, _ = sql("--max-rows", "3", "SELECT range AS i FROM range(250)")
    assert out.splitlines()[2:] == ["0", "1", "2",
                                    "(250 rows, 247 not shown: --max-rows 0 shows all)"]

    _, out, _ = sql("--max-rows", "0", "SELECT range AS i FROM range(250)")
    assert len(out.splitlines()) == 2 + 250 + 1 and out.endswith("(250 rows)\n")


def test_table_keeps_one_line_per_row_and_says_one_row(sql: Sql) -> None:
    _, out, _ = sql("SELECT 'a' || chr(10) || 'b' AS text, 42 AS answer")

    assert out.splitlines() == ["text  answer", "----  ------", "a\\nb      42", "(1 row)"]


def test_a_statement_without_rows_says_ok_and_explain_prints_the_plan(sql: Sql) -> None:
    assert sql("SET threads = 1")[1] == "OK\n"
    _, plan, _ = sql("EXPLAIN SELECT * FROM events")
    assert "explain_key" not in plan and "SCAN" in plan.upper()


# --- csv / json / jsonl / parquet ---------------------------------------------------------------

def test_csv_parses_back_with_iso_timestamps_and_json_text_as_is(sql: Sql) -> None:
    code, out, _ = sql("--format", "csv",
                       "SELECT event_id, timestamp, subject, event_payload, dt, "
                       "1.50::DECIMAL(5, 2) AS price FROM events ORDER BY event_id")

    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["event_id"] for r in rows] == ["7bf73129-1428-4cd3-a780-95db273d1602", "e-1", "e-2"]
    signup = rows[1]
    assert signup["timestamp"] == "2026-03-14T09:00:00.000000Z"
    assert datetime.fromisoformat(signup["timestamp"]) == datetime(2026, 3, 14, 9, tzinfo=UTC)
    assert signup["event_payload"] == SIGNUP_PAYLOAD
    assert signup["subject"] == ""  # NULL
    assert signup["dt"] == "2026-03-14" and signup["price"] == "1.50"
    assert rows[2]["timestamp"] == "2026-03-13T23:59:59.500000Z"


def test_json_is_one_array_with_exact_numbers_and_json_columns_embedded(sql: Sql) -> None:
    code, out, _ = sql("--format", "json",
                       "SELECT event_id, timestamp, event_payload, event_payload::JSON AS payload,"
                       " 12345678901234567890.12::DECIMAL(38, 2) AS big, NULL AS nothing "
                       "FROM events WHERE event_id = 'e-1'")

    assert code == 0
    rows = json.loads(out, parse_float=Decimal)
    assert rows == [{"event_id": "e-1", "timestamp": "2026-03-14T09:00:00.000000Z",
                     "event_payload": SIGNUP_PAYLOAD,
                     "payload": {"plan": "pro", "price": Decimal("19.9")},
                     "big": Decimal("12345678901234567890.12"), "nothing": None}]
    assert '"payload": {"plan":"pro","price":19.9}' in out  # the JSON text itself, as is


def test_json_of_no_rows_is_an_empty_array(sql: Sql) -> None:
    assert json.loads(sql("--format", "json", "SELECT * FROM events WHERE false")[1]) == []


def test_jsonl_has_one_object_per_line(sql: Sql) -> None:
    _, out, _ = sql("--format", "jsonl", BY_TYPE)

    assert [json.loads(line) for line in out.splitlines()] == [
        {"event_type": "order.shipped", "n": 1}, {"event_type": "signup", "n": 2}]


def test_nested_values_render_as_json_and_intervals_as_iso_durations(sql: Sql) -> None:
    query = ("SELECT [1, 2] AS list, {'x': 1.5::DECIMAL(3, 1)} AS struct, MAP {'k': 1} AS map,"
             " INTERVAL 3 DAY + INTERVAL 90 MINUTE AS span, 'ab'::BLOB AS raw, 1.5::DOUBLE AS f")
    _, out, _ = sql("--format", "jsonl", query)
    assert json.loads(out, parse_float=Decimal) == {
        "list": [1, 2], "struct": {"x": Decimal("1.5")}, "map": {"k": 1},
        "span": "P3DT1H30M", "raw": "ab", "f": Decimal("1.5")}

    _, out, _ = sql("--format", "csv", query)
    assert list(csv.reader(io.StringIO(out)))[1] == [
        "[1, 2]", '{"x": 1.5}', '{"k": 1}', "P3DT1H30M", "ab", "1.5"]


def test_parquet_needs_out(sql: Sql) -> None:
    code, out, err = sql("--format", "parquet", BY_TYPE)

    assert code == 2 and out == ""
    assert err == "eventlake: error: --format parquet writes a file: add --out PATH\n"


def test_parquet_reads_back_with_pyarrow_keeping_types(sql: Sql, tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"

    code, out, _ = sql("--format", "parquet", "--out", str(path),
                       "SELECT event_id, timestamp, dt, 19.90::DECIMAL(6, 2) AS price "
                       "FROM events ORDER BY event_id")

    assert code == 0 and out == ""
    table = pq.read_table(path)
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("price").type == pa.decimal128(6, 2)
    assert table.column("dt").to_pylist()[1] == date(2026, 3, 14)
    assert table.column("event_id").to_pylist()[1:] == ["e-1", "e-2"]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left beside it


def test_a_column_parquet_cannot_hold_is_named(sql: Sql, tmp_path: Path) -> None:
    code, _, err = sql("--format", "parquet", "--out", str(tmp_path / "x.parquet"),
                       "SELECT INTERVAL 3 DAY AS span")

    assert code == 2 and "month_day_nano_interval" in err and "CAST(x AS VARCHAR)" in err
    assert list(tmp_path.iterdir()) == []


def test_an_out_file_in_a_missing_folder_is_named(sql: Sql, tmp_path: Path) -> None:
    code, _, err = sql("--format", "csv", "--out", str(tmp_path / "no" / "x.csv"), "SELECT 1")

    assert code == 2 and err.startswith("eventlake: error: cannot write `") and "x.csv" in err


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "jsonl"])
def test_out_writes_the_same_text_to_a_file_instead_of_stdout(
        sql: Sql, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"result.{fmt}"
    _, printed, _ = sql("--format", fmt, BY_TYPE)

    code, out, _ = sql("--format", fmt, "--out", str(path), BY_TYPE)

    assert code == 0 and out == ""
    assert path.read_text(encoding="utf-8") == printed


def test_a_failing_query_leaves_an_existing_out_file_alone(sql: Sql, tmp_path: Path) -> None:
    path = tmp_path / "result.csv"
    path.write_text("before\n")

    code, _, err = sql("--format", "csv", "--out", str(path),
                       "SELECT CAST(event_type AS INTEGER) FROM events")

    assert code == 2 and "Conversion Error" in err
    assert path.read_text() == "before\n"
    assert list(tmp_path.iterdir()) == [path]


# --- parameters ---------------------------------------------------------------------------------

def test_params_are_ints_and_floats_when_they_parse_else_text(sql: Sql) -> None:
    code, out, _ = sql("--format", "jsonl", "SELECT typeof($n) AS n, typeof($x) AS x, "
                       "typeof($day) AS day, typeof($word) AS word, typeof($j) AS j, $j AS jv",
                       "--param", "n=-42", "--param", "x=1e3", "--param", "day=2026-03-14",
                       "--param", "word=nan", "--param", 'j:={"a": [1, 2]}')

    assert code == 0
    assert json.loads(out) == {"n": "INTEGER", "x": "DOUBLE", "day": "VARCHAR",
                               "word": "VARCHAR", "j": "STRUCT(a INTEGER[])",
                               "jv": {"a": [1, 2]}}


def test_params_filter_events(sql: Sql) -> None:
    _, out, _ = sql("--format", "csv", "SELECT event_id FROM events WHERE event_type = $type "
                    "AND timestamp >= $since::TIMESTAMPTZ ORDER BY 1",
                    "--param", "type=signup", "--param", "since=2026-03-14")

    assert out.splitlines() == ["event_id", "e-1"]


@pytest.mark.parametrize(("argv", "message"), [
    (["SELECT $since"], "the SQL uses $since: give --param since=VALUE"),
    (["SELECT 1", "--param", "typo=1"], "--param typo not used by the SQL"),
    (["SELECT $a", "--param", "a"], "--param `a`: expected NAME=VALUE or NAME:=JSON"),
    (["SELECT $a", "--param", "a=1", "--param", "a=2"], "--param `a` is given twice"),
    (["SELECT $a", "--param", "a:={oops"], "--param `a:={oops`: not JSON"),
])
def test_param_mistakes_are_named(sql: Sql, argv: list[str], message: str) -> None:
    code, out, err = sql(*argv)

    assert code == 2 and out == ""
    assert err.startswith("eventlake: error: " + message) and err.count("\n") == 1


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "message"), [
    ("SELEC 1", 'Parser Error: syntax error at or near "SELEC" (line 1)'),
    ("SELECT * FROM no_such_table", "Catalog Error: Table with name no_such_table does not "
                                    "exist!"),
    ("SELECT no_such_column FROM events", 'Binder Error: Referenced column "no_such_column" '
                                          "not found in FROM clause!"),
])
def test_a_sql_error_is_one_line_with_exit_code_2(sql: Sql, query: str, message: str) -> None:
    code, out, err = sql(query)

    assert code == 2 and out == ""
    assert err.startswith(f"eventlake: SQL error: {message}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_error_in_a_later_statement_says_which(sql: Sql) -> None:
    _, _, err = sql("CREATE TEMP TABLE t AS SELECT 1 AS a; SELECT b FROM t")

    assert err.startswith("eventlake: SQL error: Binder Error:")
    assert err.rstrip().endswith("(statement 2 of 2)")


def test_debug_lets_the_duckdb_error_through_for_its_traceback(connects: list[Any]) -> None:
    with pytest.raises(duckdb.ParserException, match="syntax error"):
        main(["sql", "--debug", "SELEC 1"])


def test_a_closed_pipe_ends_the_output_quietly(
        connects: list[Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    class ClosedPipe(io.StringIO):  # `eventlake sql ... | head -1` after head has exited
        def write(self, text: str) -> int:
            raise BrokenPipeError

    monkeypatch.setattr(sys, "stdout", ClosedPipe())

    assert main(["sql", "SELECT * FROM range(1000)"]) == 0
    assert capsys.readouterr().err == ""


def test_a_lake_file_vanishing_under_the_query_makes_it_run_again(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    connections = 0

    def connect(args: argparse.Namespace, typed: bool = True, **_: Any) -> Any:
        """The first connection lists a file that compaction then replaces."""
        nonlocal connections
        connections += 1
        if connections > 1:
            return stand_in_connection()
        path = tmp_path / "lake" / "events" / "dt=2026-03-14" / "part-0.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(stand_in_events(), path)
        con = duckdb.connect()
        con.sql(f"CREATE VIEW events AS SELECT * FROM read_parquet('{path}')")
        path.unlink()
        return con

    monkeypatch.setattr("eventlake.cli.sql._connect", connect)

    assert main(["sql", "--format", "csv", "SELECT count(*) AS n FROM events"]) == 0
    assert capsys.readouterr().out == "n\n3\n"
    assert connections == 2


def test_a_missing_file_the_query_names_is_an_error_not_a_retry(
        sql: Sql, connects: list[Any], tmp_path: Path) -> None:
    code, _, err = sql(f"SELECT * FROM read_parquet('{tmp_path}/nothing.parquet')")

    assert code == 2 and err.startswith("eventlake: SQL error: IO Error: No files found")
    assert len(connects) == 1


# --- where the SQL comes from -----------------------------------------------------------------

def test_file_runs_every_statement_and_prints_the_last_result(sql: Sql, tmp_path: Path) -> None:
    script = tmp_path / "report.sql"
    script.write_text("-- signups by subject\nCREATE TEMP VIEW signups AS\n"
                      "  SELECT * FROM events WHERE event_type = 'signup';\n"
                      "SELECT count(*) AS n FROM signups WHERE subject IS NULL;\n",
                      encoding="utf-8")

    code, out, _ = sql("-f", str(script), "--format", "csv")

    assert code == 0 and out == "n\n1\n"


def test_a_missing_file_is_named(sql: Sql, tmp_path: Path) -> None:
    code, _, err = sql("-f", str(tmp_path / "nope.sql"))

    assert code == 2 and "cannot read" in err and "nope.sql" in err


@pytest.fixture
def named_queries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    queries = {
        "events_per_type_per_day": "-- Events per type per UTC day.\n-- Grain: (dt, event_type)."
                                   "\nSELECT dt, event_type, count(*) AS events FROM events\n"
                                   "GROUP BY ALL ORDER BY dt, event_type\n",
        "latest": "\n-- Latest events first.\nSELECT event_id FROM events ORDER BY timestamp DESC "
                  "LIMIT $n\n",
    }
    monkeypatch.setattr("eventlake.cli.sql._list_queries", lambda: sorted(queries))
    monkeypatch.setattr("eventlake.cli.sql._load_sql", queries.__getitem__)
    return queries


def test_query_runs_a_named_query(sql: Sql, named_queries: dict[str, str]) -> None:
    code, out, _ = sql("--query", "events_per_type_per_day", "--format", "csv")

    assert code == 0
    assert out.splitlines() == ["dt,event_type,events", "2026-03-13,signup,1",
                                "2026-03-14,order.shipped,1", "2026-03-14,signup,1"]
    latest = sql("--query", "latest", "--param", "n=1", "--format", "csv")[1]
    assert latest == "event_id\n7bf73129-1428-4cd3-a780-95db273d1602\n"


def test_an_unknown_named_query_lists_the_known_ones(
        sql: Sql, named_queries: dict[str, str]) -> None:
    code, _, err = sql("--query", "nope")

    assert code == 2
    assert "no query named `nope` (there are: events_per_type_per_day, latest" in err


def test_list_names_each_query_with_its_first_header_line(
        sql: Sql, named_queries: dict[str, str], connects: list[Any]) -> None:
    code, out, _ = sql("--list")

    assert code == 0
    assert out.splitlines() == ["events_per_type_per_day  Events per type per UTC day.",
                                "latest                   Latest events first."]
    assert connects == []  # listing needs no connection


def test_sources_are_exclusive(sql: Sql, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["sql", "-f", str(tmp_path / "a.sql"), "SELECT 1"])
    assert exit_.value.code == 2


class Terminal(io.StringIO):
    """stdin as a terminal would present it: the lines a user types."""

    def isatty(self) -> bool:
        return True


def test_piped_stdin_is_read_as_the_sql(sql: Sql, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(BY_TYPE + ";\n"))

    code, out, _ = sql("--format", "csv")

    assert code == 0 and out == "event_type,n\norder.shipped,1\nsignup,2\n"


def test_empty_piped_stdin_is_refused(sql: Sql, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("  \n"))

    code, _, err = sql()

    assert code == 2 and "no SQL given" in err


def test_the_prompt_runs_each_statement_and_carries_on_after_an_error(
        sql: Sql, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal(
        "SELECT 1 AS a;\n"
        "\n"
        "SELECT count(*) AS n\n"
        "  FROM events;\n"
        "SELEC oops;\n"
        "SELECT 2 AS b; SELECT 3 AS c;\n"
        ".quit\n"
        "SELECT 'never' AS d;\n"))
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/duckdb")  # a shell to suggest

    code, out, err = sql("--lake-uri", str(tmp_path / "lake"))

    assert code == 0
    assert "duckdb -cmd \"CREATE VIEW events AS SELECT * FROM read_parquet(" \
           f"'{tmp_path / 'lake'}/events/*/*.parquet', hive_partitioning = true)\"" in out
    assert "a\n-\n1\n(1 row)" in out
    assert "n\n-\n3\n(1 row)" in out
    assert "      ...> " in out  # the continuation prompt of the two-line statement
    assert "b\n-\n2\n(1 row)" in out and "c\n-\n3\n(1 row)" in out
    assert "never" not in out
    assert err == 'SQL error: Parser Error: syntax error at or near "SELEC" (line 1)\n'


def test_the_prompt_does_not_take_out_or_format(
        sql: Sql, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal("SELECT 1;\n"))

    code, out, err = sql("--out", str(tmp_path / "x.csv"))

    assert code == 2 and out == "" and "--out and --format need SQL to run" in err


def test_the_prompt_ends_at_end_of_input(
        sql: Sql, monkeypatch: pytest.MonkeyPatch, connects: list[Any]) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal("SELECT 1 AS a;\n"))

    code, out, _ = sql()

    assert code == 0 and "(1 row)" in out and len(connects) == 1


# --- connecting -------------------------------------------------------------------------------

def test_cold_only_connects_without_the_hot_tier(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    hot_flags: list[bool] = []

    def connect(lake: EventLake, hot: bool = True, **_: Any) -> Any:
        hot_flags.append(hot)
        return stand_in_connection()

    monkeypatch.setattr("eventlake.query.views.connect", connect)

    assert main(["sql", "--cold-only", "SELECT count(*) FROM events"]) == 0
    assert main(["sql", "SELECT count(*) FROM events"]) == 0
    assert hot_flags == [False, True]
    assert "(1 row)" in capsys.readouterr().out


# --- end to end -------------------------------------------------------------------------------

@pytest.mark.integration
def test_sql_counts_each_event_once_across_both_tiers(
        mocked_aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = EventLake(Settings.from_env(table="sql-e2e", lake_uri=str(tmp_path / "lake")))
    lake.init()
    start = datetime.now(UTC) - timedelta(hours=2)

    def batch(kind: str, count: int, first: int) -> list[dict[str, Any]]:
        return [{"event_id": f"{kind}-{i}", "event_type": kind,
                 "timestamp": (start + timedelta(seconds=i)).isoformat(),
                 "event_payload": {"i": i}} for i in range(first, first + count)]

    lake.put_many(batch("signup", 3, 0) + batch("purchase", 2, 0))
    lake.archive(settle_seconds=0)  # archived events stay in DynamoDB too: both tiers hold them
    lake.put_many(batch("signup", 1, 3) + batch("refund", 1, 0))  # hot only
    argv = ["sql", "--table", "sql-e2e", "--lake-uri", str(tmp_path / "lake"),
            "--format", "jsonl", "SELECT event_type, count(*) AS n, count(DISTINCT event_id) "
            "AS ids FROM events GROUP BY ALL ORDER BY event_type"]

    assert main(argv) == 0
    counts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert counts == [{"event_type": "purchase", "n": 2, "ids": 2},
                      {"event_type": "refund", "n": 1, "ids": 1},
                      {"event_type": "signup", "n": 4, "ids": 4}]

    assert main([*argv[:1], "--cold-only", *argv[1:]]) == 0
    cold = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert cold == [{"event_type": "purchase", "n": 2, "ids": 2},
                    {"event_type": "signup", "n": 3, "ids": 3}]

    assert main([*argv[:5], "--query", "events_per_type_per_day", "--format", "csv"]) == 0
    per_type: dict[str, int] = {}  # summed over days: the two hours may span midnight UTC
    for row in csv.DictReader(io.StringIO(capsys.readouterr().out)):
        per_type[row["event_type"]] = per_type.get(row["event_type"], 0) + int(row["events"])
    assert per_type == {"purchase": 2, "refund": 1, "signup": 4}

    assert main(["sql", "--list"]) == 0
    listed = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert listed["events_per_type_per_day"].startswith("Events of each type per UTC day")
