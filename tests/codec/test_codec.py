"""The codec: AttributeValues, stream records and lake rows, on real shapes (tests/fixtures/ddb_*).

Numeric and base64 cases are our own copies of the public vectors collected in
shared/realcases/attributevalue (boto3 #2500, powertools #4845, dynalite, aws-lambda-go, ...).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import FIXTURES, load_event
from stream_support import wire_image

from eventlake.codec import (
    CodecError,
    RecordError,
    RowBuilder,
    StreamRecord,
    approximate_time,
    columns,
    decode_item,
    decode_value,
    parse_stream_event,
    parse_stream_records,
    payload_json_from_map,
    to_json_compatible,
)
from eventlake.codec.attributes import decode_number
from eventlake.codec.columns import lambda_insert_columns
from eventlake.config import Settings
from eventlake.events.canonical import canonical_json, content_hash
from eventlake.events.model import Event, parse_event
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.hot.store import HotStore

REALCASES = Path("/work/shared/realcases/lambda_events/dynamodb_streams")
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SERVICE = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
D = Decimal

# --- AttributeValue: every type, numbers at DynamoDB's edges ------------------------------

DECODES: list[tuple[str, dict[str, Any], Any]] = [
    ("S", {"S": "Hello"}, "Hello"),
    ("S-empty", {"S": ""}, ""),
    ("S-quotes", {"S": '"double-quote"'}, '"double-quote"'),
    ("N-int", {"N": "123"}, 123),
    ("N-negative-int", {"N": "-9007199254740991"}, -9007199254740991),
    ("N-beyond-double", {"N": "9007199254740993"}, 9007199254740993),
    ("N-decimal-exact", {"N": "123.45"}, D("123.45")),
    ("N-0.1-exact", {"N": "0.1"}, D("0.1")),
    ("N-small", {"N": "0.0000001"}, D("1E-7")),
    ("N-exponent-small", {"N": "1e-7"}, D("1E-7")),
    ("N-exponent-large", {"N": "1e15"}, D("1E+15")),
    # boto3 #2500: TypeDeserializer raises decimal.Rounded on these valid numbers
    ("N-1e100-exponent", {"N": "1e100"}, D("1E+100")),
    ("N-1e100-digits", {"N": "1" + "0" * 100}, 10**100),
    ("N-39-chars-17-digits", {"N": "110111111111111110000000000000000000000"},
     110111111111111110000000000000000000000),
    ("N-40-chars-trailing-zeros", {"N": "1234567895171680000000000000000000000000"},
     1234567895171680000000000000000000000000),
    # powertools #4845 trims these to a number 10x (or 1e9x) too small; we keep them exact
    ("N-leading-zeros-long", {"N": "000000011011111111111111000000000000000000000000000000"},
     11011111111111111000000000000000000000000000000),
    ("N-38-digits", {"N": "12345678901234567890123456789012345678"},
     12345678901234567890123456789012345678),
    ("N-38-digits-fraction", {"N": "-1.2345678901234567890123456789012345678"},
     D("-1.2345678901234567890123456789012345678")),
    ("N-max-magnitude", {"N": "9.9999999999999999999999999999999999999E+125"},
     D("9.9999999999999999999999999999999999999E+125")),
    ("N-max-magnitude-digits", {"N": "99999999999999999999999999999999999999" + "0" * 88},
     int("99999999999999999999999999999999999999" + "0" * 88)),
    ("N-min-magnitude", {"N": "1E-130"}, D("1E-130")),
    ("N-min-magnitude-digits", {"N": "0." + "0" * 129 + "1"}, D("1E-130")),
    ("N-min-magnitude-negative", {"N": "-1e-130"}, D("-1E-130")),
    ("N-zero", {"N": "0"}, 0),
    ("N-negative-zero", {"N": "-0"}, 0),
    ("N-zero-huge-exponent", {"N": "0e1000"}, D(0)),
    ("N-plus-sign", {"N": "+3"}, 3),
    ("N-leading-dot", {"N": ".123"}, D("0.123")),
    ("N-leading-zeros", {"N": "0001.23"}, D("1.23")),
    ("N-negative-exponent-form", {"N": "-17.4E37"}, D("-1.74E+38")),
    ("B", {"B": "AAEqQQ=="}, bytes.fromhex("00012a41")),
    ("B-test-is-base64", {"B": "test"}, bytes.fromhex("b5eb2d")),
    ("B-ascii-digits", {"B": "MTU4MDc1NjIyNg=="}, b"1580756226"),
    ("B-empty", {"B": ""}, b""),
    ("B-boto3-bytes", {"B": b"\x00\x01raw"}, b"\x00\x01raw"),
    ("B-boto3-bytearray", {"B": bytearray(b"xy")}, b"xy"),
    ("BOOL-true", {"BOOL": True}, True),
    ("BOOL-false", {"BOOL": False}, False),
    ("NULL", {"NULL": True}, None),
    ("SS-sorted", {"SS": ["Zebra", "Giraffe"]}, ["Giraffe", "Zebra"]),
    ("SS-duplicates-dropped", {"SS": ["b", "a", "b"]}, ["a", "b"]),
    ("SS-empty-member", {"SS": [""]}, [""]),
    ("SS-empty-set", {"SS": []}, []),
    ("NS-numeric-order", {"NS": ["150", "50", "0", "-1.5", "9007199254740996"]},
     [D("-1.5"), 0, 50, 150, 9007199254740996]),
    ("NS-equal-values-once", {"NS": ["1", "1.0", "2"]}, [1, 2]),
    ("BS-sorted-deduped", {"BS": ["QSoBAA==", "AAEqQQ==", "AAEqQQ=="]},
     [bytes.fromhex("00012a41"), bytes.fromhex("412a0100")]),
    ("BS-empty-member", {"BS": [""]}, [b""]),
    ("L-mixed", {"L": [{"S": "Cookies"}, {"N": "3.14159"}, {"L": [{"N": "1.25"}]}]},
     ["Cookies", D("3.14159"), [D("1.25")]]),
    ("L-empty", {"L": []}, []),
    ("M", {"M": {"Name": {"S": "Joe"}, "Age": {"N": "35"}}}, {"Name": "Joe", "Age": 35}),
    ("M-nested-empty-list", {"M": {"ItemsEmpty": {"L": []}, "Inner": {"M": {"L": {"L": []}}}}},
     {"ItemsEmpty": [], "Inner": {"L": []}}),
    ("M-empty", {"M": {}}, {}),
]


@pytest.mark.parametrize(("av", "expected"), [c[1:] for c in DECODES],
                         ids=[c[0] for c in DECODES])
def test_attribute_values_decode_losslessly(av: dict[str, Any], expected: Any) -> None:
    value = decode_value(av)

    assert value == expected
    assert _types(value) == _types(expected)  # 0.1 stays Decimal, integers stay int


def _types(value: Any) -> Any:
    if isinstance(value, list):
        return [_types(v) for v in value]
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    return type(value)


REJECTS: list[tuple[str, dict[str, Any], str]] = [
    ("N-39-significant-digits", {"N": "123456789012345678901234567890123456789"},
     "attribute.number_digits"),
    ("N-39-digits-fraction", {"N": "-1.23456789012345678901234567890123456789"},
     "attribute.number_digits"),
    ("N-pi-39", {"N": "3.14159265358979323846264338327950288419"}, "attribute.number_digits"),
    ("N-1e126", {"N": "1e126"}, "attribute.number_range"),
    ("N-negative-1e126", {"N": "-1e126"}, "attribute.number_range"),
    ("N-11e125", {"N": "11e125"}, "attribute.number_range"),
    ("N-127-digits", {"N": "1" + "0" * 126}, "attribute.number_range"),
    ("N-1e-131", {"N": "1e-131"}, "attribute.number_range"),
    ("N-0.9e-130", {"N": "0.9e-130"}, "attribute.number_range"),
    ("N-huge-exponent", {"N": "1e" + "9" * 5000}, "attribute.number_range"),
    ("N-NaN", {"N": "NaN"}, "attribute.number_format"),
    ("N-Infinity", {"N": "-Infinity"}, "attribute.number_format"),
    ("N-word", {"N": "dog"}, "attribute.number_format"),
    ("N-leading-space", {"N": " 1"}, "attribute.number_format"),
    ("N-trailing-space", {"N": "1 "}, "attribute.number_format"),
    ("N-underscore", {"N": "1_000"}, "attribute.number_format"),
    ("N-empty", {"N": ""}, "attribute.number_format"),
    ("N-only-sign", {"N": "-"}, "attribute.number_format"),
    ("N-arabic-digits", {"N": "١٢"}, "attribute.number_format"),
    ("N-json-number", {"N": 123}, "attribute.value_type"),
    ("B-bad-length", {"B": "23456"}, "attribute.base64"),
    ("B-padding-first", {"B": "=+/="}, "attribute.base64"),
    ("B-nonzero-trailing-bits", {"B": "+/+="}, "attribute.base64"),
    ("B-missing-padding", {"B": "YQ"}, "attribute.base64"),
    ("B-not-alphabet", {"B": "YQ*="}, "attribute.base64"),
    ("B-urlsafe", {"B": "-_-_"}, "attribute.base64"),
    ("B-number", {"B": 23}, "attribute.value_type"),
    ("NULL-not-true", {"NULL": "no"}, "attribute.value_type"),
    ("BOOL-string", {"BOOL": "true"}, "attribute.value_type"),
    ("S-number", {"S": 5}, "attribute.value_type"),
    ("L-not-list", {"L": {"S": "x"}}, "attribute.value_type"),
    ("M-not-map", {"M": []}, "attribute.value_type"),
    ("SS-number-member", {"SS": [1]}, "attribute.value_type"),
    ("unknown-type", {"FOO": "bar"}, "attribute.type_descriptor"),
    ("unknown-type-LS", {"LS": "data"}, "attribute.type_descriptor"),
    ("empty-descriptor", {}, "attribute.type_descriptor"),
    ("two-types", {"S": "a", "N": "1"}, "attribute.type_descriptor"),
]


@pytest.mark.parametrize(("av", "rule"), [c[1:] for c in REJECTS], ids=[c[0] for c in REJECTS])
def test_malformed_attribute_values_raise_codec_error(av: dict[str, Any], rule: str) -> None:
    with pytest.raises(CodecError) as caught:
        decode_value(av)

    assert caught.value.rule == rule
    assert isinstance(caught.value, ValueError)


def test_number_errors_name_the_value() -> None:
    with pytest.raises(CodecError, match=r"`1e126`.*outside DynamoDB's range"):
        decode_value({"N": "1e126"})


def test_decode_number_reads_the_text_of_an_n_exactly() -> None:
    assert decode_number("42") == 42
    assert decode_number("-1.50") == Decimal("-1.50")
    with pytest.raises(CodecError, match=r"`4x` is not a number \[rule attribute.number_format\]"):
        decode_number("4x")


def test_decoding_error_names_the_attribute_path() -> None:
    item = {"id": {"S": "x"},
            "a": {"M": {"b": {"L": [{"S": "ok"}, {"M": {"c": {"FOO": "bar"}}}]}}}}

    with pytest.raises(CodecError) as caught:
        decode_item(item)

    assert caught.value.path == "a.b[1].c"
    assert "attribute `a.b[1].c`" in str(caught.value)
    assert caught.value.rule == "attribute.type_descriptor"


def test_set_member_errors_name_the_member() -> None:
    with pytest.raises(CodecError) as caught:
        decode_item({"tags": {"NS": ["1", "1e200"]}})

    assert caught.value.path == "tags[1]"


def test_decode_item_gives_a_plain_dict_of_every_type() -> None:
    record = load_event("ddb_stream_every_type_bom.json")["Records"][0]

    item = decode_item(record["dynamodb"]["NewImage"])

    assert item["Test"] == b"\xb5\xeb\x2d"
    assert item["Big"] == 10**100
    assert item["BinarySet"] == [bytes.fromhex("00012a41"), bytes.fromhex("412a0100")]
    assert item["StringSet"] == ["Giraffe", "Zebra"]
    assert item["NumberSet"] == [D("-1.5"), 0, 50, 150]
    assert item["EmptyStringSet"] == []
    assert item["Map"] == {"ItemsEmpty": [], "Name": "Joe", "Age": 35,
                           "Nested": {"Deep": False}}


def test_to_json_compatible_turns_bytes_into_padded_base64() -> None:
    value = decode_value({"M": {"b": {"B": "test"}, "bs": {"BS": ["YQ==", "Yg=="]},
                                "n": {"N": "1.50"}}})

    out = to_json_compatible(value)

    assert out == {"b": "test", "bs": ["YQ==", "Yg=="], "n": D("1.50")}
    assert canonical_json(out) == '{"b":"test","bs":["YQ==","Yg=="],"n":1.5}'
    assert to_json_compatible(b"a") == "YQ=="
    assert to_json_compatible(datetime(2026, 11, 1)) == "2026-11-01T00:00:00.000000Z"


def test_payload_json_from_map_is_canonical_json() -> None:
    av = {"M": {"z": {"N": "1e100"}, "a": {"L": [{"N": "0.10"}, {"NULL": True}]},
                "blob": {"B": "AAEqQQ=="}, "set": {"NS": ["3", "-2"]}, "s": {"S": "é\n"}}}

    text = payload_json_from_map(av)

    assert text == '{"a":[0.1,null],"blob":"AAEqQQ==","s":"é\\n","set":[-2,3],"z":1e+100}'
    assert payload_json_from_map(av["M"]) == text  # the bare map of attributes works too


def test_payload_json_from_map_names_the_bad_attribute() -> None:
    with pytest.raises(CodecError) as caught:
        payload_json_from_map({"M": {"x": {"L": [{"N": "1e999"}]}}})

    assert caught.value.path == "event_payload.x[0]"
    assert caught.value.rule == "attribute.number_range"


# --- approximate_time ----------------------------------------------------------------------

TIMES: list[tuple[str, Any, datetime | None]] = [
    ("seconds", 1480642020, datetime(2016, 12, 2, 1, 27, tzinfo=UTC)),
    ("float-exponent", 1.44130524e9, datetime(2015, 9, 3, 18, 34, tzinfo=UTC)),
    ("float-sub-second", 1.635734407123456789e9,
     datetime(2021, 11, 1, 2, 40, 7, 123456, tzinfo=UTC)),
    ("float-whole", 1693997155.0, datetime(2023, 9, 6, 10, 45, 55, tzinfo=UTC)),
    ("milliseconds", 1480642020000, datetime(2016, 12, 2, 1, 27, tzinfo=UTC)),
    ("milliseconds-kinesis", 1731924555370,
     datetime(2024, 11, 18, 10, 9, 15, 370000, tzinfo=UTC)),
    ("numeric-string", "1480642020", datetime(2016, 12, 2, 1, 27, tzinfo=UTC)),
    ("exponent-string", "1.635734407123456789E9",
     datetime(2021, 11, 1, 2, 40, 7, 123456, tzinfo=UTC)),
    ("decimal", D("1480642020.5"), datetime(2016, 12, 2, 1, 27, 0, 500000, tzinfo=UTC)),
    ("aware-datetime", datetime(2016, 12, 2, 2, 27, tzinfo=timezone(timedelta(hours=1))),
     datetime(2016, 12, 2, 1, 27, tzinfo=UTC)),
    ("naive-datetime-is-utc", datetime(2016, 12, 2, 1, 27),
     datetime(2016, 12, 2, 1, 27, tzinfo=UTC)),
    ("rfc3339-string", "2016-12-02T01:27:00Z", datetime(2016, 12, 2, 1, 27, tzinfo=UTC)),
    ("absent", None, None),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in TIMES],
                         ids=[c[0] for c in TIMES])
def test_approximate_time_reads_every_form(value: Any, expected: datetime | None) -> None:
    result = approximate_time(value)

    assert result == expected
    assert result is None or result.tzinfo is UTC


@pytest.mark.parametrize("value", ["datetime", True, float("nan"), 10**30, [1]],
                         ids=["placeholder-text", "bool", "nan", "overflow", "list"])
def test_approximate_time_rejects_what_is_not_a_time(value: Any) -> None:
    with pytest.raises(CodecError) as caught:
        approximate_time(value)

    assert caught.value.rule == "record.creation_time"


# --- stream records ------------------------------------------------------------------------

def test_bom_prefixed_json_text_parses_and_service_insert_is_not_ttl() -> None:
    text = (FIXTURES / "ddb_stream_every_type_bom.json").read_bytes()
    assert text.startswith(b"\xef\xbb\xbf")

    records = parse_stream_event(text)

    assert [r.event_name for r in records] == ["INSERT", "INSERT"]
    assert records[1].user_identity == SERVICE
    assert not records[1].is_ttl_removal  # TTL means REMOVE + Service + dynamodb.amazonaws.com
    assert records[0].approximate_creation == datetime(2026, 11, 1, tzinfo=UTC)
    assert records[0].item_identifier == "100000000000000000001"
    assert records[0].view_type == "NEW_AND_OLD_IMAGES"
    assert records[0].keys == {"event_id": {"S": "evt-1"}}
    assert parse_stream_event(text.decode("utf-8")) == records  # str with a BOM too


def test_ttl_remove_modify_and_user_remove() -> None:
    ttl, modify, user_remove = parse_stream_event(load_event("ddb_stream_ttl_modify_remove.json"))

    assert ttl.event_name == "REMOVE" and ttl.is_ttl_removal
    assert ttl.new_image is None and ttl.old_image is not None
    assert ttl.view_type == "OLD_IMAGE"
    assert ttl.approximate_creation == datetime(2016, 12, 2, 1, 27, tzinfo=UTC)  # from ms
    assert modify.event_name == "MODIFY" and not modify.is_ttl_removal
    assert modify.new_image == {"event_id": {"S": "evt-4"}, "v": {"N": "2"}}
    assert modify.old_image == {"event_id": {"S": "evt-4"}, "v": {"N": "1"}}
    assert modify.approximate_creation == datetime(2015, 9, 3, 18, 34, tzinfo=UTC)  # 1.44130524E9
    assert user_remove.approximate_creation is None
    assert not user_remove.is_ttl_removal


def test_keys_only_records_have_no_images() -> None:
    records = parse_stream_event(load_event("ddb_stream_keys_only.json"))

    assert [r.event_name for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    assert all(r.new_image is None and r.old_image is None for r in records)
    assert all(r.keys == {"event_id": {"S": "evt-1"}} for r in records)
    assert [r.view_type for r in records] == ["KEYS_ONLY"] * 3


def test_kinesis_wrapped_record_is_unwrapped() -> None:
    event = load_event("ddb_stream_kinesis_wrapped.json")
    kinesis_seq = event["Records"][0]["kinesis"]["sequenceNumber"]

    (record,) = parse_stream_event(event)

    assert record.event_name == "INSERT"
    assert record.event_id == "6f1c2f7e-9a51-4b8e-8a0e-0c6b1f0f6a11"
    assert record.user_identity is None and not record.is_ttl_removal
    assert record.item_identifier == kinesis_seq  # what batchItemFailures wants for Kinesis
    assert record.sequence_number == kinesis_seq
    assert record.view_type is None
    assert record.approximate_creation == datetime(2026, 11, 1, 0, 0, 0, 370000, tzinfo=UTC)
    assert record.event_source_arn is not None and ":kinesis:" in record.event_source_arn
    assert record.raw is event["Records"][0]
    assert record.new_image is not None
    assert decode_item(record.new_image)["blob"] == b"foobar"


def test_getrecords_shape_with_datetimes_and_bytes() -> None:
    response = {"Records": [{
        "eventID": "abc", "eventName": "REMOVE", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "userIdentity": {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"},
        "dynamodb": {"ApproximateCreationDateTime": datetime(2026, 11, 1, 13, 0,
                                                             tzinfo=timezone(timedelta(hours=1))),
                     "Keys": {"event_id": {"S": "evt-9"}},
                     "OldImage": {"event_id": {"S": "evt-9"}, "blob": {"B": b"\x00\xff"}},
                     "SequenceNumber": "500", "SizeBytes": 20, "StreamViewType": "OLD_IMAGE"},
    }], "NextShardIterator": "it"}

    (record,) = parse_stream_event(response)

    assert record.approximate_creation == NOW
    assert record.is_ttl_removal  # GetRecords spells the identity Type / PrincipalId
    assert record.event_source_arn is None  # GetRecords has none; Lambda adds it
    assert record.old_image is not None
    assert decode_item(record.old_image)["blob"] == b"\x00\xff"
    assert parse_stream_event(response["Records"]) == [record]  # the bare list too


def test_tumbling_window_envelope_and_bare_record() -> None:
    window = {"Records": [load_event("ddb_stream_keys_only.json")["Records"][0]],
              "window": {"start": "2020-07-30T17:00:00Z", "end": "2020-07-30T17:05:00Z"},
              "state": {"1": "state1"}, "shardId": "shard1", "isFinalInvokeForWindow": False}

    assert len(parse_stream_event(window)) == 1
    assert len(parse_stream_event(window["Records"][0])) == 1


def test_fast_and_slow_record_parsing_build_equal_records() -> None:
    raw = load_event("ddb_stream_every_type_bom.json")["Records"][0]
    slow_shape = dict(raw, dynamodb=dict(raw["dynamodb"], ApproximateCreationDateTime="1793491200"))

    (fast,) = parse_stream_event([raw])
    (slow,) = parse_stream_event([slow_shape])

    expected = StreamRecord("INSERT", raw["eventID"], "100000000000000000001",
                            datetime(2026, 11, 1, tzinfo=UTC), raw["dynamodb"]["Keys"],
                            raw["dynamodb"]["NewImage"], None, "NEW_AND_OLD_IMAGES", None,
                            raw["eventSourceARN"], raw)
    assert fast == expected and type(fast) is StreamRecord
    assert pickle.loads(pickle.dumps(fast)) == fast
    assert dataclasses.replace(fast, event_name="MODIFY").event_name == "MODIFY"
    assert (slow.event_name, slow.keys, slow.new_image, slow.approximate_creation) == (
        fast.event_name, fast.keys, fast.new_image, fast.approximate_creation)
    with pytest.raises(AttributeError):
        fast.event_name = "MODIFY"  # type: ignore[misc]


def test_truncated_json_raises_codec_error() -> None:
    text = (FIXTURES / "ddb_stream_truncated.json").read_text()

    with pytest.raises(CodecError) as caught:
        parse_stream_records(text)

    assert caught.value.rule == "stream.not_json"
    assert "truncated" in str(caught.value)


@pytest.mark.parametrize(("event", "rule"), [
    ("not json at all", "stream.not_json"),
    (b"\xff\xfe{}", "stream.not_json"),
    ({"records": []}, "stream.no_records"),
    ({"Records": {"eventName": "INSERT"}}, "stream.no_records"),
    (42, "stream.no_records"),
], ids=["text", "not-utf8", "no-records", "records-not-list", "number"])
def test_whole_event_problems_raise(event: Any, rule: str) -> None:
    with pytest.raises(CodecError) as caught:
        parse_stream_records(event)

    assert caught.value.rule == rule


def test_record_problems_are_kept_per_record() -> None:
    good = load_event("ddb_stream_keys_only.json")["Records"][0]
    bad_number_time = copy.deepcopy(good)
    bad_number_time["dynamodb"]["ApproximateCreationDateTime"] = "datetime"
    kinesis_garbage = {"kinesis": {"data": "not base64!", "sequenceNumber": "77"}}
    event = {"Records": [good, {"eventName": "INSERT", "dynamodb": None, "dynamodb_": {}},
                         {"dynamodb": {}}, {"eventName": "UPSERT", "dynamodb": {}},
                         "text", bad_number_time, kinesis_garbage,
                         {"eventName": ["INSERT"], "dynamodb": {}}]}

    parsed = parse_stream_records(event)

    assert isinstance(parsed[0], StreamRecord)
    errors = [p for p in parsed if isinstance(p, RecordError)]
    assert [(e.index, e.rule) for e in errors] == [
        (1, "record.no_dynamodb"), (2, "record.no_event_name"), (3, "record.event_name"),
        (4, "record.not_object"), (5, "record.creation_time"), (6, "record.kinesis_data"),
        (7, "record.event_name")]
    assert errors[0].raw is event["Records"][1]
    assert errors[5].item_identifier == "77"
    assert errors[4].item_identifier == good["dynamodb"]["SequenceNumber"]

    with pytest.raises(CodecError, match=r"record #1: record has no `dynamodb` object") as caught:
        parse_stream_event(event)
    assert caught.value.index == 1 and caught.value.rule == "record.no_dynamodb"


def _realcase_files() -> list[Path]:
    return sorted(REALCASES.glob("*.json")) if REALCASES.is_dir() else []


@pytest.mark.skipif(not _realcase_files(), reason=f"{REALCASES} is not on this machine")
@pytest.mark.parametrize("path", _realcase_files(), ids=lambda p: p.name)
def test_real_captures_parse_or_raise_only_codec_errors(path: Path) -> None:
    data = path.read_bytes()
    try:
        whole = parse_stream_records(data)
    except CodecError:
        whole = []
        if "malformed" in path.name:
            return  # the truncated capture must fail, and fail cleanly
    assert "malformed" not in path.name

    # Collections of captures (matrix, snapshots, decoded) hold events further down.
    parsed = list(whole)
    for candidate in _nested_events(json.loads(data.decode("utf-8-sig"))):
        with contextlib.suppress(CodecError):
            parsed.extend(parse_stream_records(candidate))
    for record in parsed:
        if isinstance(record, StreamRecord):
            for image in (record.keys, record.new_image, record.old_image):
                if image:
                    decode_item(image)  # every real image decodes (or says why: CodecError)
            assert record.item_identifier is None or isinstance(record.item_identifier, str)
    assert parsed


def _nested_events(value: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(value, dict):
        if "Records" in value:
            found.append(value)
        else:
            for v in value.values():
                found.extend(_nested_events(v))
    elif isinstance(value, list):
        if value and all(isinstance(v, dict) and ("eventName" in v or "Data" in v)
                         for v in value):
            found.append(value)
        else:
            for v in value:
                found.extend(_nested_events(v))
    return found


def test_real_ttl_and_kinesis_captures_decode_as_documented() -> None:
    dotnet = REALCASES / "aws-lambda-dotnet__dynamodb-event.json"
    kinesis = REALCASES / "powertools-typescript__kinesis__dynamodb-stream.json"
    if not (dotnet.exists() and kinesis.exists()):
        pytest.skip("realcases not on this machine")

    insert, ttl = parse_stream_event(dotnet.read_bytes())
    assert ttl.is_ttl_removal and ttl.new_image is None
    assert insert.new_image is not None
    assert decode_item(insert.new_image)["misc2"]["ItemNumberSet"] == [0, 50, 150]
    first, _ = parse_stream_event(kinesis.read_bytes())
    assert first.item_identifier == "49657828409187701520019995242508390119953358325192589314"
    assert first.approximate_creation == datetime(2024, 11, 18, 10, 9, 15, 370000, tzinfo=UTC)


# --- RowBuilder ----------------------------------------------------------------------------

STORE = HotStore(Settings(), clients=None, recorded={})  # type: ignore[arg-type]  # no AWS: nothing recorded


def _events() -> list[Event]:
    raws = [
        {"event_id": "evt-a", "event_type": "order.placed",
         "timestamp": "2026-10-31T23:59:59.5+00:00",
         "event_payload": {"total": 12.50, "items": [{"sku": "é", "qty": 2}], "n": None},
         "source": "shop", "subject": "order/1"},
        {"event_id": "evt-b", "event_type": "order.paid", "timestamp": "2026-11-01T01:00:00+02:00",
         "event_payload": {"big": 10**30, "tiny": "1e-7", "emoji": "🦊"}},
        {"event_id": "evt-c", "event_type": "user.seen", "timestamp": "2026-11-01T11:00:00Z"},
    ]
    return [parse_event(r, now=NOW) for r in raws]


def _items(events: list[Event]) -> list[dict[str, Any]]:
    return [STORE.to_item(e, NOW + timedelta(microseconds=i)) for i, e in enumerate(events)]


def test_fast_path_rows_match_the_event_model() -> None:
    events = _events()
    builder = RowBuilder()

    for item in _items(events):
        builder.add_image(item)
    table = builder.to_table()

    assert table.schema == EVENT_SCHEMA  # names, order, types and nullability
    assert table.column("content_hash").to_pylist() == [e.content_hash for e in events]
    assert table.column("event_payload").to_pylist() == [e.payload for e in events]
    assert table.column("timestamp").to_pylist() == [e.timestamp for e in events]
    assert table.column("ingested_at").to_pylist()[2] == NOW + timedelta(microseconds=2)
    assert table.column("source").to_pylist() == ["shop", None, None]
    assert table.column("subject").to_pylist() == ["order/1", None, None]
    assert builder.dt_strings() == ["2026-10-31", "2026-10-31", "2026-11-01"]
    assert len(builder) == 3


def test_slow_path_gives_the_same_rows_as_the_fast_path() -> None:
    items = _items(_events())
    slow_items = []
    for item in items:
        slow = {k: v for k, v in item.items() if k != "content_hash"}  # forces the slow path
        payload = json.loads(slow["event_payload"]["S"])
        slow["event_payload"] = {"S": json.dumps(payload, indent=2)}  # not canonical
        slow_items.append(slow)
    fast, slow_builder = RowBuilder(), RowBuilder()

    for item, slow in zip(items, slow_items, strict=True):
        fast.add_image(item)
        slow_builder.add_image(slow)

    assert slow_builder.to_table().equals(fast.to_table())


def test_other_producer_item_becomes_a_canonical_row() -> None:
    item = load_event("ddb_item_other_producer.json")
    arrived = datetime(2026, 11, 1, 0, 0, 5, tzinfo=UTC)
    builder = RowBuilder()

    builder.add_image(item, fallback_ingested_at=arrived)
    row = builder.to_table().to_pylist()[0]

    expected_payload = {
        "event_id": 7, "String": "Hello", "Empty": "", "Int": 123, "Float": D("123.45"),
        "Big": 10**100, "Binary": "AAEqQQ==", "Test": "test", "Bool": True, "Null": None,
        "StringSet": ["Giraffe", "Zebra"], "NumberSet": [D("-1.5"), 0, 50, 150],
        "BinarySet": ["AAEqQQ==", "QSoBAA=="], "EmptyStringSet": [], "EmptyList": [],
        "List": ["Cookies", D("3.14159"), []],
        "Map": {"ItemsEmpty": [], "Name": "Joe", "Age": 35, "Nested": {"Deep": False}},
    }
    assert row["event_payload"] == canonical_json(expected_payload)
    assert f'"Big":1{"0" * 100}' in row["event_payload"]  # an integer stays digits
    assert row["event_id"] == "101"  # an N id becomes its text
    assert row["timestamp"] == datetime(2026, 11, 1, 0, 0, 0, 123000, tzinfo=UTC)  # N in ms
    assert row["ingested_at"] == arrived
    assert row["source"] == "legacy-writer" and row["subject"] is None
    assert row["content_hash"] == content_hash(
        "101", "sensor.reading", "2026-11-01T00:00:00.123000Z", row["event_payload"],
        "legacy-writer", None)
    assert builder.dt_strings() == ["2026-11-01"]


@pytest.mark.parametrize(("timestamp", "expected"), [
    ({"S": "2026-11-01T02:00:00+02:00"}, "2026-11-01T00:00:00.000000Z"),
    ({"S": "2026-11-01 00:00:00.1234567Z"}, "2026-11-01T00:00:00.123456Z"),
    ({"N": "1793491200"}, "2026-11-01T00:00:00.000000Z"),
    ({"N": "1793491200.25"}, "2026-11-01T00:00:00.250000Z"),
], ids=["offset", "space-and-nanos", "epoch-seconds", "epoch-fraction"])
def test_other_timestamp_forms_are_normalised(timestamp: dict[str, str], expected: str) -> None:
    builder = RowBuilder()

    builder.add_image({"event_id": {"S": "x"}, "event_type": {"S": "t"}, "timestamp": timestamp,
                       "ingested_at": {"S": "2026-11-01T00:00:01Z"},
                       "event_payload": {"S": '{"b": 1, "a": [1.0]}'}})
    row = builder.to_table().to_pylist()[0]

    assert row["timestamp"] == datetime.fromisoformat(expected)
    assert row["event_payload"] == '{"a":[1],"b":1}'
    assert row["content_hash"] == content_hash("x", "t", expected, '{"a":[1],"b":1}', None, None)


BAD_ITEMS: list[tuple[str, dict[str, Any], str, str | None]] = [
    ("no-event-type", {"event_id": {"S": "e1"}, "timestamp": {"S": "2026-11-01T00:00:00Z"}},
     "record.not_an_event", "e1"),
    ("no-event-id", {"event_type": {"S": "t"}, "timestamp": {"S": "2026-11-01T00:00:00Z"}},
     "record.not_an_event", None),
    ("bad-timestamp", {"event_id": {"S": "e2"}, "event_type": {"S": "t"},
                       "timestamp": {"S": "yesterday"}}, "record.bad_timestamp", "e2"),
    ("naive-timestamp", {"event_id": {"S": "e3"}, "event_type": {"S": "t"},
                         "timestamp": {"S": "2026-11-01T00:00:00"}}, "record.bad_timestamp", "e3"),
    ("no-timestamp", {"event_id": {"S": "e4"}, "event_type": {"S": "t"}},
     "record.bad_timestamp", "e4"),
    ("payload-not-json", {"event_id": {"S": "e5"}, "event_type": {"S": "t"},
                          "timestamp": {"S": "2026-11-01T00:00:00Z"},
                          "event_payload": {"S": "{oops"}}, "record.bad_payload", "e5"),
    ("payload-a-list", {"event_id": {"S": "e6"}, "event_type": {"S": "t"},
                        "timestamp": {"S": "2026-11-01T00:00:00Z"},
                        "event_payload": {"L": []}}, "record.bad_payload", "e6"),
    ("payload-bad-number", {"event_id": {"S": "e7"}, "event_type": {"S": "t"},
                            "timestamp": {"S": "2026-11-01T00:00:00Z"},
                            "event_payload": {"M": {"x": {"N": "1e999"}}}},
     "attribute.number_range", "e7"),
    ("source-a-map", {"event_id": {"S": "e8"}, "event_type": {"S": "t"},
                      "timestamp": {"S": "2026-11-01T00:00:00Z"}, "source": {"M": {}}},
     "record.bad_attribute", "e8"),
    ("no-ingested-at-no-fallback", {"event_id": {"S": "e9"}, "event_type": {"S": "t"},
                                    "timestamp": {"S": "2026-11-01T00:00:00Z"}},
     "record.no_ingested_at", "e9"),
]


@pytest.mark.parametrize(("item", "rule", "event_id"), [c[1:] for c in BAD_ITEMS],
                         ids=[c[0] for c in BAD_ITEMS])
def test_a_bad_item_adds_nothing_and_names_itself(item: dict[str, Any], rule: str,
                                                  event_id: str | None) -> None:
    builder = RowBuilder()
    good = _items(_events())
    builder.add_image(good[0])
    fallback = None if rule == "record.no_ingested_at" else NOW

    with pytest.raises(CodecError) as caught:
        builder.add_image(item, fallback_ingested_at=fallback)
    builder.add_image(good[1])

    assert caught.value.rule == rule
    assert caught.value.event_id == event_id
    if event_id:
        assert f"`{event_id}`" in str(caught.value)
    assert len(builder) == 2
    assert builder.to_table().column("event_id").to_pylist() == ["evt-a", "evt-b"]


def test_an_impossible_fast_path_date_is_found_at_to_table_and_can_be_set_aside() -> None:
    items = _items(_events())
    bad = copy.deepcopy(items[1])
    bad["timestamp"] = {"S": "2026-02-30T00:00:00.000000Z"}  # the right layout, no such day
    builder = RowBuilder()
    for item in (items[0], bad, items[2]):
        builder.add_image(item)

    with pytest.raises(CodecError) as caught:
        builder.to_table()
    assert caught.value.rows == (1,) and caught.value.rule == "record.bad_timestamp"

    rejected = builder.reject_invalid()
    assert [(row, err.event_id, err.path) for row, err in rejected] == [(1, "evt-b", "timestamp")]
    assert builder.to_table().column("event_id").to_pylist() == ["evt-a", "evt-c"]
    assert builder.reject_invalid() == []


def test_add_images_reports_errors_by_position() -> None:
    items = _items(_events())
    builder = RowBuilder()

    errors = builder.add_images([items[0], {"event_id": {"S": "x"}}, items[1]])

    assert [(pos, err.rule) for pos, err in errors] == [(1, "record.not_an_event")]
    assert builder.event_ids() == ["evt-a", "evt-b"]


def test_empty_builder_gives_an_empty_table_with_the_schema() -> None:
    table = RowBuilder().to_table()

    assert table.num_rows == 0
    assert table.schema == EVENT_SCHEMA


def test_stream_batch_end_to_end_fast_path() -> None:
    items = _items(_events())
    event = {"Records": [
        {"eventID": str(i), "eventName": "INSERT", "eventSource": "aws:dynamodb",
         "dynamodb": {"ApproximateCreationDateTime": 1793491200,
                      "Keys": {"event_id": item["event_id"]},
                      "NewImage": wire_image(item), "SequenceNumber": str(100 + i),
                      "SizeBytes": 300,
                      "StreamViewType": "NEW_AND_OLD_IMAGES"}}
        for i, item in enumerate(items)]}
    builder = RowBuilder()

    for record in parse_stream_event(json.dumps(event)):
        assert record.new_image is not None
        builder.add_image(record.new_image, fallback_ingested_at=record.approximate_creation)

    table = builder.to_table()
    assert isinstance(table, pa.Table) and table.num_rows == 3
    assert table.column("content_hash").to_pylist() == [e.content_hash for e in _events()]


def test_fast_path_is_not_fooled_by_a_null_source() -> None:
    item = _items(_events())[2]
    item["source"] = {"NULL": True}
    item["subject"] = {"N": "5"}
    builder = RowBuilder()

    with pytest.raises(CodecError) as caught:
        builder.add_image(item)

    assert caught.value.rule == "record.bad_attribute" and caught.value.path == "subject"


def test_binary_in_payload_is_base64_text() -> None:
    blob = bytes(range(256))
    item = {"event_id": {"S": "b1"}, "event_type": {"S": "t"},
            "timestamp": {"S": "2026-11-01T00:00:00Z"},
            "ingested_at": {"S": "2026-11-01T00:00:00Z"},
            "event_payload": {"M": {"blob": {"B": blob}}}}  # boto3 form: raw bytes
    builder = RowBuilder()

    builder.add_image(item)

    payload = builder.to_table().column("event_payload")[0].as_py()
    assert json.loads(payload) == {"blob": base64.b64encode(blob).decode()}


def test_another_producers_payload_that_repeats_a_key_is_quarantined_naming_the_key() -> None:
    from eventlake.codec import CodecError, RowBuilder

    item = {"event_id": {"S": "legacy-1"}, "event_type": {"S": "order.placed"},
            "timestamp": {"S": "2024-05-01T10:00:00Z"},
            "ingested_at": {"S": "2024-05-01T10:00:01Z"},
            "event_payload": {"S": '{"amount": 5, "amount": 7}'}}
    with pytest.raises(CodecError) as caught:
        RowBuilder().add_image(item)
    assert caught.value.rule == "record.bad_payload"
    assert "`amount`" in str(caught.value)


# --- whole Lambda batches, column-wise (codec.columns) -----------------------------------------

def _records(images: list[Any], names: list[str] | None = None) -> list[dict[str, Any]]:
    names = names or ["INSERT"] * len(images)
    return [{"eventID": str(i), "eventName": name, "eventSource": "aws:dynamodb",
             "dynamodb": {"Keys": {"event_id": {"S": f"k{i}"}}, "SequenceNumber": str(100 + i),
                          **({"NewImage": image} if name == "INSERT" else {})}}
            for i, (image, name) in enumerate(zip(images, names, strict=True))]


def _row_wise(images: list[Any]) -> pa.Table:
    builder = RowBuilder()
    for image in images:
        builder.add_image(image)
    return builder.to_table()


def test_a_batch_gathered_in_one_pass_gives_the_rows_of_each_record_alone() -> None:
    # given eventlake items with and without source and subject, a REMOVE and a MODIFY among them
    items = _items(_events())
    records = _records([items[0], None, items[1], None, items[2]],
                       ["INSERT", "REMOVE", "INSERT", "MODIFY", "INSERT"])

    # when the batch is gathered column-wise
    fast = lambda_insert_columns(records)

    # then the INSERTs are the rows the row-wise path makes, the others are left to it
    assert fast.table.equals(_row_wise(items))
    assert (fast.indexes, fast.seqs, fast.rest) == ([0, 2, 4], ["100", "102", "104"], [1, 3])
    assert columns._gather(records) is not None  # in one pass: REMOVEs do not slow it down


@pytest.mark.parametrize(("source", "taken"), [
    ({"NULL": True}, False), ({"N": "5"}, False), ("shop", False), (None, True),
    ({"S": None}, True),
], ids=["NULL", "N", "not-a-map", "json-null", "S-null"])
def test_an_insert_off_the_layout_is_sorted_out_record_by_record(
        source: Any, taken: bool) -> None:
    # given a batch whose middle INSERT has an odd `source` (the one-pass gather gives up on it)
    items = _items(_events())
    odd = {**items[1], "source": source}

    # when the batch is gathered column-wise
    fast = lambda_insert_columns(_records([items[0], odd, items[2]]))

    # then the other INSERTs are still taken; the odd one is left to the row-wise path, or,
    # where it reads as having no source (as the record-by-record loop always took it), taken
    if taken:
        assert fast.rest == [] and fast.table.column("source").to_pylist()[1] is None
    else:
        assert fast.rest == [1] and fast.indexes == [0, 2]
        assert fast.table.equals(_row_wise([items[0], items[2]]))


def test_a_record_that_is_not_a_map_is_left_to_the_row_wise_path() -> None:
    items = _items(_events())

    fast = lambda_insert_columns([*_records(items[:2]), "garbage", {"eventName": "INSERT"}])

    assert (fast.indexes, fast.rest) == ([0, 1], [2, 3])
    assert fast.table.equals(_row_wise(items[:2]))
