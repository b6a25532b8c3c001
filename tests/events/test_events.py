"""The event model: validation rules, accepted shapes, timestamps, canonical JSON, hashes, ids."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from eventlake.errors import InvalidEventError
from eventlake.events.canonical import (
    MAX_PAYLOAD_DEPTH,
    DuplicateKeyError,
    canonical_json,
    canonical_number,
    loads_exact,
)
from eventlake.events.model import (
    MAX_EVENT_ID_BYTES,
    MAX_EVENT_TYPE_CHARS,
    MAX_ITEM_BYTES,
    Event,
    parse_event,
)
from eventlake.events.times import format_ts, parse_timestamp

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
"""Ingestion time in these tests (in the past, so generated ids never run ahead of the clock)."""

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

ORDER_PLACED: dict[str, Any] = {
    "event_id": "order-8812-placed",
    "event_type": "order.placed",
    "timestamp": "2024-05-01T09:30:00Z",
    "source": "shop/checkout",
    "subject": "order/8812",
    "event_payload": {"order_id": 8812, "total": "49.90", "currency": "EUR",
                      "lines": [{"sku": "MUG-01", "qty": 2}]},
}
CONTENT_CHANGES: dict[str, dict[str, Any]] = {
    "event_type": {"event_type": "order.cancelled"},
    "timestamp": {"timestamp": "2024-05-01T09:30:00.000001Z"},
    "payload": {"event_payload": {**ORDER_PLACED["event_payload"], "total": "49.91"}},
    "source": {"source": "shop/admin"},
    "no-source": {"source": ...},
    "subject": {"subject": "order/8813"},
    "no-subject": {"subject": ...},
}
"""One change to each field of ORDER_PLACED but its id (`...`: the field left out)."""

CLOUDEVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "A234-1234-1234",
    "source": "https://github.com/cloudevents/spec/pull",
    "subject": "123",
    "type": "com.github.pull_request.opened",
    "time": "2018-04-05T17:31:00Z",
    "datacontenttype": "application/json",
    "comexampleextension1": "value",
    "data": {"action": "opened", "number": 123},
}

EVENTBRIDGE: dict[str, Any] = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "111122223333",
    "time": "2017-12-22T18:43:48Z",
    "region": "us-west-1",
    "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
    "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"},
}


def order(**changes: Any) -> dict[str, Any]:
    """ORDER_PLACED with some fields changed; a value of `...` removes the field."""
    event = {**ORDER_PLACED, **changes}
    return {k: v for k, v in event.items() if v is not ...}


def rejection(raw: Any, *, position: int = 0) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as info:
        parse_event(raw, position=position, now=NOW)
    return info.value


def nested(levels: int) -> dict[str, Any]:
    """An object `levels` objects deep: nested(1) == {}, nested(2) == {"a": {}}."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


# --- validation: every rule, named ------------------------------------------------------

RULE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("event.unknown_field", order(payload={"a": 1})),
    ("event_id.format", order(event_id=" order-8812 ")),
    ("event_type.required", order(event_type=...)),
    ("event_type.type", order(event_type=42)),
    ("event_type.format", order(event_type="order\nplaced")),
    ("event_type.too_long", order(event_type="o" * (MAX_EVENT_TYPE_CHARS + 1))),
    ("source.type", order(source=["shop"])),
    ("source.format", order(source="   ")),
    ("source.too_long", order(source="s" * 1025)),
    ("subject.type", order(subject=8812)),
    ("subject.format", order(subject="order/8812\t")),
    ("subject.too_long", order(subject="s" * 1025)),
    ("timestamp.naive", order(timestamp="2024-05-01T09:30:00")),
    ("timestamp.unparseable", order(timestamp="yesterday at noon")),
    ("timestamp.unparseable", order(timestamp="2024-02-30T09:30:00Z")),
    ("timestamp.future", order(timestamp="2024-05-01T12:06:00Z")),
    ("timestamp.type", order(timestamp=1714555800)),
    ("payload.not_object", order(event_payload=[1, 2, 3])),
    ("payload.not_object", order(event_payload="not json at all")),
    ("payload.not_json", order(event_payload={"ratio": float("nan")})),
    ("payload.not_json", order(event_payload={"tags": {"a", "b"}})),
    ("payload.too_deep", order(event_payload=nested(MAX_PAYLOAD_DEPTH + 2))),
    ("payload.invalid_unicode", order(event_payload=json.loads('{"name": "\\ud800"}'))),
    ("item.too_large", order(event_payload={"blob": "x" * 500_000})),
    ("cloudevents.specversion", {**CLOUDEVENT, "id": "order-8812-placed", "specversion": "0.3"}),
]


