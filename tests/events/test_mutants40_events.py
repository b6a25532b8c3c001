"""Guarantees of events/ that no test checked before mutants40 (docs/mutation-testing.md).

Each test here failed on the mutant named in its docstring, applied by hand.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from clock_support import nine_hours_east_of_utc

from eventlake.errors import InvalidEventError
from eventlake.events.canonical import DuplicateKeyError, loads_exact
from eventlake.events.model import ITEM_OVERHEAD_BYTES, parse_event
from eventlake.events.times import format_ts, parse_timestamp
from tests.events.test_events import CLOUDEVENT, EVENTBRIDGE  # the specs' example events

NOW = datetime(2021, 7, 21, 7, 0, tzinfo=UTC)

DELETE_EVENT: dict[str, Any] = {
    "event_id": "17244207336",
    "event_type": "DeleteEvent",
    "timestamp": "2021-07-21T06:00:00Z",
    "source": "github/bullet-dev-team/python-pyramid-public",
    "subject": "refs/cicd-e2e-g1szrn",
    "event_payload": {"ref": "cicd-e2e-g1szrn", "ref_type": "branch", "pusher_type": "user"},
}
"""A GH Archive DeleteEvent (2021-07-21) in the seed shape."""

PULL_REQUEST_CLOUDEVENT: dict[str, Any] = {
    k: v for k, v in CLOUDEVENT.items() if k not in ("data", "comexampleextension1")}
"""The CloudEvents spec's example, its data to be added as `data_base64`."""


def rejection(raw: Any) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as info:
        parse_event(raw, now=NOW)
    return info.value


def with_data_base64(data: bytes | str) -> dict[str, Any]:
    text = base64.b64encode(data).decode() if isinstance(data, bytes) else data
    return PULL_REQUEST_CLOUDEVENT | {"data_base64": text}


# --- canonical.py: loads_exact -----------------------------------------------------------

def test_a_key_repeated_after_other_keys_is_the_key_the_refusal_names() -> None:
    """Mutant `_object`: `if key not in seen` named the first key of the object instead."""
    # given a payload whose second key is repeated
    text = '{"ref": "cicd-e2e-g1szrn", "ref_type": "branch", "ref_type": "tag"}'
    # when it is parsed
    with pytest.raises(DuplicateKeyError) as info:
        loads_exact(text)
    # then the refusal names the repeated key, not the first one
    assert info.value.key == "ref_type"
    error = rejection(DELETE_EVENT | {"event_payload": text})
    assert error.rule == "payload.duplicate_key"
    assert "`ref_type`" in str(error) and "`ref`" not in str(error)
    assert "`event_payload`" in str(error)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_json_text_are_not_json(constant: str) -> None:
    """Mutant `loads_exact` without `parse_constant`: JSON text holding NaN parsed to a float
    (`eventlake sql --param x:=NaN` then reached DuckDB as a NaN instead of a usage error)."""
    # given JSON text holding one of Python's non-standard constants
    text = f'{{"ratio": {constant}}}'
    # when it is parsed exactly, then it is refused as not JSON
    with pytest.raises(ValueError, match="is not valid JSON"):
        loads_exact(text)


# --- canonical.py: the layout of numbers (the content_hash depends on it) -------------------

def test_a_fraction_with_21_integer_digits_keeps_the_plain_layout() -> None:
    """Mutant `canonical_number`: `0 < k < 21` wrote it as `1.000...0005e+20`, a different
    payload and content_hash for the same number than every release before."""
    # given a payload holding a decimal of 21 integer digits and a fraction (as JSON text)
    raw = DELETE_EVENT | {"event_payload": '{"size": 123456789012345678901.5}'}
    # when it is parsed
    event = parse_event(raw, now=NOW)
    # then the number is laid out as ECMAScript does for up to 21 integer digits: plainly
    assert event.payload == '{"size":123456789012345678901.5}'


# --- model.py: CloudEvents' data_base64 ----------------------------------------------------

def test_a_cloudevent_whose_data_base64_repeats_a_key_is_refused_naming_it() -> None:
    """Mutants `_from_cloudevent`: `_duplicate_key` called without the label or the error
    crashed with a TypeError/AttributeError instead of refusing the event."""
    # given a CloudEvent whose base64 data names the key `number` twice
    raw = with_data_base64(b'{"action": "opened", "number": 123, "number": 124}')
    # when it is parsed
    error = rejection(raw)
    # then it is refused by the duplicate-key rule, naming the field, the key and the event
    assert error.rule == "payload.duplicate_key"
    assert "`data_base64`" in str(error) and "`number`" in str(error)
    assert error.event_id == "A234-1234-1234"


