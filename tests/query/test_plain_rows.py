"""Results of plain types are written from DuckDB's Python rows (no pyarrow); every text
format must read exactly as it does through Arrow, value for value, NULLs and edges included."""

from __future__ import annotations

import io

import duckdb
import pytest

from eventlake.query.format import Format, Result, TableStyle, plain_type, write_text
from eventlake.query.session import execute

COLUMNS = {
    "VARCHAR": ["'plain'", "'tab\tand\nnewline'", "'日本語 wide'", "'e\u0301'", "''",
                "'\"quoted\", comma'", "'\\\\back'"],
    "BOOLEAN": ["true", "false"],
    "TINYINT": ["-128", "127"],
    "SMALLINT": ["-32768", "0"],
    "INTEGER": ["-2147483648", "2147483647"],
    "BIGINT": ["-9223372036854775808", "9223372036854775807"],
    "UTINYINT": ["255", "0"],
    "USMALLINT": ["65535", "1"],
    "UINTEGER": ["4294967295", "2"],
    "UBIGINT": ["18446744073709551615", "3"],
    "FLOAT": ["0.1", "'nan'", "'-inf'", "-0.0", "3.4e38", "1e-45"],
    "DOUBLE": ["0.1", "'nan'", "'inf'", "-0.0", "1e308", "5e-324", "123456789.125"],
    "DECIMAL(4,2)": ["1.5", "-0.0", "99.99", "-99.99"],
    "DECIMAL(18,10)": ["0", "12345678.0000000001", "-0.0000000001"],
    "DECIMAL(38,3)": ["99999999999999999999999999999999999.999", "-1"],
    "DATE": ["'2026-03-14'", "'0001-01-01'", "'9999-12-31'", "'1970-01-01'"],
    "TIMESTAMP": ["'2026-03-14 09:00:00'", "'2026-03-14 09:00:00.123456'", "'0001-01-01'",
                  "'9999-12-31 23:59:59.999999'"],
    "TIMESTAMP WITH TIME ZONE": ["'2026-03-14 09:00:00+00'", "'2026-03-14 09:00:00.5+02'",
                                 "'1969-12-31 23:59:59.999999+00'"],
    "JSON": ["'{\"a\": [1, 2.5, null]}'", "'\"text\"'", "'null'"],
}


def both(con: duckdb.DuckDBPyConnection, sql: str, fmt: Format,
         style: TableStyle | None = None) -> tuple[str, str]:
    """(through DuckDB's Python rows, through Arrow) for the last statement of `sql`."""
    outputs = []
    for rows in (True, False):
        *_, result = execute(con, sql, {}, strict=True)
        assert isinstance(result, Result)
        assert (result.run is not None) is True  # every column here is plain
        if not rows:
            result.run = None
        out = io.StringIO()
        write_text(result, fmt, out, style or TableStyle())
        outputs.append(out.getvalue())
    return outputs[0], outputs[1]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


@pytest.mark.parametrize("fmt", [Format.TABLE, Format.CSV, Format.JSON, Format.JSONL])
@pytest.mark.parametrize("kind", sorted(COLUMNS))
def test_each_plain_type_reads_the_same_from_python_rows_as_through_arrow(
        con: duckdb.DuckDBPyConnection, kind: str, fmt: Format) -> None:
    values = [*COLUMNS[kind], "NULL"]
    sql = " UNION ALL ".join(f"SELECT {n} AS n, CAST({v} AS {kind}) AS \"v\"" for n, v in
                             enumerate(values)) + " ORDER BY n"

    rows, arrow = both(con, sql, fmt, TableStyle(max_rows=0, max_width=0))

    assert rows == arrow
    assert len(rows.splitlines()) >= len(values)


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_timestamps_in_another_session_time_zone_read_the_same(
        con: duckdb.DuckDBPyConnection, zone: str) -> None:
    sql = (f"SET TimeZone = '{zone}'; SELECT TIMESTAMPTZ '2026-03-14 09:00:00.25+00' AS t, "
           "TIMESTAMPTZ '2026-07-01 00:00:00+00' AS summer")

    rows, arrow = both(con, sql, Format.CSV)

    assert rows == arrow
    assert "+00:00" not in rows and "Z" not in rows.splitlines()[1]


def test_a_long_result_is_cut_and_counted_the_same_way(con: duckdb.DuckDBPyConnection) -> None:
    sql = "SELECT i, repeat('x', i % 50) AS s FROM range(5000) t(i)"  # several batches

    rows, arrow = both(con, sql, Format.TABLE, TableStyle(max_rows=30, max_width=10))

    assert rows == arrow
    assert rows.endswith("(5000 rows, 4970 not shown: --max-rows 0 shows all)\n")


