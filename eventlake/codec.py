"""DynamoDB wire formats -> Python and Arrow: AttributeValues, stream records, lake rows.

    AttributeValue  {"N": "1e100"}          -> decode_value  -> int | Decimal | str | bytes | ...
    stream event    {"Records": [...]}      -> parse_stream_records -> StreamRecord | RecordError
    item image      {"event_id": {"S": ..}} -> RowBuilder.add_image -> pa.Table (EVENT_SCHEMA)

Decoding is lossless and strict. Numbers keep every digit (int for integer literals, exact
Decimal otherwise) under DynamoDB's own rules (38 significant digits, magnitude 1e-130 ..
9.99..e125); boto3's TypeDeserializer is not used because its Decimal context raises on valid
values such as 1e100. Binary is strict base64 in Lambda's JSON and raw bytes from boto3. Sets
come out as sorted lists without duplicates (DynamoDB never stores duplicates; hand-written
fixtures have them), so the same item always decodes, and hashes, the same way.

`RowBuilder` has a fast path for items eventlake wrote itself (payload already canonical JSON,
content hash present, timestamps in the fixed `format_ts` layout): it picks the "S" strings out
and nothing else; timestamps are cast to Arrow column-wise in `to_table`. Items from other
producers take the slow path, which normalises every field the way the event model does.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Context, Decimal, InvalidOperation
from typing import Any, Literal, cast

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.errors import EventLakeError, InvalidEventError
from eventlake.events import (
    canonical_json,
    content_hash,
    format_ts,
    loads_exact,
    parse_timestamp,
)
from eventlake.schema import EVENT_SCHEMA, UTC_MICROS

__all__ = [
    "CodecError",
    "EventName",
    "RecordError",
    "RowBuilder",
    "StreamRecord",
    "approximate_time",
    "decode_item",
    "decode_value",
    "parse_stream_event",
    "parse_stream_records",
    "payload_json_from_map",
    "to_json_compatible",
]

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
_EVENT_NAMES: frozenset[str] = frozenset({"INSERT", "MODIFY", "REMOVE"})
MAX_NUMBER_DIGITS = 38
MIN_EXPONENT, MAX_EXPONENT = -130, 125
"""Adjusted exponents DynamoDB stores: 1e-130 <= |n| <= 9.99...9e125 (38 nines)."""
MILLIS_THRESHOLD = 10**11
"""Epoch values above this are milliseconds (1e11 s is the year 5138)."""


class CodecError(EventLakeError, ValueError):
    """Input that cannot be decoded: a malformed AttributeValue, stream event or item.

    `rule` is a short stable name (``attribute.number_digits``, ``record.not_an_event``...);
    `path` the attribute path inside an item, `index` the record's position in its batch,
    `event_id` the event's id when known, `rows` the RowBuilder rows at fault (``to_table``).
    """

    def __init__(self, rule: str, message: str, *, path: str | None = None,
                 index: int | None = None, event_id: str | None = None,
                 rows: Sequence[int] = ()) -> None:
        self.rule = rule
        self.detail = message
        self.path = path
        self.index = index
        self.event_id = event_id
        self.rows = tuple(rows)
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"record #{self.index}")
        if self.event_id is not None:
            where.append(f"event `{self.event_id}`")
        if self.path:
            where.append(f"attribute `{self.path}`")
        prefix = f"{', '.join(where)}: " if where else ""
        return f"{prefix}{self.detail} [rule {self.rule}]"

    def with_context(self, *, index: int | None = None, event_id: str | None = None,
                     path: str | None = None) -> CodecError:
        """The same error, naming more of where it happened."""
        return CodecError(self.rule, self.detail, path=path or self.path,
                          index=self.index if index is None else index,
                          event_id=self.event_id if event_id is None else event_id,
                          rows=self.rows)


class _Bad(Exception):
    """Internal: an AttributeValue problem; containers add path segments while unwinding."""

    def __init__(self, rule: str, detail: str) -> None:
        self.rule = rule
        self.detail = detail
        self.parts: list[str] = []

    def error(self, root: str | None) -> CodecError:
        path = "".join(reversed(self.parts))
        if root:
            path = root + path
        return CodecError(self.rule, self.detail, path=path.lstrip(".") or None)


# --- AttributeValue -> Python ------------------------------------------------------------

def decode_value(av: Mapping[str, Any]) -> Any:
    """One AttributeValue (Lambda JSON or boto3 low-level form) as a lossless Python value."""
    try:
        return _decode(av, False)
    except _Bad as bad:
        raise bad.error(None) from None


def decode_item(image: Mapping[str, Any]) -> dict[str, Any]:
    """An item (attribute name -> AttributeValue) as a plain dict."""
    if not isinstance(image, Mapping):
        raise CodecError("attribute.type_descriptor",
                         f"an item must be a map of attributes, got {_kind(image)}")
    out: dict[str, Any] = {}
    for name, av in image.items():
        try:
            out[name] = _decode(av, False)
        except _Bad as bad:
            raise bad.error(str(name)) from None
    return out


def to_json_compatible(value: Any) -> Any:
    """A decoded value that `events.canonical_json` accepts: bytes become standard padded
    base64 text, sets sorted lists, datetimes `format_ts` text (naive means UTC)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {k: to_json_compatible(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_compatible(v) for v in value]
    if isinstance(value, set | frozenset):
        try:
            members = sorted(value)
        except TypeError:
            members = list(value)
        return [to_json_compatible(v) for v in members]
    if isinstance(value, datetime):
        return format_ts(value if value.tzinfo else value.replace(tzinfo=UTC))
    return value


def payload_json_from_map(av_map: Mapping[str, Any]) -> str:
    """Canonical JSON (`events.canonical_json`) of a payload stored as an M.

    Takes the AttributeValue (`{"M": {...}}`, as in an item) or the map inside it; a map whose
    only attribute is named `M` and holds a map is read as the AttributeValue.
    """
    try:
        if isinstance(av_map, Mapping) and len(av_map) == 1 and "M" in av_map:
            value = _decode(av_map, True)
        else:
            value = _decode({"M": av_map}, True)
    except _Bad as bad:
        raise bad.error("event_payload") from None
    try:
        return canonical_json(value)
    except InvalidEventError as exc:
        raise CodecError("record.bad_payload", exc.detail, path="event_payload") from exc


def _decode(av: Any, text_binary: bool) -> Any:
    """`text_binary`: B values stay/become base64 text (for JSON) instead of bytes."""
    if type(av) is not dict and not isinstance(av, Mapping):
        raise _Bad("attribute.type_descriptor",
                   f"expected an AttributeValue like {{\"S\": ...}}, got {_kind(av)}")
    if len(av) != 1:
        raise _Bad("attribute.type_descriptor",
                   f"an AttributeValue has exactly one type key, got "
                   f"{sorted(map(str, av)) or 'none'}")
    ((tag, value),) = av.items()
    if tag == "S":
        if type(value) is not str:
            raise _Bad("attribute.value_type", f"S must hold a string, got {_kind(value)}")
        return value
    if tag == "N":
        return _number(value)
    if tag == "M":
        if not isinstance(value, Mapping):
            raise _Bad("attribute.value_type", f"M must hold a map, got {_kind(value)}")
        out: dict[str, Any] = {}
        for key, member in value.items():
            try:
                out[key] = _decode(member, text_binary)
            except _Bad as bad:
                bad.parts.append(f".{key}")
                raise
        return out
    if tag == "L":
        if not isinstance(value, list | tuple):
            raise _Bad("attribute.value_type", f"L must hold a list, got {_kind(value)}")
        items: list[Any] = []
        for i, member in enumerate(value):
            try:
                items.append(_decode(member, text_binary))
            except _Bad as bad:
                bad.parts.append(f"[{i}]")
                raise
        return items
    if tag == "BOOL":
        if type(value) is not bool:
            raise _Bad("attribute.value_type", f"BOOL must hold true or false, got {value!r}")
        return value
    if tag == "NULL":
        if value is not True:
            raise _Bad("attribute.value_type", f"NULL must hold true, got {value!r}")
        return None
    if tag == "B":
        raw = _binary(value)
        return base64.b64encode(raw).decode("ascii") if text_binary else raw
    if tag in ("SS", "NS", "BS"):
        return _set(tag, value, text_binary)
    raise _Bad("attribute.type_descriptor",
               f"unknown AttributeValue type `{tag}`; expected one of S, N, B, BOOL, NULL, M, L, "
               "SS, NS, BS")


def _set(tag: str, value: Any, text_binary: bool) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise _Bad("attribute.value_type", f"{tag} must hold a list, got {_kind(value)}")
    members: list[Any] = []
    for i, member in enumerate(value):
        try:
            if tag == "SS":
                if type(member) is not str:
                    raise _Bad("attribute.value_type",
                               f"SS members must be strings, got {_kind(member)}")
                members.append(member)
            elif tag == "NS":
                members.append(_number(member))
            else:
                members.append(_binary(member))
        except _Bad as bad:
            bad.parts.append(f"[{i}]")
            raise
    # Duplicates are dropped: DynamoDB refuses them on write, so a duplicate only comes from a
    # hand-written record, and 1 and 1.0 are the same member as DynamoDB sees numbers.
    unique = sorted(dict.fromkeys(members))
    if tag == "BS" and text_binary:
        return [base64.b64encode(m).decode("ascii") for m in unique]
    return unique


_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
_EXACT = Context(prec=200)


def _number(text: Any) -> int | Decimal:
    if type(text) is not str:
        raise _Bad("attribute.value_type",
                   f"N must hold the number as a string, got {_kind(text)} `{text!r}`")
    if len(text) <= MAX_NUMBER_DIGITS and text.isascii() and text.isdigit():
        return int(text)  # the common case: a plain non-negative integer
    match = _NUMBER.fullmatch(text)
    if match is None or not (match.group(2) or match.group(3)):
        raise _Bad("attribute.number_format", f"`{text[:80]}` is not a number")
    _, whole, frac, exp = match.groups()
    significant = (whole + (frac or "")).lstrip("0")
    if significant:
        digits = significant.rstrip("0")
        if len(digits) > MAX_NUMBER_DIGITS:
            raise _Bad("attribute.number_digits",
                       f"number `{text[:80]}` has {len(digits)} significant digits; DynamoDB "
                       f"keeps at most {MAX_NUMBER_DIGITS}")
        try:
            exponent = int(exp) if exp else 0
        except ValueError:  # more exponent digits than int() will read
            exponent = MAX_EXPONENT * 10 * (-1 if exp.lstrip("+").startswith("-") else 1)
        head = whole.lstrip("0")
        leading = len(frac or "") - len((frac or "").lstrip("0"))
        adjusted = exponent + len(head) - 1 if head else exponent - leading - 1
        if not MIN_EXPONENT <= adjusted <= MAX_EXPONENT:
            raise _Bad("attribute.number_range",
                       f"number `{text[:80]}` is outside DynamoDB's range: magnitude must be "
                       "between 1E-130 and 9.9999999999999999999999999999999999999E+125")
    if frac is None and exp is None:
        return int(text)
    try:
        return Decimal(text)
    except InvalidOperation:  # a zero with an exponent too large for Decimal: still zero
        return Decimal(0)


def _binary(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if type(value) is not str:
        raise _Bad("attribute.value_type",
                   f"B must hold base64 text (or bytes), got {_kind(value)}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = None
    # Strict: only the one canonical encoding of these bytes (padding, zero trailing bits).
    if raw is None or base64.b64encode(raw).decode("ascii") != value:
        raise _Bad("attribute.base64", f"`{value[:80]}` is not valid (padded, canonical) base64")
    return raw


# --- times -----------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def approximate_time(value: Any) -> datetime | None:
    """A stream record's ApproximateCreationDateTime (or an epoch time) as an aware UTC datetime.

    Epoch seconds as int, float (`1.44130524E9`, `1.635734407123456789E9`), Decimal or numeric
    string; values above 1e11 are milliseconds (`1731924555370`); a datetime from boto3 (naive
    means UTC); an RFC 3339 string. None stays None. Truncated to microseconds.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise CodecError("record.creation_time", f"time `{value}` is a boolean, not a time")
    if isinstance(value, int):
        try:
            if -MILLIS_THRESHOLD <= value <= MILLIS_THRESHOLD:
                return _EPOCH + timedelta(seconds=value)
            return _EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            raise _time_range(value) from None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CodecError("record.creation_time", f"time `{value}` is not finite")
        return _epoch(Decimal(repr(value)), value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CodecError("record.creation_time", f"time `{value}` is not finite")
        return _epoch(value, value)
    if isinstance(value, str):
        text = value.strip()
        match = _NUMBER.fullmatch(text)
        if match and (match.group(2) or match.group(3)):
            try:
                return _epoch(Decimal(text), value)
            except InvalidOperation:
                raise _time_range(value) from None
        try:
            return parse_timestamp(text)
        except InvalidEventError as exc:
            raise CodecError("record.creation_time",
                             f"time `{value[:80]}` is neither epoch seconds/milliseconds nor "
                             "RFC 3339") from exc
    raise CodecError("record.creation_time", f"time must be a number, got {_kind(value)}")


def _epoch(seconds: Decimal, shown: Any) -> datetime:
    if abs(seconds) > MILLIS_THRESHOLD:
        seconds = seconds.scaleb(-3, _EXACT)
    try:
        micros = int(seconds.scaleb(6, _EXACT).to_integral_value(ROUND_FLOOR, _EXACT))
        return _EPOCH + timedelta(microseconds=micros)
    except (OverflowError, InvalidOperation):
        raise _time_range(shown) from None


def _time_range(value: Any) -> CodecError:
    return CodecError("record.creation_time", f"time `{str(value)[:80]}` is out of range")


# --- stream records ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One DynamoDB change record, from Lambda, Kinesis Data Streams or GetRecords.

    Images stay in AttributeValue form (decode them with `decode_item` or `RowBuilder`).
    `sequence_number` is the record's position in the stream it was read from: DynamoDB's
    SequenceNumber, or the Kinesis sequence number for records delivered through Kinesis.
    """

    event_name: str
    """One of `EventName`: INSERT, MODIFY or REMOVE (checked when the record is parsed)."""
    event_id: str | None
    sequence_number: str | None
    approximate_creation: datetime | None
    keys: dict[str, Any]
    new_image: dict[str, Any] | None
    old_image: dict[str, Any] | None
    view_type: str | None
    user_identity: dict[str, Any] | None
    event_source_arn: str | None
    raw: Mapping[str, Any]

    @property
    def item_identifier(self) -> str | None:
        """What Lambda's `batchItemFailures` wants: the SequenceNumber for DynamoDB Streams,
        the Kinesis sequenceNumber for records delivered through Kinesis."""
        return _outer_sequence(self.raw) or self.sequence_number

    @property
    def is_ttl_removal(self) -> bool:
        """A REMOVE made by DynamoDB's TTL (Service identity `dynamodb.amazonaws.com`)."""
        return self.event_name == "REMOVE" and _is_ttl_identity(self.user_identity)


@dataclass(frozen=True, slots=True)
class RecordError:
    """A record of a batch that could not be parsed; the batch's other records still can."""

    index: int
    raw: Any
    reason: str
    rule: str

    @property
    def item_identifier(self) -> str | None:
        """The record's sequence number when its raw form shows one, else None."""
        if not isinstance(self.raw, Mapping):
            return None
        outer = _outer_sequence(self.raw)
        if outer:
            return outer
        ddb = self.raw.get("dynamodb")
        seq = ddb.get("SequenceNumber") if isinstance(ddb, Mapping) else None
        return seq if isinstance(seq, str) else None

    def to_error(self) -> CodecError:
        return CodecError(self.rule, self.reason, index=self.index)


def parse_stream_event(event: Any) -> list[StreamRecord]:
    """Every record of a stream event, or CodecError at the first record that is malformed."""
    out: list[StreamRecord] = []
    for record in parse_stream_records(event):
        if isinstance(record, RecordError):
            raise record.to_error()
        out.append(record)
    return out


def parse_stream_records(event: Any) -> list[StreamRecord | RecordError]:
    """Records of a stream event, a malformed one as a RecordError in its place.

    Accepts a Lambda DynamoDB Streams event (`{"Records": [...]}`, tumbling-window envelope
    included), Lambda Kinesis events carrying DynamoDB change records, a GetRecords response
    or its `Records` list (datetimes, bytes), one bare record, and the JSON text of any of
    these (a UTF-8 BOM is skipped). Raises CodecError when the event as a whole is unusable.
    """
    records = _records_of(event)
    times: dict[Any, datetime | None] = {}
    out: list[StreamRecord | RecordError] = []
    for index, raw in enumerate(records):
        try:
            out.append(_record(raw, times))
        except CodecError as exc:
            out.append(RecordError(index, raw, exc.detail, exc.rule))
    return out


def _records_of(event: Any) -> Sequence[Any]:
    if isinstance(event, str | bytes | bytearray | memoryview):
        event = _load_json(event)
    if isinstance(event, Mapping):
        if "Records" in event:
            records = event["Records"]
            if not isinstance(records, list | tuple):
                raise CodecError("stream.no_records",
                                 f"`Records` must be a list, got {_kind(records)}")
            return records
        if any(k in event for k in ("eventName", "dynamodb", "kinesis")):
            return [event]  # one bare record
        raise CodecError("stream.no_records",
                         "not a stream event: no `Records` list (keys: "
                         f"{', '.join(sorted(map(str, event))[:8]) or 'none'})")
    if isinstance(event, list | tuple):
        return event
    raise CodecError("stream.no_records",
                     f"a stream event is an object with `Records`, got {_kind(event)}")


def _load_json(text: str | bytes | bytearray | memoryview) -> Any:
    try:
        if not isinstance(text, str):
            text = bytes(text).decode("utf-8-sig")
        elif text.startswith("\ufeff"):
            text = text[1:]
        return json.loads(text)
    except UnicodeDecodeError as exc:
        raise CodecError("stream.not_json", f"stream event is not UTF-8 text ({exc})") from exc
    except RecursionError:
        raise CodecError("stream.not_json", "stream event JSON nests too deeply") from None
    except json.JSONDecodeError as exc:  # before ValueError: it is one
        # json reports an unclosed string where the string starts, anything else where it stops
        truncated = exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated")
        hint = "; the text ends early (truncated?)" if truncated else ""
        raise CodecError("stream.not_json",
                         f"stream event is not valid JSON: {exc.msg} (line {exc.lineno}, "
                         f"column {exc.colno}){hint}") from exc
    except ValueError as exc:  # e.g. an integer longer than int() reads (4300 digits)
        raise CodecError("stream.not_json", f"stream event is not usable JSON: {exc}") from exc


def _record(raw: Any, times: dict[Any, datetime | None]) -> StreamRecord:
    # Fast path: a plain DynamoDB Streams record as Lambda (JSON) or GetRecords delivers it.
    if type(raw) is dict and "kinesis" not in raw:
        try:
            name = raw["eventName"]
            ddb = raw["dynamodb"]
            keys = ddb["Keys"]
            seq = ddb["SequenceNumber"]
            created = ddb["ApproximateCreationDateTime"]
        except (KeyError, TypeError):
            return _record_slow(raw, times)
        new_image = ddb.get("NewImage")
        old_image = ddb.get("OldImage")
        identity = raw.get("userIdentity")
        view = ddb.get("StreamViewType")
        event_id = raw.get("eventID")
        arn = raw.get("eventSourceARN")
        if ((name == "INSERT" or name == "MODIFY" or name == "REMOVE")
                and type(keys) is dict and type(seq) is str
                and (new_image is None or type(new_image) is dict)
                and (old_image is None or type(old_image) is dict)
                and (identity is None or type(identity) is dict)
                and (view is None or type(view) is str)
                and (event_id is None or type(event_id) is str)
                and (arn is None or type(arn) is str)
                and (type(created) is int or type(created) is float)):
            when = times.get(created)
            if when is None:
                when = times[created] = approximate_time(created)
            return _new_record(name, event_id, seq, when, keys, new_image, old_image, view,
                               identity, arn, raw)
    return _record_slow(raw, times)


def _record_slow(raw: Any, times: dict[Any, datetime | None]) -> StreamRecord:
    if not isinstance(raw, Mapping):
        raise CodecError("record.not_object", f"a record must be an object, got {_kind(raw)}")
    inner: Mapping[str, Any] = raw
    outer_seq: str | None = None
    kinesis = raw.get("kinesis")
    if kinesis is not None:  # Lambda event from Kinesis Data Streams
        if not isinstance(kinesis, Mapping):
            raise CodecError("record.kinesis_data", "`kinesis` must be an object")
        inner = _kinesis_payload(kinesis.get("data"), "kinesis.data")
        outer_seq = _text(kinesis.get("sequenceNumber"))
    elif "Data" in raw and "dynamodb" not in raw:  # Kinesis GetRecords
        inner = _kinesis_payload(raw["Data"], "Data")
        outer_seq = _text(raw.get("SequenceNumber"))

    name = inner.get("eventName")
    if name is None:
        raise CodecError("record.no_event_name", "record has no `eventName`")
    if not isinstance(name, str) or name not in _EVENT_NAMES:
        raise CodecError("record.event_name",
                         f"eventName `{str(name)[:40]}` is not INSERT, MODIFY or REMOVE")
    ddb = inner.get("dynamodb")
    if not isinstance(ddb, Mapping):
        raise CodecError("record.no_dynamodb",
                         "record has no `dynamodb` object" if ddb is None
                         else f"`dynamodb` must be an object, got {_kind(ddb)}")
    keys = _map_or_none(ddb.get("Keys"), "dynamodb.Keys") or {}
    new_image = _map_or_none(ddb.get("NewImage"), "dynamodb.NewImage")
    old_image = _map_or_none(ddb.get("OldImage"), "dynamodb.OldImage")
    identity = _map_or_none(inner.get("userIdentity"), "userIdentity")

    created = ddb.get("ApproximateCreationDateTime")
    if type(created) is int or type(created) is float:
        when = times.get(created)
        if when is None:
            when = times[created] = approximate_time(created)
    else:
        when = approximate_time(created)

    event_id = inner.get("eventID")
    arn = inner.get("eventSourceARN") or raw.get("eventSourceARN")
    return StreamRecord(
        name, _text(event_id), _text(ddb.get("SequenceNumber")) or outer_seq, when, keys,
        new_image, old_image, _text(ddb.get("StreamViewType")), identity,
        arn if isinstance(arn, str) else None, raw)


class _RecordFields:
    """StreamRecord's slots without the frozen guard, to build records quickly.

    A frozen dataclass's __init__ sets each field through object.__setattr__, which is over
    half the cost of parsing a record; this twin sets them plainly and `_new_record` then
    retypes it (same slots, so CPython allows the `__class__` change). A test pins that the
    result equals `StreamRecord(...)`.
    """

    __slots__ = StreamRecord.__slots__

    def __init__(self, event_name: str, event_id: str | None, seq: str | None,
                 when: datetime | None, keys: dict[str, Any],
                 new_image: dict[str, Any] | None, old_image: dict[str, Any] | None,
                 view: str | None, identity: dict[str, Any] | None, arn: str | None,
                 raw: Mapping[str, Any]) -> None:
        self.event_name = event_name
        self.event_id = event_id
        self.sequence_number = seq
        self.approximate_creation = when
        self.keys = keys
        self.new_image = new_image
        self.old_image = old_image
        self.view_type = view
        self.user_identity = identity
        self.event_source_arn = arn
        self.raw = raw


def _new_record(event_name: str, event_id: str | None, seq: str | None, when: datetime | None,
                keys: dict[str, Any], new_image: dict[str, Any] | None,
                old_image: dict[str, Any] | None, view: str | None,
                identity: dict[str, Any] | None, arn: str | None,
                raw: Mapping[str, Any]) -> StreamRecord:
    record: Any = _RecordFields(event_name, event_id, seq, when, keys, new_image, old_image,
                                view, identity, arn, raw)
    record.__class__ = StreamRecord
    return cast(StreamRecord, record)


def _kinesis_payload(data: Any, label: str) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    try:
        if isinstance(data, str):
            data = base64.b64decode(data, validate=True)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"expected base64 text or bytes, got {_kind(data)}")
        value = json.loads(bytes(data).decode("utf-8-sig"))
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise CodecError("record.kinesis_data",
                         f"`{label}` is not base64 JSON of a DynamoDB change record ({exc})"
                         ) from None
    if not isinstance(value, Mapping):
        raise CodecError("record.kinesis_data",
                         f"`{label}` holds {_kind(value)}, not a DynamoDB change record")
    return value


def _map_or_none(value: Any, label: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is dict:
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise CodecError("record.bad_field", f"`{label}` must be an object, got {_kind(value)}")


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _outer_sequence(raw: Mapping[str, Any]) -> str | None:
    kinesis = raw.get("kinesis")
    if isinstance(kinesis, Mapping):
        return _text(kinesis.get("sequenceNumber"))
    if "Data" in raw and "dynamodb" not in raw:
        return _text(raw.get("SequenceNumber"))
    return None


def _is_ttl_identity(identity: Mapping[str, Any] | None) -> bool:
    if not identity:
        return False
    # Lambda writes type/principalId; the GetRecords API writes Type/PrincipalId.
    kind = identity.get("type", identity.get("Type"))
    principal = identity.get("principalId", identity.get("PrincipalId"))
    return bool(kind == "Service" and principal == "dynamodb.amazonaws.com")


# --- lake rows -----------------------------------------------------------------------------

Row = tuple[str, str, str, str, str | None, str | None, str, str]
"""event_id, event_type, timestamp, ingested_at, source, subject, event_payload, content_hash
(EVENT_SCHEMA's order; the two times as `format_ts` text until `to_table` casts them)."""
_TS_SHAPE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def fast_row(image: Any) -> Row | None:
    """The row of an item eventlake wrote itself, taking its strings as they are; None when
    the item is not in that layout (the slow path then decides)."""
    try:
        event_id = image["event_id"]["S"]
        event_type = image["event_type"]["S"]
        ts = image["timestamp"]["S"]
        ingested = image["ingested_at"]["S"]
        payload = image["event_payload"]["S"]
        digest = image["content_hash"]["S"]
        source = image.get("source")
        subject = image.get("subject")
    except (KeyError, TypeError, AttributeError):
        return None
    # Only a lone {"S": text} is taken as is; NULL, N or two keys go the slow path (0).
    if source is not None:
        source = source.get("S", 0) if type(source) is dict and len(source) == 1 else 0
    if subject is not None:
        subject = subject.get("S", 0) if type(subject) is dict and len(subject) == 1 else 0
    # Times in format_ts's layout (27 chars, T, Z); Arrow checks the digits in to_table.
    if (type(event_id) is type(event_type) is type(payload) is type(ts) is type(ingested)
            is type(digest) is str and len(ts) == len(ingested) == 27
            and ts[10] == ingested[10] == "T" and ts[26] == ingested[26] == "Z"
            and len(digest) == 64 and event_id and event_type
            and (source is None or type(source) is str)
            and (subject is None or type(subject) is str)):
        return (event_id, event_type, ts, ingested, source, subject, payload, digest)
    return None


def lambda_insert_row(raw: Any) -> tuple[Row, str] | None:
    """(row, SequenceNumber) of a Lambda-shaped INSERT of an eventlake item, straight from the
    raw record with no StreamRecord built; None for any other record (parse it fully)."""
    if type(raw) is not dict or raw.get("eventName") != "INSERT":
        return None
    change = raw.get("dynamodb")
    if type(change) is not dict:
        return None
    seq = change.get("SequenceNumber")
    if type(seq) is not str:
        return None
    row = fast_row(change.get("NewImage"))
    return None if row is None else (row, seq)


class RowBuilder:
    """Accumulates lake rows from item images and builds one Arrow table (EVENT_SCHEMA).

    `add_image` validates a row completely before keeping it, so a CodecError leaves the
    builder as it was. One check waits for `to_table`: fast-path timestamps are cast to Arrow
    column-wise there, and a value with the right layout but an impossible date (Feb 30) is
    found then: call `reject_invalid()` first to take such rows out, or `to_table` raises.
    """

    __slots__ = ("_rows", "_table")

    def __init__(self) -> None:
        self._rows: list[Row] = []
        self._table: pa.Table | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def add_image(self, image: Mapping[str, Any], *,
                  fallback_ingested_at: datetime | None = None) -> None:
        """Add one item image; CodecError (nothing added) when it is not an eventlake event.

        `fallback_ingested_at` stands in for a missing `ingested_at` (items of other
        producers); the stream handler passes the record's ApproximateCreationDateTime.
        """
        row = fast_row(image)
        self._rows.append(row if row is not None else _slow_row(image, fallback_ingested_at))

    def add_row(self, row: Row) -> None:
        """Add a row that `fast_row` or `lambda_insert_row` produced (already checked)."""
        self._rows.append(row)

    def add_images(self, images: Iterable[Mapping[str, Any]], *,
                   fallback_ingested_at: datetime | None = None
                   ) -> list[tuple[int, CodecError]]:
        """Add many images; returns (position, error) for those that are not events."""
        errors: list[tuple[int, CodecError]] = []
        for position, image in enumerate(images):
            try:
                self.add_image(image, fallback_ingested_at=fallback_ingested_at)
            except CodecError as exc:
                errors.append((position, exc))
        return errors

    def dt_strings(self) -> list[str]:
        """Each row's partition `dt` (UTC date of `timestamp`, "YYYY-MM-DD"), in row order."""
        return [row[2][:10] for row in self._rows]

    def event_ids(self) -> list[str]:
        return [row[0] for row in self._rows]

    def reject_invalid(self) -> list[tuple[int, CodecError]]:
        """Remove rows whose timestamps Arrow cannot read; returns (row, error) for each, with
        row numbers as they were before removal. Cheap when every row is fine."""
        try:
            self.to_table()
            return []
        except CodecError as exc:
            bad = set(exc.rows)
        rejected = [(i, _timestamp_problem(self._rows[i]) or CodecError(
            "record.bad_timestamp", "timestamp is not a valid date and time",
            event_id=self._rows[i][0])) for i in sorted(bad)]
        self._rows = [row for i, row in enumerate(self._rows) if i not in bad]
        self._table = None
        return rejected

    def to_table(self) -> pa.Table:
        """The rows as a table with exactly EVENT_SCHEMA (rows in the order added)."""
        if self._table is not None and self._table.num_rows == len(self._rows):
            return self._table  # rows are only ever appended, or removed by reject_invalid
        columns: list[Any] = list(zip(*self._rows, strict=True)) or [()] * len(EVENT_SCHEMA)
        arrays = [pa.array(col, type=pa.string()) for col in columns]
        try:
            arrays[2] = _utc_micros(arrays[2])
            arrays[3] = _utc_micros(arrays[3])
        except (pa.ArrowInvalid, ValueError):
            rows = [i for i, row in enumerate(self._rows) if _timestamp_problem(row)]
            if not rows:  # pragma: no cover - Arrow and Python disagree on a timestamp
                raise
            first = self._rows[rows[0]][0]
            raise CodecError("record.bad_timestamp",
                             f"{len(rows)} row(s) hold a timestamp that is not a valid date "
                             f"and time (first: event `{first}`, row {rows[0]}); "
                             "call RowBuilder.reject_invalid() to set them aside",
                             rows=rows) from None
        self._table = pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)
        return self._table


_MIN_MICROS = int((datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) / timedelta(microseconds=1))


def _utc_micros(strings: pa.Array) -> pa.Array:
    cast = strings.cast(UTC_MICROS)
    if len(cast) and pc.min(cast.cast(pa.int64())).as_py() < _MIN_MICROS:
        raise ValueError("year 0")  # Arrow reads year 0000; Python and the event model do not
    return cast


def _timestamp_problem(row: Row) -> CodecError | None:
    for label, text in (("timestamp", row[2]), ("ingested_at", row[3])):
        try:
            if not _TS_SHAPE.fullmatch(text):
                raise ValueError
            datetime.fromisoformat(text[:26])
        except ValueError:
            return CodecError("record.bad_timestamp",
                              f"`{label}` `{text[:80]}` is not a valid date and time",
                              event_id=row[0], path=label)
    return None


def _slow_row(image: Any, fallback_ingested_at: datetime | None) -> Row:
    """An item of another producer, normalised the way the event model would store it."""
    if not isinstance(image, Mapping):
        raise CodecError("record.not_an_event", f"an item image is a map, got {_kind(image)}")
    event_id = _id_text(image.get("event_id"))
    try:
        event_type = _plain_text(image.get("event_type"), "event_type", required=True)
        assert event_type is not None
        ts = _time_text(image.get("timestamp"), "timestamp")
        if ts is None:
            raise CodecError("record.bad_timestamp", "item has no `timestamp`")
        ingested = _time_text(image.get("ingested_at"), "ingested_at")
        if ingested is None:
            if fallback_ingested_at is None:
                raise CodecError("record.no_ingested_at",
                                 "item has no `ingested_at` and the caller gave no fallback "
                                 "(e.g. the stream record's ApproximateCreationDateTime)")
            ingested = format_ts(approximate_time(fallback_ingested_at) or fallback_ingested_at)
        source = _plain_text(image.get("source"), "source", required=False)
        subject = _plain_text(image.get("subject"), "subject", required=False)
        payload = _payload_text(image.get("event_payload"))
    except CodecError as exc:
        raise exc.with_context(event_id=event_id) from exc.__cause__
    # Always recomputed here: another producer's hash (if any) is not ours to trust.
    digest = content_hash(event_id, event_type, ts, payload, source, subject)
    return (event_id, event_type, ts, ingested, source, subject, payload, digest)


def _id_text(av: Any) -> str:
    if isinstance(av, Mapping) and len(av) == 1:
        if isinstance(av.get("S"), str) and av["S"]:
            return str(av["S"])
        if "N" in av:
            try:
                number = _number(av["N"])
            except _Bad as bad:
                raise bad.error("event_id") from None
            return str(number) if isinstance(number, int) else format(number, "f")
    raise CodecError("record.not_an_event",
                     "item has no `event_id` (a non-empty S or an N); not an eventlake event"
                     if av is None else "`event_id` is not a non-empty S or an N",
                     path="event_id")


def _plain_text(av: Any, label: str, *, required: bool) -> str | None:
    if av is None or (isinstance(av, Mapping) and av.get("NULL") is True and len(av) == 1):
        if required:
            raise CodecError("record.not_an_event",
                             f"item has no `{label}`; not an eventlake event", path=label)
        return None
    if isinstance(av, Mapping) and len(av) == 1 and isinstance(av.get("S"), str):
        if required and not av["S"]:
            raise CodecError("record.not_an_event", f"`{label}` is empty", path=label)
        return str(av["S"])
    rule = "record.not_an_event" if required else "record.bad_attribute"
    raise CodecError(rule, f"`{label}` must be a string (S), got {_av_kind(av)}", path=label)


def _time_text(av: Any, label: str) -> str | None:
    if av is None or (isinstance(av, Mapping) and av.get("NULL") is True and len(av) == 1):
        return None
    rule = "record.bad_timestamp" if label == "timestamp" else "record.bad_ingested_at"
    if isinstance(av, Mapping) and len(av) == 1:
        if isinstance(av.get("S"), str):
            try:
                return format_ts(parse_timestamp(av["S"]))
            except InvalidEventError as exc:
                raise CodecError(rule, exc.detail, path=label) from exc
        if "N" in av:
            try:
                number = _number(av["N"])
                when = approximate_time(number)
            except _Bad as bad:
                raise CodecError(rule, bad.detail, path=label) from None
            except CodecError as exc:
                raise CodecError(rule, exc.detail, path=label) from exc
            assert when is not None
            return format_ts(when)
    raise CodecError(rule, f"`{label}` must be RFC 3339 text (S) or epoch seconds/ms (N), got "
                     f"{_av_kind(av)}", path=label)


def _payload_text(av: Any) -> str:
    if av is None or (isinstance(av, Mapping) and av.get("NULL") is True and len(av) == 1):
        return "{}"  # as the event model stores an absent payload
    if isinstance(av, Mapping) and len(av) == 1:
        if "M" in av:
            return payload_json_from_map(av)
        if isinstance(av.get("S"), str):
            try:
                value = loads_exact(av["S"])
            except (ValueError, RecursionError) as exc:
                raise CodecError("record.bad_payload",
                                 "`event_payload` is a string that is not JSON",
                                 path="event_payload") from exc
            if not isinstance(value, Mapping):
                raise CodecError("record.bad_payload",
                                 f"`event_payload` holds {_kind(value)}, not a JSON object",
                                 path="event_payload")
            try:
                return canonical_json(value)
            except InvalidEventError as exc:
                raise CodecError("record.bad_payload", exc.detail,
                                 path="event_payload") from exc
    raise CodecError("record.bad_payload",
                     f"`event_payload` must be JSON text (S) or a map (M), got {_av_kind(av)}",
                     path="event_payload")


# --- helpers -------------------------------------------------------------------------------

def _av_kind(av: Any) -> str:
    if isinstance(av, Mapping) and len(av) == 1:
        return f"type {next(iter(av))}"
    return _kind(av)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"