@pytest.mark.parametrize(("rule", "raw"), RULE_CASES,
                         ids=[f"{rule}-{i}" for i, (rule, _) in enumerate(RULE_CASES)])
def test_a_broken_rule_is_rejected_naming_the_rule_the_position_and_the_id(
        rule: str, raw: dict[str, Any]) -> None:
    # given an event with an id that breaks one rule, sent at position 7 of its request
    sent_id = raw.get("event_id", raw.get("id"))
    # when it is parsed
    error = rejection(raw, position=7)
    # then the error names the rule, the position and the id the producer sent
    assert error.rule == rule
    assert error.position == 7
    assert error.event_id == sent_id
    assert "#7" in str(error)
    assert f"`{sent_id}`" in str(error)
    assert f"[rule {rule}]" in str(error)


ANONYMOUS_CASES = [(rule, raw) for rule, raw in RULE_CASES if not rule.startswith("event_id.")]


@pytest.mark.parametrize(("rule", "raw"), ANONYMOUS_CASES,
                         ids=[f"{rule}-{i}" for i, (rule, _) in enumerate(ANONYMOUS_CASES)])
def test_a_rejected_event_without_an_id_never_shows_a_generated_id(
        rule: str, raw: dict[str, Any]) -> None:
    # given the same broken event, sent without an id
    anonymous = {k: v for k, v in raw.items() if k not in ("event_id", "id")}
    # when it is parsed
    error = rejection(anonymous, position=3)
    # then the error names the position but no id, and no generated UUID leaks into it
    assert error.rule == rule
    assert error.event_id is None
    assert "#3" in str(error)
    assert not UUID.search(str(error))


@pytest.mark.parametrize("raw", [["a", "list"], "order.placed", 42, None],
                         ids=["list", "string", "number", "null"])
def test_something_other_than_an_object_is_not_an_event(raw: Any) -> None:
    error = rejection(raw, position=2)
    assert error.rule == "event.not_object"
    assert "#2" in str(error)


@pytest.mark.parametrize("event_id", [["order-1"], {"id": 1}, 1.5, True])
def test_an_event_id_that_is_not_a_string_is_rejected(event_id: Any) -> None:
    assert rejection(order(event_id=event_id)).rule == "event_id.type"


@pytest.mark.parametrize("event_id", ["", "a" * 257, "order\x00-1", " order-1"])
def test_an_event_id_must_be_1_to_256_plain_characters(event_id: str) -> None:
    assert rejection(order(event_id=event_id)).rule == "event_id.format"


@pytest.mark.parametrize("char", ["\x85", "\x9b", "\x80", "\x9f"])
def test_a_c1_control_character_is_a_control_character_too(char: str) -> None:
    # U+0080-U+009F are Unicode controls (category Cc) like U+0000-U+001F: U+0085 ends a line
    # for Python's str.splitlines and U+009B starts a terminal escape sequence
    assert rejection(order(event_id=f"order{char}1")).rule == "event_id.format"
    assert rejection(order(event_type=f"order{char}placed")).rule == "event_type.format"
    assert rejection(order(subject=f"order/{char}8812")).rule == "subject.format"


def test_other_unicode_in_names_is_accepted() -> None:
    event = parse_event(order(event_id="commande-été-\u00a0-\u200b", event_type="tür.öffnen"),
                        now=NOW)
    assert (event.event_id, event.event_type) == ("commande-été-\u00a0-\u200b", "tür.öffnen")


def test_an_integer_event_id_is_kept_as_its_decimal_text() -> None:
    assert parse_event(order(event_id=8812), now=NOW).event_id == "8812"


def test_an_event_type_of_128_characters_is_accepted_and_129_rejected() -> None:
    longest = "t" * MAX_EVENT_TYPE_CHARS
    assert parse_event(order(event_type=longest), now=NOW).event_type == longest
    assert rejection(order(event_type=longest + "t")).rule == "event_type.too_long"


def test_an_unknown_field_error_lists_the_fields_to_use() -> None:
    error = rejection(order(detail={"a": 1}))
    assert "`detail`" in str(error)
    assert "event_payload" in str(error)


def test_a_timestamp_4_minutes_ahead_is_accepted_and_6_minutes_ahead_rejected() -> None:
    # given a producer whose clock runs ahead of ours
    ahead_4 = format_ts(NOW + timedelta(minutes=4))
    ahead_6 = format_ts(NOW + timedelta(minutes=6))
    # then 4 minutes is within the 5-minute tolerance and 6 minutes is not
    assert parse_event(order(timestamp=ahead_4), now=NOW).timestamp == NOW + timedelta(minutes=4)
    error = rejection(order(timestamp=ahead_6))
    assert error.rule == "timestamp.future"
    assert "6 min" in str(error)


