"""The typed views of a DuckDB export: one `ev_<type>` per event type in the file, inferred over
the file's own events, equal to a session's typed views over the same selection; a redacted
field has no column, a hashed one is text."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from export_support import SALT, SELECTION, START, row, shop_lake

from eventlake.api import EventLake
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.replay.select import Selection


@pytest.fixture
def shop(mocked_aws: None, tmp_path: Path) -> EventLake:
    return shop_lake(tmp_path)


def file_views(path: Path) -> dict[str, pa.Table]:
    """Each typed view of the DuckDB file at `path`, opened alone, in (timestamp, event_id)
    order."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        names = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT "
                                           "internal AND view_name LIKE 'ev\\_%' ESCAPE '\\' "
                                           "ORDER BY 1").fetchall()]
        return {n: con.sql(f'SELECT * FROM "{n}" ORDER BY timestamp, event_id').to_arrow_table()
                for n in names}
    finally:
        con.close()


def session_view(lake: EventLake, view: str, selection: Selection = SELECTION) -> pa.Table:
    """`view` as a typed session (`eventlake sql`) gives it, over the selection's time range."""
    return lake.sql(f'SELECT * FROM "{view}" WHERE timestamp >= $a AND timestamp < $b '
                    "ORDER BY timestamp, event_id",
                    {"a": selection.from_ts, "b": selection.to_ts}, hot=False)


def test_the_files_typed_views_equal_the_sessions(shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "bi.duckdb"
    shop.export(SELECTION, out, format="duckdb")

    views = file_views(out)
    assert sorted(views) == ["ev_order_placed", "ev_page_viewed"]
    for name, table in views.items():
        want = session_view(shop, name)
        assert table.schema == want.schema, name
        assert table.to_pylist() == want.to_pylist() and table.num_rows == 3
    first = views["ev_order_placed"].to_pylist()[0]
    assert (first["customer_email"], first["customer_tier"], first["price"]) == (
        "c1@x.com", 1, 1.5)


def test_a_redacted_field_has_no_column_and_a_hashed_one_is_text(shop: EventLake,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "shared.duckdb"
    shop.export(SELECTION, out, format="duckdb", redact=["price"],
                hash_=["customer.email", "customer.tier"], salt=SALT)

    views = file_views(out)
    for name, table in views.items():
        want = session_view(shop, name)
        assert "price" in want.column_names and "price" not in table.column_names
        assert table.schema.field("customer_tier").type == pa.string()
        hashed = ["customer_email", "customer_tier"]
        for got, session in zip(table.to_pylist(), want.to_pylist(), strict=True):
            for column in hashed:  # sha256(salt || the value as text)
                assert got.pop(column) == sha(str(session.pop(column)))
            session.pop("price")
            assert got == session


def test_only_the_types_in_the_file_get_a_view(shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "orders.duckdb"
    selection = Selection(START, START + timedelta(days=5), ("order.placed",), cold_only=True)
    shop.export(selection, out, format="duckdb")

    views = file_views(out)
    assert list(views) == ["ev_order_placed"]
    emails = [r["customer_email"] for r in views["ev_order_placed"].to_pylist()]
    assert emails == ["c1@x.com", "c3@x.com", "c5@x.com", "c7@x.com", "c9@x.com", None]


def test_odd_events_read_as_text_or_null_not_as_an_error(shop: EventLake,
                                                         tmp_path: Path) -> None:
    day = START - timedelta(days=3)
    payloads = ['{"n": 1}', '{"n": "text now"}', "not json"]
    records = [{**row(0, "odd.thing", {}), "event_id": f"e-odd-{i}",
                "timestamp": day + timedelta(hours=i), "event_payload": p}
               for i, p in enumerate(payloads)]
    shop.cold.write(pa.Table.from_pylist(records, schema=EVENT_SCHEMA), "odd")
    odd = Selection(day, day + timedelta(days=1), cold_only=True)
    out = tmp_path / "odd.duckdb"
    shop.export(odd, out, format="duckdb")

    views = file_views(out)
    assert list(views) == ["ev_odd_thing"]
    table = views["ev_odd_thing"]
    assert table.schema.field("n").type == pa.string()  # a number and a text: a conflict
    assert table.column("n").to_pylist() == ["1", "text now", None]  # not JSON: NULL
    assert table.to_pylist() == session_view(shop, "ev_odd_thing", odd).to_pylist()


def sha(value: str) -> str:
    return hashlib.sha256((SALT + value).encode()).hexdigest()
