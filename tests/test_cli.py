"""The `eventlake` command line: thin, but its outputs and exit codes are a contract."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from eventlake import EventLake
from eventlake.cli import main


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


def test_put_jsonl_with_a_broken_line_stores_the_rest_and_exits_nonzero(
        cli_env: EventLake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init"])
    capsys.readouterr()
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([json.dumps(event(1)), "{not json", json.dumps(event(3)), ""]))

    assert main(["put", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "created 2" in out and "invalid 1" in out
    assert "events.jsonl:2: not JSON" in err and "json.unparseable" in err
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
    assert "events.jsonl:2" in err and "`e-2`" in err and "timestamp.naive" in err


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
    assert json.loads(lines[0]) == {"input": "stdin[1]", "event_id": "e-7", "outcome": "created"}


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


def test_status_before_init_says_what_to_run(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0
    assert "run `eventlake init`" in capsys.readouterr().out


def test_a_bad_setting_stops_with_the_variable_named(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EVENTLAKE_RETENTION_DAYS", "a week")

    assert main(["status"]) == 2
    assert "EVENTLAKE_RETENTION_DAYS='a week'" in capsys.readouterr().err


@pytest.mark.integration
def test_demo_runs_end_to_end_on_the_local_stack(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    assert main(["demo", "--events", "60", "--keep", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "created 60" in out
    assert "duplicate 60" in out
    assert "each sent event stored once: True" in out
    assert "rule timestamp.unparseable" in out
    assert "every stored event archived once: True" in out
    assert "lost 0, different 0" in out  # reconcile
    assert "lost 0, doubled 0" in out  # after TTL expiry and compaction
    assert "events_per_type_per_day.sql" in out  # hybrid queries over hot and cold
    tiers = out.split("cold  hot  events  distinct_ids")[1].splitlines()[1].split()
    assert tiers[2] == tiers[3]  # each event once across the tiers
    assert list((tmp_path / "demo" / "lake" / "events").glob("dt=*/*.parquet"))


def test_common_options_work_before_and_after_the_command(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--table", "before-table", "init"]) == 0
    assert "created table `before-table`" in capsys.readouterr().out

    assert main(["init", "--table", "after-table"]) == 0
    assert "created table `after-table`" in capsys.readouterr().out

    assert main(["--table", "before-table", "status"]) == 0
    assert "before-table (ACTIVE)" in capsys.readouterr().out


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
