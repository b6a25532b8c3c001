"""A new user's first hour: `put` on records of another shape, on a terminal, with line numbers;
`sql` with several statements, the prompt's banner, a mistyped flag; what the demo narrates."""

from __future__ import annotations

import argparse
import io
import json
import logging
import shlex
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from eventlake.cli.demo_story import (
    MARKER,
    StreamReports,
    archive_line,
    next_commands,
    prepare_folder,
    ttl_lines,
)
from eventlake.cli.main import main
from eventlake.errors import ConfigError
from eventlake.query.prompt import QUIT, banner

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def table(mocked_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EVENTLAKE_TABLE", "first-hour")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    assert main(["init"]) == 0
    capsys.readouterr()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- put ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fixture", "expected_map"), [
    ("gharchive_sample.jsonl", "event_id=id,event_type=type,timestamp=created_at,"
                               "event_payload=payload"),
    ("cloudtrail_lookup_sample.jsonl", "event_id=EventId,event_type=EventName,"
                                       "timestamp=EventTime,event_payload=CloudTrailEvent"),
])
def test_records_of_another_shape_point_at_a_map_that_then_stores_them(
        table: None, capsys: pytest.CaptureFixture[str], fixture: str,
        expected_map: str) -> None:
    path = str(FIXTURES / fixture)

    assert main(["put", path]) == 1
    err = capsys.readouterr().err
    assert f"{path} line 1: invalid:" in err and "event.unknown_field" in err
    assert "--unmapped" in err
    suggested = err.split("e.g.\n")[1].strip()
    assert suggested == f"eventlake put --map {expected_map} --unmapped payload FILE"

    code = main(shlex.split(suggested.replace("FILE", shlex.quote(path)))[1:])

    assert code == 0, capsys.readouterr().err
    records = len((FIXTURES / fixture).read_text(encoding="utf-8").splitlines())
    assert f"created {records} " in capsys.readouterr().out


def test_problems_name_the_line_and_the_item_never_a_position(
        table: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"event_type": "ok", "event_payload": {}}\n\n'
                     '{"event_type": "bad", "timestamp": "soon"}\n', encoding="utf-8")
    listed = tmp_path / "batch.json"
    listed.write_text('[{"event_type": "ok", "event_payload": {}}, {"event_type": ""}]',
                      encoding="utf-8")

    assert main(["put", str(lines), str(listed)]) == 1

    err = capsys.readouterr().err
    assert f"{lines} line 3: invalid: timestamp `soon`" in err
    assert f"{listed} item 2: invalid:" in err
    assert "#" not in err
    assert "hint" not in err  # the records are events: no map to suggest


def test_put_on_a_terminal_says_it_reads_stdin(
        table: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal('{"event_type": "a", "event_payload": {}}\n'))

    assert main(["put"]) == 0

    out, err = capsys.readouterr()
    assert err.startswith("eventlake put: reading events from stdin") and "created 1" in out


def test_put_from_a_pipe_says_nothing_of_stdin(
        table: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"event_type": "a", "event_payload": {}}\n'))

    assert main(["put"]) == 0

    assert capsys.readouterr().err == ""


# --- sql ----------------------------------------------------------------------------------------

@pytest.fixture
def duck(monkeypatch: pytest.MonkeyPatch) -> None:
    """`eventlake sql` on a bare DuckDB connection with a tiny `events` view."""
    import duckdb

    def connect(args: argparse.Namespace, typed: bool = True, **_: Any) -> Any:
        con = duckdb.connect()
        con.sql("CREATE VIEW events AS SELECT * FROM (VALUES ('a'), ('a'), ('b')) t(event_type)")
        return con

    monkeypatch.setattr("eventlake.cli.sql._connect", connect)


def test_several_statements_run_and_each_result_is_printed(
        duck: None, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sql", "SELECT count(*) AS n FROM events; "
                        "CREATE TEMP VIEW b AS SELECT * FROM events WHERE event_type = 'b'; "
                        "SELECT count(*) AS bs FROM b"])

    out = capsys.readouterr().out
    assert code == 0
    assert out == "n\n-\n3\n(1 row)\n\nbs\n--\n 1\n(1 row)\n"