def test_the_future_tolerance_is_exactly_5_minutes() -> None:
    at_limit = NOW + timedelta(minutes=5)
    assert parse_event(order(timestamp=at_limit), now=NOW).timestamp == at_limit
    over = rejection(order(timestamp=at_limit + timedelta(microseconds=1)))
    assert over.rule == "timestamp.future"


def test_a_payload_nesting_64_levels_below_its_root_is_accepted() -> None:
    event = parse_event(order(event_payload=nested(MAX_PAYLOAD_DEPTH + 1)), now=NOW)
    assert event.payload.count("{") == MAX_PAYLOAD_DEPTH + 1


def test_a_payload_too_deep_for_the_json_parser_is_rejected_not_crashed() -> None:
    # given payload JSON text nested far beyond Python's recursion limit
    deep_text = '{"a":' * 100_000 + "1" + "}" * 100_000
    # then it is an invalid event (not a RecursionError), as text and as CloudEvents base64
    assert rejection(order(event_payload=deep_text)).rule == "payload.too_deep"
    encoded = base64.b64encode(deep_text.encode()).decode()
    cloudevent = {k: v for k, v in CLOUDEVENT.items() if k != "data"} | {"data_base64": encoded}
    assert rejection(cloudevent).rule == "payload.too_deep"


def test_a_lone_surrogate_in_a_payload_key_is_rejected() -> None:
    payload = json.loads('{"\\udc00name": "x"}')
    assert rejection(order(event_payload=payload)).rule == "payload.invalid_unicode"


@pytest.mark.parametrize("field", ["event_id", "event_type", "source", "subject"])
def test_a_lone_surrogate_in_a_name_is_invalid_unicode_and_the_message_stays_printable(
        field: str) -> None:
    # given an event whose field holds a lone UTF-16 surrogate, as JSON "\\ud800" decodes
    raw = order(**{field: json.loads('"order-\\ud800-8812"')})
    # when it is parsed
    error = rejection(raw, position=4)
    # then it is invalid under its own rule, and the message can be written as UTF-8
    assert error.rule == f"{field}.invalid_unicode"
    assert "#4" in str(error)
    assert "\\ud800" in str(error)
    str(error).encode("utf-8")
    assert error.event_id == (None if field == "event_id" else "order-8812-placed")


def test_an_event_id_of_256_four_byte_characters_is_too_long_in_bytes() -> None:
    # given an id within the 256-character rule but 1,024 bytes in UTF-8
    error = rejection(order(event_id="🎉" * 256))
    # then it is refused before DynamoDB would refuse its index key, naming both limits
    assert error.rule == "event_id.too_long"
    assert "1,024 bytes" in str(error) and f"{MAX_EVENT_ID_BYTES}" in str(error)
    assert "2,048" in str(error)


def test_the_longest_event_id_in_bytes_is_accepted() -> None:
    # given an id of 256 characters and exactly MAX_EVENT_ID_BYTES (996) bytes
    longest = "🎉" * 246 + "é" * 2 + "x" * 8
    assert (len(longest), len(longest.encode("utf-8"))) == (256, MAX_EVENT_ID_BYTES)
    assert parse_event(order(event_id=longest), now=NOW).event_id == longest
    assert rejection(order(event_id="🎉" * 246 + "é" * 3 + "x" * 7)).rule == "event_id.too_long"


def test_a_payload_with_a_duplicate_key_is_refused_naming_the_key() -> None:
    # given a payload sent as JSON text that repeats a key
    error = rejection(order(event_payload='{"total": 1, "currency": "EUR", "total": 2}'))
    # then it is refused (neither value is silently kept), naming the key
    assert error.rule == "payload.duplicate_key"
    assert "`total`" in str(error)


def test_a_duplicate_key_anywhere_in_json_text_is_an_error_naming_it() -> None:
    with pytest.raises(DuplicateKeyError, match="`qty`") as info:
        loads_exact('{"lines": [{"qty": 1, "sku": "A", "qty": 2}]}')
    assert info.value.key == "qty"
    assert isinstance(info.value, ValueError)


def test_a_500_kb_payload_is_too_large_and_says_what_to_do() -> None:
    error = rejection(order(event_payload={"blob": "x" * 500_000}))
    assert error.rule == "item.too_large"
    assert "400 KB" in str(error)
    assert "reference" in str(error)


