"""Catalog DDL: every dialect's statements parse with a real SQL parser (sqlglot), name the same
views and columns as DuckDB's, and carry what makes new days visible (Athena's partition
projection); a local lake cannot go to Athena without a location."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from eventlake.api import EventLake
from eventlake.aws import Clients
from eventlake.catalog import ddl
from eventlake.catalog.ddl import build, ddl_text, location_for, plan_for, statements
from eventlake.catalog.dialects import json_path
from eventlake.catalog.model import DIALECTS, RAW_TABLE, Catalog
from eventlake.errors import ConfigError
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.query.typed import Field, TypeSchema

START = datetime(2024, 5, 1, tzinfo=UTC)
ODD_KEYS = {"a.b": "dot", "sp ace": True, "it's": 1}
"""Keys every engine can name: a dot, a space, a single quote."""
LOCATION = {"athena": "s3://bucket/lake/events/", "spark": None, "trino": None}


def row(n: int, event_type: str, payload: dict[str, Any] | str, *, day: int = 0,
        ingested: int = 0, content_hash: str | None = None) -> dict[str, Any]:
    return {"event_id": f"e-{n:03d}", "event_type": event_type,
            "timestamp": START + timedelta(days=day, hours=n),
            "ingested_at": START + timedelta(days=3, minutes=ingested), "source": "shop",
            "subject": None, "content_hash": content_hash or f"h{n}",
            "event_payload": payload if isinstance(payload, str) else json.dumps(payload)}


@pytest.fixture
def shop(lake: EventLake) -> EventLake:
    """Two types; a nested object and an array; `mix`, a conflict (a number, then text); keys
    with a dot, a space and quotes; an invalid payload; and copies of two events in a second,
    un-compacted file of the same days (one earlier, one later)."""
    placed = {"total": 9.5, "customer": {"id": 7, "tags": ["a"]}, "mix": 1, **ODD_KEYS,
              'q"t': 2}
    rows = [row(1, "order.placed", placed),
            row(2, "order.placed", {"total": 3, "customer": {"id": 8}, "mix": "x"}),
            row(3, "page.viewed", {"url": "/a", "ms": 12}, day=1),
            row(4, "page.viewed", "not json", day=1)]
    copies = [row(1, "order.placed", placed, ingested=-5, content_hash="h0"),
              row(3, "page.viewed", {"url": "/b", "ms": 1}, day=1, ingested=5)]
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "sweep-a")
    lake.cold.write(pa.Table.from_pylist(copies, schema=EVENT_SCHEMA), "sweep-b")
    return lake


def plan(lake: EventLake, dialect: str, **kwargs: Any) -> Catalog:
    return plan_for(lake, dialect, location=LOCATION[dialect], **kwargs)  # type: ignore[arg-type]


def parse(statement: str, dialect: str) -> Any:
    """The statement's syntax tree; ParseError when sqlglot cannot read it. sqlglot falls back to
    an opaque Command for syntax it does not model: that is refused too (it checks nothing),
    except for Trino's CALL, which it never models and which is matched by shape instead."""
    tree = sqlglot.parse_one(statement, read=dialect)
    if isinstance(tree, exp.Command):
        body = re.sub(r"^(--[^\n]*\n)*", "", statement)
        if dialect == "trino" and re.fullmatch(
                r"CALL system\.sync_partition_metadata\('[^']+', '[^']+', 'ADD'\)", body):
            return tree
        raise sqlglot.ParseError(f"not modelled by sqlglot: {body[:60]}")
    return tree


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_statement_parses_in_its_dialect(shop: EventLake, dialect: str) -> None:
    catalog = plan(shop, dialect)

    trees = [parse(s, dialect) for s in statements(catalog)]

    creates = [t for t in trees if isinstance(t, exp.Create)]
    assert [t.this.name if isinstance(t.this, exp.Table) else t.this.this.name
            for t in creates] == [RAW_TABLE, "events", "ev_order_placed", "ev_page_viewed"]
    assert all(t.args["kind"] == ("TABLE" if i == 0 and dialect != "spark" else "VIEW")
               for i, t in enumerate(creates))


