"""The DuckDB database file of an export, written by the reading connection through ATTACH, in
the storage version DuckDB 1.1 and later open (what BI tools bundle; tests/export/
test_duckdb_compat.py opens it with DuckDB 1.1.3 and through SQLAlchemy's duckdb-engine).

An events export holds:

    events        the selected events (redaction applied): EVENT_SCHEMA's columns and `dt`
    <sql/ query>  each parameterless query of eventlake/query/sql/, a view over `events`
    ev_<type>     one typed view per event type in the file (eventlake.query.typed), inferred
                  over the file's own events: a redacted field has no column, a hashed one is
                  VARCHAR (its JSON is a string)

A named query's export holds one table, named after the query, with its result.

The views are created with the file as the default database, so the `events` they name is the
file's table, also when the file is opened alone (DuckDB looks a view's names up when the view
is queried, and the file is then the default database).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from eventlake.query.typed import infer, view_sql
from eventlake.query.views import list_queries, load_sql

STORAGE_VERSION = "v1.1.0"
"""The DuckDB file's storage version: DuckDB 1.1 and later (what BI tools bundle) open it."""
_ALIAS = "eventlake_export"


def write_events(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any],
                 path: Path) -> int:
    """Write the rows of `query` (the events, with `dt`) to a new DuckDB file at `path` as
    `events`, with the sql/ query views and the typed views; how many rows."""
    with _attached(con, path):
        con.execute(f"CREATE TABLE {_ALIAS}.events AS\n{query}", params)
        con.execute(f"USE {_ALIAS}")
        _create_query_views(con)
        _create_typed_views(con)
        [(rows,)] = con.execute(f"SELECT count(*) FROM {_ALIAS}.events").fetchall()
    return int(rows)


def write_table(con: duckdb.DuckDBPyConnection, name: str, query: str, params: dict[str, Any],
                path: Path) -> int:
    """Write the result of `query` to a new DuckDB file at `path` as the table `name`; how
    many rows."""
    with _attached(con, path):
        table = f'{_ALIAS}."{name}"'
        con.execute(f"CREATE TABLE {table} AS\n{query}", params)
        [(rows,)] = con.execute(f"SELECT count(*) FROM {table}").fetchall()
    return int(rows)


@contextmanager
def _attached(con: duckdb.DuckDBPyConnection, path: Path) -> Iterator[None]:
    """`path` attached as `eventlake_export` for the block, detached after it (the default
    database back to `memory` first: DuckDB refuses to detach the default one)."""
    target = "'" + str(path).replace("'", "''") + "'"
    con.execute(f"ATTACH {target} AS {_ALIAS} (STORAGE_VERSION '{STORAGE_VERSION}')")
    try:
        yield
    finally:
        con.execute("USE memory")
        con.execute(f"DETACH {_ALIAS}")


def _create_query_views(con: duckdb.DuckDBPyConnection) -> None:
    """The parameterless queries of sql/ as views of the file (the file the default database)."""
    for name in list_queries():
        text = load_sql(name)
        if not con.extract_statements(text)[0].named_parameters:
            body = text.strip().rstrip(";")
            con.execute(f'CREATE VIEW "{name}" AS\n{body}')


def _create_typed_views(con: duckdb.DuckDBPyConnection) -> None:
    """One `ev_<type>` view per event type of the file's `events` (the file the default
    database: `infer` and the views read the file's table)."""
    for schema in infer(con):
        con.execute(f'CREATE VIEW "{schema.view}" AS\n{view_sql(schema)}')
