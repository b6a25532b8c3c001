"""Times of events: RFC 3339 in, the one UTC rule, fixed-width text out.

`as_utc` is the one place a datetime becomes UTC: every module that normalises a time calls it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from eventlake.errors import InvalidEventError
from eventlake.events.canonical import kind_of

# RFC 3339 date-time; a space may stand for the `T` (as in CloudTrail's LookupEvents output).
# ASCII digits only (RFC 3339's DIGIT): `\d` alone also takes other scripts' digits, and
# `fromisoformat` drops a fraction's digits past the sixth without looking at them. An
# offset's minutes are 00-59 (`fromisoformat` reads `+00:60` as an hour).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:[0-5]\d)$", re.ASCII)


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken to be UTC already.

    Naive means UTC because every naive time eventlake meets was written in UTC: Arrow
    timestamps without a zone, boto3's parsed times, Parquet statistics, `datetime.utcnow()`.
    Reading one as the host's local time (what `datetime.astimezone` does) would move stored
    data by the host's UTC offset: a lake written on a laptop in Berlin would disagree with the
    same lake written by Lambda. Producers' event timestamps never get here naive:
    `parse_timestamp` refuses them (an offset is part of the event's contract).
    """
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
        naive = re.match(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$", value.strip(),
                         re.ASCII)
        if naive:
            raise InvalidEventError(
                "timestamp.naive",
                f"timestamp `{value}` has no UTC offset; add `Z` or `+HH:MM`")
        raise InvalidEventError(
            "timestamp.unparseable",
            f"timestamp `{value[:80]}` is not RFC 3339 (e.g. `2026-01-31T12:00:00Z`)")
    # fromisoformat (Python 3.11+) takes a lowercase `t` and truncates a fraction of more than
    # six digits (nanoseconds) to microseconds; only a lowercase `z` it refuses.
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise InvalidEventError("timestamp.unparseable",
                                f"timestamp `{value[:80]}` is not a valid date and time") from None
    return _to_utc(parsed, value)


def _to_utc(value: datetime, text: str) -> datetime:
    try:
        return as_utc(value)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past datetime.max in UTC
        raise InvalidEventError("timestamp.unparseable",
                                f"timestamp `{text[:80]}` is out of range in UTC") from None


def format_ts(ts: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ`: fixed width, so strings sort as times do (naive is UTC)."""
    utc = as_utc(ts)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S.%f}Z"


def human_duration(seconds: float) -> str:
    """`42 s`, `17 min`, `5.5 h`, `3.2 days`."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