def test_a_payload_just_under_400_kb_is_accepted() -> None:
    event = parse_event(order(event_payload={"blob": "x" * 399_000}), now=NOW)
    assert len(event.payload) > 399_000


def test_the_size_limit_counts_multibyte_characters_as_utf8_bytes() -> None:
    # given a payload of 150,000 characters that is 600,000 bytes in UTF-8
    emoji = "🎉" * 150_000
    # then the limit applies to bytes, as DynamoDB's does
    assert rejection(order(event_payload={"party": emoji})).rule == "item.too_large"
    assert MAX_ITEM_BYTES == 400 * 1024


def test_an_out_of_range_timestamp_is_unparseable_not_a_crash() -> None:
    assert rejection(order(timestamp="9999-12-31T23:59:59-01:00")).rule == "timestamp.unparseable"
    assert rejection(order(timestamp="0001-01-01T00:00:00+01:00")).rule == "timestamp.unparseable"


# --- shapes ------------------------------------------------------------------------------

def test_the_seed_shape_keeps_every_field() -> None:
    event = parse_event(ORDER_PLACED, now=NOW)
    assert event == Event(
        event_id="order-8812-placed",
        event_type="order.placed",
        timestamp=datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        payload='{"currency":"EUR","lines":[{"qty":2,"sku":"MUG-01"}],"order_id":8812,'
                '"total":"49.90"}',
        source="shop/checkout",
        subject="order/8812",
    )
    assert event.timestamp_defaulted is False


def test_only_event_type_is_required() -> None:
    event = parse_event({"event_type": "heartbeat"}, now=NOW)
    assert event.payload == "{}"
    assert event.source is None and event.subject is None
    assert UUID.fullmatch(event.event_id)


def test_a_payload_sent_as_json_text_is_stored_as_the_same_object() -> None:
    as_text = parse_event(order(event_payload=json.dumps(ORDER_PLACED["event_payload"])), now=NOW)
    as_object = parse_event(ORDER_PLACED, now=NOW)
    assert as_text == as_object


def test_a_cloudevent_maps_onto_the_event_fields() -> None:
    event = parse_event(CLOUDEVENT, now=NOW)
    assert event.event_id == "A234-1234-1234"
    assert event.event_type == "com.github.pull_request.opened"
    assert event.timestamp == datetime(2018, 4, 5, 17, 31, tzinfo=UTC)
    assert event.source == "https://github.com/cloudevents/spec/pull"
    assert event.subject == "123"
    assert json.loads(event.payload) == {"action": "opened", "number": 123}


def test_a_cloudevent_with_data_base64_decodes_its_json_object() -> None:
    # given a CloudEvent whose data travels base64-encoded
    encoded = base64.b64encode(b'{"action": "opened", "number": 123}').decode()
    raw = {k: v for k, v in CLOUDEVENT.items() if k != "data"} | {"data_base64": encoded}
    # then it stores the same payload as the plain-JSON CloudEvent
    assert parse_event(raw, now=NOW) == parse_event(CLOUDEVENT, now=NOW)


@pytest.mark.parametrize("data_base64", ["%%% not base64 %%%", base64.b64encode(b"plain").decode(),
                                         base64.b64encode(b"[1, 2]").decode()])
def test_a_cloudevent_with_bad_data_base64_is_rejected(data_base64: str) -> None:
    raw = {k: v for k, v in CLOUDEVENT.items() if k != "data"} | {"data_base64": data_base64}
    error = rejection(raw)
    assert error.rule == "payload.not_object"
    assert error.event_id == "A234-1234-1234"


@pytest.mark.parametrize("specversion", ["0.3", "2.0", 1.0, None])
def test_a_cloudevent_of_another_specversion_is_rejected(specversion: Any) -> None:
    error = rejection({**CLOUDEVENT, "specversion": specversion})
    assert error.rule == "cloudevents.specversion"
    assert "`A234-1234-1234`" in str(error)


def test_an_eventbridge_event_maps_onto_the_event_fields() -> None:
    event = parse_event(EVENTBRIDGE, now=NOW)
    assert event.event_id == "6a7e8feb-b491-4cf7-a9f1-bf3703467718"
    assert event.event_type == "EC2 Instance State-change Notification"
    assert event.timestamp == datetime(2017, 12, 22, 18, 43, 48, tzinfo=UTC)
    assert event.source == "aws.ec2"
    assert event.subject == "arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"
    assert json.loads(event.payload) == {"instance-id": "i-1234567890abcdef0",
                                         "state": "terminated"}


