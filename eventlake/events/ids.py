"""Event ids: derived from the content for events sent without one (UUIDv8 layout)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from eventlake.events.canonical import canonical_event, digest
from eventlake.events.times import format_ts

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
    text = canonical_event(None, event_type,
                           format_ts(timestamp) if timestamp is not None else None,
                           payload_json, source, subject)
    bits = int(digest(text)[:32], 16)  # the digest's first 16 bytes
    if timestamp is None:
        high = bits >> 80
    else:
        high = max(0, (timestamp - _EPOCH) // timedelta(milliseconds=1))
    value = (high << 80 | 0x8 << 76 | (bits >> 64 & 0xFFF) << 64 | 0b10 << 62
             | bits & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
