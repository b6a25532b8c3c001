"""Query values as text, exactly and the same way in every output format.

- timestamps: ISO 8601 with microseconds (`2026-03-14T09:00:00.000000Z`; UTC as `Z`, other
  session time zones as their offset), so they sort as text and read back with
  `datetime.fromisoformat`; dates and times of day likewise;
- decimals with all their digits (`1.50`), in JSON as number literals, never via a float;
- intervals as ISO 8601 durations (`P3DT1H30M`); blobs as DuckDB shows them (`\\xFF`);
- JSON text as it is: a `VARCHAR` holding JSON is a string like any other, and a column DuckDB
  types `JSON` (`event_payload::JSON`) is embedded in JSON output verbatim;
- lists, structs and maps as JSON.

Results of plain types (`format.plain_type`: text, numbers, booleans, dates, timestamps) come
as DuckDB's Python rows and are rendered value by value (`text`, `json_value`), exactly as the
Arrow path renders them, with no pyarrow imported. Other results come as Arrow columns,
rendered whole where Arrow can do it exactly (strings, integers, booleans, dates, decimals,
microsecond timestamps), value by value otherwise: a million-row
CSV costs seconds, not minutes.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "+00:00", "Z", "GMT", "Etc/GMT"})


def text_column(array: Any) -> list[str | None]:
    """An Arrow array as text cells (None for NULL), for tables and CSV."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = _decoded(array)
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return list(array.to_pylist())
    if (pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_date32(kind)):
        return list(pc.cast(array, pa.string()).to_pylist())
    if pa.types.is_decimal(kind):  # Arrow writes a zero of scale 10 as `0E-10`: undo that
        return [v if v is None or "E" not in v else format(Decimal(v), "f")
                for v in pc.cast(array, pa.string()).to_pylist()]
    stamp = _timestamp_format(kind)
    if stamp is not None:
        return list(pc.strftime(array, format=stamp).to_pylist())
    return [None if v is None else text(v) for v in array.to_pylist(maps_as_pydicts="lossy")]


def json_column(array: Any, *, verbatim: bool = False) -> list[str]:
    """An Arrow array as JSON value texts; `verbatim` for JSON-typed columns (text as is)."""
    import pyarrow as pa

    array = _decoded(array)
    kind = array.type
    if verbatim and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return ["null" if v is None else v for v in array.to_pylist()]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return ["null" if v is None else encode_basestring(v) for v in array.to_pylist()]
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_decimal(kind):
        return ["null" if v is None else v for v in text_column(array)]
    if pa.types.is_date32(kind) or _timestamp_format(kind) is not None:
        return ["null" if v is None else f'"{v}"' for v in text_column(array)]
    return [to_json(v) for v in array.to_pylist(maps_as_pydicts="lossy")]


def json_value(value: Any, *, verbatim: bool = False) -> str:
    """One value of a plain type (`format.plain_type`) as `json_column` writes it: JSON-typed
    text (`verbatim`) as it is, dates and timestamps as quoted ISO text, NaN as null."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value if verbatim else encode_basestring(value)
    if isinstance(value, datetime | date):
        return f'"{iso(value)}"'
    return to_json(value)


def _decoded(array: Any) -> Any:
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):  # DuckDB ENUMs
        array = array.dictionary_decode()
    return array


def _timestamp_format(kind: Any) -> str | None:
    """The strftime format that writes `kind` as `iso` would, if Arrow can (microseconds
    print as `%S`'s fraction; only UTC among time zones, whose offset is `Z`)."""
    import pyarrow as pa

    if not pa.types.is_timestamp(kind) or kind.unit != "us":
        return None
    if kind.tz is None:
        return "%Y-%m-%dT%H:%M:%S"
    return "%Y-%m-%dT%H:%M:%SZ" if kind.tz in _UTC_NAMES else None


def text(value: Any) -> str:
    """One value as text for tables and CSV (NULL is the caller's to show)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date | time):
        return iso(value)
    if isinstance(value, bytes):
        return blob(value)
    if _is_interval(value):
        return duration(value.months, value.days, value.nanoseconds)
    if isinstance(value, list | dict):
        return to_json(value)
    return str(value)


def iso(value: datetime | date | time) -> str:
    """ISO 8601; times of day and timestamps always with microseconds; UTC as `Z`."""
    if isinstance(value, datetime | time):
        stamp = value.isoformat(timespec="microseconds")
        return stamp[:-6] + "Z" if stamp.endswith("+00:00") else stamp
    return value.isoformat()


def duration(months: int, days: int, nanoseconds: int) -> str:
    """An interval as an ISO 8601 duration, `P1Y2M3DT4H5M6.5S` (`PT0S` when empty). DuckDB
    keeps months, days and time apart, each with its own sign, and so does the text
    (`P-1M2D`), as PostgreSQL's `iso_8601` style does."""
    month_sign = "-" if months < 0 else ""
    years, months = divmod(abs(months), 12)
    date_part = "".join(f"{s}{n}{u}" for s, n, u in ((month_sign, years, "Y"),
                                                     (month_sign, months, "M"),
                                                     ("", days, "D")) if n)
    time_sign = "-" if nanoseconds < 0 else ""
    hours, rest = divmod(abs(nanoseconds), 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = format(Decimal(rest).scaleb(-9), "f").rstrip("0").rstrip(".")
    time_part = "".join(f"{time_sign}{n}{u}" for n, u in ((hours, "H"), (minutes, "M"),
                                                         (seconds, "S")) if n and n != "0")
    if not date_part and not time_part:
        return "PT0S"
    return f"P{date_part}" + (f"T{time_part}" if time_part else "")


def blob(value: bytes) -> str:
    """Bytes as DuckDB shows them: printable ASCII as is, the rest (and `\\`) as `\\xHH`."""
    return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}" for b in value)


def _is_interval(value: Any) -> bool:
    return all(hasattr(value, a) for a in ("months", "days", "nanoseconds"))


def to_json(value: Any) -> str:
    """`value` as JSON text: exact numbers; NaN and infinities (not JSON) as null."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif isinstance(value, str):
        out.append(encode_basestring(value))
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(repr(value) if math.isfinite(value) else "null")
    elif isinstance(value, Decimal):
        out.append(format(value, "f") if value.is_finite() else "null")
    elif _is_interval(value):  # before tuples: pyarrow's MonthDayNano is a named tuple
        out.append(json.dumps(text(value)))
    elif isinstance(value, dict):
        out.append("{")
        for n, (k, v) in enumerate(value.items()):
            out.append(", " if n else "")
            out.append(encode_basestring(k if isinstance(k, str) else text(k)))
            out.append(": ")
            _encode(v, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for n, v in enumerate(value):
            out.append(", " if n else "")
            _encode(v, out)
        out.append("]")
    else:
        out.append(encode_basestring(text(value)))