def test_an_eventbridge_event_with_several_resources_has_no_subject() -> None:
    raw = {**EVENTBRIDGE, "resources": ["arn:aws:s3:::a", "arn:aws:s3:::b"]}
    assert parse_event(raw, now=NOW).subject is None


def test_an_eventbridge_event_breaking_a_rule_names_its_id() -> None:
    error = rejection({**EVENTBRIDGE, "detail": ["not", "an", "object"]}, position=1)
    assert error.rule == "payload.not_object"
    assert "#1 `6a7e8feb-b491-4cf7-a9f1-bf3703467718`" in str(error)


def test_an_event_survives_a_round_trip_through_its_seed_shape() -> None:
    # given a normalised event
    event = parse_event(CLOUDEVENT, now=NOW)
    # when it is written back as the seed shape and parsed again
    again = parse_event(event.to_dict(), now=NOW)
    # then nothing changed, down to the hash
    assert again == event
    assert again.content_hash == event.content_hash


# --- timestamps --------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "utc"), [
    ("2024-05-01T09:30:00Z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
    ("2024-05-01t09:30:00z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
    ("2022-02-08 09:23:37+11:00", datetime(2022, 2, 7, 22, 23, 37, tzinfo=UTC)),
    ("2024-05-01T05:30:00.25-04:30", datetime(2024, 5, 1, 10, 0, 0, 250_000, tzinfo=UTC)),
], ids=["Z", "lowercase", "cloudtrail-space-offset", "negative-offset-fraction"])
def test_an_rfc3339_timestamp_is_normalised_to_utc(text: str, utc: datetime) -> None:
    event = parse_event(order(timestamp=text), now=NOW)
    assert event.timestamp == utc
    assert event.timestamp.utcoffset() == timedelta(0)


def test_a_cloudtrail_timestamp_is_stored_as_the_utc_instant() -> None:
    event = parse_event(order(timestamp="2022-02-08 09:23:37+11:00"), now=NOW)
    assert event.timestamp_iso == "2022-02-07T22:23:37.000000Z"


def test_nanoseconds_are_truncated_to_microseconds_not_rounded() -> None:
    ts = parse_timestamp("2024-05-01T09:30:00.123456999Z")
    assert ts == datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize("naive", ["2024-05-01T09:30:00", "2024-05-01 09:30", "2024-05-01",
                                   datetime(2024, 5, 1, 9, 30)])
def test_a_timestamp_without_an_offset_is_rejected_as_naive(naive: Any) -> None:
    error = rejection(order(timestamp=naive))
    assert error.rule == "timestamp.naive"


def test_an_aware_datetime_is_accepted_and_converted_to_utc() -> None:
    sydney = timezone(timedelta(hours=11))
    ts = datetime(2022, 2, 8, 9, 23, 37, tzinfo=sydney)
    assert parse_event(order(timestamp=ts), now=NOW).timestamp_iso == "2022-02-07T22:23:37.000000Z"


def test_a_missing_timestamp_defaults_to_ingestion_time_and_says_so() -> None:
    event = parse_event(order(timestamp=...), now=NOW)
    assert event.timestamp == NOW
    assert event.timestamp_defaulted is True
    assert parse_event(ORDER_PLACED, now=NOW).timestamp_defaulted is False


def test_stored_timestamps_are_fixed_width_so_text_order_is_time_order() -> None:
    # given timestamps across four centuries, including a year below 1000
    texts = ["0999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2024-05-01T09:30:00.5Z",
             "2024-05-01T09:30:00.000001Z"]
    stamps = [parse_timestamp(t) for t in texts]
    # then every stored form has the same width, and sorting text sorts time
    stored = [format_ts(ts) for ts in stamps]
    assert {len(s) for s in stored} == {27}
    assert stored[0] == "0999-12-31T23:59:59.000000Z"
    assert sorted(stored) == [format_ts(ts) for ts in sorted(stamps)]


# --- canonical JSON and the content hash -------------------------------------------------

def payload_of(payload: Any) -> str:
    return parse_event(order(event_payload=payload), now=NOW).payload


def hash_of(**changes: Any) -> str:
    return parse_event(order(**changes), now=NOW).content_hash


def test_key_order_does_not_change_the_payload_or_the_hash() -> None:
    forwards = {"currency": "EUR", "total": "49.90", "lines": [{"sku": "MUG-01", "qty": 2}]}
    backwards = {"lines": [{"qty": 2, "sku": "MUG-01"}], "total": "49.90", "currency": "EUR"}
    assert payload_of(forwards) == payload_of(backwards)
    assert hash_of(event_payload=forwards) == hash_of(event_payload=backwards)


