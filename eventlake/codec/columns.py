"""Column-wise fast path: a Lambda batch of eventlake INSERTs -> an Arrow table, no row objects.

The stream handler's common batch is thousands of INSERTs of items eventlake wrote itself
(every field a plain {"S": text}, times in `format_ts` layout). For those, each column is one
list comprehension over the images and one `pa.array`; the checks a row-wise path makes per
record (types, layouts, lengths) run column-wise in Arrow. Records that are not such INSERTs,
or that fail a check, are left to the row-wise path (`RowBuilder`), which decides about them
one by one, so nothing is lost by being fast.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.events.schema import EVENT_SCHEMA, UTC_MICROS

_REQUIRED = ("event_id", "event_type", "timestamp", "ingested_at", "event_payload",
             "content_hash")
_TS_REGEX = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
_MIN_MICROS = -62135596800 * 1_000_000  # 0001-01-01: Arrow would read year 0000


@dataclass(frozen=True, slots=True)
class FastColumns:
    """Rows taken by the fast path: `table` row i came from record `indexes[i]`, whose
    sequence number is `seqs[i]`. `rest` lists the records left for the row-wise path."""

    table: pa.Table
    indexes: list[int]
    seqs: list[str]
    rest: list[int]


def lambda_insert_columns(raws: list[Any]) -> FastColumns:
    """Split a Lambda batch into fast-path rows (as one table) and records to parse fully."""
    # The loop makes one tuple per record and no cycles; a collection started in the middle
    # would walk the whole batch (a few hundred thousand dicts) for nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _lambda_insert_columns(raws)
    finally:
        if enabled:
            gc.enable()


def _lambda_insert_columns(raws: list[Any]) -> FastColumns:
    rows: list[tuple[Any, ...]] = []
    indexes: list[int] = []
    seqs: list[Any] = []
    for i, raw in enumerate(raws):
        try:
            if raw["eventName"] != "INSERT":
                continue
            change = raw["dynamodb"]
            image = change["NewImage"]
            seq = change["SequenceNumber"]
            source, subject = image.get("source"), image.get("subject")
            rows.append((image["event_id"]["S"], image["event_type"]["S"],
                         image["timestamp"]["S"], image["ingested_at"]["S"],
                         None if source is None else source["S"],
                         None if subject is None else subject["S"],
                         image["event_payload"]["S"], image["content_hash"]["S"], seq))
            indexes.append(i)
        except (KeyError, TypeError, AttributeError):
            continue  # not this layout: the row-wise path decides
    table, ok = _table(rows)
    if table is None:  # a value that is not text somewhere: keep only all-text rows
        ok = [all(v is None or type(v) is str for v in row) for row in rows]
        rows = [row for row, good in zip(rows, ok, strict=True) if good]
        indexes = [i for i, good in zip(indexes, ok, strict=True) if good]
        table, ok = _table(rows)
        if table is None:  # pragma: no cover - every value is text or None now
            return FastColumns(EVENT_SCHEMA.empty_table(), [], [], list(range(len(raws))))
    seqs = [row[8] for row in rows]
    if ok is not None:  # rows failing a column-wise check go the row-wise path
        indexes = [i for i, good in zip(indexes, ok, strict=True) if good]
        seqs = [s for s, good in zip(seqs, ok, strict=True) if good]
    if len(indexes) == len(raws):
        return FastColumns(table, indexes, seqs, [])
    chosen = set(indexes)
    return FastColumns(table, indexes, seqs, [i for i in range(len(raws)) if i not in chosen])


def _table(rows: list[tuple[Any, ...]]) -> tuple[pa.Table | None, list[bool] | None]:
    """(table of the rows passing every check, per-row ok or None when all pass); (None, None)
    when some value is not text."""
    if not rows:
        return EVENT_SCHEMA.empty_table(), None
    columns_ = list(zip(*rows, strict=True))
    if not all(type(s) is str for s in columns_[8]):  # sequence numbers stay Python text
        return None, None
    try:
        (event_id, event_type, timestamp, ingested_at, source, subject, payload,
         digest) = (pa.array(column, pa.string()) for column in columns_[:8])
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return None, None
    ok = pc.and_(pc.match_substring_regex(timestamp, _TS_REGEX),
                 pc.match_substring_regex(ingested_at, _TS_REGEX))
    for check in (pc.equal(pc.binary_length(digest), 64),
                  pc.greater(pc.binary_length(event_id), 0),
                  pc.greater(pc.binary_length(event_type), 0)):
        ok = pc.and_(ok, check)
    ok = pc.fill_null(ok, False)
    flags: list[bool] | None = None
    columns = [event_id, event_type, timestamp, ingested_at, source, subject, payload, digest]
    if pc.all(ok).as_py() is False:  # drop offenders first, so one bad row cannot fail the rest
        flags = ok.to_pylist()
        columns = [column.filter(ok) for column in columns]
    try:
        times = [columns[2].cast(UTC_MICROS), columns[3].cast(UTC_MICROS)]
    except (pa.ArrowInvalid, ValueError):  # an impossible date (Feb 30) somewhere
        flags = _valid_dates(rows, flags)
        return _table([r for r, good in zip(rows, flags, strict=True) if good])[0], flags
    if any(len(t) and pc.min(t.cast(pa.int64())).as_py() < _MIN_MICROS for t in times):
        flags = _valid_dates(rows, flags)
        return _table([r for r, good in zip(rows, flags, strict=True) if good])[0], flags
    columns[2:4] = times
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA), flags


def _valid_dates(rows: list[tuple[Any, ...]], flags: list[bool] | None) -> list[bool]:
    """Row by row: which rows' two times are real dates (the slow, rare path)."""
    from datetime import datetime

    def good(row: tuple[Any, ...]) -> bool:
        try:
            return all(datetime.fromisoformat(t[:26]).year >= 1 for t in (row[2], row[3]))
        except (ValueError, TypeError):
            return False

    return [(flags is None or flags[i]) and good(row) for i, row in enumerate(rows)]
