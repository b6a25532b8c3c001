"""The `eventlake` command line: thin, but its outputs and exit codes are a contract."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from eventlake import EventLake
from eventlake.cli.demo_story import StreamReports
from eventlake.cli.main import main


@pytest.fixture
def cli_env(mocked_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> EventLake:
    monkeypatch.setenv("EVENTLAKE_TABLE", "cli-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    return EventLake.from_env()


def event(i: int, **extra: object) -> dict[str, object]:
    return {"event_id": f"e-{i}", "event_type": "signup", "timestamp": "2026-01-02T03:04:05Z",
            "event_payload": {"n": i}, **extra}


def test_init_provisions_once_then_reports_nothing_to_change(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init"]) == 0
    first = capsys.readouterr().out
    assert "created table `cli-events`" in first

    assert main(["init"]) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_put_reads_a_json_list_and_prints_counts(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()
    path = tmp_path / "events.json"
    path.write_text(json.dumps([event(1), event(2)]))

    assert main(["put", str(path)]) == 0
    assert "created 2  duplicate 0" in capsys.readouterr().out

    assert main(["put", str(path)]) == 0
    assert "created 0  duplicate 2" in capsys.readouterr().out


@pytest.mark.parametrize("text", [
    # a JSON list over several lines, a comma missing on line 3
    '[{"event_type": "a", "event_payload": {}},\n {"event_type": "b", "event_payload": {}},\n'
    ' {"event_type": "c" "event_payload": {}}]\n',
    # one pretty-printed event, `tru` on line 3
    '{\n  "event_type": "a",\n  "event_payload": {"ok": tru}\n}\n',
], ids=["list", "pretty-object"])
def test_put_of_a_broken_json_document_names_its_line_and_column_once(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    # given a JSON document (not JSON lines) with a syntax error on line 3
    main(["init"])
    capsys.readouterr()
    path = tmp_path / "batch.json"
    path.write_text(text)
    # when it is put
    assert main(["put", str(path)]) == 1
    out, err = capsys.readouterr()
    # then one problem names line 3 and its column, nothing is stored, and the lines that are
    # fine are not reported as broken JSON lines
    problems = [line.strip() for line in err.splitlines() if "batch.json" in line]
    assert len(problems) == 1, err
    assert re.fullmatch(rf"{re.escape(str(path))} line 3 column \d+: not JSON \(.+\) "
                        r"\[rule json.unparseable\]", problems[0]), problems[0]
    assert "created 0" in out and "invalid 1" in out
    assert cli_env.clients.dynamodb.scan(TableName="cli-events")["Items"] == []


def test_put_jsonl_with_a_broken_line_stores_the_rest_and_exits_nonzero(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([json.dumps(event(1)), "{not json", json.dumps(event(3)), ""]))

    assert main(["put", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "created 2" in out and "invalid 1" in out
    assert "events.jsonl line 2: not JSON" in err and "json.unparseable" in err
    stored = {i["event_id"]["S"] for i in cli_env.clients.dynamodb.scan(
        TableName="cli-events")["Items"]}
    assert stored == {"e-1", "e-3"}


def test_put_names_the_line_and_rule_of_an_invalid_event(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event(1)) + "\n" + json.dumps(
        event(2, timestamp="2026-01-02 03:04:05")) + "\n")

    assert main(["put", str(path)]) == 1
    err = capsys.readouterr().err
    assert "events.jsonl line 2" in err and "`e-2`" in err and "timestamp.naive" in err


@pytest.mark.parametrize("field", ["event_id", "event_type", "source", "subject"])
def test_put_names_the_line_of_a_lone_surrogate_and_stores_the_rest(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        field: str) -> None:
    # given a JSONL file whose third line holds "\ud800" (a lone surrogate) in one field
    main(["init"])
    capsys.readouterr()
    bad = json.dumps(event(3, source="shop", subject="user/3")).replace(
        f'"{field}": "', f'"{field}": "\\ud800', 1)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([json.dumps(event(1)), json.dumps(event(2)), bad,
                               json.dumps(event(4))]) + "\n")
    # when it is put, then the line is named with its rule and the other lines are stored
    assert main(["put", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "created 3" in out and "invalid 1" in out
    assert "events.jsonl line 3: invalid" in err and f"{field}.invalid_unicode" in err
    stored = {i["event_id"]["S"] for i in cli_env.clients.dynamodb.scan(
        TableName="cli-events")["Items"]}
    assert stored == {"e-1", "e-2", "e-4"}


def test_put_names_the_line_of_a_record_that_is_not_an_object(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([json.dumps(event(1)), "42", json.dumps(event(3))]) + "\n")

    assert main(["put", str(path)]) == 1
    err = capsys.readouterr().err
    assert "events.jsonl line 2: invalid" in err and "event.not_object" in err


def test_put_from_stdin_counts_lines_as_json_does(
        cli_env: EventLake, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # given JSON Lines on stdin whose first record holds U+2028 (legal inside a JSON string)
    main(["init"])
    capsys.readouterr()
    lines = [json.dumps(event(1, event_payload={"note": "a\u2028b"}), ensure_ascii=False),
             json.dumps(event(2, timestamp="yesterday"))]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    # when it is put, then the bad record is named by its real line number
    assert main(["put"]) == 1
    out, err = capsys.readouterr()
    assert "created 1" in out
    assert "stdin line 2: invalid" in err


def test_put_refuses_a_record_with_a_duplicate_key_naming_the_line_and_key(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event(1)) + "\n"
                    + '{"event_id": "e-2", "event_type": "a", "event_type": "b"}\n')

    assert main(["put", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "created 1" in out and "invalid 1" in out
    assert "events.jsonl line 2" in err and "`event_type`" in err and "json.duplicate_key" in err


def test_put_refuses_a_json_document_with_a_duplicate_key_and_stores_nothing_from_it(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()
    path = tmp_path / "events.json"
    path.write_text('[{"event_id": "e-1", "event_type": "a", "event_payload": {}},\n'
                    ' {"event_id": "e-2", "event_type": "a", "event_id": "e-3"}]')

    assert main(["put", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "invalid 1" in out
    assert "events.json: " in err and "`event_id`" in err and "json.duplicate_key" in err
    assert cli_env.clients.dynamodb.scan(TableName="cli-events")["Items"] == []


def test_put_reports_a_conflict_and_keeps_the_stored_event(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    first, changed = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(event(1)))
    changed.write_text(json.dumps({"events": [event(1, event_payload={"n": 99})]}))
    main(["put", str(first)])
    capsys.readouterr()

    assert main(["put", str(changed)]) == 1
    out, err = capsys.readouterr()
    assert "conflict 1" in out and "already stored with different content" in err
    item = cli_env.clients.dynamodb.get_item(TableName="cli-events",
                                             Key={"event_id": {"S": "e-1"}})["Item"]
    assert item["event_payload"]["S"] == '{"n":1}'


def test_put_reads_stdin_and_prints_json_results(
        cli_env: EventLake, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(event(7))))

    assert main(["put", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[0]) == {"input": "stdin item 1", "event_id": "e-7",
                                    "outcome": "created"}


def test_status_shows_table_stream_and_ttl(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "cli-events (ACTIVE)" in out and "NEW_AND_OLD_IMAGES" in out
    assert "ENABLED on expires_at" in out

    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hot"]["stream"] == "NEW_AND_OLD_IMAGES"


def test_a_bad_setting_stops_with_the_variable_named(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EVENTLAKE_RETENTION_DAYS", "a week")

    assert main(["status"]) == 2
    assert "EVENTLAKE_RETENTION_DAYS='a week'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.integration
def test_demo_runs_end_to_end_on_the_local_stack(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    with StreamReports() as seen:  # the stream handler's log lines (Prefect resets the root's)
        assert main(["demo", "--events", "60", "--keep", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    check_the_narration_against_the_reports(out, seen.batches, tmp_path / "demo")
    assert "created 60" in out
    assert "duplicate 60" in out
    assert "each sent event stored once: True" in out
    assert "rule timestamp.unparseable" in out
    assert "every stored event archived once: True" in out
    assert "lost 0, different 0" in out  # reconcile
    assert "lost 0, doubled 0" in out  # after TTL expiry and compaction
    assert "events_per_type_per_day.sql" in out  # hybrid queries over hot and cold
    _, rule, row = out.split("cold  hot  events  distinct_ids")[1].splitlines()[:3]
    assert set(rule.strip()) == {"-", " "}  # the rule under the header
    tiers = row.split()
    assert tiers[2] == tiers[3]  # each event once across the tiers
    assert list((tmp_path / "demo" / "lake" / "events").glob("dt=*/*.parquet"))
    # the export, read back from the file alone: typed and sql/ views, a numeric total
    views = out.split("views in the file: ")[1].splitlines()[0].split(", ")
    assert {"ev_order_placed", "events_per_type_per_day"} <= set(views)
    assert "total DOUBLE" in out.split("ev_order_placed's payload columns: ")[1]
    assert (tmp_path / "demo" / "bi.duckdb").is_file()


def check_the_narration_against_the_reports(out: str, reports: list[dict[str, Any]],
                                            folder: Path) -> None:
    """Each number the demo printed about the stream path is the stream handler's own (its
    per-batch log lines), and the commands it ends with run as printed on the lake it kept."""
    def total(batches: list[dict[str, Any]], key: str) -> int:
        return sum(b[key] for b in batches)

    def number(text: str) -> int:
        return int(text.replace(",", ""))

    first = re.search(r"the stream Lambda's reports: ([\d,]+) records in (\d+) batch\(es\); "
                      r"archived ([\d,]+), already in the lake ([\d,]+), quarantined ([\d,]+)", out)
    assert first is not None
    early, late = reports[:number(first[2])], reports[number(first[2]):]
    assert [number(g) for g in first.groups()] == [
        total(early, "records"), len(early), total(early, "archived"),
        total(early, "already_archived"), total(early, "quarantined")]
    ttl = re.search(r"([\d,]+) items deleted by the emulated TTL\n  the stream Lambda's reports: "
                    r"([\d,]+) records in (\d+) batch\(es\): ([\d,]+) REMOVE \(([\d,]+) marked as "
                    r"TTL deletes, ([\d,]+) not\), archived ([\d,]+), already in the lake ([\d,]+)",
                    out)
    assert ttl is not None
    expired, *counts = (number(g) for g in ttl.groups())
    assert counts == [total(late, "records"), len(late),
                      total(late, "ttl_removals") + total(late, "other_removals"),
                      total(late, "ttl_removals"), total(late, "other_removals"),
                      total(late, "archived"), total(late, "already_archived")]
    assert expired == counts[2]  # every emulated delete reached the Lambda as a REMOVE
    rows = re.search(r"the lake's rows: ([\d,]+) before, ([\d,]+) after", out)
    assert rows is not None and number(rows[2]) == number(rows[1]) + counts[5]

    shell = out.split("== next: ")[1].splitlines()[1:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTLAKE_", "AWS_"))}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    done = subprocess.run(["bash", "-e", "-c", "\n".join(line.strip() for line in shell)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "order_placed" in done.stdout
    assert (folder / "orders.jsonl").stat().st_size > 0 and (folder / "week.csv").is_file()


def test_common_options_work_before_and_after_the_command(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--table", "before-table", "init"]) == 0
    assert "created table `before-table`" in capsys.readouterr().out

    # its own lake: `init` refuses a lake whose marker names another table (review24)
    assert main(["init", "--table", "after-table", "--lake-uri", str(tmp_path / "after")]) == 0
    assert "created table `after-table`" in capsys.readouterr().out

    assert main(["--table", "before-table", "status"]) == 0
    assert "before-table (ACTIVE)" in capsys.readouterr().out


# -- misconfiguration never looks like success (issue 8, items 8 and 14) ----------------------

def test_status_before_init_exits_nonzero_naming_the_table_and_init(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    # given neither the table nor the lake exists
    # when status runs
    code = main(["status"])

    # then it prints the status, and a line naming the table and the fix, and fails
    out, err = capsys.readouterr()
    assert code == 1
    assert "cli-events: does not exist (run `eventlake init`)" in out
    assert "table `cli-events` does not exist" in err and "eventlake init" in err


def test_status_of_a_lake_never_initialised_exits_nonzero_naming_the_lake(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given an initialised table, but a lake URI that points where no lake was made
    main(["init"])
    capsys.readouterr()
    elsewhere = tmp_path / "typo"

    code = main(["status", "--lake-uri", str(elsewhere)])

    out, err = capsys.readouterr()
    assert code == 1
    assert f"{elsewhere}: does not exist (run `eventlake init`)" in out
    assert f"lake `{elsewhere}` does not exist" in err


@pytest.mark.parametrize("command", [["reconcile"], ["reconcile", "--json"]])
def test_reconcile_on_a_table_and_lake_that_do_not_exist_fails_naming_init(
        cli_env: EventLake, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(command)

    out, err = capsys.readouterr()
    assert code == 2
    assert '"ok": true' not in out
    assert err.startswith("eventlake: error: table `cli-events` does not exist")
    assert "run `eventlake init`" in err and "EVENTLAKE_TABLE" in err
    assert "Traceback" not in err and "ResourceNotFoundException" not in err


def test_reconcile_on_a_lake_never_initialised_fails_naming_the_lake(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()

    code = main(["reconcile", "--lake-uri", str(tmp_path / "typo")])

    err = capsys.readouterr().err
    assert code == 2
    assert f"lake `{tmp_path / 'typo'}` does not exist" in err and "eventlake init" in err


@pytest.mark.parametrize("command", [["archive"], ["backfill"], ["sql", "SELECT 1"],
                                     ["sql", "SELECT count(*) FROM events"]])
def test_commands_on_a_missing_table_print_one_line_naming_it(
        cli_env: EventLake, tmp_path: Path, command: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    # given a lake that was initialised for another table
    main(["init", "--table", "other-events"])
    capsys.readouterr()

    code = main(command)

    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        "eventlake: error: table `cli-events` does not exist in region `us-east-1`: run "
        "`eventlake init`, or set EVENTLAKE_TABLE to the table's name"]


def test_put_to_a_missing_table_says_so_once(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps([event(i) for i in range(5)]))

    code = main(["put", str(path)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("table `cli-events` does not exist") == 1
    assert "ResourceNotFoundException" not in err


@pytest.mark.parametrize("command", [["compact"], ["archive"], ["sql", "--cold-only",
                                                                  "SELECT count(*) FROM events"]])
def test_commands_on_a_lake_never_initialised_fail_naming_the_lake(
        cli_env: EventLake, tmp_path: Path, command: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()
    typo = tmp_path / "typo"

    code = main([*command, "--lake-uri", str(typo)])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.splitlines() == [f"eventlake: error: lake `{typo}` does not exist: run "
                                "`eventlake init`, or point --lake-uri (or EVENTLAKE_LAKE_URI) "
                                "at the lake's root"]
    assert not typo.exists()  # and nothing was created there


def test_sql_cold_only_on_an_initialised_empty_lake_answers_zero(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()

    assert main(["sql", "--cold-only", "--format", "csv", "SELECT count(*) AS n FROM events"]) \
        == 0
    assert capsys.readouterr().out.splitlines() == ["n", "0"]


def test_an_endpoint_password_is_never_printed_when_a_call_fails(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # given an endpoint with user info, where nothing listens
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://user:secret@127.0.0.1:1")
    monkeypatch.setenv("EVENTLAKE_AWS_MAX_ATTEMPTS", "1")
    path = tmp_path / "events.json"
    path.write_text(json.dumps([event(1)]))

    # when status (a failed read) and put (a failed write) run
    status = main(["status"])
    status_out, status_err = capsys.readouterr()
    put = main(["put", "--json", str(path)])
    put_out, put_err = capsys.readouterr()

    # then the password appears nowhere, and the endpoint is still recognisable
    # (put stops before any write: the table's recorded settings could not be read)
    assert (status, put) == (2, 2)
    assert "secret" not in status_out + status_err + put_out + put_err
    assert "http://***@127.0.0.1:1" in status_err
    assert "http://***@127.0.0.1:1" in put_err


@pytest.mark.integration
def test_status_hides_the_password_of_a_reachable_endpoint(
        moto_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # given a working endpoint written with user info
    host = moto_server.endpoint_url.removeprefix("http://")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:secret@{host}")
    monkeypatch.setenv("EVENTLAKE_TABLE", f"redact-{tmp_path.name[-20:]}")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    assert main(["init"]) == 0
    capsys.readouterr()

    # when status prints, as text and as JSON
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)

    # then the endpoint shows without its user info
    assert "secret" not in text
    assert f"endpoint http://***@{host}" in text
    assert as_json["endpoint_url"] == f"http://***@{host}"


def test_init_set_to_another_shard_count_than_the_table_stops_naming_both(
        cli_env: EventLake, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EVENTLAKE_INDEX_SHARDS", "16")
    assert main(["init"]) == 0
    assert "16 index shards recorded as tag `eventlake:index_shards`" in capsys.readouterr().out

    monkeypatch.setenv("EVENTLAKE_INDEX_SHARDS", "8")
    assert main(["init"]) == 2
    assert ("EVENTLAKE_INDEX_SHARDS=8 but table `cli-events` was initialised with 16 index "
            "shards") in capsys.readouterr().err


def test_archive_names_an_event_id_reused_with_other_content_and_exits_nonzero(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given e-1 archived, then deleted from the table (as TTL would)
    main(["init"])
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps(event(1)))
    second.write_text(json.dumps(event(1, event_payload={"n": 99})))
    assert main(["put", str(first)]) == 0
    assert main(["archive", "--settle-seconds", "0"]) == 0
    cli_env.clients.dynamodb.delete_item(TableName="cli-events", Key={"event_id": {"S": "e-1"}})
    # when e-1 comes again with other content, and the sweep runs
    assert main(["put", str(second)]) == 0
    capsys.readouterr()
    code = main(["archive", "--settle-seconds", "0"])
    # then the sweep quarantines it, says so, and exits 1
    out, err = capsys.readouterr()
    assert code == 1
    assert "0 archived, 0 already in the lake, 0 quarantined, 1 id(s) reused (quarantined)" in out
    assert "1 event_id(s) are already in the lake with other content" in err
    assert "e.g. `e-1`: quarantined under rule `event.id_reused`" in err


def test_compact_names_a_file_it_could_not_read_and_exits_nonzero(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # given a partition holding a file of another tool next to the lake's own
    folder = tmp_path / "lake" / "events" / "dt=2026-01-02"
    folder.mkdir(parents=True)
    (folder / "export.parquet").write_bytes(b"PAR1 not parquet")
    (folder / "stream-1.parquet").write_bytes(b"PAR1 not parquet either")

    # when compacted, the command says which file and fails
    assert main(["compact", "--min-files", "2"]) == 1
    err = capsys.readouterr().err
    assert "dt=2026-01-02 not compacted" in err and "export.parquet`" in err


def test_the_console_script_points_at_the_cli() -> None:
    import importlib
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    module, _, name = pyproject["project"]["scripts"]["eventlake"].partition(":")
    assert getattr(importlib.import_module(module), name) is main


def test_put_interrupted_mid_batch_says_what_was_answered_and_a_rerun_stores_the_rest_once(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from eventlake.hot.store import HotStore

    # given a file of 40 events, one write at a time, and Ctrl-C during the write of e-3
    main(["init"])
    capsys.readouterr()
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event(i)) + "\n" for i in range(40)))
    monkeypatch.setenv("EVENTLAKE_PUT_CONCURRENCY", "1")
    put = HotStore.put

    def interrupted(self: HotStore, ev: Any, *args: Any, **kwargs: Any) -> Any:
        if ev.event_id == "e-3":
            raise KeyboardInterrupt
        return put(self, ev, *args, **kwargs)

    monkeypatch.setattr(HotStore, "put", interrupted)
    # when it is put
    assert main(["put", str(path)]) == 130
    # then the user is told what was answered and what to do
    out, err = capsys.readouterr()
    assert "created 0  duplicate 0" in out
    assert "interrupted" in err and "run the same command again" in err
    # and running it again stores every event once
    monkeypatch.setattr(HotStore, "put", put)
    assert main(["put", str(path)]) == 0
    counts = re.search(r"created (\d+)  duplicate (\d+)", capsys.readouterr().out)
    assert counts is not None and int(counts[1]) + int(counts[2]) == 40 and int(counts[2]) >= 3
    scanned = cli_env.clients.dynamodb.scan(TableName="cli-events")["Items"]
    assert sorted(i["event_id"]["S"] for i in scanned) == sorted(f"e-{i}" for i in range(40))


def test_a_failed_archive_prints_what_the_sweep_did_before_it_failed(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given stored events, and a TTL guard whose read is throttled after the sweep's writes
    from eventlake.errors import TransientError

    main(["init"])
    path = tmp_path / "events.json"
    path.write_text(json.dumps([event(1), event(2)]))
    assert main(["put", str(path)]) == 0
    capsys.readouterr()

    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise TransientError("Query throttled")

    monkeypatch.setattr("eventlake.archive.sweep.ttl_margin", throttled)

    # when `eventlake archive` runs (no settle: the events are in its window)
    code = main(["archive", "--settle", "0"])

    # then the error is followed by what the sweep did: the operator knows nothing is lost
    err = capsys.readouterr().err
    assert code == 2
    assert "eventlake: error: Query throttled" in err
    assert re.search(r"eventlake: note: sweep \S+: archived 2 event\(s\)", err), err
    assert "the TTL margin was not checked" in err