@pytest.mark.parametrize("fmt", [Format.TABLE, Format.CSV, Format.JSON, Format.JSONL])
def test_a_result_longer_than_one_batch_goes_on_through_arrow_with_no_row_lost_or_repeated(
        con: duckdb.DuckDBPyConnection, fmt: Format) -> None:
    # the first 2,048 rows come as Python rows, the rest from the same cursor as Arrow
    sql = ("SELECT i, repeat('x', i % 7) AS s, CAST(i / 3 AS DOUBLE) AS d, "
           "TIMESTAMPTZ '2026-03-14 09:00:00+00' + i * INTERVAL 1 SECOND AS t, "
           "CAST('{\"k\": ' || i || '}' AS JSON) AS j FROM range(5000) t(i) ORDER BY i")
    *_, result = execute(con, sql, {}, strict=True)
    assert isinstance(result, Result) and result.run is not None
    kinds = [type(b).__name__ for b in result.batches()]
    assert kinds[0] == "list" and "RecordBatch" in kinds[1:]

    rows, arrow = both(con, sql, fmt, TableStyle(max_rows=0, max_width=0))

    assert rows == arrow
    lines = rows.splitlines()
    assert sum(1 for line in lines if "2047" in line.split(",")[0] or '"i": 2047,' in line) >= 1
    assert len([x for x in lines if x.strip() not in ("[", "]")]) >= 5000


def test_duplicate_column_names_and_parameters_read_the_same(
        con: duckdb.DuckDBPyConnection) -> None:
    *_, result = execute(con, "SELECT $x AS a, $x + 1 AS a", {"x": 41}, strict=True)
    assert isinstance(result, Result) and result.run is not None
    out = io.StringIO()

    write_text(result, Format.JSONL, out, TableStyle())

    assert out.getvalue() == '{"a": 41, "a_2": 42}\n'


@pytest.mark.parametrize("kind", ["HUGEINT", "INTERVAL", "BLOB", "UUID", "TIME",
                                  "INTEGER[]", "STRUCT(a INTEGER)", "MAP(VARCHAR, INTEGER)",
                                  "TIMESTAMP_NS", "VARCHAR[]", "ENUM('a')"])
def test_other_types_stay_on_the_arrow_path(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    *_, result = execute(con, f"SELECT 1 AS n, CAST(NULL AS {kind}) AS v", {}, strict=True)

    assert isinstance(result, Result)
    assert result.run is None
    assert not plain_type(str(con.sql(f"SELECT CAST(NULL AS {kind})").types[0]))


def test_a_statement_that_changes_rows_runs_once(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE t (i INTEGER)")
    *_, result = execute(con, "INSERT INTO t VALUES (1) RETURNING i", {}, strict=True)
    assert isinstance(result, Result)
    write_text(result, Format.CSV, io.StringIO(), TableStyle())

    assert con.sql("SELECT count(*) FROM t").fetchall() == [(1,)]


OUT_OF_PYTHON_RANGE = {
    "DATE": ["'infinity'", "'-infinity'", "'10000-01-01'", "'0044-03-15 (BC)'"],
    "TIMESTAMP": ["'infinity'", "'-infinity'", "'12000-01-01'", "'0010-01-01 (BC)'"],
    "TIMESTAMP WITH TIME ZONE": ["'infinity'", "'-infinity'", "'0001-01-01 00:00:00+05'",
                                 "'12000-01-01 00:00:00+00'"],
}
"""Values DuckDB cannot hand to Python as they are: it clamps infinities to date.max/min or
datetime.max/min (a real-looking date, a TIMESTAMPTZ losing its zone) and gives years past
9999 or before 1 as its own text."""


@pytest.mark.parametrize("fmt", [Format.TABLE, Format.CSV, Format.JSONL])
@pytest.mark.parametrize(("kind", "value"), [(k, v) for k, vs in OUT_OF_PYTHON_RANGE.items()
                                             for v in vs])
def test_dates_python_cannot_hold_read_the_same_as_through_arrow(
        con: duckdb.DuckDBPyConnection, kind: str, value: str, fmt: Format) -> None:
    # given a plain-typed result with a date or timestamp outside Python's range, after a
    # value inside it (the first batch holds both)
    sql = (f"SELECT 1 AS n, CAST('2026-03-14' AS {kind}) AS v UNION ALL "
           f"SELECT 2, CAST({value} AS {kind}) ORDER BY n")

    rows, arrow = both(con, sql, fmt, TableStyle(max_rows=0, max_width=0))

    # then it reads as through Arrow: never a clamped 9999-12-31 for infinity, nor DuckDB's
    # own text for a year Python cannot hold
    assert rows == arrow
