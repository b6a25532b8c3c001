"""Field maps: records of other shapes (GH Archive, CloudTrail) onto the event model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventlake import EventLake
from eventlake.cli.main import main
from eventlake.errors import ConfigError, InvalidEventError
from eventlake.events.fieldmap import Unmapped, parse_field_map, remap
from eventlake.events.model import parse_event

EVENTS = Path(__file__).parents[1] / "fixtures"
GH_MAP = ["event_id=id,event_type=type,timestamp=created_at", "event_payload=payload"]


def gh_records() -> list[dict[str, object]]:
    lines = (EVENTS / "gharchive_sample.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_a_field_map_parses_comma_lists_and_repeats() -> None:
    assert parse_field_map(GH_MAP) == {"event_id": "id", "event_type": "type",
                                       "timestamp": "created_at", "event_payload": "payload"}


@pytest.mark.parametrize(
    "spec", ["event_type", "event_type=", "kind=type", "event_id=a,event_id=b"])
def test_a_malformed_field_map_is_refused_with_the_pair_named(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_field_map([spec])


def test_unmapped_fields_are_refused_by_default_naming_them() -> None:
    record = gh_records()[0]

    with pytest.raises(InvalidEventError) as err:
        remap(record, parse_field_map(GH_MAP), position=4)

    assert err.value.rule == "event.unmapped_field"
    assert "`actor`" in str(err.value) and "#4" in str(err.value)
    assert "`17191270013`" in str(err.value)


def test_unmapped_fields_can_be_kept_in_the_payload() -> None:
    record = gh_records()[2]

    event = parse_event(remap(record, parse_field_map(GH_MAP), Unmapped.PAYLOAD))

    payload = json.loads(event.payload)
    assert event.event_id == "17191270015" and event.event_type == "IssueCommentEvent"
    assert payload["actor"]["login"] == "日本語ユーザー"
    assert payload["org"] == {"id": 1, "login": "acme"}
    assert payload["comment"] == {"body": "LGTM 👍"}


def test_unmapped_fields_can_be_dropped() -> None:
    event = parse_event(remap(gh_records()[1], parse_field_map(GH_MAP), Unmapped.DROP))

    assert json.loads(event.payload) == {"action": "started"}


def test_a_json_string_payload_is_merged_as_an_object() -> None:
    record = json.loads((EVENTS / "cloudtrail_lookup_sample.jsonl").read_text().splitlines()[0])
    mapping = parse_field_map(["event_id=EventId,event_type=EventName,timestamp=EventTime",
                               "event_payload=CloudTrailEvent,source=EventSource"])

    event = parse_event(remap(record, mapping, Unmapped.PAYLOAD))

    assert event.timestamp_iso == "2022-02-07T22:23:37.000000Z"
    payload = json.loads(event.payload)
    assert payload["userIdentity"]["userName"] == "alice" and payload["ReadOnly"] == "false"
    assert event.source == "signin.amazonaws.com"


def test_put_with_a_field_map_stores_gh_archive_records(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EVENTLAKE_TABLE", "gh-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    main(["init"])
    capsys.readouterr()

    code = main(["put", str(EVENTS / "gharchive_sample.jsonl"), "--map", GH_MAP[0],
                 "--map", GH_MAP[1], "--unmapped", "payload"])

    assert code == 0, capsys.readouterr().err
    assert "created 3" in capsys.readouterr().out
    items = EventLake.from_env().clients.dynamodb.scan(TableName="gh-events")["Items"]
    assert sorted(i["event_id"]["S"] for i in items) == ["17191270013", "17191270014",
                                                        "17191270015"]