def test_canonical_json_is_compact_with_sorted_keys() -> None:
    assert canonical_json({"b": [1, {"d": None, "c": True}], "a": False}) == \
        '{"a":false,"b":[1,{"c":true,"d":null}]}'


def test_non_ascii_text_is_kept_as_utf8_not_escaped() -> None:
    payload = payload_of(loads_exact('{"city": "Z\\u00fcrich", "mood": "🎉", "quote": "\\"hi\\""}'))
    assert payload == '{"city":"Zürich","mood":"🎉","quote":"\\"hi\\""}'


def test_a_big_integer_stays_exact() -> None:
    # given 2**70 (beyond float precision) sent as a Python int and as JSON text
    from_python = payload_of({"n": 2**70})
    from_json = payload_of('{"n": 1180591620717411303424}')
    # then both store the same text, and reading it back gives exactly 2**70
    assert from_python == from_json
    assert loads_exact(from_python)["n"] == 2**70
    assert payload_of({"n": 2**53 + 1}) == '{"n":9007199254740993}'


def test_an_integer_of_1e21_or_more_is_stored_as_digits_and_read_back_as_an_int() -> None:
    # given integers from 1e21 up, as JSON integer literals and as Python ints
    from_json = payload_of('{"n": 1000000000000000000001, "m": -123456789012345678901234}')
    from_python = payload_of({"n": 10**21 + 1, "m": -123456789012345678901234})
    # then both are written as plain digits, so any JSON reader gets an integer back
    assert from_json == from_python == '{"m":-123456789012345678901234,"n":1000000000000000000001}'
    assert json.loads(from_json)["n"] == 10**21 + 1
    assert isinstance(json.loads(from_json)["n"], int)


def test_a_22_digit_integer_reads_as_its_digits_in_duckdb() -> None:
    import duckdb

    payload = payload_of('{"n": 1000000000000000000001}')
    [(text, typed)] = duckdb.sql(
        "select json_extract(?, '$.n')::varchar, json_extract(?, '$.n')::hugeint",
        params=[payload, payload]).fetchall()
    assert text == "1000000000000000000001"
    assert typed == 10**21 + 1


def test_non_integer_literals_keep_the_ecmascript_layout() -> None:
    assert payload_of('{"a": 1e21, "b": 2.5e30, "c": 1E3}') == '{"a":1e+21,"b":2.5e+30,"c":1000}'


def test_the_hash_of_an_event_with_integers_below_1e21_is_unchanged() -> None:
    # pinned before integers >= 1e21 were written as digits: smaller ones must not move
    event = parse_event({
        "event_id": "meter-7-reading-1", "event_type": "meter.read",
        "timestamp": "2024-05-01T09:30:00Z",
        "event_payload": loads_exact('{"wh": 999999999999999999999,'
                                     ' "neg": -999999999999999999999, "small": 7}'),
    }, now=NOW)
    assert event.payload == '{"neg":-999999999999999999999,"small":7,"wh":999999999999999999999}'
    assert event.content_hash == \
        "c74dc51c7b9867bcf11e6c33bc04622175c71fab37ff8c1dd2cbd98b8a528708"


def test_an_integer_of_4301_digits_is_stored_exactly_as_an_integer() -> None:
    # given integers longer than Python's 4,300-digit conversion limit, as JSON and as int
    digits = "9" * 4301
    from_json = payload_of(f'{{"n": {digits}, "m": -{digits}}}')
    from_python = payload_of({"n": 10**4301 - 1, "m": 1 - 10**4301})
    # then both are stored as their exact digits
    assert from_json == from_python == f'{{"m":-{digits},"n":{digits}}}'
    assert loads_exact(from_json)["n"] == Decimal(digits)


def test_a_precise_decimal_stays_exact() -> None:
    payload = payload_of('{"p": 0.1000000000000000055511151231257827}')
    assert payload == '{"p":0.1000000000000000055511151231257827}'


def test_a_number_with_10001_digits_stays_exact() -> None:
    digits = "1" * 10_001
    assert payload_of(f'{{"n": 0.{digits}}}') == f'{{"n":0.{digits}}}'


def test_the_same_number_written_differently_is_the_same_payload() -> None:
    assert payload_of('{"price": 1.50}') == payload_of('{"price": 1.5}') == '{"price":1.5}'
    assert payload_of('{"n": 1.0}') == payload_of('{"n": 1}') == payload_of({"n": 1.0})
    assert payload_of('{"n": 1E3}') == payload_of({"n": 1000})
    assert hash_of(event_payload='{"price": 1.50}') == hash_of(event_payload='{"price": 1.5}')


