"""Typed views per event type (`ev_<type>`) and `eventlake schema`: columns and values from the
payloads, conflicts as text, odd values as NULL (and counted), names sanitised and stable, new
fields on the next connect, an empty lake."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from eventlake import EventLake
from eventlake.cli.main import main
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.query.typed import COMMON_COLUMNS, read_schema, sanitise, type_stats

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
HUGE = 18446744073709551615  # a JSON integer that no BIGINT holds


def row(n: int, event_type: str, payload: dict[str, Any] | str) -> dict[str, Any]:
    """An event as the lake stores it (`payload` a str: stored as it is, even if not JSON)."""
    at = START + timedelta(seconds=n)
    return {"event_id": f"{event_type}-{n:03d}", "event_type": event_type, "timestamp": at,
            "ingested_at": at, "source": "shop", "subject": f"user/{n % 2}",
            "event_payload": payload if isinstance(payload, str) else json.dumps(payload),
            "content_hash": f"hash-{event_type}-{n}"}


def write(lake: EventLake, rows: list[dict[str, Any]], name: str = "test") -> None:
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), name)


def columns(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    return {name: sql_type for name, sql_type, *_ in con.execute(f'DESCRIBE "{view}"').fetchall()}


def rows_of(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[Any, ...]]:
    return con.execute(query).fetchall()


def views(con: duckdb.DuckDBPyConnection) -> list[str]:
    return sorted(r[0] for r in rows_of(
        con, "SELECT view_name FROM duckdb_views() WHERE view_name LIKE 'ev\\_%' ESCAPE '\\'"))


ORDERS = [
    row(1, "order_placed", {"order_id": "o-1", "total": 10, "paid": True,
                            "customer": {"id": 7, "address": {"city": "Oslo",
                                                               "geo": {"lat": 59.9}}},
                            "items": [{"sku": "a"}, {"sku": "b"}], "note": None,
                            "source": "web", "ref": 1}),
    row(2, "order_placed", {"order_id": "o-2", "total": 12.5, "paid": False,
                            "customer": {"id": 8}, "items": [], "ref": "r-2"}),
    row(3, "order_placed", {"order_id": "o-3", "total": 3, "customer": {"id": HUGE}}),
]


@pytest.fixture
def con(lake: EventLake) -> duckdb.DuckDBPyConnection:
    write(lake, ORDERS)
    return lake.connect(hot=False)


# -- the views --------------------------------------------------------------------------------

def test_each_payload_field_is_a_typed_column_after_the_common_ones(
        con: duckdb.DuckDBPyConnection) -> None:
    described = columns(con, "ev_order_placed")

    assert list(described)[:len(COMMON_COLUMNS)] == list(COMMON_COLUMNS)
    assert {k: v for k, v in described.items() if k not in COMMON_COLUMNS} == {
        "customer_address_city": "VARCHAR",
        "customer_address_geo": "JSON",  # deeper than three keys: one JSON column
        "customer_id": "BIGINT",
        "items": "JSON",
        "note": "VARCHAR",  # only nulls so far
        "order_id": "VARCHAR",
        "paid": "BOOLEAN",
        "payload_source": "VARCHAR",  # `source` is a common column
        "ref": "VARCHAR",  # a number here, a string there
        "total": "DOUBLE",  # integers and decimals widen to DOUBLE
    }


def test_typed_columns_hold_the_payload_values(con: duckdb.DuckDBPyConnection) -> None:
    got = rows_of(con, "SELECT event_id, source, order_id, total, paid, customer_id, "
                       "customer_address_city, customer_address_geo, items, payload_source, "
                       "ref FROM ev_order_placed ORDER BY event_id")

    assert got == [
        ("order_placed-001", "shop", "o-1", 10.0, True, 7, "Oslo", '{"lat":59.9}',
         '[{"sku":"a"},{"sku":"b"}]', "web", "1"),
        ("order_placed-002", "shop", "o-2", 12.5, False, 8, None, None, "[]", None, "r-2"),
        ("order_placed-003", "shop", "o-3", 3.0, None, None, None, None, None, None, None),
    ]  # o-3's customer id does not fit a BIGINT: NULL, not an error


def test_schema_counts_events_conflicts_and_values_that_do_not_cast(
        con: duckdb.DuckDBPyConnection) -> None:
    [schema] = read_schema(con)
    stats = type_stats(con, schema)
    fields = {f.column: f for f in schema.fields}

    assert (stats.events, stats.invalid_payloads) == (3, 0)
    assert stats.fields["customer_id"].cast_failures == 1
    assert stats.fields["customer_id"].events == 3
    assert fields["ref"].conflict and stats.fields["ref"].seen == ("UBIGINT", "VARCHAR")
    assert not fields["total"].conflict and stats.fields["total"].seen == ("DOUBLE", "UBIGINT")
    assert stats.fields["note"].events == 0  # null is no value
    assert sum(s.cast_failures for s in stats.fields.values()) == 1


def test_a_payload_that_is_not_json_reads_as_nulls_and_the_view_never_fails(
        lake: EventLake) -> None:
    write(lake, [row(1, "signup", {"plan": "pro", "seats": 3}),
                 row(2, "signup", "{not json"), row(3, "signup", '["an", "array"]'),
                 row(4, "signup", {"plan": {"name": "team"}, "seats": "many"})])
    con = lake.connect(hot=False)

    got = rows_of(con, "SELECT event_id, plan, seats FROM ev_signup ORDER BY event_id")
    stats = type_stats(con, read_schema(con)[0])

    assert got == [("signup-001", "pro", "3"), ("signup-002", None, None),
                   ("signup-003", None, None), ("signup-004", '{"name":"team"}', "many")]
    assert (stats.events, stats.invalid_payloads) == (4, 2)


def test_a_field_that_is_always_an_empty_object_is_json_not_a_conflict(
        lake: EventLake) -> None:
    write(lake, [row(1, "cart", {"meta": {}, "extra": {}}), row(2, "cart", {"meta": {}}),
                 row(3, "cart", {"meta": None, "extra": 5})])
    con = lake.connect(hot=False)
    [schema] = read_schema(con)
    fields = {f.column: f for f in schema.fields}

    assert (fields["meta"].sql_type, fields["meta"].conflict) == ("JSON", False)
    assert (fields["extra"].sql_type, fields["extra"].conflict) == ("VARCHAR", True)
    assert rows_of(con, "SELECT meta::VARCHAR, extra FROM ev_cart ORDER BY event_id") == [
        ("{}", "{}"), ("{}", None), (None, "5")]


def test_keys_with_dots_quotes_and_backslashes_are_read_by_their_own_key(
        lake: EventLake) -> None:
    write(lake, [row(1, "odd_keys", {"a.b": 1, 'say "hi"': 2, "back\\slash": 3, "a b": 4,
                                     "a_b": 5, "9lives": 6, "x_y": 7, "x": {"y": 8}})])
    con = lake.connect(hot=False)
    described = columns(con, "ev_odd_keys")

    def tag(path: str) -> str:
        return hashlib.sha256(path.encode()).hexdigest()[:6]

    dotted, spaced = "a_b_" + tag('$."a.b"'), "a_b_" + tag('$."a b"')
    x_y, nested = "x_y_" + tag('$."x_y"'), "x_y_" + tag('$."x"."y"')
    assert set(described) - set(COMMON_COLUMNS) == {
        dotted, spaced, "a_b", "say_hi", "back_slash", "f_9lives", x_y, nested}
    assert rows_of(con, f'SELECT "{dotted}", say_hi, back_slash, "{spaced}", a_b, f_9lives, '
                        f'"{x_y}", "{nested}" FROM ev_odd_keys') == [(1, 2, 3, 4, 5, 6, 7, 8)]


def test_type_names_are_sanitised_and_those_that_clash_get_a_stable_suffix(
        lake: EventLake) -> None:
    write(lake, [row(1, "order_placed", {"a": 1}), row(2, "Order Placed!", {"b": 2}),
                 row(3, "order.placed", {"c": 3}), row(4, "Cart-Created", {"d": 4})])
    con = lake.connect(hot=False)

    def tag(name: str) -> str:
        return hashlib.sha256(name.encode()).hexdigest()[:6]

    assert views(con) == sorted(["ev_order_placed", f"ev_order_placed_{tag('Order Placed!')}",
                                 f"ev_order_placed_{tag('order.placed')}", "ev_cart_created"])
    assert rows_of(con, f"SELECT event_type, b FROM ev_order_placed_{tag('Order Placed!')}"
                   ) == [("Order Placed!", 2)]
    assert rows_of(con, "SELECT event_type, a FROM ev_order_placed") == [("order_placed", 1)]
    assert sanitise("Ünïcode  Type--2") == "n_code_type_2"


# -- across connections -----------------------------------------------------------------------

def test_a_new_field_in_new_hot_events_appears_on_the_next_connect(lake: EventLake) -> None:
    write(lake, [row(1, "signup", {"plan": "pro"})])
    before = lake.connect()
    lake.put({"event_id": "signup-new", "event_type": "signup",
              "timestamp": (START + timedelta(minutes=5)).isoformat(),
              "event_payload": {"plan": "team", "seats": 5}})

    after = lake.connect()

    assert "seats" not in columns(before, "ev_signup")
    assert columns(after, "ev_signup")["seats"] == "BIGINT"
    assert rows_of(after, "SELECT event_id, plan, seats FROM ev_signup ORDER BY event_id") == [
        ("signup-001", "pro", None), ("signup-new", "team", 5)]


def test_an_empty_lake_connects_with_no_typed_views(lake: EventLake) -> None:
    con = lake.connect()

    assert views(con) == []
    assert read_schema(con) == []


# -- eventlake schema -------------------------------------------------------------------------

def schema_cli(lake: EventLake, *args: str) -> list[str]:
    return ["schema", "--table", lake.settings.table, "--lake-uri", str(lake.settings.lake_uri),
            "--cold-only", *args]


def test_schema_json_lists_each_field_with_its_type_counts_and_conflicts(
        lake: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    write(lake, [*ORDERS, row(9, "cart created", {"items": 2})])

    assert main(schema_cli(lake, "--json")) == 0
    report = json.loads(capsys.readouterr().out)

    assert [(t["event_type"], t["view"], t["events"]) for t in report] == [
        ("cart created", "ev_cart_created", 1), ("order_placed", "ev_order_placed", 3)]
    fields = {f["column"]: f for f in report[1]["fields"]}
    assert fields["customer_id"] == {"column": "customer_id", "path": ["customer", "id"],
                                     "type": "BIGINT", "events": 3, "conflict": None,
                                     "cast_failures": 1}
    assert fields["ref"]["conflict"] == ["UBIGINT", "VARCHAR"]
    assert fields["ref"]["type"] == "VARCHAR"


def test_schema_of_one_type_in_text(lake: EventLake, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    write(lake, [*ORDERS, row(9, "cart", {"items": 2})])

    assert main(schema_cli(lake, "--type", "order_placed")) == 0
    out = capsys.readouterr().out

    assert out.startswith("order_placed  ->  ev_order_placed  (3 events)\n")
    assert "cart" not in out
    assert "conflict: UBIGINT, VARCHAR -> text" in out
    assert "1 value(s) do not cast (NULL)" in out


def test_schema_of_an_unknown_type_exits_2_naming_it(
        lake: EventLake, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(lake, ORDERS)

    assert main(schema_cli(lake, "--type", "nope")) == 2
    err = capsys.readouterr().err

    assert "no event type `nope`" in err and "`order_placed`" in err


def test_only_sessions_that_may_use_typed_views_pay_for_them(lake: EventLake) -> None:
    # inference reads every payload's structure: sessions that cannot name an ev_ view skip it
    from eventlake.query.views import connect

    write(lake, ORDERS)
    plain = connect(lake, hot=False)
    try:
        names = {r[0] for r in plain.sql("SELECT view_name FROM duckdb_views()").fetchall()}
        assert "events" in names and not any(n.startswith("ev_") for n in names)
    finally:
        plain.close()

    # EventLake.sql makes them when the query names one, and EventLake.connect by default
    total = lake.sql("SELECT sum(total) AS t FROM ev_order_placed", hot=False)
    assert total.column("t").to_pylist() == [25.5]  # 10 + 12.5 + 3
    assert lake.sql("SELECT count(*) AS n FROM events", hot=False).column("n").to_pylist() == [3]
    untyped = lake.connect(hot=False, typed=False)
    try:
        assert not untyped.sql("SELECT 1 FROM duckdb_views() WHERE starts_with(view_name, 'ev_')"
                               ).fetchall()
    finally:
        untyped.close()
