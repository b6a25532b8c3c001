"""The event model: what an event is, the shapes it may arrive in, and the rules it must meet.

Accepted shapes (one event; lists are handled by callers):
  seed        {"event_id", "event_type", "timestamp", "event_payload", "source", "subject"}
  CloudEvents {"specversion", "id", "type", "time", "data", "source", "subject", ...}
  EventBridge {"id", "detail-type", "time", "detail", "source", "resources", ...}

The payload is stored as canonical JSON (canonical.py), times in UTC (times.py). An event sent
without an event_id gets one derived from its content (ids.py), so a retried request finds the
same ids and its stored events come back as `duplicate`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from eventlake.errors import InvalidEventError
from eventlake.events.canonical import (
    DuplicateKeyError,
    canonical_json,
    content_hash,
    kind_of,
    loads_exact,
    too_deep,
)
from eventlake.events.ids import derive_event_id
from eventlake.events.times import format_ts, human_duration, parse_timestamp

MAX_EVENT_TYPE_CHARS = 128
MAX_EVENT_ID_CHARS = 256
MAX_EVENT_ID_BYTES = 1024 - 28
"""UTF-8 bytes of an event_id: DynamoDB caps a sort key at 1,024 bytes and the index sort key
is `<ingested_at, 27 chars>#<event_id>` (a partition key, 2,048 bytes, is then never reached)."""
MAX_SOURCE_CHARS = 1024
MAX_ITEM_BYTES = 400 * 1024
"""DynamoDB's item limit; the stored item (payload plus every attribute) must fit."""
ITEM_OVERHEAD_BYTES = 330
"""Room kept for the fixed-size attributes the store adds (timestamp, ingested_at, hash, TTL,
index keys without the id, and `s` and `k`, the same keys packed: hot/index.py): about 320
bytes with names. The index sort key repeats the
event_id, so `estimated_item_bytes` counts the id twice."""
FUTURE_TOLERANCE = timedelta(minutes=5)

_SEED_FIELDS = frozenset(
    {"event_id", "event_type", "timestamp", "event_payload", "source", "subject"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Unicode's control characters (category Cc): C0, DEL and C1."""


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


# --- parsing -----------------------------------------------------------------------------

def parse_event(raw: Any, *, position: int = 0, now: datetime | None = None) -> Event:
    """Validate and normalise one event in any accepted shape, or raise InvalidEventError."""
    now = now or datetime.now(UTC)
    if not isinstance(raw, Mapping):
        raise InvalidEventError("event.not_object",
                                f"expected a JSON object, got {kind_of(raw)}", position=position)
    raw_id = raw.get("id") if ("specversion" in raw or "detail-type" in raw) else raw.get(
        "event_id")
    event_id_hint = _id_hint(raw_id)
    try:
        if "specversion" in raw:
            fields_ = _from_cloudevent(raw)
        elif "detail-type" in raw:
            fields_ = _from_eventbridge(raw)
        else:
            unknown = sorted(set(raw) - _SEED_FIELDS, key=str)  # a Python caller's keys may
            # be of any type (JSON's are strings): listed, never compared
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


def _id_hint(raw_id: Any) -> str | None:
    """The event_id a producer sent, to name the event in an error; None when it is unusable."""
    if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
        return None
    try:
        text = str(raw_id)
    except ValueError:  # an int past Python's int/str digit limit
        return None
    return text if _valid_unicode(text) else None


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
            raise too_deep() from None
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
    # A refusal below carries no id: parse_event names the event by the id the producer sent.
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
    return event


def _event_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEventError("event_id.type", f"event_id must be a string, got {kind_of(value)}")
    try:
        text = str(value)
    except ValueError:  # an int past Python's int/str digit limit (a Python caller's)
        raise InvalidEventError(
            "event_id.format",
            f"event_id is an integer of more than {MAX_EVENT_ID_CHARS} digits; it must be "
            f"1-{MAX_EVENT_ID_CHARS} characters") from None
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
            raise too_deep() from None
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


def estimated_item_bytes(event: Event) -> int:
    """DynamoDB's size of the stored item: attribute names plus UTF-8 values, plus overhead."""
    size = ITEM_OVERHEAD_BYTES + len(event.event_id.encode("utf-8"))  # the copy in ingest_key
    for name, value in (("event_id", event.event_id), ("event_type", event.event_type),
                        ("event_payload", event.payload), ("source", event.source),
                        ("subject", event.subject)):
        if value is not None:
            size += len(name) + len(value.encode("utf-8"))
    return size


def _human(delta: timedelta) -> str:
    return human_duration(delta.total_seconds())