def test_a_python_float_is_written_as_its_shortest_exact_text() -> None:
    assert payload_of({"ratio": 0.1, "big": 1e21, "small": 1e-7, "neg": -2.5}) == \
        '{"big":1e+21,"neg":-2.5,"ratio":0.1,"small":1e-7}'


@pytest.mark.parametrize(("number", "text"), [
    (0, "0"), (Decimal("-0.0"), "0"), (Decimal("100"), "100"), (Decimal("1e20"),
                                                                 "100000000000000000000"),
    (Decimal("1e21"), "1e+21"), (Decimal("0.000001"), "0.000001"), (Decimal("1e-7"), "1e-7"),
    (Decimal("-123.4500"), "-123.45"), (Decimal("1.5e300"), "1.5e+300"),
])
def test_numbers_are_laid_out_as_ecmascript_does(number: Any, text: str) -> None:
    assert canonical_number(number) == text


@pytest.mark.parametrize("payload", ['{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}',
                                     {"x": float("nan")}, {"x": float("inf")},
                                     {"x": Decimal("Infinity")}],
                         ids=["json-nan", "json-inf", "json-neg-inf", "float-nan", "float-inf",
                              "decimal-inf"])
def test_nan_and_infinity_are_rejected(payload: Any) -> None:
    assert rejection(order(event_payload=payload)).rule in ("payload.not_object",
                                                            "payload.not_json")


@pytest.mark.parametrize("change", [{"event_id": "order-8812-placed-again"},
                                    *CONTENT_CHANGES.values()],
                         ids=["event_id", *CONTENT_CHANGES])
def test_the_hash_changes_when_any_field_changes(change: dict[str, Any]) -> None:
    assert hash_of(**change) != hash_of()


def test_the_hash_is_stable_across_releases() -> None:
    # given a fixed event (pinned: a change here means stored hashes no longer match, so
    # every retry of an old event would be reported as a conflict)
    event = parse_event({
        "event_id": "01890a5d-ac96-774b-bcce-b302099a8057",
        "event_type": "order.placed",
        "timestamp": "2024-05-01T11:30:00.5+02:00",
        "source": "shop/checkout",
        "subject": "order/8812",
        "event_payload": loads_exact('{"total": 49.90, "customer": "Zoë", "n": 2e21,'
                                     ' "lines": [{"sku": "MUG-01", "qty": 2}]}'),
    }, now=NOW)
    assert event.payload == ('{"customer":"Zoë","lines":[{"qty":2,"sku":"MUG-01"}],"n":2e+21,'
                             '"total":49.9}')
    canonical_event = (
        '{"event_id":"01890a5d-ac96-774b-bcce-b302099a8057",'
        '"event_payload":{"customer":"Zoë","lines":[{"qty":2,"sku":"MUG-01"}],"n":2e+21,'
        '"total":49.9},"event_type":"order.placed","source":"shop/checkout",'
        '"subject":"order/8812","timestamp":"2024-05-01T09:30:00.500000Z"}')
    # then its hash is the SHA-256 of its canonical JSON, and that value never changes
    assert event.content_hash == hashlib.sha256(canonical_event.encode("utf-8")).hexdigest()
    assert event.content_hash == \
        "debfa8ba1071afa4492307c07a7d250b18fc46ae5fe387e0b1862760c6584608"


# --- ids ---------------------------------------------------------------------------------

def test_an_event_without_an_id_gets_the_same_id_each_time_it_is_sent() -> None:
    # given the same event sent twice without an id (a retry), in two different seconds
    first = parse_event(order(event_id=...), now=NOW)
    retried = parse_event(order(event_id=...), now=NOW + timedelta(seconds=30))
    # then both get one id, a UUID version 8 with the RFC variant, marked as derived
    assert UUID.fullmatch(first.event_id)
    assert first.event_id[14] == "8"
    assert int(first.event_id[19], 16) >> 2 == 0b10
    assert retried.event_id == first.event_id
    assert first.event_id_derived is True
    assert parse_event(ORDER_PLACED, now=NOW).event_id_derived is False


def test_a_derived_id_starts_with_the_event_time_in_unix_milliseconds() -> None:
    # given an event sent without id, with a timestamp of 09:30:00.123456 UTC
    event = parse_event(order(event_id=..., timestamp="2024-05-01T11:30:00.123456+02:00"),
                        now=NOW)
    # then the first 48 bits of its id are that instant in whole milliseconds
    ms = int(datetime(2024, 5, 1, 9, 30, 0, 123000, tzinfo=UTC).timestamp() * 1000)
    assert int(event.event_id.replace("-", "")[:12], 16) == ms


