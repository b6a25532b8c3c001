"""`catalog.glue.register` on moto's Glue: the database, the raw table and the views as Athena
stores them; re-runs change only what changed; tables eventlake did not make are never touched.

Most catalogs here are built by hand in Athena's spelling (Hive types for the raw table, Trino
types and SQL for the views); the last test registers what `ddl.build(..., "athena")` makes."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import boto3
import pytest
from aws_support import FailAttempts, dynamodb_error, record_pauses

from eventlake import Settings
from eventlake.aws import Clients
from eventlake.catalog.ddl import build
from eventlake.catalog.glue import (
    MARKER,
    ForeignTableError,
    GlueError,
    GlueReport,
    read_presto_view,
    register,
)
from eventlake.catalog.model import Catalog, Column, View
from eventlake.errors import ConfigError, TransientError
from eventlake.query.typed import Field, TypeSchema

DB = "shop"
LOCATION = "s3://lake-bucket/shop/events/"
PROJECTION = {
    "projection.enabled": "true",
    "projection.dt.type": "date",
    "projection.dt.format": "yyyy-MM-dd",
    "projection.dt.range": "2024-01-01,NOW",
    "projection.dt.interval": "1",
    "projection.dt.interval.unit": "DAYS",
    "storage.location.template": LOCATION + "dt=${dt}/",
}
RAW = (Column("event_id", "string"), Column("event_type", "string"),
       Column("timestamp", "timestamp"), Column("ingested_at", "timestamp"),
       Column("source", "string"), Column("subject", "string"),
       Column("event_payload", "string"), Column("content_hash", "string"))
COMMON = (Column("event_id", "varchar"), Column("event_type", "varchar"),
          Column("timestamp", "timestamp(3)"), Column("dt", "date"))
EVENTS = View("events", "SELECT event_id, event_type, \"timestamp\", dt FROM (SELECT *, "
              "row_number() OVER (PARTITION BY dt, event_id ORDER BY ingested_at, "
              "content_hash) AS n FROM shop.events_raw) WHERE n = 1", COMMON,
              comment="one row per event_id")
PLACED = View("ev_order_placed", "SELECT event_id, event_type, \"timestamp\", dt, "
              "try_cast(json_extract_scalar(event_payload, '$[\"total\"]') AS double) AS total "
              "FROM shop.events WHERE event_type = 'order.placed'",
              (*COMMON, Column("total", "double")))
PAID = View("ev_order_paid", "SELECT event_id, event_type, \"timestamp\", dt, "
            "try_cast(json_extract_scalar(event_payload, '$[\"paid\"]') AS boolean) AS paid "
            "FROM shop.events WHERE event_type = 'order.paid'",
            (*COMMON, Column("paid", "boolean")))


def catalog(*views: View, **changes: Any) -> Catalog:
    made = Catalog(dialect="athena", location=LOCATION, columns=RAW,
                   partition=Column("dt", "date"), views=views or (EVENTS, PAID, PLACED),
                   database=DB, properties=PROJECTION)
    return replace(made, **changes)


@pytest.fixture
def glue(mocked_aws: None) -> Any:
    return Clients(Settings.from_env()).glue


def table(glue: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = glue.get_table(DatabaseName=DB, Name=name)["Table"]
    return found


def names(glue: Any) -> set[str]:
    return {t["Name"] for t in glue.get_tables(DatabaseName=DB)["TableList"]}


def versions(glue: Any, name: str) -> int:
    return len(glue.get_table_versions(DatabaseName=DB, TableName=name)["TableVersions"])


def foreign(glue: Any, name: str, table_type: str = "EXTERNAL_TABLE") -> dict[str, Any]:
    """A user's own table (no eventlake marker)."""
    table_input = {"Name": name, "TableType": table_type, "Parameters": {"owner": "analyst"},
                   "StorageDescriptor": {"Columns": [{"Name": "x", "Type": "string"}],
                                         "Location": "s3://elsewhere/x/"}}
    glue.create_table(DatabaseName=DB, TableInput=table_input)
    return table_input


# -- the first run ----------------------------------------------------------------------------

def test_first_run_creates_the_database_the_raw_table_and_the_views(glue: Any) -> None:
    report = register(glue, catalog(), database=DB)

    assert report == GlueReport(DB, database_created=True, tables=1, views=3,
                                created=["events_raw", "events", "ev_order_paid",
                                         "ev_order_placed"])
    assert "eventlake" in glue.get_database(Name=DB)["Database"]["Description"]
    assert names(glue) == {"events_raw", "events", "ev_order_paid", "ev_order_placed"}
    assert report.summary() == ("glue: database shop (created): 1 table and 3 views; "
                                "created 4, updated 0, unchanged 0, deleted 0")