@pytest.mark.parametrize(("statement", "dialect"), [
    ("CREATE EXTERNAL TABLE x (a string", "athena"),
    ("CREATE OR REPLACE VIEW x AS SELEC 1", "athena"),
    ("SELECT FROM WHERE", "spark"),
    ("CALL system.sync_partition_metadata('default', 'events_raw', 'ADD'", "trino"),
])
def test_garbage_does_not_pass_the_parse_check(statement: str, dialect: str) -> None:
    with pytest.raises(sqlglot.ParseError):
        parse(statement, dialect)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_views_have_duckdbs_names_and_columns_in_order(shop: EventLake, dialect: str) -> None:
    con = shop.connect(hot=False)
    duckdb_views = {name: con.sql(f'SELECT * FROM "{name}" LIMIT 0').columns
                    for (name,) in con.sql("SELECT view_name FROM duckdb_views() "
                                           "WHERE view_name LIKE 'ev\\_%' ESCAPE '\\' "
                                           "OR view_name = 'events'").fetchall()}
    catalog = plan(shop, dialect)

    assert {v.name: [c.name for c in v.columns] for v in catalog.views} == duckdb_views
    assert [v.name for v in catalog.views] == ["events", "ev_order_placed", "ev_page_viewed"]
    for view in catalog.views:  # the SELECT names the same columns, in the same order
        select = parse(f"SELECT * FROM ({view.sql}) AS v", dialect).find(exp.Subquery)
        assert select is not None
        assert select.this.named_selects == [c.name for c in view.columns]


def test_every_dialect_keeps_one_copy_per_event_by_the_lakes_rule(shop: EventLake) -> None:
    for dialect in DIALECTS:
        events = plan(shop, dialect).views[0]
        window = parse(events.sql, dialect).find(exp.Window)

        assert window is not None
        assert isinstance(window.this, exp.RowNumber)
        assert [c.name for c in window.args["partition_by"]] == ["dt", "event_id"]
        assert [o.this.name for o in window.args["order"].expressions] == [
            "ingested_at", "content_hash"]
        assert re.search(r"WHERE _copy = 1$", events.sql)


def athena_properties(catalog: Catalog) -> dict[str, str]:
    tree = parse(statements(catalog)[0], "athena")
    found = tree.find_all(exp.Property)
    return {p.name: p.args["value"].name for p in found if isinstance(p.args.get("value"),
                                                                       exp.Literal)}


def test_athena_projects_dt_from_the_lakes_first_day_so_no_repair_is_needed(
        shop: EventLake) -> None:
    catalog = plan(shop, "athena", database="lakehouse")

    properties = athena_properties(catalog)
    assert {k: v for k, v in properties.items() if k.startswith(("projection", "storage"))} == {
        "projection.enabled": "true", "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd", "projection.dt.range": "2024-05-01,NOW+1DAYS",
        "projection.dt.interval": "1", "projection.dt.interval.unit": "DAYS",
        "storage.location.template": "s3://bucket/lake/events/dt=${dt}/"}
    raw = statements(catalog)[0]
    assert "PARTITIONED BY (`dt` string)" in raw
    assert "STORED AS PARQUET" in raw and "LOCATION 's3://bucket/lake/events/'" in raw
    assert "MSCK REPAIR TABLE" not in ddl_text(catalog)  # only the comment names it
    assert 'CAST("dt" AS date) AS "dt"' in catalog.views[0].sql  # a DATE, as in DuckDB


def test_spark_reads_the_folder_through_a_temporary_view_and_trino_syncs_partitions(
        shop: EventLake) -> None:
    spark = statements(plan(shop, "spark"))
    trino = statements(plan(shop, "trino"))

    root = shop.cold.root
    assert f"USING parquet\nOPTIONS (path 'file://{root}/events/')" in spark[0]
    assert "`dt` DATE" in spark[0]
    assert f"external_location = 'file://{root}/events/'" in trino[0]
    assert "partitioned_by = ARRAY['dt']" in trino[0]
    assert trino[1].endswith("CALL system.sync_partition_metadata('default', 'events_raw', "
                             "'ADD')")
    assert trino[2].startswith('-- one row per event_id') and '"default"."events_raw"' in trino[2]


