"""The event model: what an event is, the shapes it may arrive in, and its canonical form.

Accepted shapes (one event; lists are handled by callers):
  seed        {"event_id", "event_type", "timestamp", "event_payload", "source", "subject"}
  CloudEvents {"specversion", "id", "type", "time", "data", "source", "subject", ...}
  EventBridge {"id", "detail-type", "time", "detail", "source", "resources", ...}

Canonical payload JSON is what is stored and hashed: keys sorted, no spaces, UTF-8, and numbers
written exactly (no float round-off: JSON input is parsed with `Decimal`; 1.50 and 1.5 are the
same number and are both written `1.5`, large or tiny magnitudes use `1e+30` as ECMAScript does,
except integers, which are always plain digits so that every JSON reader gets an integer back).

An event sent without an event_id gets one derived from its content (`derive_event_id`), so a
retried request finds the same ids and its stored events come back as `duplicate`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from eventlake.errors import InvalidEventError

MAX_EVENT_TYPE_CHARS = 128
MAX_EVENT_ID_CHARS = 256
MAX_EVENT_ID_BYTES = 1024 - 28
"""UTF-8 bytes of an event_id: DynamoDB caps a sort key at 1,024 bytes and the index sort key
is `<ingested_at, 27 chars>#<event_id>` (a partition key, 2,048 bytes, is then never reached)."""
MAX_SOURCE_CHARS = 1024
MAX_ITEM_BYTES = 400 * 1024
"""DynamoDB's item limit; the stored item (payload plus every attribute) must fit."""
ITEM_OVERHEAD_BYTES = 256
"""Room kept for the fixed-size attributes the store adds (timestamp, ingested_at, hash, TTL,
index keys without the id): about 250 bytes with names. The index sort key repeats the
event_id, so `estimated_item_bytes` counts the id twice."""
FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_PAYLOAD_DEPTH = 64

_SEED_FIELDS = frozenset(
    {"event_id", "event_type", "timestamp", "event_payload", "source", "subject"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# RFC 3339 date-time; a space may stand for the `T` (as in CloudTrail's LookupEvents output).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class Event:
    """One validated, normalised event. `payload` is canonical JSON text of an object."""

    event_id: str
    event_type: str
    timestamp: datetime
    payload: str
    source: str | None = None
    subject: str | None = None
    timestamp_defaulted: bool = field(default=False, compare=False)
    """True when the producer sent no timestamp and ingestion time stood in for it."""
    event_id_derived: bool = field(default=False, compare=False)
    """True when the producer sent no event_id and it was derived from the content."""

    @property
    def timestamp_iso(self) -> str:
        return format_ts(self.timestamp)

    @property
    def content_hash(self) -> str:
        return content_hash(self.event_id, self.event_type, self.timestamp_iso, self.payload,
                            self.source, self.subject)

    def to_dict(self) -> dict[str, Any]:
        """The seed shape, payload as a parsed object (numbers as Decimal/int)."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "timestamp": self.timestamp_iso,
            "event_payload": loads_exact(self.payload),
        }
        if self.source is not None:
            out["source"] = self.source
        if self.subject is not None:
            out["subject"] = self.subject
        return out


class DuplicateKeyError(ValueError):
    """JSON text names the same key twice in one object (which value was meant is unknown)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"duplicate key `{key}` in one JSON object")


# --- parsing -----------------------------------------------------------------------------

def parse_event(raw: Any, *, position: int = 0, now: datetime | None = None) -> Event:
    """Validate and normalise one event in any accepted shape, or raise InvalidEventError."""
    now = now or datetime.now(UTC)
    if not isinstance(raw, Mapping):
        raise InvalidEventError("event.not_object",
                                f"expected a JSON object, got {kind_of(raw)}", position=position)
    raw_id = raw.get("id") if ("specversion" in raw or "detail-type" in raw) else raw.get(
        "event_id")
    event_id_hint = (str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool)
                     and _valid_unicode(str(raw_id)) else None)
    try:
        if "specversion" in raw:
            fields_ = _from_cloudevent(raw)
        elif "detail-type" in raw:
            fields_ = _from_eventbridge(raw)
        else:
            unknown = sorted(set(raw) - _SEED_FIELDS)
            if unknown:
                raise InvalidEventError(
                    "event.unknown_field",
                    f"unknown field(s) {', '.join(f'`{u}`' for u in unknown)}; "
                    f"expected {', '.join(sorted(_SEED_FIELDS))} "
                    "(or a CloudEvents / EventBridge envelope)")
            fields_ = dict(raw)
        return _build(fields_, now)
    except InvalidEventError as exc:
        raise InvalidEventError(exc.rule, exc.detail, position=position,
                                event_id=exc.event_id or event_id_hint) from None


