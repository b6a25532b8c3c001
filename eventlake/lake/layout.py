"""Where things live in a lake, and which partition a row belongs to.

    <root>/events/dt=YYYY-MM-DD/<name>.parquet   the events (`dt`: UTC date of `timestamp`)
    <root>/_quarantine/...                       what could not be archived, with its reason
    <root>/_eventlake/...                        lake state: marker, watermark, leases, records

This module owns the partition rule (`split_by_dt`, `dts_of`), the `dt=` directory names
(`dt_of_dir`, `check_dt`, `dt_filter`) and what a file name may be (`check_name`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING

from eventlake.errors import EventLakeError
from eventlake.events.times import as_utc

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["EVENTS_DIR", "PARTITION", "QUARANTINE_DIR", "STATE_DIR", "LakeDataError",
           "check_dt", "check_name", "dt_filter", "dt_of_dir", "dts_of", "split_by_dt"]

PARTITION = "dt"
EVENTS_DIR = "events"
QUARANTINE_DIR = "_quarantine"
STATE_DIR = "_eventlake"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+@-]{0,199}")
_DT_DIR = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")


class LakeDataError(EventLakeError, ValueError):
    """A table, name or key handed to the lake does not fit it; the message says what to fix."""


# -- the partition of a row --------------------------------------------------------------------

def split_by_dt(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """(dt, rows sorted by SORT_KEYS) per UTC date of `timestamp`, in date order; slices of one
    sorted table. Columns beyond the lake's ride along (a caller's row numbers, say)."""
    import pyarrow.compute as pc

    from eventlake.events.schema import SORT_KEYS

    if not table.num_rows:
        return []
    keyed = table.append_column("__dt", _days(table)).sort_by(
        [("__dt", "ascending"), *SORT_KEYS])
    counts = pc.value_counts(keyed["__dt"])
    parts, offset = [], 0
    for day, count in sorted(zip(counts.field("values").to_pylist(),
                                 counts.field("counts").to_pylist(), strict=True)):
        parts.append((day.isoformat(), keyed.slice(offset, count).drop_columns(["__dt"])))
        offset += count
    return parts


def dts_of(table: pa.Table) -> list[str]:
    """The partitions (UTC dates of `timestamp`) that rows of `table` fall in, unordered."""
    import pyarrow.compute as pc

    return [day.isoformat() for day in pc.unique(_days(table)).to_pylist()]


def _days(table: pa.Table) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(table["timestamp"], pa.date32())  # exact: a UTC timestamp's date


# -- names ---------------------------------------------------------------------------------------

def check_name(name: str, suffix: str) -> str:
    """`name` with `suffix` (added when missing); LakeDataError unless 1-200 of `[A-Za-z0-9._=+@-]`
    starting with a letter or digit (no path, no hidden file)."""
    stem = name.removesuffix(suffix)
    if not _NAME.fullmatch(stem):
        raise LakeDataError(f"file name `{name}` is not valid: 1-200 letters, digits and "
                            "`._=+@-`, starting with a letter or digit")
    return stem + suffix


def check_dt(dt: str) -> str:
    """`dt` when it is a partition (a real date, YYYY-MM-DD); LakeDataError otherwise."""
    if not isinstance(dt, str) or not _DT_DIR.fullmatch(f"dt={dt}") or _parse_day(dt) is None:
        raise LakeDataError(f"partition `{dt}` is not a date in the form YYYY-MM-DD")
    return dt


def dt_of_dir(base_name: str) -> str | None:
    """The date of a partition directory's name (`dt=2024-03-10` -> "2024-03-10"); None for
    any other name."""
    match = _DT_DIR.fullmatch(base_name)
    return match.group(1) if match and _parse_day(match.group(1)) else None


def dt_filter(start: date | None, end: date | None, dts: Iterable[str] | None
              ) -> Callable[[str], bool]:
    """Which partitions a listing keeps: `start <= dt <= end` (a datetime counts by its UTC
    date), and dt among `dts` when given."""
    low, high = _day(start), _day(end)
    allowed = None if dts is None else {check_dt(d) for d in dts}
    return lambda dt: ((low is None or dt >= low) and (high is None or dt <= high)
                       and (allowed is None or dt in allowed))


def _parse_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _day(value: date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # a datetime is a date too: take its UTC date
        value = as_utc(value).date()
    return value.isoformat()