@pytest.mark.parametrize("flags", [["--format", "csv"], ["--out", "x.txt"]])
def test_several_results_into_one_output_are_refused_before_running(
        duck: None, capsys: pytest.CaptureFixture[str], flags: list[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    code = main(["sql", *flags, "CREATE TABLE t AS SELECT 1 AS x; SELECT 1; SELECT 2"])

    err = capsys.readouterr().err
    assert code == 2 and "statements 2, 3 of 3 each return rows" in err
    assert not (tmp_path / "x.txt").exists()


def test_a_mistyped_flag_names_the_subcommands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["sql", "--bogus", "SELECT 1"])

    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.startswith("usage: eventlake sql ")
    assert "eventlake sql: error: unrecognized arguments: --bogus" in err


@pytest.mark.parametrize(("command", "flag", "value", "said"), [
    ("replay", "--from", "2026-13-01", "`2026-13-01` is not a date (month must be in 1..12)"),
    ("export", "--to", "2026-02-30", "`2026-02-30` is not a date (day is out of range"),
    ("replay", "--from", "2026-02-28T10:00:00", "has no UTC offset; add `Z` or `+HH:MM`"),
])
def test_a_bad_day_is_named_as_a_day_not_as_a_missing_offset(
        capsys: pytest.CaptureFixture[str], command: str, flag: str, value: str,
        said: str) -> None:
    other = "--to" if flag == "--from" else "--from"
    with pytest.raises(SystemExit) as stop:
        main([command, other, "2026-01-01", flag, value])

    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert f"argument {flag}: " in err and said in err


@pytest.mark.parametrize(("argv", "said"), [
    (["backfill", "--segments", "0"], "argument --segments: `0` must be at least 1"),
    (["compact", "--target-mb", "0"], "argument --target-mb: `0` must be at least 1"),
    (["compact", "--min-files", "many"], "argument --min-files: `many` is not a whole number"),
    (["demo", "--events", "-5"], "argument --events: `-5` must be at least 1"),
])
def test_a_count_out_of_range_is_refused_before_anything_runs(
        capsys: pytest.CaptureFixture[str], argv: list[str], said: str) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)

    assert stop.value.code == 2 and said in capsys.readouterr().err