def test_derived_ids_sort_by_event_time() -> None:
    stamps = ["1970-01-01T00:00:00Z", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00.001Z",
              "2024-05-01T09:30:00Z", "2024-05-01T11:59:00Z"]
    ids = [parse_event(order(event_id=..., timestamp=t), now=NOW).event_id for t in stamps]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_an_event_before_1970_gets_a_derived_id_that_sorts_first() -> None:
    old = parse_event(order(event_id=..., timestamp="1969-07-20T20:17:40Z"), now=NOW)
    epoch = parse_event(order(event_id=..., timestamp="1970-01-01T00:00:00Z"), now=NOW)
    assert old.event_id.startswith("00000000-0000-8")
    assert old.event_id != epoch.event_id


@pytest.mark.parametrize("change", list(CONTENT_CHANGES.values()), ids=list(CONTENT_CHANGES))
def test_a_derived_id_changes_when_any_field_changes(change: dict[str, Any]) -> None:
    base = parse_event(order(event_id=...), now=NOW).event_id
    assert parse_event(order(event_id=..., **change), now=NOW).event_id != base


def test_a_derived_id_is_pinned_across_processes_and_releases() -> None:
    # given a fixed event with a timestamp (pinned: a change here means a retry of an event
    # sent before the change is stored a second time under a new id)
    with_time = parse_event(order(event_id=...), now=NOW)
    # then its id is the event time in ms, version 8, and SHA-256 bits of its canonical JSON
    canonical = ('{"event_payload":{"currency":"EUR","lines":[{"qty":2,"sku":"MUG-01"}],'
                 '"order_id":8812,"total":"49.90"},"event_type":"order.placed",'
                 '"source":"shop/checkout","subject":"order/8812",'
                 '"timestamp":"2024-05-01T09:30:00.000000Z"}')
    digest = int.from_bytes(hashlib.sha256(canonical.encode("utf-8")).digest()[:16], "big")
    ms = 1714555800000
    expected = (ms << 80 | 0x8 << 76 | (digest >> 64 & 0xFFF) << 64 | 0b10 << 62
                | digest & ((1 << 62) - 1))
    assert with_time.event_id.replace("-", "") == f"{expected:032x}"
    assert with_time.event_id == "018f337d-49c0-8ea1-b552-89dd2f228a13"
    # and without a timestamp, every bit but version and variant comes from the content
    without_time = parse_event(order(event_id=..., timestamp=...), now=NOW)
    digest = int.from_bytes(hashlib.sha256(canonical[:canonical.index(',"timestamp"')].encode(
        "utf-8") + b"}").digest()[:16], "big")
    expected = (digest >> 80 << 80 | 0x8 << 76 | (digest >> 64 & 0xFFF) << 64 | 0b10 << 62
                | digest & ((1 << 62) - 1))
    assert without_time.event_id.replace("-", "") == f"{expected:032x}"
    assert without_time.event_id == "fa60df9b-43b7-8b7a-bdb4-244fdc95682b"


def test_a_naive_time_is_taken_as_utc_by_the_one_utc_rule() -> None:
    from eventlake.events.times import as_utc

    naive = datetime(2024, 5, 1, 12, 0, 0, 123456)
    aware = naive.replace(tzinfo=UTC)
    assert as_utc(naive) == aware
    assert as_utc(aware.astimezone(timezone(timedelta(hours=2)))) == aware
    # the stored text does not depend on the host's time zone
    assert format_ts(naive) == format_ts(aware) == "2024-05-01T12:00:00.123456Z"


# --- Python callers' values that JSON cannot carry: each a rule, never a crash ----------------

@pytest.mark.parametrize(("raw", "rule"), [
    ({"event_type": "a", "event_payload": {1: "x", "b": 2}}, "payload.not_json"),
    ({"event_type": "a", "event_payload": {"n": {2: "x", "2": "y"}}}, "payload.not_json"),
    ({"event_type": "a", 1: "x", b"y": 2}, "event.unknown_field"),
    ({"event_id": 10**5000, "event_type": "a"}, "event_id.format"),
])
def test_keys_and_ids_json_cannot_carry_are_refused_by_a_rule(raw: dict[Any, Any],
                                                              rule: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(raw, position=3)
    assert caught.value.rule == rule
    assert caught.value.position == 3
