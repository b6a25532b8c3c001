"""Stored payloads that are not canonical JSON (a foreign producer's hot items, taken as they are
by codec.rows.fast_row): every seed line is still one line of canonical JSON, the same bytes the
events path gives; a payload that is not JSON at all stops the replay naming the event and the
rule, never a broken line."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from archive_support import NOW, World, hours
from replay_support import batch_of, row

from eventlake import EventLake
from eventlake.errors import InvalidEventError
from eventlake.events.canonical import canonical_json
from eventlake.replay.aws.entries import shaped_bodies
from eventlake.replay.batch import LINE
from eventlake.replay.run import replay
from eventlake.replay.select import Selection


@pytest.mark.parametrize("payload", [
    '{"b": 1,\n "a": 2.50}',        # a raw newline between tokens, spaces, a non-canonical number
    '{"b":1,\r"a":2}',              # a raw CR
    '{"a":"\\u00e9\\/"}',           # escapes canonical JSON does not use
    '{"a":1e+30,"c":"\\u000b"}',   # canonical, but not as DuckDB writes it back
])
def test_a_payload_not_safe_to_paste_gets_its_line_built_from_the_events(payload: str) -> None:
    batch = batch_of([row("a", payload='{"n":1}'), row("x", seconds=1, payload=payload)])

    lines = batch.seed_lines()

    assert batch.rows.column(LINE).null_count == 1  # DuckDB left that event's line out
    assert lines == "".join(canonical_json(e) + "\n" for e in batch.events).encode()
    assert [json.loads(line)["event_id"] for line in lines.splitlines()] == ["a", "x"]


def test_canonical_payloads_keep_duckdbs_lines() -> None:
    payload = canonical_json({"a": [1, 2.5, None, True], "b": {"c": "\u2028🦊\"\\"},
                              "info": "nan inf", "n": None})
    batch = batch_of([row("a", payload=payload), row("b", seconds=1, payload="{}")])

    assert batch.rows.column(LINE).null_count == 0
    assert batch.seed_lines() == "".join(canonical_json(e) + "\n"
                                         for e in batch.events).encode()


@pytest.mark.parametrize(("payload", "rule"), [
    ('{"a": NaN}', "payload.not_json"),
    ('{"a":NaN}', "payload.not_json"),
    ('{"a":-Infinity}', "payload.not_json"),
    ('{"a":nan}', "payload.not_json"),       # DuckDB's parser takes any case, and inf too
    ('{"a":[1,-inf]}', "payload.not_json"),
    ('{"a":INF}', "payload.not_json"),
    ('{"a": "x\ny"}', "payload.not_json"),   # a raw newline inside a string
    ('{"a":1} trailing', "payload.not_json"),
    ('{"a":1,}', "payload.not_json"),         # a trailing comma DuckDB's parser forgives
])
def test_a_payload_that_is_not_json_is_named_with_its_event_and_rule(payload: str,
                                                                     rule: str) -> None:
    batch = batch_of([row("good", payload="{}"), row("bad-1", seconds=1, payload=payload)])

    with pytest.raises(InvalidEventError) as info:
        batch.seed_lines()

    assert (info.value.rule, info.value.event_id) == (rule, "bad-1")
    assert "`bad-1`" in str(info.value) and "event_id <> 'bad-1'" in str(info.value)


def test_a_hot_item_with_a_non_canonical_payload_replays_as_one_canonical_line(
        world: World, tmp_path: Path) -> None:
    # another producer's item in eventlake's layout, its payload text with spaces and a newline
    el = EventLake(world.settings, clients=world.clients)
    item = world.item("x", NOW - hours(1))
    item["event_payload"] = {"S": '{"b": 1,\n "a": 2.50}'}
    item["content_hash"] = {"S": "0" * 64}
    world.put_items([item, world.item("y", NOW - hours(1), timestamp=NOW - hours(2))])
    out = tmp_path / "out.jsonl"
    selection = Selection(NOW - timedelta(days=1), NOW)

    replay(el, selection, f"jsonl:{out}", now=NOW)
    events: list[dict[str, object]] = []
    replay(el, selection, events.extend, now=NOW)

    lines = out.read_text().splitlines()
    assert [json.loads(line)["event_id"] for line in lines] == ["y", "x"]
    assert lines[1] == canonical_json(events[1])
    assert '"event_payload":{"a":2.5,"b":1}' in lines[1]


def test_the_aws_targets_seed_bodies_take_a_non_canonical_payload() -> None:
    batch = batch_of([row("x", payload='{"b": 1,\n "a": 2.50}'), row("y", seconds=1)])

    bodies, _ = shaped_bodies(batch, None)

    assert [json.loads(b)["event_payload"] for b in bodies] == [{"a": 2.5, "b": 1}, {}]


def test_duplicate_keys_are_refused_by_the_events_path_naming_the_event() -> None:
    # DuckDB pastes such a payload into the seed line as it is (valid JSON text); the events
    # path (other shapes, callables) refuses it: which value was meant is unknown
    batch = batch_of([row("good"), row("dup", seconds=1, payload='{"a":1,"a":2}')])

    with pytest.raises(InvalidEventError, match=r"`dup`.*duplicate key `a`"):
        _ = batch.events