def _from_cloudevent(raw: Mapping[str, Any]) -> dict[str, Any]:
    if raw.get("specversion") != "1.0":
        raise InvalidEventError("cloudevents.specversion",
                                f"specversion `{raw.get('specversion')}` is not supported; "
                                "expected `1.0`")
    data: Any = raw.get("data")
    if "data_base64" in raw:
        try:
            data = loads_exact(base64.b64decode(raw["data_base64"], validate=True))
        except RecursionError:
            raise _too_deep() from None
        except DuplicateKeyError as exc:
            raise _duplicate_key("data_base64", exc) from None
        except (binascii.Error, ValueError, TypeError):
            raise InvalidEventError("payload.not_object",
                                    "`data_base64` must be base64 of a JSON object") from None
    return {"event_id": raw.get("id"), "event_type": raw.get("type"),
            "timestamp": raw.get("time"), "event_payload": data,
            "source": raw.get("source"), "subject": raw.get("subject")}


def _from_eventbridge(raw: Mapping[str, Any]) -> dict[str, Any]:
    resources = raw.get("resources")
    subject = resources[0] if isinstance(resources, list) and len(resources) == 1 else None
    return {"event_id": raw.get("id"), "event_type": raw.get("detail-type"),
            "timestamp": raw.get("time"), "event_payload": raw.get("detail"),
            "source": raw.get("source"), "subject": subject}


def _build(f: Mapping[str, Any], now: datetime) -> Event:
    # An id is derived only for a valid event, so errors name only ids the producer sent.
    given_id = _event_id(f.get("event_id"))
    try:
        event_type = _name("event_type", f.get("event_type"), MAX_EVENT_TYPE_CHARS, required=True)
        assert event_type is not None
        source = _name("source", f.get("source"), MAX_SOURCE_CHARS, required=False)
        subject = _name("subject", f.get("subject"), MAX_SOURCE_CHARS, required=False)
        raw_ts = f.get("timestamp")
        defaulted = raw_ts is None
        ts = now if defaulted else parse_timestamp(raw_ts)
        if ts > now + FUTURE_TOLERANCE:
            raise InvalidEventError(
                "timestamp.future",
                f"timestamp `{format_ts(ts)}` is {_human(ts - now)} in the future; "
                f"at most {int(FUTURE_TOLERANCE.total_seconds() // 60)} minutes ahead is accepted")
        payload = _payload(f.get("event_payload"))
        event_id = given_id or derive_event_id(event_type, None if defaulted else ts, payload,
                                               source, subject)
        event = Event(event_id, event_type, ts, payload, source, subject, defaulted,
                      event_id_derived=given_id is None)
        size = estimated_item_bytes(event)
        if size > MAX_ITEM_BYTES:
            raise InvalidEventError(
                "item.too_large",
                f"stored item would be {size:,} bytes; DynamoDB's limit is {MAX_ITEM_BYTES:,} "
                "bytes (400 KB): store large payloads elsewhere and send a reference")
    except InvalidEventError as exc:
        raise InvalidEventError(exc.rule, exc.detail, event_id=given_id) from None
    return event


