"""The analytics queries of `eventlake/query/sql/`: each file's header, and each query on a few
input rows with its exact expected output (rows registered as `events`), then all of them on
the real views of a small lake."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from eventlake import EventLake
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.query.views import connect, list_queries, load_sql

T0 = datetime(2024, 5, 10, 9, 0, tzinfo=UTC)
QUERIES = ["arrival_lag_percentiles", "events_per_type_per_day", "funnel", "hourly_volume",
           "latest_event_per_subject", "payload_field"]
PARAMS: dict[str, dict[str, Any]] = {
    "funnel": {"from_type": "cart.created", "to_type": "order.placed", "window_hours": 24},
    "payload_field": {"event_type": "order.placed", "json_path": "$.total"},
}


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def row(event_id: str, event_type: str, at: datetime, *, subject: str | None = None,
        payload: dict[str, Any] | None = None, lag: timedelta = timedelta(seconds=2)
        ) -> dict[str, Any]:
    """One stored event; ingested `lag` after its timestamp."""
    return {"event_id": event_id, "event_type": event_type, "timestamp": at,
            "ingested_at": at + lag, "source": "shop", "subject": subject,
            "event_payload": json.dumps(payload or {}, separators=(",", ":")),
            "content_hash": f"hash-{event_id}"}


def run(name: str, rows: list[dict[str, Any]], **params: Any) -> list[tuple[Any, ...]]:
    """Query `name` over `rows` registered as the `events` view (with dt, as the lake has)."""
    table = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)
    table = table.append_column("dt", pa.array([r["timestamp"].date() for r in rows],
                                               pa.date32()))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("input_rows", table)
    con.execute("CREATE VIEW events AS SELECT * FROM input_rows")
    relation = con.sql(load_sql(name), params=params or None)
    assert relation is not None
    return relation.fetchall()


# -- the files ---------------------------------------------------------------------------------

def test_the_folder_holds_the_documented_queries_and_sql_points_at_it() -> None:
    assert list_queries() == QUERIES
    top = Path(__file__).parents[2] / "sql"
    assert sorted(p.stem for p in top.glob("*.sql")) == QUERIES  # the layout's `sql/` folder


@pytest.mark.parametrize("name", QUERIES)
def test_each_file_opens_with_a_header_naming_its_grain_and_parameters(name: str) -> None:
    text = load_sql(name)
    header = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        header.append(line[2:].strip())
    assert header and header[0].endswith(".") and len(header[0]) <= 98, "first line: a sentence"
    assert any(h.startswith("grain:") for h in header)
    params_at = next(i for i, h in enumerate(header) if h.startswith("params:"))
    block = [header[params_at]]
    for h in header[params_at + 1:]:
        if re.match(r"[a-z]+:", h):
            break
        block.append(h)
    declared = set(re.findall(r"\$([A-Za-z_]\w*)", " ".join(block)))
    used = set(duckdb.connect().extract_statements(text)[0].named_parameters)
    assert declared == used == set(PARAMS.get(name, {}))
    assert declared or block == ["params:  none"]


@pytest.mark.parametrize("name", QUERIES)
def test_each_query_casts_every_output_column(name: str) -> None:
    body = "\n".join(line for line in load_sql(name).splitlines()
                     if not line.lstrip().startswith("--"))
    select_list = body.rsplit("\nSELECT\n", 1)[1].split("\nFROM ", 1)[0]
    items = re.split(r",\n(?=    \S)", select_list.strip())
    assert items and all(item.strip().startswith("CAST(") for item in items), items


# -- each query, small input, exact output -------------------------------------------------------

def test_events_per_type_per_day_counts_by_utc_day_of_the_timestamp() -> None:
    rows = [row("a", "signup", T0, subject="u1"),
            row("b", "signup", T0 + minutes(1), subject="u2"),
            row("c", "signup", T0 + minutes(2), subject="u2"),
            row("d", "login", T0, subject=None),
            # 23:59:59.5 on the 10th is the 10th; 00:00 UTC the 11th is the 11th
            row("e", "login", datetime(2024, 5, 10, 23, 59, 59, 500000, tzinfo=UTC)),
            row("f", "login", datetime(2024, 5, 11, tzinfo=UTC), subject="u1")]

    assert run("events_per_type_per_day", rows) == [
        (date(2024, 5, 10), "login", 2, 0),
        (date(2024, 5, 10), "signup", 3, 2),
        (date(2024, 5, 11), "login", 1, 1),
    ]


def test_hourly_volume_buckets_by_utc_hour_and_leaves_empty_hours_out() -> None:
    rows = [row("a", "signup", T0, subject="u1"),
            row("b", "login", T0 + minutes(59), subject="u1"),
            row("c", "login", T0 + minutes(60), subject="u2"),
            row("d", "login", T0 + minutes(185))]

    assert run("hourly_volume", rows) == [
        (T0, 2, 2, 1),
        (T0 + timedelta(hours=1), 1, 1, 1),
        (T0 + timedelta(hours=3), 1, 1, 0),
    ]


def test_latest_event_per_subject_takes_the_latest_timestamp_then_the_larger_id() -> None:
    rows = [row("a", "signup", T0, subject="u1", payload={"plan": "free"}),
            row("b", "upgrade", T0 + minutes(5), subject="u1", payload={"plan": "pro"}),
            row("c", "login", T0 + minutes(1), subject="u2"),
            row("d", "logout", T0 + minutes(1), subject="u2"),
            row("e", "login", T0 + minutes(9), subject=None)]

    assert run("latest_event_per_subject", rows) == [
        ("u1", "b", "upgrade", T0 + minutes(5), '{"plan":"pro"}', 2),
        ("u2", "d", "logout", T0 + minutes(1), "{}", 2),
    ]


def test_funnel_counts_subjects_converting_within_the_window_per_cohort_day() -> None:
    day2 = T0 + timedelta(days=1)
    rows = [
        # u1: converts after 2 h
        row("u1-cart", "cart.created", T0, subject="u1"),
        row("u1-order", "order.placed", T0 + timedelta(hours=2), subject="u1"),
        # u2: enters at its first cart (the second one does not re-enter); orders after 30 h
        row("u2-cart", "cart.created", T0 + minutes(10), subject="u2"),
        row("u2-cart2", "cart.created", T0 + timedelta(hours=20), subject="u2"),
        row("u2-order", "order.placed", T0 + timedelta(hours=30), subject="u2"),
        # u3: an order before the cart does not count; the one 24 h after it does (inclusive)
        row("u3-order0", "order.placed", T0 - minutes(5), subject="u3"),
        row("u3-cart", "cart.created", T0 + minutes(20), subject="u3"),
        row("u3-order", "order.placed", T0 + minutes(20) + timedelta(hours=24), subject="u3"),
        # u4 enters the next day and never orders; u5 has no cart; no subject: left out
        row("u4-cart", "cart.created", day2, subject="u4"),
        row("u5-order", "order.placed", day2, subject="u5"),
        row("anon-cart", "cart.created", day2),
    ]

    assert run("funnel", rows, from_type="cart.created", to_type="order.placed",
               window_hours=24) == [
        (date(2024, 5, 10), 3, 2, 2 / 3, 13.0),  # median of 2 h and 24 h
        (date(2024, 5, 11), 1, 0, 0.0, None),
    ]
    assert run("funnel", rows, from_type="cart.created", to_type="order.placed",
               window_hours=1.5) == [
        (date(2024, 5, 10), 3, 0, 0.0, None),
        (date(2024, 5, 11), 1, 0, 0.0, None),
    ]


def test_funnel_from_a_type_to_itself_needs_a_second_event() -> None:
    rows = [row("a1", "visit", T0, subject="u1"), row("a2", "visit", T0 + minutes(30),
                                                        subject="u1"),
            row("b1", "visit", T0, subject="u2")]

    assert run("funnel", rows, from_type="visit", to_type="visit", window_hours=1) == [
        (date(2024, 5, 10), 2, 1, 0.5, 0.5)]


def test_payload_field_extracts_a_json_path_of_one_event_type() -> None:
    rows = [row("o1", "order.placed", T0, subject="c1",
                payload={"total": 19.9, "items": [{"sku": "A-1"}], "note": "gift"}),
            row("o2", "order.placed", T0 + minutes(1), payload={"items": []}),
            row("o3", "order.placed", T0 + minutes(2), payload={"total": {"net": 10}}),
            row("s1", "signup", T0, payload={"total": 1})]

    assert run("payload_field", rows, event_type="order.placed", json_path="$.total") == [
        ("o1", T0, "c1", "19.9", "19.9"),
        ("o2", T0 + minutes(1), None, None, None),
        ("o3", T0 + minutes(2), None, '{"net":10}', '{"net":10}'),
    ]
    assert run("payload_field", rows, event_type="order.placed",
               json_path="$.items[0].sku")[0] == ("o1", T0, "c1", "A-1", '"A-1"')
    assert run("payload_field", rows, event_type="order.placed", json_path="/note")[0] == (
        "o1", T0, "c1", "gift", '"gift"')


def test_arrival_lag_percentiles_are_nearest_rank_seconds_per_type() -> None:
    rows = [row(f"a{i}", "click", T0 + minutes(i), lag=timedelta(seconds=i))
            for i in range(1, 11)]  # lags 1..10 s
    rows += [row("late", "order", T0 - timedelta(days=2), lag=timedelta(days=2)),
             row("early", "order", T0, lag=timedelta(seconds=-90)),
             row("quick", "order", T0, lag=timedelta(microseconds=250_000))]

    assert run("arrival_lag_percentiles", rows) == [
        ("click", 10, 5.0, 9.0, 10.0, 10.0),
        ("order", 3, 0.25, 172800.0, 172800.0, 172800.0),
    ]


# -- on the real views ---------------------------------------------------------------------------

def test_every_query_runs_on_a_lake_and_the_parameterless_ones_are_views(
        lake: EventLake) -> None:
    rows = [row("c1", "cart.created", T0, subject="u1"),
            row("o1", "order.placed", T0 + minutes(5), subject="u1", payload={"total": 5})]
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "stream-0001")
    con = connect(lake, hot=False)

    for name in QUERIES:
        relation = con.sql(load_sql(name), params=PARAMS.get(name))
        assert relation is not None and relation.fetchall(), name
    views = {r[0] for r in con.sql("SELECT view_name FROM duckdb_views() "
                                   "WHERE NOT internal").fetchall()}
    assert {n for n in QUERIES if n not in PARAMS} <= views
    assert not {n for n in PARAMS} & views
    assert con.sql("SELECT event_type, events FROM events_per_type_per_day").fetchall() == [
        ("cart.created", 1), ("order.placed", 1)]