def test_a_local_lake_is_refused_for_athena_without_a_location(shop: EventLake) -> None:
    with pytest.raises(ConfigError, match=r"Athena reads only S3.*--location"):
        plan_for(shop, "athena")


def test_locations_follow_the_engines_scheme() -> None:
    assert location_for("s3://b/p", "athena", is_s3=True) == "s3://b/p/events/"
    assert location_for("s3://b/p/", "trino", is_s3=True) == "s3://b/p/events/"
    assert location_for("s3://b", "spark", is_s3=True) == "s3a://b/events/"
    assert location_for("/data/lake", "spark", is_s3=False) == "file:///data/lake/events/"
    assert location_for("/data/lake", "trino", is_s3=False) == "file:///data/lake/events/"


def test_payload_fields_read_by_json_text_with_try_cast(shop: EventLake) -> None:
    for dialect in DIALECTS:
        placed = plan(shop, dialect).views[1].sql

        assert "TRY_CAST(_j" in placed and " CAST(_j" not in placed  # never a failing cast
        assert ("try_parse_json(event_payload)" if dialect == "spark"
                else "try(json_parse(event_payload))") in placed
    trino = plan(shop, "trino").views[1].sql
    assert "json_format(json_extract(_p, '$[\"a.b\"]'))" in trino
    assert "json_format(json_extract(_p, '$[\"it''s\"]'))" in trino
    spark = plan(shop, "spark").views[1].sql
    assert "to_json(variant_get(_p, '$[\\'sp ace\\']'))" in spark
    assert "to_json(variant_get(_p, '$[\"it\\'s\"]'))" in spark


def test_a_key_the_engine_cannot_name_is_a_null_column_and_said_so(shop: EventLake) -> None:
    trino = plan(shop, "trino").views[1]
    spark = plan(shop, "spark").views[1]

    assert 'CAST(NULL AS bigint) AS "q_t"' in trino.sql
    assert "NULL in trino: q_t" in trino.comment
    assert "NULL in trino: q_t" in statements(plan(shop, "trino"))[3]
    assert "`q_t`" in spark.sql and "NULL in" not in spark.comment  # Spark quotes it as ['q"t']
    assert json_path(["it's \"q\""], "spark") is None
    assert json_path(["a\\b"], "trino") is None


def test_ddl_text_is_a_header_then_the_statements_each_ended() -> None:
    catalog = build([TypeSchema("x", "ev_x", (Field("n", ("n",), '$."n"', "BIGINT", False),))],
                    "s3://b/events", "athena", database="db", first_day=date(2024, 1, 2))

    text = ddl_text(catalog)

    assert text.startswith("-- eventlake catalog for athena: table events_raw over "
                           "s3://b/events/")
    assert text.endswith(";\n") and not text.endswith(";;\n")
    assert text.count(";\n\n") == len(statements(catalog)) - 1
    assert athena_properties(catalog)["projection.dt.range"] == "2024-01-02,NOW+1DAYS"


def test_spark_refuses_a_database_and_trino_defaults_to_default() -> None:
    with pytest.raises(ConfigError, match="temporary"):
        build([], "file:///x/events/", "spark", database="db")
    assert build([], "file:///x/events/", "trino").database == "default"
    with pytest.raises(ConfigError, match="dialect `hive`"):
        build([], "s3://b/events/", "hive")  # type: ignore[arg-type]


def test_the_raw_tables_columns_are_the_lakes() -> None:
    assert [name for name, _ in ddl._LAKE_COLUMNS] == EVENT_SCHEMA.names


def test_the_plan_reads_the_lakes_files_only_never_dynamodb(
        shop: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    shop.put({"event_type": "hot.only", "event_payload": {"x": 1}})  # in DynamoDB, not archived

    def refuse(self: Clients) -> Any:
        pytest.fail("DynamoDB was called")

    monkeypatch.setattr(Clients, "dynamodb", property(refuse))
    catalog = plan(shop, "trino")

    assert [v.name for v in catalog.views] == ["events", "ev_order_placed", "ev_page_viewed"]
