"""Event ids: derived from the content for events sent without one, UUIDv7 for new ones."""

from __future__ import annotations

import os
import threading
import time
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
