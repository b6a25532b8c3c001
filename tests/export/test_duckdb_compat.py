"""The DuckDB export opens in the DuckDB that BI tools bundle: a fresh process of an older DuckDB
release (1.1.3, in its own virtualenv: `make .venv-compat`) reads the file written by this
process's DuckDB, its `events`, every sql/ view and every typed view, directly and through
SQLAlchemy with duckdb-engine (how Superset and other SQLAlchemy tools connect), and finds what
this process finds.

Values cross the process boundary as DuckDB's own text (`COLUMNS(*)::VARCHAR`, the session in
UTC): each DuckDB renders them itself, and DuckDB 1.1's Python client would need pytz to hand
a TIMESTAMPTZ to Python, which the file does not depend on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from export_support import SELECTION, shop_lake

from eventlake.api import EventLake
from eventlake.query.views import list_queries

ROOT = Path(__file__).resolve().parents[2]
COMPAT_PYTHON = Path(os.environ.get("EVENTLAKE_COMPAT_PYTHON")
                     or ROOT / ".venv-compat" / "bin" / "python")
"""The older DuckDB's interpreter (read at import: the tests' fixtures clear EVENTLAKE_*)."""
COMPAT_DUCKDB = "1.1.3"

PROBE = r'''
import json, sys
import duckdb

path, with_sqlalchemy = sys.argv[1], sys.argv[2] == "sqlalchemy"
con = duckdb.connect(path, read_only=True)
con.execute("SET TimeZone = 'UTC'")

def text(sql):
    return [list(r) for r in con.execute(f"SELECT COLUMNS(*)::VARCHAR FROM ({sql})").fetchall()]

out = {"duckdb": duckdb.__version__,
       "events": con.execute("SELECT count(*) FROM events").fetchall()[0][0],
       "per_type": text("SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 1"),
       "sample": text("SELECT event_id, event_type, timestamp, dt, subject, event_payload "
                      "FROM events ORDER BY timestamp, event_id LIMIT 3"),
       "tables": sorted(r[0] for r in con.execute(
           "SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall())}
views = sorted(r[0] for r in con.execute(
    "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary").fetchall())
out["views"] = {}
for view in views:
    columns = [d[0] for d in con.execute(f'SELECT * FROM "{view}" LIMIT 0').description]
    out["views"][view] = {"columns": columns, "rows": text(f'SELECT * FROM "{view}"')}
con.close()
if with_sqlalchemy:
    from sqlalchemy import create_engine, inspect, text as sql_text

    engine = create_engine("duckdb:///" + path, connect_args={"read_only": True})
    found = inspect(engine)
    with engine.connect() as connection:
        per_type = connection.execute(sql_text(
            "SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1")).fetchall()
        typed = connection.execute(sql_text(
            "SELECT count(*) FROM ev_order_placed WHERE customer_email IS NOT NULL")).scalar()
    out["sqlalchemy"] = {"tables": sorted(found.get_table_names()),
                         "views": sorted(found.get_view_names()),
                         "per_type": [[t, n] for t, n in per_type], "typed_emails": typed}
    engine.dispose()
print(json.dumps(out))
'''


@pytest.fixture
def shop(mocked_aws: None, tmp_path: Path) -> EventLake:
    return shop_lake(tmp_path)


@pytest.fixture
def compat_python() -> Path:
    if COMPAT_PYTHON.is_file() and os.access(COMPAT_PYTHON, os.X_OK):
        return COMPAT_PYTHON
    how = (f"`make .venv-compat` creates it (DuckDB {COMPAT_DUCKDB}, duckdb-engine, "
           f"SQLAlchemy); EVENTLAKE_COMPAT_PYTHON names another interpreter")
    if os.environ.get("CI"):
        pytest.fail(f"the older-DuckDB interpreter `{COMPAT_PYTHON}` is missing: {how}; "
                    "without it the export's compatibility is untested")
    pytest.skip(f"needs the older-DuckDB interpreter `{COMPAT_PYTHON}`: {how}")


def probe(python: Path | str, path: Path, *, sqlalchemy: bool) -> dict[str, Any]:
    """What `python` (a fresh process) reads from the DuckDB file at `path`."""
    done = subprocess.run([str(python), "-c", PROBE, str(path),
                           "sqlalchemy" if sqlalchemy else "plain"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_duckdb_file_reads_the_same_in_an_older_duckdb_and_through_sqlalchemy(
        shop: EventLake, tmp_path: Path, compat_python: Path) -> None:
    out = tmp_path / "bi.duckdb"
    shop.export(SELECTION, out, format="duckdb", hash_=["customer.email"], salt="pepper")

    here = probe(sys.executable, out, sqlalchemy=False)
    old = probe(compat_python, out, sqlalchemy=True)

    assert old.pop("duckdb") == COMPAT_DUCKDB
    engine = old.pop("sqlalchemy")
    assert here.pop("duckdb") != COMPAT_DUCKDB
    assert old == here
    # what the file holds: the events, every parameterless sql/ query, a typed view per type
    queries = {q for q in list_queries() if q not in ("funnel", "payload_field")}
    assert here["tables"] == ["events"] and here["events"] == 6
    assert set(here["views"]) == queries | {"ev_order_placed", "ev_page_viewed"}
    assert all(v["rows"] for v in here["views"].values())  # each view reads rows, none fails
    assert here["per_type"] == [["order.placed", "3"], ["page.viewed", "3"]]
    typed = here["views"]["ev_order_placed"]
    assert {"customer_email", "items"} <= set(typed["columns"])  # items: a JSON column
    items = [r[typed["columns"].index("items")] for r in typed["rows"]]
    assert sorted(items, key=str) == [None, '[{"sku":"k1"}]', '[{"sku":"k5"}]']  # null: NULL
    # through SQLAlchemy (duckdb-engine): the same names and answers
    assert engine == {"tables": ["events"], "views": sorted(here["views"]),
                      "per_type": [["order.placed", 3], ["page.viewed", 3]],
                      "typed_emails": 3}
