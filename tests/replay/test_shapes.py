"""Shapes: the seed line DuckDB builds equals the canonical JSON of `Batch.events` byte for byte
on awkward values; `cloudevents` carries the spec's required attributes and ingests back to the
same event; `eventbridge` is a PutEvents entry botocore accepts; and `stream` records, fed to
the stream archiver Lambda, rebuild a lake equal to the one replayed (replay and archive agree
on the format)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from archive_support import NOW, World, hours
from botocore.validate import validate_parameters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from replay_support import batch_of
from stream_support import raw_rows, wire_image

from eventlake import EventLake
from eventlake.config import Settings
from eventlake.events.canonical import canonical_json, loads_exact
from eventlake.events.model import parse_event
from eventlake.events.times import parse_timestamp
from eventlake.handlers import stream as stream_handler
from eventlake.hot.store import HotStore
from eventlake.lake.store import Lake
from eventlake.replay.run import replay
from eventlake.replay.select import Selection
from eventlake.replay.shapes import (
    SHAPES,
    ShapeError,
    cloudevent,
    eventbridge_entry,
    shape_for,
    stored_event,
    stream_record,
)

# -- the seed line: DuckDB's text == canonical_json(Batch.events[i]) ---------------------------

TEXT = st.text(max_size=12)  # any Unicode but lone surrogates: quotes, controls, NUL, emoji
NAMES = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
"""More than validation lets into event_id, event_type, source and subject: control characters
too, as items of other producers may hold (DuckDB's to_json writes some as `\\u000B`, which
Batch.seed_lines rewrites to canonical JSON's `\\u000b`)."""
NUMBERS = (st.integers(min_value=-(10**40), max_value=10**40)
           | st.decimals(allow_nan=False, allow_infinity=False)
           | st.floats(allow_nan=False, allow_infinity=False))
JSON = st.recursive(st.none() | st.booleans() | NUMBERS | TEXT,
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)
TIMES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                     timezones=st.just(UTC))
ROWS = st.fixed_dictionaries({
    "event_id": NAMES, "event_type": NAMES, "timestamp": TIMES,
    "source": st.none() | NAMES, "subject": st.none() | NAMES,
    "event_payload": st.dictionaries(TEXT, JSON, max_size=4).map(canonical_json)})


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROWS, min_size=1, max_size=4))
def test_seed_lines_equal_the_canonical_json_of_the_events_byte_for_byte(
        rows: list[dict[str, Any]]) -> None:
    batch = batch_of(rows)

    expected = "".join(canonical_json(event) + "\n" for event in batch.events).encode("utf-8")

    assert batch.seed_lines() == expected
    assert batch.lines(None) == expected


def test_seed_lines_keep_big_and_precise_numbers_and_microseconds() -> None:
    payload = ('{"big":123456789012345678901234567890,"ctl":"\\u0000\\u000b\\u001f",'
               '"exact":0.1000000000000000055511,"tiny":1e-7}')
    batch = batch_of([{"event_id": 'q"\\\n\u2028🦊', "event_type": "t",
                       "timestamp": datetime(2024, 5, 1, 0, 0, 0, 1, tzinfo=UTC),
                       "source": None, "subject": None, "event_payload": payload}])

    [line] = batch.seed_lines().splitlines()

    assert line.decode("utf-8") == canonical_json(batch.events[0])
    assert batch.events[0]["event_payload"]["exact"] == Decimal("0.1000000000000000055511")
    assert b'"timestamp":"2024-05-01T00:00:00.000001Z"' in line
    assert b'"source":null,"subject":null' in line


def test_control_characters_are_escaped_in_lower_case_and_escaped_backslashes_kept() -> None:
    # DuckDB writes `\u000B`; canonical JSON `\u000b`. A literal backslash followed by the
    # text `u000B` is not an escape and must stay as it is.
    batch = batch_of([{"event_id": "a\\u000B", "event_type": "t\\\x0b", "timestamp":
                       datetime(2024, 5, 1, tzinfo=UTC), "source": "\x0b\x0e\x1a",
                       "subject": "\x1f\\\\u001F", "event_payload": "{}"}])

    line = batch.seed_lines()

    assert line == (canonical_json(batch.events[0]) + "\n").encode()
    assert b"\\u000B" in line  # the event_id's text, escaped backslash then `u000B`


# -- cloudevents ---------------------------------------------------------------------------

EVENT: dict[str, Any] = {"event_id": "evt-1", "event_type": "order.placed",
                         "timestamp": "2024-05-01T10:00:00.123456Z",
                         "event_payload": {"total": Decimal("12.50"), "n": 10**30},
                         "source": "shop", "subject": "order/1"}


def test_cloudevents_carry_the_required_attributes_and_ingest_back_to_the_same_event() -> None:
    ce = cloudevent(EVENT)

    # CloudEvents 1.0: id, source (a non-empty URI-reference), specversion, type are required
    assert ce["specversion"] == "1.0"
    assert ce["id"] == "evt-1" and ce["type"] == "order.placed" and ce["source"] == "shop"
    assert parse_timestamp(ce["time"]) == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert ce["datacontenttype"] == "application/json"
    assert ce["data"] == EVENT["event_payload"] and ce["subject"] == "order/1"
    assert parse_event(ce, now=NOW) == stored_event(EVENT)


def test_a_cloudevent_without_source_or_subject_still_has_a_source() -> None:
    ce = cloudevent({**EVENT, "source": None, "subject": None})

    assert ce["source"] == "eventlake"
    assert "subject" not in ce
    assert all(isinstance(ce[a], str) and ce[a] for a in ("id", "source", "specversion", "type"))


