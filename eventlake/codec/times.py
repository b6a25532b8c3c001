"""Stream times -> aware UTC datetimes: `approximate_time` reads a record's
ApproximateCreationDateTime (epoch seconds or milliseconds, in any numeric form, or RFC 3339)
and epoch times stored as N in items of other producers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from eventlake.codec.attributes import EXACT_CONTEXT, NUMBER_PATTERN, CodecError
from eventlake.errors import InvalidEventError
from eventlake.events.canonical import kind_of as _kind
from eventlake.events.times import as_utc, parse_timestamp

__all__ = ["EPOCH", "MILLIS_THRESHOLD", "approximate_time"]

MILLIS_THRESHOLD = 10**11
"""Epoch values above this are milliseconds (1e11 s is the year 5138)."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""1970-01-01T00:00:00Z, where epoch times count from."""


def approximate_time(value: Any) -> datetime | None:
    """A stream record's ApproximateCreationDateTime (or an epoch time) as an aware UTC datetime.

    Epoch seconds as int, float (`1.44130524E9`, `1.635734407123456789E9`), Decimal or numeric
    string; values above 1e11 are milliseconds (`1731924555370`); a datetime from boto3 (naive
    means UTC); an RFC 3339 string. None stays None. Truncated to microseconds.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, bool):
        raise CodecError("record.creation_time", f"time `{value}` is a boolean, not a time")
    if isinstance(value, int):
        try:
            if -MILLIS_THRESHOLD <= value <= MILLIS_THRESHOLD:
                return EPOCH + timedelta(seconds=value)
            return EPOCH + timedelta(milliseconds=value)
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
        match = NUMBER_PATTERN.fullmatch(text)
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
        seconds = seconds.scaleb(-3, EXACT_CONTEXT)
    try:
        micros = int(seconds.scaleb(6, EXACT_CONTEXT).to_integral_value(ROUND_FLOOR, EXACT_CONTEXT))
        return EPOCH + timedelta(microseconds=micros)
    except (OverflowError, InvalidOperation):
        raise _time_range(shown) from None


def _time_range(value: Any) -> CodecError:
    return CodecError("record.creation_time", f"time `{str(value)[:80]}` is out of range")
