"""`eventlake catalog`: `ddl` prints the DDL of the lake for an engine; `glue` registers it in
(moto's) Glue and says what it did (the registration's rules are tested in test_glue.py);
errors exit 2."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from eventlake.api import EventLake
from eventlake.catalog.model import DIALECTS
from eventlake.cli import catalog as cli_catalog
from eventlake.cli.main import _parser, main
from eventlake.events.schema import EVENT_SCHEMA


@pytest.fixture
def shop(lake: EventLake) -> EventLake:
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    rows = [{"event_id": f"e-{n}", "event_type": t, "timestamp": at, "ingested_at": at,
             "source": "shop", "subject": None, "content_hash": f"h{n}",
             "event_payload": json.dumps(p)}
            for n, (t, p) in enumerate([("order.placed", {"total": 9.5}),
                                        ("page.viewed", {"url": "/"})])]
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "sweep-a")
    return lake


def lake_args(lake: EventLake) -> list[str]:
    return ["--lake-uri", lake.settings.lake_uri, "--table", lake.settings.table]


def test_ddl_prints_the_lakes_ddl_for_spark(shop: EventLake,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["catalog", "ddl", "--dialect", "spark", *lake_args(shop)])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("-- eventlake catalog for spark: table events_raw over "
                          f"file://{shop.cold.root}/events/")
    for view in ("events_raw", "events", "ev_order_placed", "ev_page_viewed"):
        assert f"CREATE OR REPLACE TEMPORARY VIEW `{view}`" in out
    assert out.endswith(";\n")


def test_ddl_takes_a_location_and_a_database(shop: EventLake,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["catalog", "ddl", "--dialect", "athena", "--database", "lakehouse",
                 "--location", "s3://bucket/lake/events", *lake_args(shop)])

    out = capsys.readouterr().out
    assert code == 0
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS `lakehouse`.`events_raw`" in out
    assert "LOCATION 's3://bucket/lake/events/'" in out
    assert 'CREATE OR REPLACE VIEW "lakehouse"."ev_order_placed"' in out


def test_athena_over_a_local_lake_without_location_exits_2_saying_why(
        shop: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["catalog", "ddl", "--dialect", "athena", *lake_args(shop)])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "Athena reads only S3" in captured.err and "--location" in captured.err


def test_an_unknown_dialect_and_a_missing_subcommand_exit_2(
        shop: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["catalog", "ddl", "--dialect", "hive", *lake_args(shop)])
    assert exit_.value.code == 2
    assert main(["catalog", *lake_args(shop)]) == 2
    assert "ddl" in capsys.readouterr().err


def parsed(argv: list[str]) -> argparse.Namespace:
    return _parser().parse_args(argv)


def test_glue_takes_a_database_and_a_location() -> None:
    args = parsed(["catalog", "glue", "--database", "lakehouse", "--location",
                   "s3://bucket/lake/events/", "--lake-uri", "s3://bucket/lake"])

    assert args.func is cli_catalog.run_glue
    assert (args.database, args.location, args.lake_uri) == (
        "lakehouse", "s3://bucket/lake/events/", "s3://bucket/lake")


def test_glue_registers_the_lake_and_a_rerun_changes_nothing(
        shop: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["catalog", "glue", "--database", "lakehouse", "--location",
            "s3://bucket/lake/events/", *lake_args(shop)]

    first = main(argv)
    first_out = capsys.readouterr().out
    again = main(argv)
    again_out = capsys.readouterr().out

    glue = shop.clients.glue
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName="lakehouse")["TableList"]}
    assert (first, again) == (0, 0)
    assert set(tables) == {"events_raw", "events", "ev_order_placed", "ev_page_viewed"}
    assert tables["events_raw"]["StorageDescriptor"]["Location"] == "s3://bucket/lake/events/"
    assert tables["ev_order_placed"]["TableType"] == "VIRTUAL_VIEW"
    assert first_out.startswith("glue: database lakehouse (created): 1 table and 3 views; "
                                "created 4")
    assert "created 0, updated 0, unchanged 4, deleted 0" in again_out


def test_glue_requires_a_database(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parsed(["catalog", "glue"])

    assert exit_.value.code == 2
    assert "--database" in capsys.readouterr().err


def test_common_options_work_before_and_after_the_subcommand() -> None:
    before: Any = parsed(["--lake-uri", "/a", "catalog", "ddl", "--dialect", "trino"])
    after: Any = parsed(["catalog", "ddl", "--dialect", "trino", "--lake-uri", "/b"])

    assert (before.lake_uri, after.lake_uri) == ("/a", "/b")


def test_cli_dialect_choices_match_the_library() -> None:
    assert cli_catalog.DIALECTS == DIALECTS