def _event_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEventError("event_id.type", f"event_id must be a string, got {kind_of(value)}")
    text = str(value)
    _check_unicode("event_id", text)
    if not text or len(text) > MAX_EVENT_ID_CHARS or _CONTROL.search(text) or text != text.strip():
        raise InvalidEventError(
            "event_id.format",
            f"event_id {text[:80]!r} must be 1-{MAX_EVENT_ID_CHARS} characters without control "
            "characters or surrounding spaces")
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > MAX_EVENT_ID_BYTES:
        raise InvalidEventError(
            "event_id.too_long",
            f"event_id {text[:40]!r}... is {size:,} bytes in UTF-8; at most "
            f"{MAX_EVENT_ID_BYTES} are accepted, because DynamoDB limits a sort key to 1,024 "
            "bytes (the index key `<ingested_at>#<event_id>` adds 28) and a partition key to "
            "2,048: send a shorter id (or none: one is derived from the content)")
    return text


def _name(label: str, value: Any, limit: int, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise InvalidEventError(f"{label}.required", f"`{label}` is required")
        return None
    if not isinstance(value, str):
        raise InvalidEventError(f"{label}.type",
                                f"`{label}` must be a string, got {kind_of(value)}")
    _check_unicode(label, value)
    if not value.strip() or value != value.strip() or _CONTROL.search(value):
        raise InvalidEventError(f"{label}.format",
                                f"`{label}` {value[:80]!r} must be non-blank, without control "
                                "characters or surrounding spaces")
    if len(value) > limit:
        raise InvalidEventError(f"{label}.too_long",
                                f"`{label}` is {len(value)} characters; at most {limit}")
    return value


def _payload(value: Any) -> str:
    if value is None:
        return "{}"
    if isinstance(value, str | bytes):
        try:
            value = loads_exact(value)
        except RecursionError:  # nesting deep enough to exhaust the parser's stack
            raise _too_deep() from None
        except DuplicateKeyError as exc:
            raise _duplicate_key("event_payload", exc) from None
        except ValueError:
            raise InvalidEventError(
                "payload.not_object",
                "`event_payload` is a string that is not JSON; send a JSON object") from None
    if not isinstance(value, Mapping):
        raise InvalidEventError("payload.not_object",
                                f"`event_payload` must be a JSON object, got {kind_of(value)}")
    return canonical_json(value)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_unicode(text: str) -> bool:
    """False when `text` holds a lone UTF-16 surrogate (JSON's "\\ud800" decodes to one)."""
    return text.isascii() or not _SURROGATE.search(text)


def _check_unicode(label: str, text: str) -> None:
    match = None if text.isascii() else _SURROGATE.search(text)
    if match:
        shown = text[:80].encode("utf-8", "backslashreplace").decode("utf-8")
        raise InvalidEventError(
            f"{label}.invalid_unicode",
            f"`{label}` `{shown}` holds a lone UTF-16 surrogate (`\\u{ord(match.group()):04x}` at "
            f"character {match.start()}); strings must be valid Unicode: fix the producer's "
            "encoding (in JSON, a high surrogate escape needs its low half right after it)")


def _duplicate_key(label: str, exc: DuplicateKeyError) -> InvalidEventError:
    return InvalidEventError(
        "payload.duplicate_key",
        f"`{label}` names the key `{exc.key}` twice in one object, so which value is meant is "
        "unknown; send each key once")


def parse_timestamp(value: Any) -> datetime:
    """An RFC 3339 timestamp (or aware datetime) as UTC, truncated to microseconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidEventError("timestamp.naive",
                                    f"timestamp `{value.isoformat()}` has no UTC offset")
        return _to_utc(value, value.isoformat())
    if not isinstance(value, str):
        raise InvalidEventError("timestamp.type",
                                f"timestamp must be an RFC 3339 string, got {kind_of(value)}")
    match = _RFC3339.match(value.strip())
    if not match:
        naive = re.match(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$", value.strip())
        if naive:
            raise InvalidEventError(
                "timestamp.naive",
                f"timestamp `{value}` has no UTC offset; add `Z` or `+HH:MM`")
        raise InvalidEventError(
            "timestamp.unparseable",
            f"timestamp `{value[:80]}` is not RFC 3339 (e.g. `2026-01-31T12:00:00Z`)")
    text = value.strip()
    frac = match.group(1)
    if frac and len(frac) > 7:  # fromisoformat truncates; keep that explicit for nanoseconds
        text = text.replace(frac, frac[:7], 1)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise InvalidEventError("timestamp.unparseable",
                                f"timestamp `{value[:80]}` is not a valid date and time") from None
    return _to_utc(parsed, value)


def _to_utc(value: datetime, text: str) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past datetime.max in UTC
        raise InvalidEventError("timestamp.unparseable",
                                f"timestamp `{text[:80]}` is out of range in UTC") from None


def format_ts(ts: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ`: fixed width, so strings sort as times do."""
    utc = ts.astimezone(UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S.%f}Z"


# --- canonical JSON and hashing ----------------------------------------------------------

def loads_exact(text: str | bytes) -> Any:
    """Parse JSON keeping every number exact (Decimal for non-integers, `BigInt` for integers
    past Python's int/str digit limit); reject NaN/Infinity and duplicate keys
    (DuplicateKeyError, a ValueError)."""
    return json.loads(text, parse_float=Decimal, parse_int=_parse_int,
                      parse_constant=_reject_constant, object_pairs_hook=_object)


class BigInt(Decimal):
    """An integer too long for Python's int/str conversion limit (4,300 digits by default),
    kept exact as a Decimal and written back as plain digits."""

    __slots__ = ()


def _parse_int(text: str) -> int | BigInt:
    try:
        return int(text)
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        return BigInt(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_encode_str: Callable[[str], str] = json.encoder.py_encode_basestring
try:  # the C speedup, with ensure_ascii=False semantics
    from _json import encode_basestring as _c_encode_str
    _encode_str = _c_encode_str
except ImportError:  # pragma: no cover - CPython always has it
    pass


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators, raw UTF-8, exact numbers. Raises InvalidEventError."""
    parts: list[str] = []
    _encode(value, parts, "$", 0)
    text = "".join(parts)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEventError("payload.invalid_unicode",
                                "`event_payload` holds a lone UTF-16 surrogate; "
                                "strings must be valid Unicode") from None
    return text


def _encode(value: Any, out: list[str], path: str, depth: int) -> None:
    if depth > MAX_PAYLOAD_DEPTH:
        raise _too_deep()
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        # Integers are plain digits whatever their size: in exponent form (1e+21) every JSON
        # reader, DuckDB included, would take them for floats.
        out.append(_int_text(value))
    elif isinstance(value, BigInt):
        out.append(str(value))
    elif isinstance(value, float | Decimal):
        try:
            out.append(canonical_number(value))
        except ValueError:
            raise InvalidEventError("payload.not_json",
                                    f"number `{value}` at {path} is not finite") from None
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key in sorted(value):
            if not isinstance(key, str):
                raise InvalidEventError("payload.not_json",
                                        f"key {key!r} at {path} is not a string")
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(key))
            out.append(":")
            _encode(value[key], out, f"{path}.{key}", depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, f"{path}[{i}]", depth + 1)
        out.append("]")
    else:
        raise InvalidEventError("payload.not_json",
                                f"value at {path} is {kind_of(value)}, which is not JSON")


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # past the int/str digit limit: Decimal converts without one
        return str(Decimal(value))


def _too_deep() -> InvalidEventError:
    return InvalidEventError("payload.too_deep",
                             f"`event_payload` nests deeper than {MAX_PAYLOAD_DEPTH} levels")


def canonical_number(value: float | int | Decimal) -> str:
    """Exact shortest text of a number, laid out as ECMAScript's Number#toString does."""
    d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not d.is_finite():
        raise ValueError(f"{value} is not finite")
    sign, digits_t, exp = d.as_tuple()
    assert isinstance(exp, int)
    # Strip trailing zeros by hand: Decimal.normalize rounds to its context's precision.
    full = "".join(map(str, digits_t)).lstrip("0")
    digits = full.rstrip("0")
    if not digits:
        return "0"
    exp += len(full) - len(digits)
    n, k = len(digits), len(digits) + exp
    if exp >= 0 and k <= 21:
        body = digits + "0" * exp
    elif 0 < k <= 21:
        body = f"{digits[:k]}.{digits[k:]}"
    elif -6 < k <= 0:
        body = f"0.{'0' * -k}{digits}"
    else:
        mantissa = digits[0] + (f".{digits[1:]}" if n > 1 else "")
        e = k - 1
        body = f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
    return ("-" if sign else "") + body


def content_hash(event_id: str, event_type: str, timestamp_iso: str, payload_json: str,
                 source: str | None, subject: str | None) -> str:
    """SHA-256 of the event's canonical JSON (keys sorted; absent source/subject omitted)."""
    text = _canonical_event(event_id, event_type, timestamp_iso, payload_json, source, subject)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical_event(event_id: str | None, event_type: str, timestamp_iso: str | None,
                     payload_json: str, source: str | None, subject: str | None) -> str:
    """The event as canonical JSON; fields given as None are left out."""
    parts = [f'"event_id":{_encode_str(event_id)}'] if event_id is not None else []
    parts.append(f'"event_payload":{payload_json}')
    parts.append(f'"event_type":{_encode_str(event_type)}')
    if source is not None:
        parts.append(f'"source":{_encode_str(source)}')
    if subject is not None:
        parts.append(f'"subject":{_encode_str(subject)}')
    if timestamp_iso is not None:
        parts.append(f'"timestamp":{_encode_str(timestamp_iso)}')
    return "{" + ",".join(parts) + "}"


def estimated_item_bytes(event: Event) -> int:
    """DynamoDB's size of the stored item: attribute names plus UTF-8 values, plus overhead."""
    size = ITEM_OVERHEAD_BYTES + len(event.event_id.encode("utf-8"))  # the copy in ingest_key
    for name, value in (("event_id", event.event_id), ("event_type", event.event_type),
                        ("event_payload", event.payload), ("source", event.source),
                        ("subject", event.subject)):
        if value is not None:
            size += len(name) + len(value.encode("utf-8"))
    return size


# --- ids -----------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def derive_event_id(event_type: str, timestamp: datetime | None, payload_json: str,
                    source: str | None, subject: str | None) -> str:
    """The id of an event sent without one: the same content always gets the same id.

    A UUID in RFC 9562 layout, version 8 (custom). With a producer's timestamp, the first 48
    bits are that time in unix milliseconds (0 before 1970), so ids sort by event time as
    UUIDv7s do; the other 74 free bits come from the SHA-256 of the event's canonical JSON
    without event_id. Without one (ingestion time, which differs on each retry, stands in),
    all 122 free bits come from the hash of the content without the timestamp.

        |  48: event ms or hash  | ver 8 | 12: hash | var 10 | 62: hash |
    """
    text = _canonical_event(None, event_type,
                            format_ts(timestamp) if timestamp is not None else None,
                            payload_json, source, subject)
    digest = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:16], "big")
    if timestamp is None:
        high = digest >> 80
    else:
        high = max(0, (timestamp - _EPOCH) // timedelta(milliseconds=1))
    value = (high << 80 | 0x8 << 76 | (digest >> 64 & 0xFFF) << 64 | 0b10 << 62
             | digest & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_id_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_event_id(now: datetime | None = None) -> str:
    """A UUIDv7 (RFC 9562): time-ordered, and strictly increasing within this process.

    The 12-bit `rand_a` field is a counter within one millisecond (RFC 9562 method 1), so ids
    made in a burst still sort in creation order. Hand-written because Python 3.11's `uuid`
    has no uuid7 and it is fifteen lines.
    """
    global _last_ms, _counter
    ms = int((now.timestamp() if now else time.time()) * 1000)
    with _id_lock:
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        counter = _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --- helpers -------------------------------------------------------------------------------

def kind_of(value: Any) -> str:
    """What a JSON-ish value is, for error messages: "a string", "an object", "bytes"..."""
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
    if isinstance(value, Sequence):
        return "an array"
    return f"a {type(value).__name__}"


def _human(delta: timedelta) -> str:
    return human_duration(delta.total_seconds())


def human_duration(seconds: float) -> str:
    """`42 s`, `17 min`, `5.5 h`, `3.2 days`."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
