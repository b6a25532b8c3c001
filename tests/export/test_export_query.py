"""Export of a named query of sql/: it runs over the selection's events only (redaction applied),
its parameters are checked against the query, and its result is written in each format."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from export_support import SALT, SELECTION, START, expected, iso, shop_lake

from eventlake.api import EventLake
from eventlake.cli.main import main
from eventlake.errors import ConfigError
from eventlake.export import ExportError, QueryError
from eventlake.query.views import load_sql
from eventlake.replay.select import Selection

EVERYTHING = Selection(START - timedelta(days=1), START + timedelta(days=30), cold_only=True)
"""Every event of the shop lake: there the export equals the query run by `eventlake sql`."""
FUNNEL = {"from_type": "page.viewed", "to_type": "order.placed", "window_hours": "60"}


@pytest.fixture
def shop(mocked_aws: None, tmp_path: Path) -> EventLake:
    return shop_lake(tmp_path)


def test_over_every_event_the_export_equals_the_query_of_eventlake_sql(
        shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "per_day.parquet"
    report = shop.export(EVERYTHING, out, query="events_per_type_per_day")

    want = shop.sql("SELECT * FROM events_per_type_per_day", hot=False)
    assert pq.read_table(out).to_pylist() == want.to_pylist()
    assert report.rows == want.num_rows == 6
    assert f"exported 6 rows of query `events_per_type_per_day` as parquet to {out}" in \
        report.summary()


def test_the_query_reads_only_the_selected_events(shop: EventLake, tmp_path: Path) -> None:
    # the TEMP table `events` shadows the connection's view of the same name
    selection = Selection(START, START + timedelta(days=2), ("order.placed",), cold_only=True)
    out = tmp_path / "per_day.csv"
    shop.export(selection, out, format="csv", query="events_per_type_per_day")

    with out.open(newline="") as f:
        got = [(r["dt"], r["event_type"], int(r["events"])) for r in csv.DictReader(f)]
    counts = Counter((str(r["timestamp"].date()), r["event_type"])
                     for r in expected(shop, selection))
    assert got == sorted((dt, t, n) for (dt, t), n in counts.items())
    assert sum(n for *_, n in got) == 3


def test_parameters_are_bound(shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "funnel.jsonl"
    shop.export(EVERYTHING, out, format="jsonl", query="funnel", params=FUNNEL)

    got = [json.loads(line) for line in out.read_text().splitlines()]
    want = shop.sql(load_sql("funnel"), FUNNEL, hot=False).to_pylist()
    assert [{**r, "cohort_dt": str(r["cohort_dt"])} for r in want] == got
    assert got and any(r["converted"] for r in got)


def test_the_result_keeps_its_order_with_rfc3339_timestamps_in_jsonl(
        shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "hourly.jsonl"
    shop.export(EVERYTHING, out, format="jsonl", query="hourly_volume")

    got = [json.loads(line) for line in out.read_text().splitlines()]
    want = shop.sql("SELECT * FROM hourly_volume", hot=False).to_pylist()
    assert got == [{**r, "hour": iso(r["hour"])} for r in want]
    assert len(got) == 10 and got == sorted(got, key=lambda r: r["hour"])


def test_timestamps_of_a_result_are_rfc3339_text_in_csv(shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "latest.csv"
    shop.export(SELECTION, out, format="csv", query="latest_event_per_subject")

    with out.open(newline="") as f:
        got = {r["subject"]: (r["event_id"], r["timestamp"]) for r in csv.DictReader(f)}
    latest: dict[str, dict[str, Any]] = {}
    for r in expected(shop):  # in timestamp order: the last one wins
        latest[r["subject"]] = r
    assert got == {s: (r["event_id"], iso(r["timestamp"])) for s, r in latest.items()}


def test_redaction_applies_to_what_the_query_reads(shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "emails.parquet"
    shop.export(SELECTION, out, query="payload_field", hash_=["customer.email"], salt=SALT,
                params={"event_type": "order.placed", "json_path": "$.customer.email"})

    got = pq.read_table(out).to_pylist()
    orders = [r for r in expected(shop) if r["event_type"] == "order.placed"]
    assert [r["value"] for r in got] == [
        hashlib.sha256((SALT + json.loads(r["event_payload"])["customer"]["email"]).encode())
        .hexdigest() for r in orders]


def test_a_duckdb_file_holds_a_table_named_after_the_query(shop: EventLake,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "funnel.duckdb"
    shop.export(EVERYTHING, out, format="duckdb", query="funnel", params=FUNNEL)

    con = duckdb.connect(str(out), read_only=True)
    try:
        tables = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        got = con.sql("SELECT * FROM funnel ORDER BY cohort_dt").to_arrow_table().to_pylist()
    finally:
        con.close()
    assert tables == [("funnel",)]
    assert got == shop.sql(load_sql("funnel"), FUNNEL, hot=False).to_pylist()


def test_an_unknown_query_lists_the_known_ones(shop: EventLake, tmp_path: Path) -> None:
    with pytest.raises(QueryError, match=r"no query named `funel`.*funnel.*payload_field"):
        shop.export(SELECTION, tmp_path / "x.csv", format="csv", query="funel")
    assert list(tmp_path.iterdir()) == [tmp_path / "lake"]


def test_a_missing_parameter_is_named_with_its_description(shop: EventLake,
                                                            tmp_path: Path) -> None:
    params = {k: v for k, v in FUNNEL.items() if k != "window_hours"}
    with pytest.raises(QueryError, match=r"needs --param window_hours=VALUE: \$window_hours "
                                         r"DOUBLE how long after entering a completion"):
        shop.export(SELECTION, tmp_path / "x.csv", format="csv", query="funnel", params=params)
    assert list(tmp_path.iterdir()) == [tmp_path / "lake"]


def test_a_parameter_the_query_does_not_take_is_refused(shop: EventLake,
                                                        tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="no parameter `windw_hours`; it takes from_type, "
                                         "to_type, window_hours"):
        shop.export(SELECTION, tmp_path / "x.csv", query="funnel",
                    params={**FUNNEL, "windw_hours": "8"})
    with pytest.raises(ConfigError, match="--param `x` is for a query"):
        shop.export(SELECTION, tmp_path / "x.csv", params={"x": "1"})
    with pytest.raises(ConfigError, match="partitions events"):
        shop.export(SELECTION, tmp_path / "x", query="hourly_volume", partition_by="dt")


def test_cli_exports_a_query_with_parameters(shop: EventLake, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "funnel.csv"
    params = [a for k, v in FUNNEL.items() for a in ("--param", f"{k}={v}")]
    code = main(["export", "--lake-uri", shop.settings.lake_uri, "--from", "2024-04-30",
                 "--to", "2024-05-31", "--cold-only", "--query", "funnel", *params,
                 "--format", "csv", "--out", str(out)])

    assert code == 0, capsys.readouterr().err
    assert "rows of query `funnel` as csv" in capsys.readouterr().out
    with out.open(newline="") as f:
        got = [r["entered"] for r in csv.DictReader(f)]
    assert got == [str(r["entered"]) for r in
                   shop.sql(load_sql("funnel"), FUNNEL, hot=False).to_pylist()]


def test_cli_refuses_a_parameter_without_equals_sign(shop: EventLake, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["export", "--from", "2024-05-01", "--to", "2024-05-02", "--query", "funnel",
              "--param", "from_type", "--out", str(tmp_path / "x.csv")])
    assert exited.value.code == 2
    assert "`from_type` is not KEY=VALUE" in capsys.readouterr().err


def test_a_parameter_value_the_query_cannot_use_fails_leaving_nothing(
        shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "out" / "funnel.csv"
    with pytest.raises(ExportError, match=r"export to .*funnel.csv.* failed, nothing was "
                                          r"written: .*soon"):
        shop.export(EVERYTHING, out, format="csv", query="funnel",
                    params={**FUNNEL, "window_hours": "soon"})
    assert list(out.parent.iterdir()) == []
