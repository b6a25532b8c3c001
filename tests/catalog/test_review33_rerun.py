"""Review 33: re-running the printed Athena DDL over a database that already holds `events_raw`
(from an earlier run) must bring the table to what this run describes. `CREATE EXTERNAL TABLE IF
NOT EXISTS` alone is a no-op on an existing table: after a backfill of days older than the
first one (the case the README says to re-run for) the projection range would keep starting
at the old first day, and Athena would silently read none of the backfilled days."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlglot
from sqlglot import exp

from eventlake.catalog.ddl import build, statements
from eventlake.catalog.model import RAW_TABLE

LOCATION = "s3://bucket/moved lake/it's/events/"


def _alters(catalog: Any) -> list[exp.Alter]:
    trees = [sqlglot.parse_one(s, read="athena") for s in statements(catalog)]
    return [t for t in trees if isinstance(t, exp.Alter)]


def _set_properties(alter: exp.Alter) -> dict[str, str]:
    props = alter.find(exp.Properties)
    return {} if props is None else {p.name: p.text("value") for p in props.expressions}


def test_a_rerun_of_the_athena_ddl_moves_the_projection_range_and_location_of_an_existing_table(
        ) -> None:
    catalog = build([], LOCATION, "athena", database="shop", first_day=date(2023, 1, 1))

    alters = _alters(catalog)

    assert alters, "nothing updates an events_raw that already exists"
    assert all(a.this.name == RAW_TABLE and a.this.db == "shop" for a in alters)
    props: dict[str, str] = {}
    for alter in alters:
        props |= _set_properties(alter)
    assert props == catalog.properties  # every property, the range from 2023-01-01 included
    assert props["projection.dt.range"] == "2023-01-01,NOW+1DAYS"
    locations = [a.find(exp.AlterSet) for a in alters]
    assert [loc.args["location"].name for loc in locations if loc is not None
            and loc.args.get("location") is not None] == [LOCATION]


def test_the_alters_come_after_the_create_and_before_the_views() -> None:
    catalog = build([], "s3://bucket/lake/events/", "athena", database=None,
                    first_day=date(2024, 5, 1))

    kinds = [type(sqlglot.parse_one(s, read="athena")).__name__ for s in statements(catalog)]

    assert kinds[0] == "Create" and kinds[-1] == "Create"  # the table ... the events view
    assert set(kinds[1:-1]) == {"Alter"}


def test_the_trino_ddl_says_a_moved_lake_needs_the_old_table_dropped() -> None:
    catalog = build([], "s3://bucket/lake/events/", "trino", database="shop")

    create = statements(catalog)[0]

    assert "IF NOT EXISTS" in create and "DROP TABLE it first when the lake moved" in create
    assert isinstance(sqlglot.parse_one(create, read="trino"), exp.Create)