def test_the_raw_table_is_external_parquet_over_events_with_projected_dt(glue: Any) -> None:
    register(glue, catalog(), database=DB)

    raw = table(glue, "events_raw")
    assert raw["TableType"] == "EXTERNAL_TABLE"
    assert raw["PartitionKeys"] == [{"Name": "dt", "Type": "date"}]
    sd = raw["StorageDescriptor"]
    assert sd["Location"] == LOCATION
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [(c.name, c.type) for c in RAW]
    assert sd["InputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    assert sd["OutputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    assert sd["SerdeInfo"]["SerializationLibrary"] == (
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
    assert raw["Parameters"] == {**PROJECTION, "classification": "parquet", "EXTERNAL": "TRUE",
                                 MARKER: "true"}


def test_views_are_presto_views_that_decode_back_to_their_sql_and_columns(glue: Any) -> None:
    register(glue, catalog(), database=DB)

    for view in (EVENTS, PAID, PLACED):
        stored = table(glue, view.name)
        assert stored["TableType"] == "VIRTUAL_VIEW"
        assert stored["Parameters"] == {"presto_view": "true", "comment": "Presto View",
                                        MARKER: "true"}
        assert stored["ViewExpandedText"] == "/* Presto View */"
        assert stored["ViewOriginalText"].startswith("/* Presto View: ")
        assert read_presto_view(stored["ViewOriginalText"]) == {
            "originalSql": view.sql, "catalog": "awsdatacatalog", "schema": DB,
            "columns": [{"name": c.name, "type": c.type} for c in view.columns],
            "runAsInvoker": False}
    columns = table(glue, "ev_order_placed")["StorageDescriptor"]["Columns"]
    hive = {c["Name"]: c["Type"] for c in columns}
    assert hive == {"event_id": "string", "event_type": "string", "timestamp": "timestamp",
                    "dt": "date", "total": "double"}
    assert table(glue, "events")["Description"] == "one row per event_id"


def test_view_column_types_map_to_hive_types(glue: Any) -> None:
    odd = View("ev_odd", "SELECT 1", (Column("a", "VARCHAR(12)"), Column("b", "array(bigint)"),
                                      Column("c", "decimal(10,2)"), Column("d", "json"),
                                      Column("e", "integer")))
    register(glue, catalog(odd), database=DB)

    columns = table(glue, "ev_odd")["StorageDescriptor"]["Columns"]
    assert [c["Type"] for c in columns] == ["string", "array<bigint>", "decimal(10,2)",
                                            "string", "int"]


def test_a_view_type_glue_cannot_hold_is_refused_naming_the_view_and_column(glue: Any) -> None:
    odd = View("ev_odd", "SELECT 1", (Column("m", "map(varchar, bigint)"),))

    with pytest.raises(ConfigError, match=r"view `ev_odd` column `m`.*map\(varchar, bigint\)"):
        register(glue, catalog(odd), database=DB)


# -- re-runs ----------------------------------------------------------------------------------

def test_a_rerun_with_no_change_changes_nothing(glue: Any) -> None:
    register(glue, catalog(), database=DB)

    report = register(glue, catalog(), database=DB)

    assert report.created == report.updated == report.deleted == []
    assert report.unchanged == ["events_raw", "events", "ev_order_paid", "ev_order_placed"]
    assert not report.database_created
    assert all(versions(glue, name) == 1 for name in names(glue))
    assert report.summary() == ("glue: database shop: 1 table and 3 views; "
                                "created 0, updated 0, unchanged 4, deleted 0")


def test_a_changed_view_is_updated_and_nothing_else(glue: Any) -> None:
    register(glue, catalog(), database=DB)
    placed = replace(PLACED, sql=PLACED.sql + " AND dt >= DATE '2024-01-01'",
                     columns=(*PLACED.columns, Column("currency", "varchar")))

    report = register(glue, catalog(EVENTS, PAID, placed), database=DB)

    assert report.updated == ["ev_order_placed"]
    assert report.unchanged == ["events_raw", "events", "ev_order_paid"]
    stored = table(glue, "ev_order_placed")
    assert read_presto_view(stored["ViewOriginalText"])["originalSql"] == placed.sql
    assert stored["StorageDescriptor"]["Columns"][-1] == {"Name": "currency", "Type": "string"}
    assert versions(glue, "ev_order_placed") == 2
    assert versions(glue, "ev_order_paid") == 1


def test_a_dropped_table_property_updates_the_raw_table(glue: Any) -> None:
    register(glue, catalog(), database=DB)
    fewer = {k: v for k, v in PROJECTION.items() if k != "projection.dt.range"}

    report = register(glue, catalog(properties=fewer), database=DB)

    assert report.updated == ["events_raw"]
    assert "projection.dt.range" not in table(glue, "events_raw")["Parameters"]


def test_a_moved_lake_updates_the_raw_table_location(glue: Any) -> None:
    register(glue, catalog(), database=DB)

    report = register(glue, catalog(location="s3://new-bucket/events/"), database=DB)

    assert report.updated == ["events_raw"]
    assert table(glue, "events_raw")["StorageDescriptor"]["Location"] == "s3://new-bucket/events/"


def test_the_view_of_a_type_no_longer_in_the_catalog_is_deleted(glue: Any) -> None:
    register(glue, catalog(), database=DB)

    report = register(glue, catalog(EVENTS, PLACED), database=DB)

    assert report.deleted == ["ev_order_paid"]
    assert names(glue) == {"events_raw", "events", "ev_order_placed"}
    assert report.summary().endswith("1 table and 2 views; created 0, updated 0, "
                                     "unchanged 3, deleted 1")


# -- tables eventlake did not make ------------------------------------------------------------

def test_foreign_tables_and_views_are_never_touched_or_deleted(glue: Any) -> None:
    register(glue, catalog(), database=DB)
    foreign(glue, "orders_by_day", "VIRTUAL_VIEW")
    foreign(glue, "crm_customers")

    report = register(glue, catalog(EVENTS), database=DB)

    assert sorted(report.deleted) == ["ev_order_paid", "ev_order_placed"]
    assert {"orders_by_day", "crm_customers"} <= names(glue)
    assert versions(glue, "orders_by_day") == versions(glue, "crm_customers") == 1


def test_a_foreign_table_under_a_needed_name_is_refused_before_any_write(glue: Any) -> None:
    glue.create_database(DatabaseInput={"Name": DB})
    mine = foreign(glue, "events")

    with pytest.raises(ForeignTableError, match=r"`shop\.events`.*not made by eventlake"):
        register(glue, catalog(), database=DB)

    assert names(glue) == {"events"}
    stored = table(glue, "events")
    assert stored["Parameters"] == mine["Parameters"]
    assert stored["StorageDescriptor"]["Location"] == "s3://elsewhere/x/"


def test_an_existing_database_is_used_as_is(glue: Any) -> None:
    glue.create_database(DatabaseInput={"Name": DB, "Description": "the analysts' database"})

    report = register(glue, catalog(), database=DB)

    assert not report.database_created
    assert glue.get_database(Name=DB)["Database"]["Description"] == "the analysts' database"
    assert len(report.created) == 4


# -- refusals ---------------------------------------------------------------------------------

def test_a_catalog_of_another_dialect_is_refused(glue: Any) -> None:
    with pytest.raises(ConfigError, match="`spark`"):
        register(glue, catalog(dialect="spark"), database=DB)

    assert glue.get_databases()["DatabaseList"] == []


def test_a_catalog_built_for_another_database_is_refused(glue: Any) -> None:
    with pytest.raises(ConfigError, match="`shop`, not `other`"):
        register(glue, catalog(), database="other")

    assert glue.get_databases()["DatabaseList"] == []


def test_a_lake_outside_s3_is_refused(glue: Any) -> None:
    with pytest.raises(ConfigError, match=r"`file:///tmp/lake/events/`.*--location s3://"):
        register(glue, catalog(location="file:///tmp/lake/events/"), database=DB)

    assert glue.get_databases()["DatabaseList"] == []


def test_an_unqualified_catalog_registers_into_the_given_database(glue: Any) -> None:
    register(glue, catalog(database=None), database="other")

    stored = glue.get_table(DatabaseName="other", Name="events")["Table"]
    assert read_presto_view(stored["ViewOriginalText"])["schema"] == "other"


def test_a_text_that_is_not_a_presto_view_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Presto view"):
        read_presto_view("SELECT 1")


# -- AWS errors -------------------------------------------------------------------------------

def fail(glue: Any, operation: str, code: str, times: int | None,
         status: int = 400) -> FailAttempts:
    """The first `times` attempts (None: all) of a Glue `operation` answer `code`."""
    handler = FailAttempts(dynamodb_error(code, status),
                           lambda _, n: times is None or n <= times)
    glue.meta.events.register_first(f"before-send.glue.{operation}", handler)
    return handler


def test_throttled_calls_are_retried_by_the_clients_retry_policy(
        glue: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    record_pauses(monkeypatch, pauses.append)
    throttled = fail(glue, "CreateTable", "ThrottlingException", times=2)

    report = register(glue, catalog(), database=DB)

    assert len(report.created) == 4
    assert throttled.calls == 2 + 4  # two throttled attempts, then one per table
    assert len(pauses) == 2


def test_throttling_that_outlasts_the_retries_is_a_transient_error(
        mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    record_pauses(monkeypatch, lambda _: None)
    glue = Clients(Settings.from_env(aws_max_attempts=3)).glue
    throttled = fail(glue, "CreateTable", "ThrottlingException", times=None)

    with pytest.raises(TransientError, match=r"create `shop\.events_raw`.*ThrottlingException"):
        register(glue, catalog(), database=DB)

    assert throttled.calls == 3


def test_a_refused_call_names_the_table_and_the_glue_error_code(glue: Any) -> None:
    register(glue, catalog(), database=DB)
    denied = fail(glue, "UpdateTable", "AccessDeniedException", times=None)

    with pytest.raises(GlueError, match=r"update `shop\.events_raw`: AccessDeniedException") as err:
        register(glue, catalog(location="s3://new-bucket/events/"), database=DB)

    assert (err.value.table, err.value.code) == ("shop.events_raw", "AccessDeniedException")
    assert denied.calls == 1  # not retried


def test_a_plain_boto3_client_works_too(mocked_aws: None) -> None:
    glue = boto3.client("glue", region_name="us-east-1")

    assert len(register(glue, catalog(), database=DB).created) == 4


# -- what ddl.build makes ---------------------------------------------------------------------

def test_what_ddl_build_makes_for_athena_registers_and_reregisters_unchanged(glue: Any) -> None:
    placed = TypeSchema("order.placed", "ev_order_placed", (
        Field("total", ("total",), '$."total"', "DOUBLE", False),
        Field("customer_id", ("customer", "id"), '$."customer"."id"', "BIGINT", False),
        Field("items", ("items",), '$."items"', "JSON", False)))
    paid = TypeSchema("order.paid", "ev_order_paid", (
        Field("paid", ("paid",), '$."paid"', "BOOLEAN", False),))
    built = build([placed, paid], "s3://lake-bucket/shop/events/", "athena", database=DB,
                  first_day=date(2024, 1, 1))

    first = register(glue, built, database=DB)
    again = register(glue, built, database=DB)

    assert first.created == ["events_raw", "events", "ev_order_paid", "ev_order_placed"]
    assert again.unchanged == first.created
    raw = table(glue, "events_raw")
    assert raw["PartitionKeys"] == [{"Name": built.partition.name, "Type": built.partition.type}]
    assert raw["Parameters"]["projection.dt.range"].startswith("2024-01-01,")
    for view in built.views:
        stored = table(glue, view.name)
        definition = read_presto_view(stored["ViewOriginalText"])
        assert definition["originalSql"] == view.sql
        assert definition["columns"] == [{"name": c.name, "type": c.type} for c in view.columns]
        assert [c["Name"] for c in stored["StorageDescriptor"]["Columns"]] == [
            c.name for c in view.columns]
    columns = table(glue, "ev_order_placed")["StorageDescriptor"]["Columns"]
    hive = {c["Name"]: c["Type"] for c in columns}
    assert hive["total"] == "double" and hive["customer_id"] == "bigint"
    assert hive["items"] == hive["event_id"] == "string"
    assert hive["timestamp"] == "timestamp" and hive["dt"] == "date"

    paid_more = TypeSchema("order.paid", "ev_order_paid", (
        *paid.fields, Field("method", ("method",), '$."method"', "VARCHAR", False)))
    rebuilt = build([placed, paid_more], "s3://lake-bucket/shop/events/", "athena",
                    database=DB, first_day=date(2024, 1, 1))
    assert register(glue, rebuilt, database=DB).updated == ["ev_order_paid"]