def test_data_base64_with_characters_outside_base64_is_refused_not_read_without_them() -> None:
    """Mutants `_from_cloudevent`: `b64decode` without `validate=True` dropped the stray
    characters and stored data the producer's text does not say."""
    # given base64 of a JSON object with a character outside the base64 alphabet inside
    good = base64.b64encode(b'{"action": "opened", "number": 123}').decode()
    raw = with_data_base64(good[:8] + "*" + good[8:])
    # when it is parsed, then it is refused
    error = rejection(raw)
    assert error.rule == "payload.not_object"
    assert error.event_id == "A234-1234-1234"
    # (the same data without the stray character is accepted)
    assert parse_event(with_data_base64(good), now=NOW).payload == \
        '{"action":"opened","number":123}'


def test_a_refused_cloudevent_with_a_non_ascii_id_is_named_by_it() -> None:
    """Mutant `_valid_unicode`: `isascii() and ...` took every non-ASCII id for unusable, so a
    refusal raised before the fields are read (here the specversion) named no event."""
    # given a CloudEvent of an unsupported specversion whose id is not ASCII
    raw = PULL_REQUEST_CLOUDEVENT | {"id": "größe-A234-1234", "specversion": "0.3",
                                     "data": {"action": "opened"}}
    # when it is parsed, then the refusal names the event by its id
    error = rejection(raw)
    assert error.rule == "cloudevents.specversion"
    assert error.event_id == "größe-A234-1234"
    assert "`größe-A234-1234`" in str(error)


# --- model.py: the size of the stored item ---------------------------------------------------

def blob_event(blob_chars: int) -> dict[str, Any]:
    return DELETE_EVENT | {"event_payload": {"blob": "x" * blob_chars}}


def test_the_largest_accepted_event_counts_every_attribute_and_the_id_twice() -> None:
    """Mutants `estimated_item_bytes`: an attribute name misspelt (4 bytes more) refused this
    event; the id subtracted instead of added accepted one 2 x 11 bytes larger."""
    # given the DeleteEvent's attributes: their names and UTF-8 values, the id twice (the
    # index key repeats it) and ITEM_OVERHEAD_BYTES for what the store adds
    fixed = (ITEM_OVERHEAD_BYTES + len("17244207336")
             + len("event_id") + len("17244207336")
             + len("event_type") + len("DeleteEvent")
             + len("source") + len("github/bullet-dev-team/python-pyramid-public")
             + len("subject") + len("refs/cicd-e2e-g1szrn")
             + len("event_payload") + len('{"blob":""}'))
    largest = 400 * 1024 - fixed
    # when its payload makes the item exactly DynamoDB's 400 KB, it is accepted
    assert len(parse_event(blob_event(largest), now=NOW).payload) == largest + 11
    # and one byte more is refused
    assert rejection(blob_event(largest + 1)).rule == "item.too_large"


# --- canonical.py: keys and nesting of a Python caller's payload ------------------------------

def test_a_key_of_another_type_is_named_with_where_it_is() -> None:
    """Mutants `_encode`: the key named as None or as the string key beside it, the path as
    `None[0]`."""
    # given a payload whose order line mixes a string key and an integer key
    raw = DELETE_EVENT | {"event_payload": {"lines": [{"sku": "MUG-01", 2: "x"}]}}
    # when it is parsed, then it is refused naming the integer key and its place
    error = rejection(raw)
    assert error.rule == "payload.not_json"
    assert "key 2 at $.lines[0] is not a string" in str(error)


def test_a_payload_keyed_only_by_integers_is_refused_by_a_rule() -> None:
    """Mutants `_encode`: the rule of the per-key check lost (None, or the message for the
    rule), where keys sort without error because they are all integers."""
    # given a payload keyed by order numbers, as a Python caller may build it
    raw = DELETE_EVENT | {"event_payload": {8812: "placed", 8813: "cancelled"}}
    # when it is parsed, then it is refused by the rule, naming the first key
    error = rejection(raw)
    assert error.rule == "payload.not_json"
    assert "key 8812 at $ is not a string" in str(error)


