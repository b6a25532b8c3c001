"""`eventlake status` counts what every path quarantined: the stream Lambda's MODIFYs and
undecodable records, the sweep's items that are not events, compaction's reused ids. An
operator at 2 a.m. asks one command whether anything was refused, and since when.
"""

from __future__ import annotations

import copy
import json
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from stream_support import batch

from eventlake import EventLake
from eventlake.archive.writer import archive_items
from eventlake.cli.main import main
from eventlake.cli.status import print_quarantine
from eventlake.config import Settings
from eventlake.handlers import stream as stream_handler
from eventlake.lake.store import Lake, QuarantineEntry


@pytest.fixture
def cli_env(mocked_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
            ) -> Iterator[EventLake]:
    monkeypatch.setenv("EVENTLAKE_TABLE", "status-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    lake = EventLake.from_env()
    lake.init()
    stream_handler.reset(lake.cold)
    yield lake
    stream_handler.reset()


def undecodable(seq: str) -> dict[str, Any]:
    """A stream INSERT whose image is not an eventlake event (no event_type, no timestamp)."""
    record = copy.deepcopy(batch()["Records"][0])
    record["eventID"] = f"undecodable-{seq}"
    record["dynamodb"]["SequenceNumber"] = seq
    record["dynamodb"]["NewImage"] = {"event_id": {"S": f"cfg-{seq}"}, "kind": {"S": "config"}}
    return record


def quarantine_from_every_path(lake: EventLake) -> None:
    """The stream Lambda (a MODIFY, an undecodable INSERT), the sweep's writer (an item that
    is not an event) and compaction (an id reused) each quarantine records."""
    event = batch()
    event["Records"].append(undecodable("400000000000000000900"))
    response = stream_handler.handler(event, SimpleNamespace(aws_request_id="req-1"))
    assert response == {"batchItemFailures": []}
    not_event = {"event_id": {"S": "no-type"}, "timestamp": {"S": "2024-05-10T00:00:00Z"}}
    archive_items(lake.cold, [not_event], name="sweep-window-1")
    # a later sweep whose window (other bounds) covers the item again: a file of its own
    archive_items(lake.cold, [not_event], name="sweep-window-2")
    lake.cold.quarantine([QuarantineEntry("stored twice with different content",
                                          "event.id_reused", {"event_id": "reused"},
                                          source="compaction",
                                          quarantined_at=datetime(2020, 1, 1, tzinfo=UTC))],
                         "compaction-abc", now=datetime(2020, 1, 1, tzinfo=UTC))


def test_status_counts_quarantined_records_of_every_path_by_rule(cli_env: EventLake) -> None:
    # given records quarantined by the stream Lambda, the sweep and compaction
    quarantine_from_every_path(cli_env)

    # when the status is asked for
    summary = cli_env.status()["quarantine"]

    # then each path's records are counted, by rule, with where they came from, the item
    # two sweeps quarantined once
    assert (summary["records"], summary["repeats"]) == (4, 1)
    assert summary["files"] == summary["files_read"] == 4
    assert {rule: (c["records"], c["sources"]) for rule, c in summary["by_rule"].items()} == {
        "stream.modify": (1, ["stream"]), "record.not_an_event": (2, ["stream", "sweep"]),
        "event.id_reused": (1, ["compaction"])}
    assert summary["by_rule"]["event.id_reused"]["newest"] == "2020-01-01T00:00:00+00:00"
    assert summary["newest"] > "2026"  # the stream's, written now


def test_status_prints_the_quarantine_and_its_rules(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    quarantine_from_every_path(cli_env)
    capsys.readouterr()

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.startswith("quarantine")]
    assert "4 record(s) in 4 file(s)" in line
    rules = {line.split()[0]: line.split()[1] for line in out.splitlines()
             if line.startswith(" " * 12) and "newest" in line}
    assert rules == {"record.not_an_event": "2", "stream.modify": "1", "event.id_reused": "1"}
    assert "from stream, sweep: event `no-type`" in out

    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quarantine"]["records"] == 4


def test_status_of_a_lake_without_quarantine_says_none(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_env.status()["quarantine"]["records"] == 0
    assert main(["status"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines()
              if line.startswith("quarantine")]
    assert "none" in line


def test_status_says_how_many_lines_repeated_a_record_and_counts_it_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given a record quarantined with its batch, then again with a bisected half
    lake = Lake(Settings(lake_uri=str(tmp_path / "lake")))
    entries = [QuarantineEntry("immutable event modified", "stream.modify", r)
               for r in batch()["Records"][:2]]
    lake.quarantine(entries, "whole")
    lake.quarantine(entries[:1], "half")

    print_quarantine(lake.summarize_quarantine().as_dict())

    out = capsys.readouterr().out
    assert out.startswith("quarantine  2 record(s) in 2 file(s)")
    assert "1 line(s) quarantined a record again" in out


def test_status_shows_what_a_quarantined_record_holds_escaped_one_line_per_rule(
        cli_env: EventLake, capsys: pytest.CaptureFixture[str]) -> None:
    # given items refused because of what they hold: an event_id with a terminal escape, a
    # newline, U+2028 and NUL (the reason quotes it), and a planted line whose rule, source
    # and reason hold escapes too
    hostile = "bad\x1b[2J\x1b]0;owned\x07\nnext\u2028x\x00\x85end"
    archive_items(cli_env.cold, [{"event_id": {"S": hostile}, "event_type": {"S": "a"},
                                  "timestamp": {"S": "2024-05-10T00:00:00Z"},
                                  "event_payload": {"S": "{}"}}], name="sweep-window-1")
    cli_env.cold.quarantine([QuarantineEntry(f"why {hostile}", f"rule{hostile}", {"n": 1},
                                             source=f"src{hostile}")], "planted")
    capsys.readouterr()

    # when the status is printed
    assert main(["status"]) == 0
    out = capsys.readouterr().out

    # then no control character reaches the terminal (each is shown escaped) and each rule
    # is one line; the JSON keeps the reason whole, as valid JSON
    lines = out.split("\n")
    assert not [c for c in out if unicodedata.category(c) == "Cc" and c != "\n"]
    assert "\u2028" not in out
    assert len([line for line in lines if "newest" in line and "from" in line]) == 2
    assert "\\x1b[2J" in out and "\\n" in out
    assert main(["status", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["quarantine"]
    assert any(hostile in c["reason"] for c in summary["by_rule"].values())
