"""Export: each format reads back to the rows `eventlake sql` gives for the same selection;
payload fields dropped or hashed; nothing left behind by a failed export."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from export_support import COLUMNS, SALT, SELECTION, START, expected, iso, shop_lake

from eventlake.api import EventLake
from eventlake.cli import export as cli_export
from eventlake.cli.main import main
from eventlake.errors import ConfigError
from eventlake.export import FORMATS, ExportError, RedactionError
from eventlake.export import run as export_run
from eventlake.replay.select import Selection


@pytest.fixture
def shop(mocked_aws: None, tmp_path: Path) -> EventLake:
    return shop_lake(tmp_path)


def test_parquet_reads_back_to_the_rows_of_eventlake_sql(shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "day.parquet"
    report = shop.export(SELECTION, out)

    rows = expected(shop)
    assert 0 < len(rows) < 10  # the range leaves events out
    assert pq.read_table(out).to_pylist() == rows
    assert (report.rows, report.bytes) == (len(rows), out.stat().st_size)
    assert f"exported {len(rows)} events as parquet" in report.summary()


def test_csv_reads_back_to_the_same_rows(shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "day.csv"
    shop.export(SELECTION, out, format="csv")

    with out.open(newline="") as f:
        got = list(csv.DictReader(f))
    want = [{k: iso(v) if isinstance(v, datetime) else v for k, v in r.items()}
            for r in expected(shop)]
    assert got == want


def test_jsonl_holds_the_payload_as_an_object(shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "day.jsonl"
    shop.export(SELECTION, out, format="jsonl")

    got = [json.loads(line) for line in out.read_text().splitlines()]
    want = [{k: iso(v) if isinstance(v, datetime) else v for k, v in r.items()}
            for r in expected(shop)]
    for r in want:
        r["event_payload"] = json.loads(r["event_payload"])
    assert got == want


def test_duckdb_file_holds_the_events_and_the_query_views(shop: EventLake,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "bi.duckdb"
    shop.export(SELECTION, out, format="duckdb")

    con = duckdb.connect(str(out), read_only=True)
    try:
        names = ", ".join(f'"{c}"' for c in COLUMNS)
        got = con.sql(f"SELECT {names} FROM events ORDER BY timestamp, event_id"
                      ).to_arrow_table().to_pylist()
        per_day = con.sql("SELECT * FROM events_per_type_per_day").fetchall()
    finally:
        con.close()
    assert got == expected(shop)
    assert per_day  # the sql/ query views resolve against the file's own events


@pytest.mark.parametrize("key", ["dt", "event_type"])
def test_partitioned_parquet_is_hive_folders(shop: EventLake, tmp_path: Path,
                                             key: str) -> None:
    out = tmp_path / "parts"
    report = shop.export(SELECTION, out, partition_by=key)

    folders = {p.name for p in out.iterdir()}
    rows = expected(shop)
    assert folders == {f"{key}={r[key] if key == 'event_type' else r['timestamp'].date()}"
                       for r in rows}
    got = ds.dataset(out, format="parquet", partitioning="hive").to_table(columns=COLUMNS)
    assert sorted(got.to_pylist(), key=lambda r: r["event_id"]) == sorted(
        rows, key=lambda r: r["event_id"])
    assert len(report.files) == len(folders)


def test_redacted_field_is_gone_and_hashed_field_is_salted_sha256(
        shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "shared.parquet"
    shop.export(SELECTION, out, redact=["price"], hash_=["customer.email", "customer.tier"],
                salt=SALT)

    got = {r["event_id"]: json.loads(r["event_payload"]) for r in pq.read_table(out).to_pylist()}
    for r in expected(shop):
        original = json.loads(r["event_payload"])
        payload = got[r["event_id"]]
        assert "price" not in payload and payload["n"] == original["n"]
        assert payload["customer"]["tier"] == hashlib.sha256(
            (SALT + str(original["customer"]["tier"])).encode()).hexdigest()
        if "email" in original["customer"]:
            assert payload["customer"]["email"] == hashlib.sha256(
                (SALT + original["customer"]["email"]).encode()).hexdigest()
        else:  # a missing field is left alone, not invented
            assert "email" not in payload["customer"]


def test_a_missing_field_is_left_alone(shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    shop.export(SELECTION, out, redact=["nope.deeper"], hash_=["customer.nope"], salt=SALT)

    assert pq.read_table(out).to_pylist() == [
        {**r, "event_payload": json.dumps(json.loads(r["event_payload"]), separators=(",", ":"))}
        for r in expected(shop)]


def test_hash_without_a_salt_is_refused_before_writing(
        shop: EventLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTLAKE_EXPORT_SALT", raising=False)
    with pytest.raises(RedactionError, match="EVENTLAKE_EXPORT_SALT"):
        shop.export(SELECTION, tmp_path / "x.parquet", hash_=["customer.email"])
    with pytest.raises(RedactionError, match="empty"):
        shop.export(SELECTION, tmp_path / "x.parquet", hash_=["customer.email"], salt="")
    assert list(tmp_path.iterdir()) == [tmp_path / "lake"]


def test_the_salt_comes_from_the_environment(shop: EventLake, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAKE_EXPORT_SALT", SALT)
    out = tmp_path / "x.jsonl"
    shop.export(SELECTION, out, format="jsonl", hash_=["customer.email"])

    first = json.loads(out.read_text().splitlines()[0])
    assert first["event_payload"]["customer"]["email"] == hashlib.sha256(
        f"{SALT}c1@x.com".encode()).hexdigest()


@pytest.mark.parametrize("path", ["", "a..b", "a.", 'a."b"'])
def test_a_malformed_path_is_refused(shop: EventLake, tmp_path: Path, path: str) -> None:
    with pytest.raises(RedactionError, match="dotted path"):
        shop.export(SELECTION, tmp_path / "x.parquet", redact=[path])


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failure_while_writing_leaves_nothing_behind(shop: EventLake, tmp_path: Path,
                                                       fmt: str) -> None:
    # the predicate fails on one event, in the middle of the write
    selection = Selection(SELECTION.from_ts, SELECTION.to_ts, cold_only=True,
                          where="CASE WHEN event_id = 'e-004' THEN error('boom') ELSE true END")
    out = tmp_path / "out" / "x"
    with pytest.raises(ExportError, match="boom"):
        shop.export(selection, out, format=fmt)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failed_rename_keeps_the_old_export_and_no_temporary(
        shop: EventLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out" / "parts"
    shop.export(SELECTION, out, partition_by="dt")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def fail(tmp: Path, dest: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(export_run, "_publish", fail)
    with pytest.raises(OSError, match="disk full"):
        shop.export(SELECTION, out, partition_by="dt", overwrite=True)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["parts"]


def test_an_existing_destination_is_refused_unless_overwritten(shop: EventLake,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    out.write_text("keep me")
    with pytest.raises(ConfigError, match="exists"):
        shop.export(SELECTION, out)
    assert out.read_text() == "keep me"

    shop.export(SELECTION, out, overwrite=True)
    assert pq.read_table(out).num_rows == len(expected(shop))


def test_an_empty_selection_writes_an_empty_file_and_says_so(shop: EventLake,
                                                             tmp_path: Path) -> None:
    empty = Selection(START + timedelta(days=30), START + timedelta(days=31), cold_only=True)
    report = shop.export(empty, tmp_path / "none.parquet")

    assert report.rows == 0 and "the selection is empty" in report.summary()
    assert pq.read_table(tmp_path / "none.parquet").column_names == COLUMNS


def test_unknown_format_and_misplaced_partitioning_are_refused(shop: EventLake,
                                                               tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown export format `xlsx`"):
        shop.export(SELECTION, tmp_path / "x", format="xlsx")
    with pytest.raises(ConfigError, match="partition"):
        shop.export(SELECTION, tmp_path / "x", format="csv", partition_by="dt")
    assert list(tmp_path.iterdir()) == [tmp_path / "lake"]


def test_cli_exports_with_a_type_filter_and_prints_a_summary(
        shop: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "orders.csv"
    code = main(["export", "--lake-uri", shop.settings.lake_uri, "--table",
                 shop.settings.table, "--from", "2024-05-01", "--to", "2024-05-03",
                 "--type", "order.placed", "--cold-only", "--format", "csv", "--out", str(out)])

    rows = expected(shop, Selection(SELECTION.from_ts, SELECTION.to_ts, ("order.placed",),
                                    cold_only=True))
    assert code == 0
    assert f"exported {len(rows)} events as csv to {out}" in capsys.readouterr().out
    with out.open(newline="") as f:
        assert [r["event_id"] for r in csv.DictReader(f)] == [r["event_id"] for r in rows]


def test_cli_refuses_hash_without_salt_with_exit_2(
        shop: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTLAKE_EXPORT_SALT", raising=False)
    code = main(["export", "--lake-uri", shop.settings.lake_uri, "--from", "2024-05-01",
                 "--to", "2024-05-03", "--cold-only", "--hash", "customer.email",
                 "--out", str(tmp_path / "x.parquet")])

    assert code == 2
    assert "EVENTLAKE_EXPORT_SALT" in capsys.readouterr().err


def test_cli_format_choices_match_the_library() -> None:
    assert cli_export.FORMATS == FORMATS