def arrays(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_arrays_count_towards_the_nesting_limit_as_objects_do() -> None:
    """Mutants `_encode`: an array's items at `depth - 1` (any depth of arrays accepted) or
    `depth + 2` (arrays refused at half the limit)."""
    # given payloads holding arrays nested 64 and 65 levels below the payload's root
    accepted = DELETE_EVENT | {"event_payload": {"lines": arrays(64)}}
    refused = DELETE_EVENT | {"event_payload": {"lines": arrays(65)}}
    # then the first is stored and the second refused as too deep
    assert parse_event(accepted, now=NOW).payload.count("[") == 64
    assert rejection(refused).rule == "payload.too_deep"


# --- times.py ---------------------------------------------------------------------------------

@pytest.fixture
def host_nine_hours_east_of_utc() -> Iterator[None]:
    with nine_hours_east_of_utc():
        yield


@pytest.mark.usefixtures("host_nine_hours_east_of_utc")
def test_on_a_host_east_of_utc_times_stay_utc() -> None:
    """Mutants `as_utc`: a naive time read as the host's local time, or an aware one converted
    to the host's zone (`astimezone(None)`): 9 hours off on a host in UTC+9."""
    # given a host nine hours east of UTC and the CloudTrail record's time, +11:00
    parsed = parse_timestamp("2022-02-08 09:23:37+11:00")
    # then it is held and written in UTC; a naive time is taken as UTC, not local time
    assert parsed.utcoffset() == timedelta(0)
    assert format_ts(parsed) == "2022-02-07T22:23:37.000000Z"
    assert format_ts(datetime(2022, 2, 7, 22, 23, 37)) == "2022-02-07T22:23:37.000000Z"


class _UnknownZone(tzinfo):
    """A zone that does not know its offset (tzinfo's contract allows None)."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None


def test_a_datetime_whose_zone_has_no_offset_is_naive() -> None:
    """Mutant `parse_timestamp`: `tzinfo is None and ...` accepted it, and took it for local
    time."""
    # given a Python caller's datetime with a zone that gives no UTC offset
    moment = datetime(2022, 2, 7, 22, 23, 37, tzinfo=_UnknownZone())
    # when it is the event's timestamp, then the event is refused as naive
    assert rejection(DELETE_EVENT | {"timestamp": moment}).rule == "timestamp.naive"


def test_an_aware_datetime_past_the_range_in_utc_is_refused_not_a_crash() -> None:
    """Mutant `parse_timestamp`: the text for the message given as None, a TypeError."""
    # given a Python caller's last moment of year 9999, one hour west of UTC
    moment = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=1)))
    # when it is the event's timestamp, then the event is refused by a rule
    error = rejection(DELETE_EVENT | {"timestamp": moment})
    assert error.rule == "timestamp.unparseable"
    assert "out of range in UTC" in str(error)


def test_a_lowercase_t_without_an_offset_is_refused_as_naive() -> None:
    """Mutant `parse_timestamp`: `[TT ]` in the naive pattern called it unparseable."""
    error = rejection(DELETE_EVENT | {"timestamp": "2021-07-21t06:00:00"})
    assert error.rule == "timestamp.naive"


# --- model.py: parse_event's checks ------------------------------------------------------------

def test_an_event_parsed_without_a_clock_is_judged_by_the_time_in_utc() -> None:
    """Mutant `parse_event`: `datetime.now(None)`, a naive now, crashed comparing it with the
    event's time (every caller in eventlake passes `now`; a Python caller may not)."""
    # given the DeleteEvent of 2021 and the same event without a timestamp
    # when they are parsed without a `now`
    dated = parse_event(DELETE_EVENT)
    undated = parse_event({k: v for k, v in DELETE_EVENT.items() if k != "timestamp"})
    # then both are accepted, the second stamped with an aware UTC time
    assert dated.timestamp == datetime(2021, 7, 21, 6, 0, tzinfo=UTC)
    assert undated.timestamp_defaulted and undated.timestamp.utcoffset() == timedelta(0)




def test_an_eventbridge_event_with_a_malformed_id_is_named_by_that_id() -> None:
    """Mutants `parse_event`: the EventBridge test of the id's field misspelt, so a refused id
    (refused before the fields are read) was looked up as `event_id`: the error named none."""
    # given the EC2 notification with a trailing space in its id
    raw = EVENTBRIDGE | {"id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718 "}
    # when it is parsed, then the refusal names the event by the id it carries
    error = rejection(raw)
    assert error.rule == "event_id.format"
    assert error.event_id == "6a7e8feb-b491-4cf7-a9f1-bf3703467718 "


@pytest.mark.parametrize("field", ["event_type", "source", "subject"])
def test_a_name_with_a_leading_space_is_refused(field: str) -> None:
    """Mutant `_name`: `not value.strip() and value != value.strip()` let a name through that
    is not blank but starts or ends with a space."""
    # given the DeleteEvent with a space before one of its names
    raw = DELETE_EVENT | {field: " " + DELETE_EVENT[field]}
    # when it is parsed, then it is refused by that name's format rule
    assert rejection(raw).rule == f"{field}.format"


def test_a_fraction_with_a_digit_of_another_script_is_refused_not_cut_off() -> None:
    # given a timestamp whose seventh fraction digit is an Arabic-Indic three (U+0663)
    value = "2026-01-31T12:00:00.123456\u0663Z"
    # when it is parsed, then it is not RFC 3339 (whose digits are ASCII), though Python's
    # fromisoformat would drop the seventh digit unread and accept it
    with pytest.raises(InvalidEventError) as raised:
        parse_timestamp(value)
    assert raised.value.rule == "timestamp.unparseable"


def test_an_offset_of_sixty_minutes_is_refused_not_read_as_an_hour() -> None:
    # given a timestamp whose offset has 60 minutes (RFC 3339's time-minute is 00-59)
    # when it is parsed, then it is refused, not stored an hour earlier
    with pytest.raises(InvalidEventError) as raised:
        parse_timestamp("2026-01-31T12:00:00+00:60")
    assert raised.value.rule == "timestamp.unparseable"
    assert parse_timestamp("2026-01-31T12:00:00+00:59") == datetime(2026, 1, 31, 11, 1,
                                                                    tzinfo=UTC)
