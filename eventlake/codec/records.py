"""Stream events -> `StreamRecord`s: Lambda DynamoDB Streams events, Kinesis-wrapped change
records, GetRecords responses, or their JSON text.

    {"Records": [...]}  -> parse_stream_records -> [StreamRecord | RecordError, ...]

A malformed record becomes a `RecordError` in its place, so one bad record does not cost the
batch. Images stay in AttributeValue form here; `rows` turns them into lake rows. Also owns
what a record says about itself: its Lambda item identifier and whether DynamoDB's TTL made it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from eventlake.codec.attributes import CodecError
from eventlake.codec.times import approximate_time
from eventlake.events.canonical import kind_of as _kind

__all__ = [
    "EventName",
    "RecordError",
    "StreamRecord",
    "parse_stream_event",
    "parse_stream_records",
]

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
_EVENT_NAMES: frozenset[str] = frozenset({"INSERT", "MODIFY", "REMOVE"})


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
