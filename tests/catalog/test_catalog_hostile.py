"""Catalog DDL under attack (review of issue 11): event types, payload keys, locations and
database names holding quotes, backquotes, comment markers and line breaks stay data in every
dialect; a statement is one statement."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from eventlake.api import EventLake
from eventlake.catalog.ddl import build, ddl_text, plan_for, statements
from eventlake.catalog.model import DIALECTS
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.query.typed import Field, TypeSchema

START = datetime(2024, 5, 1, tzinfo=UTC)

ODD = "x'\"`*/--;\nDROP TABLE victim; -- \r"
"""Quotes of every kind, a comment closer and opener, a statement end and line breaks."""


def schema(event_type: str, *keys: str) -> TypeSchema:
    fields = tuple(Field(f"f{i}", (k,), f'$."{k}"', "VARCHAR", False)
                   for i, k in enumerate(keys))
    return TypeSchema(event_type, "ev_x", fields)


def location(dialect: str) -> str:
    return f"{'s3' if dialect != 'spark' else 's3a'}://bucket/{ODD}/events/"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_odd_types_keys_and_locations_stay_inside_one_statement_each(dialect: str) -> None:
    catalog = build([schema(ODD, ODD, "k")], location(dialect), dialect,  # type: ignore[arg-type]
                    database=None if dialect == "spark" else ODD)

    for statement in statements(catalog):
        trees = sqlglot.parse(statement, read=dialect)
        assert len(trees) == 1, statement
        assert not any(isinstance(t, exp.Drop) for t in trees), statement


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_header_and_view_comments_are_comment_lines_only(dialect: str) -> None:
    catalog = build([schema(ODD, "k")], location(dialect), dialect,  # type: ignore[arg-type]
                    database=None if dialect == "spark" else "db")

    header, _, _ = ddl_text(catalog).partition("\n\n")

    assert all(line.startswith("-- ") for line in header.splitlines())
    comments: list[Any] = [s for s in statements(catalog) if s.startswith("--")]
    assert comments and all(s.split("\n", 1)[1].startswith(("CREATE", "ALTER", "CALL"))
                            for s in comments)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_empty_lake_gives_the_raw_table_and_events_view_only(lake: EventLake,
                                                                dialect: str) -> None:
    catalog = plan_for(lake, dialect,  # type: ignore[arg-type]
                       location="s3://bucket/lake/events/" if dialect == "athena" else None)

    assert [v.name for v in catalog.views] == ["events"]
    assert all(len(sqlglot.parse(s, read=dialect)) == 1 for s in statements(catalog))


def test_a_type_named_only_by_punctuation_gets_a_view_beside_a_type_named_x(
        lake: EventLake) -> None:
    rows = [{"event_id": f"e-{n}", "event_type": t, "timestamp": START, "ingested_at": START,
             "source": None, "subject": None, "event_payload": '{"a": 1}',
             "content_hash": f"h{n}"} for n, t in enumerate(["!!!", "x", "?"])]
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "sweep-a")

    catalog = plan_for(lake, "spark")

    views = {v.name: v for v in catalog.views}
    assert len(views) == 4 and "ev_x" in views  # `x` keeps its clean name
    assert sorted(v.sql.count("'!!!'") + v.sql.count("'?'") for v in views.values()) == \
        [0, 0, 1, 1]