def test_a_file_that_is_not_there_is_named_not_its_exception_class(
        table: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nosuch.jsonl"

    assert main(["put", str(missing)]) == 2

    err = capsys.readouterr().err
    assert f"cannot use `{missing}`: No such file or directory" in err
    assert "FileNotFoundError" not in err and "Traceback" not in err


@pytest.mark.parametrize("uri", ["s3:/bucket/lake", "S3:/bucket/lake", "s3:bucket/lake"])
def test_an_s3_uri_missing_a_slash_is_refused_not_taken_for_a_local_folder(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        uri: str) -> None:
    monkeypatch.chdir(tmp_path)

    assert main(["--lake-uri", uri, "sql", "--cold-only", "SELECT 1"]) == 2

    assert "`s3://bucket/prefix` (two slashes" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no folder `s3:` made


def test_sql_out_to_s3_is_refused_pointing_at_export(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    code = main(["--lake-uri", str(tmp_path), "sql", "--cold-only", "--format", "csv",
                 "--out", "s3://bucket/days.csv", "SELECT 1"])

    assert code == 2
    assert "writes local files only; to S3, `eventlake export --query" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no folder `s3:` made


def test_help_names_the_defaults_the_variables_and_the_exit_codes(
        capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import fields

    from eventlake.config import Settings

    defaults = {f.name: f.default for f in fields(Settings)}
    with pytest.raises(SystemExit):
        main(["--help"])

    text = " ".join(capsys.readouterr().out.split())  # argparse wraps at the terminal's width
    assert f"$EVENTLAKE_TABLE, else {defaults['table']})" in text
    assert f"$EVENTLAKE_LAKE_URI, else {defaults['lake_uri']})" in text
    assert f"AWS_DEFAULT_REGION (default {defaults['region']})" in text
    assert "AWS_ENDPOINT_URL" in text and "exit codes: 0 done; 1 " in text


@pytest.mark.parametrize("duckdb_shell", [None, "/usr/bin/duckdb"])
def test_the_banner_suggests_only_what_exists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              duckdb_shell: str | None) -> None:
    monkeypatch.setattr("shutil.which", lambda name: duckdb_shell if name == "duckdb" else None)
    args = argparse.Namespace(cold_only=False, table=None, lake_uri=str(tmp_path))

    text = banner(args)

    dot_commands = set(word.strip(".;,") for word in text.split() if word.startswith("."))
    assert {f".{w}" for w in dot_commands} <= {*QUIT, ".help"}
    assert ("duckdb -cmd" in text) == (duckdb_shell is not None)


# --- the demo's narration -----------------------------------------------------------------------

def test_the_demo_empties_only_a_folder_it_made(tmp_path: Path) -> None:
    mine = prepare_folder(tmp_path / "demo")
    (mine / "old.jsonl").write_text("x", encoding="utf-8")
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("x", encoding="utf-8")

    assert sorted(p.name for p in prepare_folder(mine).iterdir()) == [MARKER]
    with pytest.raises(ConfigError, match="not made by `eventlake demo`"):
        prepare_folder(other)
    assert (other / "thesis.tex").exists()


def stream_log(**counts: int) -> str:
    return json.dumps({"msg": "stream batch", **counts})


def test_the_narration_says_the_stream_handlers_own_counts() -> None:
    log = logging.getLogger("eventlake.handlers.stream")
    with StreamReports() as reports:
        log.info(stream_log(records=1000, archived=3, already_archived=25, ttl_removals=0,
                            other_removals=972))
        log.info(stream_log(records=56, ttl_removals=0, other_removals=56))
        log.info("not a report")
    log.info(stream_log(records=5))  # after the block: not collected

    total = reports.total()
    lines = ttl_lines(1028, total, 85, 88)

    assert total["batches"] == 2 and total["records"] == 1056
    assert "1,028 items deleted" in lines[0]
    assert ("1,056 records in 2 batch(es): 1,028 REMOVE (0 marked as TTL deletes, 1,028 not), "
            "archived 3, already in the lake 25") in lines[1]
    assert lines[-1].endswith("85 before, 88 after = 85 + the 3 archived: no REMOVE deleted a row")
    # the verdict is counted: rows lost under the REMOVEs are said, never covered by a constant
    assert "no REMOVE deleted" not in ttl_lines(1028, total, 85, 80)[-1]
    assert "+8 rows unaccounted for" in ttl_lines(1028, total, 85, 80)[-1]
    assert archive_line(total).startswith("the stream Lambda's reports: 1,056 records")


def test_the_narration_says_no_row_was_deleted_only_when_the_counts_add_up() -> None:
    total = {"batches": 1, "records": 10, "archived": 3, "already_archived": 0,
             "quarantined": 0, "modified": 0, "ttl_removals": 7, "other_removals": 0,
             "removed_checked": 0, "removed_archived": 0}

    lines = ttl_lines(7, total, 85, 86)  # 85 + 3 archived should be 88: two rows went

    assert "no REMOVE" not in lines[-1]
    assert "expected 85 + the 3 archived = 88: +2 rows unaccounted for" in lines[-1]
    assert not any("moto's deletes" in line for line in lines)  # every REMOVE was a TTL one


def test_the_narration_counts_what_removes_archived_from_their_old_images() -> None:
    total = {"batches": 1, "records": 10, "archived": 3, "already_archived": 0,
             "quarantined": 0, "modified": 0, "ttl_removals": 7, "other_removals": 0,
             "removed_checked": 7, "removed_archived": 2}

    lines = ttl_lines(7, total, 85, 90)

    assert lines[-2] == ("7 REMOVEs no expiry check had vouched for were checked against the "
                         "lake: 2 archived from their old images")
    assert lines[-1].endswith("85 before, 90 after = 85 + the 5 archived: no REMOVE deleted "
                              "a row")


def test_the_reports_are_collected_not_echoed_by_the_root_loggers_handler(
        caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("eventlake.handlers.stream")
    with caplog.at_level(logging.INFO, logger="eventlake.handlers.stream"):
        with StreamReports() as reports:
            log.info(stream_log(records=4))
        log.info(stream_log(records=5))  # after the block: propagates again, as before

    assert reports.total()["records"] == 4
    assert [json.loads(r.getMessage())["records"] for r in caplog.records] == [5]


def test_the_demo_refuses_a_table_or_lake_it_would_not_use(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--table", "prod-events"]) == 2
    assert main(["--lake-uri", "s3://prod/lake", "demo"]) == 2

    err = capsys.readouterr().err
    assert "`eventlake demo` takes no --table: it makes its own table" in err
    assert "takes no --lake-uri" in err and "--keep DIR" in err


def test_the_next_commands_name_the_kept_lake_and_the_weeks_dates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    lines = next_commands(tmp_path / "demo-lake" / "lake", date(2026, 11, 30))

    assert "export EVENTLAKE_LAKE_URI=demo-lake/lake" in lines
    commands = [shlex.split(line)[1] for line in lines if line.startswith("eventlake ")]
    assert commands == ["sql", "replay", "export"]
    assert all("--cold-only" in line for line in lines if line.startswith("eventlake "))
    assert "--from 2026-11-23 --to 2026-12-01" in lines[-1]
