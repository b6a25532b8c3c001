"""Column-wise fast path: a Lambda batch of eventlake INSERTs -> an Arrow table, no row objects.

The stream handler's common batch is thousands of INSERTs of items eventlake wrote itself
(every field a plain {"S": text}, times in `format_ts` layout). For those, one pass appends
each record's strings to nine column lists (no tuple per record, no transposing) and each
column becomes one `pa.array`; the checks a row-wise path makes per record (types, layouts,
lengths) run column-wise in Arrow. A batch with an INSERT off that layout is gathered again
record by record, and records that are not such INSERTs, or that fail a check, are left to
the row-wise path (`RowBuilder`), which decides about them one by one, so nothing is lost by
being fast.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.events.schema import EVENT_SCHEMA, UTC_MICROS

_TS_REGEX = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
_MIN_MICROS = -62135596800 * 1_000_000  # 0001-01-01: Arrow would read year 0000
_EVENT_NAME = itemgetter("eventName")
_REQUIRED = itemgetter("event_id", "event_type", "timestamp", "ingested_at", "event_payload",
                       "content_hash")
_ALL = itemgetter("event_id", "event_type", "timestamp", "ingested_at", "event_payload",
                  "content_hash", "source", "subject")
_NO_TEXT: dict[str, Any] = {"S": None}
"""What an absent optional attribute reads as (`image.get("source", _NO_TEXT)["S"]`)."""
Columns = list[list[Any]]
"""event_id, event_type, timestamp, ingested_at, source, subject, event_payload,
content_hash (the lake's columns, times still text), then the records' sequence numbers."""


@dataclass(frozen=True, slots=True)
class FastColumns:
    """Rows taken by the fast path: `table` row i came from record `indexes[i]`, whose
    sequence number is `seqs[i]`. `rest` lists the records left for the row-wise path."""

    table: pa.Table
    indexes: list[int]
    seqs: list[str]
    rest: list[int]
    sequences: pa.Array
    """`seqs` as Arrow text (built once here, for the archiver's column-wise range checks)."""


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
    gathered = _gather(raws)
    if gathered is None:  # an INSERT off the layout: sort the batch out record by record
        gathered = _gather_each(raws)
    indexes, columns = gathered
    checked = _table(columns)
    if checked is None:  # a value that is not text somewhere: keep only all-text rows
        flags = [all(v is None or type(v) is str for v in row) and type(row[8]) is str
                 for row in zip(*columns, strict=True)]
        columns = [[v for v, good in zip(c, flags, strict=True) if good] for c in columns]
        indexes = [i for i, good in zip(indexes, flags, strict=True) if good]
        checked = _table(columns)
        if checked is None:  # pragma: no cover - every value is text or None now
            return FastColumns(EVENT_SCHEMA.empty_table(), [], [], list(range(len(raws))),
                               pa.array([], pa.string()))
    table, ok, numbers = checked
    seqs = columns[8]
    if ok is not None:  # rows failing a column-wise check go the row-wise path
        indexes = [i for i, good in zip(indexes, ok, strict=True) if good]
        seqs = [s for s, good in zip(seqs, ok, strict=True) if good]
    if len(indexes) == len(raws):
        return FastColumns(table, list(indexes), seqs, [], numbers)
    chosen = set(indexes)
    return FastColumns(table, list(indexes), seqs,
                       [i for i in range(len(raws)) if i not in chosen], numbers)


def _gather(raws: list[Any]) -> tuple[Sequence[int], Columns] | None:
    """(record indexes, columns) of the batch's INSERTs, appending to column lists; None as
    soon as an INSERT (or a record's `eventName`) is off the layout: a key missing, a value
    not a map, an optional attribute null or not {"S": ...}. Other records (REMOVE, MODIFY)
    are skipped, for the row-wise path."""
    try:
        names = list(map(_EVENT_NAME, raws))
    except (KeyError, TypeError, AttributeError):
        return None
    indexes: Sequence[int]
    if names.count("INSERT") == len(raws):
        indexes, inserts = range(len(raws)), raws
    else:  # REMOVEs of TTL deletes ride along in steady state: skip them before the loop
        indexes = [i for i, name in enumerate(names) if name == "INSERT"]
        inserts = [raws[i] for i in indexes]
    columns: Columns = [[] for _ in range(9)]
    ids, types, times, ingested, sources, subjects, payloads, digests, seqs = columns
    try:
        # The floor of the handler: a plain loop, no index kept, one C call for the
        # attributes (`_ALL`, `_REQUIRED`): measurably faster than a subscript or a `get`
        # each, with source and subject present (eventlake's CloudEvents) or absent (the seed
        # shape).
        for raw in inserts:
            change = raw["dynamodb"]
            image = change["NewImage"]
            if "source" in image and "subject" in image:
                event_id, event_type, ts, ingested_at, payload, digest, source, subject = \
                    _ALL(image)
            else:
                event_id, event_type, ts, ingested_at, payload, digest = _REQUIRED(image)
                source = image.get("source", _NO_TEXT)
                subject = image.get("subject", _NO_TEXT)
            ids.append(event_id["S"])
            types.append(event_type["S"])
            times.append(ts["S"])
            ingested.append(ingested_at["S"])
            sources.append(source["S"])
            subjects.append(subject["S"])
            payloads.append(payload["S"])
            digests.append(digest["S"])
            seqs.append(change["SequenceNumber"])
    except (KeyError, TypeError, AttributeError):
        return None
    return indexes, columns


def _gather_each(raws: list[Any]) -> tuple[list[int], Columns]:
    """(record indexes, columns) of the INSERTs in the layout, record by record: a record
    off it is left out (for the row-wise path) and the rest are still gathered."""
    rows: list[tuple[Any, ...]] = []
    indexes: list[int] = []
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
    return indexes, [list(c) for c in zip(*rows, strict=True)] or [[] for _ in range(9)]


class _Checked(NamedTuple):
    table: pa.Table
    """The rows passing every check."""
    ok: list[bool] | None
    """Per gathered row, whether it passed; None when all did."""
    seqs: pa.Array
    """The sequence numbers of the rows in `table`, as Arrow text."""


def _table(columns: Columns) -> _Checked | None:
    """The rows passing every check, as a table; None when some value is not text."""
    if not columns[0]:
        return _Checked(EVENT_SCHEMA.empty_table(), None, pa.array([], pa.string()))
    try:  # sequence numbers stay Python text (file names, retry points): all must be text
        "".join(columns[8])  # (`pa.array` alone would take bytes and None)
        (event_id, event_type, timestamp, ingested_at, source, subject, payload,
         digest, seqs) = (pa.array(column, pa.string()) for column in columns)
    except (TypeError, pa.ArrowTypeError, pa.ArrowInvalid):
        return None
    # What marks an item eventlake wrote itself, whose strings may be stored as they are: both
    # times in `format_ts`'s exact layout (another layout, once normalised, could be another
    # instant or text), a content hash 64 long, a non-empty id and type (required by the
    # event model) and a payload. Anything else goes the row-wise path, which normalises or
    # quarantines it. The usual batch passes a check over whole columns (`_all_ours`); only
    # a batch that fails it pays for a verdict per row.
    flags: list[bool] | None = None
    arrays = [event_id, event_type, timestamp, ingested_at, source, subject, payload, digest]
    if not _all_ours(event_id, event_type, timestamp, ingested_at, payload, digest):
        ok = pc.and_(pc.match_substring_regex(timestamp, _TS_REGEX),
                     pc.match_substring_regex(ingested_at, _TS_REGEX))
        for check in (pc.equal(pc.binary_length(digest), 64),
                      pc.greater(pc.binary_length(event_id), 0),
                      pc.greater(pc.binary_length(event_type), 0),
                      pc.is_valid(payload)):
            ok = pc.and_(ok, check)
        ok = pc.fill_null(ok, False)
        if pc.all(ok).as_py() is False:  # drop offenders first: one bad row cannot fail the rest
            flags = ok.to_pylist()
            arrays = [array.filter(ok) for array in arrays]
            seqs = seqs.filter(ok)
    try:
        times = [arrays[2].cast(UTC_MICROS), arrays[3].cast(UTC_MICROS)]
    except (pa.ArrowInvalid, ValueError):  # an impossible date (Feb 30) somewhere
        return _valid_dates_only(columns, flags)
    if any(len(t) and pc.min(t.cast(pa.int64())).as_py() < _MIN_MICROS for t in times):
        return _valid_dates_only(columns, flags)  # year 0000: Arrow reads it, Python does not
    arrays[2:4] = times
    return _Checked(pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA), flags, seqs)


def _all_ours(event_id: pa.Array, event_type: pa.Array, timestamp: pa.Array,
              ingested_at: pa.Array, payload: pa.Array, digest: pa.Array) -> bool:
    """Whether every row passes `_table`'s checks, decided over whole columns: no nulls, ids and
    types non-empty, every hash 64 long, both times in `_TS_REGEX`'s layout (`_in_layout`)."""
    if any(a.null_count for a in (event_id, event_type, timestamp, ingested_at, payload,
                                  digest)):
        return False
    if pc.min(pc.binary_length(event_id)).as_py() == 0 \
            or pc.min(pc.binary_length(event_type)).as_py() == 0:
        return False
    digest_lengths = pc.min_max(pc.binary_length(digest))
    if (digest_lengths["min"].as_py(), digest_lengths["max"].as_py()) != (64, 64):
        return False
    return _in_layout(timestamp) and _in_layout(ingested_at)


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LAYOUT = b"0000-00-00T00:00:00.000000Z"
"""`_TS_REGEX` with every digit written as 0."""


def _in_layout(times: pa.Array) -> bool:
    """Whether every value (no nulls) matches `_TS_REGEX`, in one pass over the bytes instead of
    a regex per value: when every value is 27 bytes long they lie back to back in the data
    buffer, and with each ASCII digit mapped to 0 that buffer must be `_LAYOUT` repeated."""
    lengths = pc.min_max(pc.binary_length(times))
    if (lengths["min"].as_py(), lengths["max"].as_py()) != (len(_LAYOUT), len(_LAYOUT)):
        return False
    _, offsets, data = times.buffers()
    start: int = memoryview(offsets).cast("i")[times.offset]  # int32 offsets, native order
    text: bytes = data.slice(start, len(_LAYOUT) * len(times)).to_pybytes()
    return text.translate(_DIGITS_AS_ZERO) == _LAYOUT * len(times)


def _valid_dates_only(columns: Columns, flags: list[bool] | None) -> _Checked | None:
    """The rows whose two times are real dates, checked row by row (the slow, rare path), and
    which rows those are."""
    from datetime import datetime

    def good(ts: str, ingested: str) -> bool:
        try:
            return all(datetime.fromisoformat(t[:26]).year >= 1 for t in (ts, ingested))
        except (ValueError, TypeError):
            return False

    flags = [(flags is None or flags[i]) and good(ts, ingested)
             for i, (ts, ingested) in enumerate(zip(columns[2], columns[3], strict=True))]
    kept = [[v for v, keep in zip(c, flags, strict=True) if keep] for c in columns]
    checked = _table(kept)
    return None if checked is None else checked._replace(ok=flags)
