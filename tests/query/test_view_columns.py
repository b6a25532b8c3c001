"""The views' columns are spelled out in DuckDB's types (so that building them needs no
pyarrow): they must stay the lake's schema, then `dt`."""

from __future__ import annotations

import pyarrow as pa
import pytest

from eventlake.events.schema import EVENT_SCHEMA, UTC_MICROS
from eventlake.query import views

ARROW_TO_DUCKDB = {pa.string(): "VARCHAR", UTC_MICROS: "TIMESTAMPTZ", pa.date32(): "DATE"}


def test_the_spelled_out_columns_are_the_lake_schema_then_dt() -> None:
    expected = [(f.name, ARROW_TO_DUCKDB[f.type]) for f in EVENT_SCHEMA] + [("dt", "DATE")]

    assert list(views._VIEW_COLUMNS) == expected
    assert views.cold_schema() == EVENT_SCHEMA.append(pa.field("dt", pa.date32(),
                                                               nullable=False))
    assert views.COLD_SCHEMA is views.cold_schema()


def test_the_empty_select_has_the_view_columns_and_types() -> None:
    import duckdb

    relation = duckdb.connect().sql(views._EMPTY)

    assert relation.columns == [name for name, _ in views._VIEW_COLUMNS]
    assert [str(t) for t in relation.types] == [
        "TIMESTAMP WITH TIME ZONE" if kind == "TIMESTAMPTZ" else kind
        for _, kind in views._VIEW_COLUMNS]
    assert relation.fetchall() == []


def test_queries_named_finds_the_views_a_query_uses() -> None:
    assert views.queries_named("select * from EVENTS_PER_TYPE_PER_DAY") == [
        "events_per_type_per_day"]
    assert views.queries_named("select count(*) from events") == []


@pytest.mark.parametrize("sql", ["SHOW TABLES", "show all tables", "DESCRIBE hourly_volume2",
                                 "select * from duckdb_views()",
                                 "select table_name from information_schema.tables"])
def test_sql_that_lists_the_catalog_gets_every_view(sql: str) -> None:
    assert views.queries_named(sql) == list(views.list_queries())