# -- eventbridge ---------------------------------------------------------------------------

def test_an_eventbridge_entry_is_a_valid_put_events_entry_carrying_the_event() -> None:
    entry = eventbridge_entry(EVENT)
    model = botocore.session.get_session().get_service_model("events")

    validate_parameters({"Entries": [{**entry, "EventBusName": "bus"}]},
                        model.operation_model("PutEvents").input_shape)
    assert (entry["Source"], entry["DetailType"]) == ("shop", "order.placed")
    assert loads_exact(entry["Detail"]) == EVENT  # the event_id travels in the detail
    assert entry["Time"] == EVENT["timestamp"] and entry["Resources"] == []
    assert eventbridge_entry({**EVENT, "source": None})["Source"] == "eventlake.replay"


def test_unknown_shapes_are_refused_naming_the_known_ones() -> None:
    assert set(SHAPES) == {"seed", "cloudevents", "eventbridge", "stream"}
    with pytest.raises(ShapeError, match=r"unknown shape `avro`.*seed, cloudevents"):
        shape_for("avro")


# -- stream --------------------------------------------------------------------------------

def test_a_stream_record_holds_the_item_the_hot_tier_stores() -> None:
    store = HotStore(Settings(), clients=None, recorded={})  # type: ignore[arg-type]
    event = stored_event(EVENT)

    record = stream_record(EVENT)

    # as Lambda's JSON carries it: the binary index key `k` in base64
    assert record["dynamodb"]["NewImage"] == wire_image(store.to_item(event, event.timestamp))
    assert record["dynamodb"]["Keys"] == {"event_id": {"S": "evt-1"}}
    assert record["eventName"] == "INSERT" and record["eventSource"] == "aws:dynamodb"
    assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert record == stream_record(EVENT)  # the same event, the same record
    later = stream_record({**EVENT, "timestamp": "2024-05-01T10:00:00.123457Z"})
    assert int(later["dynamodb"]["SequenceNumber"]) > int(record["dynamodb"]["SequenceNumber"])
    tagged = stream_record(EVENT, region="eu-west-1", source_arn="arn:x")
    assert (tagged["awsRegion"], tagged["eventSourceARN"]) == ("eu-west-1", "arn:x")


def test_a_stream_record_is_ingested_when_the_event_was() -> None:
    store = HotStore(Settings(), clients=None, recorded={})  # type: ignore[arg-type]
    ingested = datetime(2024, 5, 3, 8, 0, 0, 250_000, tzinfo=UTC)  # two days late

    record = stream_record({**EVENT, "ingested_at": ingested})

    assert record["dynamodb"]["NewImage"] == wire_image(store.to_item(stored_event(EVENT),
                                                                      ingested))
    assert record["dynamodb"]["ApproximateCreationDateTime"] == int(ingested.timestamp())
    # the sequence follows the replay's order (timestamp), not the ingestion
    assert record["dynamodb"]["SequenceNumber"] == stream_record(EVENT)["dynamodb"][
        "SequenceNumber"]


COMPARED = ("event_id", "event_type", "timestamp", "event_payload", "source", "subject",
            "content_hash", "ingested_at")


def lake_events(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(r[c] for c in COMPARED) for r in rows)


def test_stream_records_rebuild_the_same_lake_through_the_stream_archiver(
        world: World, tmp_path: Path) -> None:
    # given: a lake of awkward events over two days (unicode, quotes, controls, big numbers,
    # no source or subject, microseconds, two at one timestamp)
    stamp = NOW - timedelta(days=1, hours=3)
    raws = [
        {"event_id": "a", "event_type": "order.placed", "timestamp": stamp,
         "event_payload": {"name": 'Zoë "🦊"\n\t\u0001', "total": Decimal("12.50"),
                           "big": 10**30, "tiny": Decimal("1e-9"), "none": None},
         "source": "shop", "subject": "order/1"},
        {"event_id": "b", "event_type": "order.paid", "timestamp": stamp,
         "event_payload": {}},
        {"event_id": "c/ü", "event_type": "user.seen", "timestamp": NOW - hours(3) +
         timedelta(microseconds=7), "event_payload": {"list": [1, [2, {"k": "v"}]]},
         "subject": "user/7"},
    ] + [{"event_id": f"n{i}", "event_type": "tick", "timestamp": NOW - hours(2 + i / 10),
          "event_payload": {"i": i}, "source": "clock"} for i in range(5)]
    items = []
    for raw in raws:
        event = parse_event({**raw, "timestamp": raw["timestamp"].isoformat()}, now=NOW)
        items.append(world.hot.to_item(event, NOW - hours(1)))
    world.put_items(items)
    world.sweep(NOW)
    first = world.lake.read().to_pylist()
    assert len(first) == len(raws)

    # when: replayed as stream records into the stream archiver Lambda over an empty lake
    second = Lake(Settings(lake_uri=str(tmp_path / "second")))
    answers: list[dict[str, Any]] = []
    stream_handler.reset(second)
    try:
        replay(EventLake(world.settings, clients=world.clients),
               Selection(NOW - timedelta(days=3), NOW, cold_only=True),
               lambda records: answers.append(stream_handler.handler({"Records": records})),
               shape="stream", batch_size=3, now=NOW)
    finally:
        stream_handler.reset()

    # then: every batch archived, nothing quarantined, the same events, hashes included
    assert answers == [{"batchItemFailures": []}] * 3
    assert not list((tmp_path / "second").glob("_quarantine/**/*.*"))
    assert lake_events(raw_rows(second)) == lake_events(first)
