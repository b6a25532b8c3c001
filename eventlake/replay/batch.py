"""`Batch`: a run of selected events as the read produced them (Arrow columns), with the
views targets need built once and only when asked.

The read (read.py) selects, besides the event's columns, `_line`: the event's `seed` JSON line
built by DuckDB (select.SEED_LINE_SQL). A JSONL or stdout target in the `seed` shape writes those
bytes as they are, so no Python object is made per event; the other targets and shapes ask for
`events` (dicts) instead. `select.SEED_LINE_SQL` and `Batch.events` must agree byte for byte
(tests/replay/test_shapes.py checks both on the same rows).
"""

from __future__ import annotations

import functools
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cached_property
from typing import Any

import pyarrow as pa

from eventlake.errors import InvalidEventError
from eventlake.events.canonical import canonical_json, loads_exact
from eventlake.events.times import as_utc, format_ts
from eventlake.replay.select import IDENTITY, Position

Event = dict[str, Any]
LINE = "_line"


_FOLD_FROM = 2048
"""From this many values `xor_all` folds halves in Arrow rather than XOR them in Python."""


def xor_all(values: pa.Array) -> int:
    """The XOR of unsigned 64-bit `values` (no nulls), 0 when empty: for many values, halves
    XORed together (a vectorised kernel call per halving instead of a Python int per value)."""
    import pyarrow.compute as pc

    if len(values) < _FOLD_FROM:  # a kernel call costs more than a few hundred Python XORs
        return functools.reduce(operator.xor, values.to_pylist(), 0)
    values = values.cast(pa.uint64())
    while len(values) > 1:
        half = len(values) // 2
        folded = pc.bit_wise_xor(values.slice(0, half), values.slice(half, half))
        values = (pa.concat_arrays([folded, values.slice(2 * half)]) if len(values) % 2
                  else folded)
    return int(values[0].as_py()) if len(values) else 0


class Batch:
    """Selected events in (timestamp, event_id) order: a pyarrow Table with the columns of
    `select.COLUMNS`, `_line` and (from the read) `_ident`."""

    def __init__(self, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            raise ValueError("a Batch holds at least one event")
        self.rows = rows

    def __len__(self) -> int:
        return int(self.rows.num_rows)

    @cached_property
    def events(self) -> list[Event]:
        """The `seed` shape of each event: `event_payload` a JSON object again (parsed with
        `loads_exact`: big and precise numbers stay exact), `timestamp` ISO 8601 in UTC.
        InvalidEventError (rule `payload.not_json`) names an event whose stored payload is
        not JSON (a foreign producer's text: duplicate keys, NaN, truncated...)."""
        columns = {name: self.rows.column(name).to_pylist()
                   for name in ("event_id", "event_type", "timestamp", "event_payload",
                                "source", "subject")}
        try:
            return [{"event_id": event_id, "event_type": event_type,
                     "timestamp": format_ts(timestamp), "event_payload": loads_exact(payload),
                     "source": source, "subject": subject}
                    for event_id, event_type, timestamp, payload, source, subject in zip(
                        *columns.values(), strict=True)]
        except (ValueError, TypeError, RecursionError):
            for event_id, payload in zip(columns["event_id"], columns["event_payload"],
                                         strict=True):
                _parse_stored(event_id, payload)  # raises, naming the first bad event
            raise

    def seed_lines(self) -> bytes:
        """The events as `seed` JSON lines (canonical JSON, one per line), as DuckDB built them.
        DuckDB's to_json escapes a few control characters with upper-case hex (`\\u000B`),
        canonical JSON with lower case: those escapes, rare (validation refuses control
        characters in the named fields), are rewritten here. A batch where DuckDB built no
        line for some event (its stored payload is not safe to paste as it is:
        select.PASTABLE_PAYLOAD_SQL) has its lines built here from `events` instead: canonical
        JSON, or InvalidEventError naming the event whose payload is not JSON."""
        column = self.rows.column(LINE)
        if column.null_count:
            return "".join(_seed_line(event) for event in self.events).encode("utf-8")
        data = b"".join(_string_bytes(chunk) for chunk in column.chunks)
        if b"\\u00" in data:
            data = _UPPER_ESCAPE.sub(_lower_escape, data)
        return data

    def lines(self, shape: Callable[[Event], Any] | None = None) -> bytes:
        """JSON lines of each event in `shape` (None: `seed`, the fast path)."""
        if shape is None:
            return self.seed_lines()
        return "".join(canonical_json(value) + "\n" for value in self.shaped(shape)).encode()

    def shaped(self, shape: Callable[[Event], Any] | None) -> list[Any]:
        """Each event in `shape` (None: the `seed` events). A shape that needs stored fields
        the seed event leaves out names them in `stored_fields` (the `stream` shape:
        `ingested_at`): it gets them added to a copy of each event."""
        if shape is None:
            return self.events
        fields: tuple[str, ...] = getattr(shape, "stored_fields", ())
        if not fields:
            return [shape(event) for event in self.events]
        extra = [self.rows.column(name).to_pylist() for name in fields]
        return [shape({**event, **dict(zip(fields, values, strict=True))})
                for event, *values in zip(self.events, *extra, strict=True)]

    def _at(self, name: str, index: int) -> Any:
        return self.rows.column(name)[index].as_py()

    @property
    def last(self) -> Position:
        """Where this batch ends in the total order."""
        return Position(as_utc(self._at("timestamp", -1)), self._at("event_id", -1))

    @property
    def first_timestamp(self) -> datetime:
        return as_utc(self._at("timestamp", 0))

    @property
    def last_timestamp(self) -> datetime:
        return as_utc(self._at("timestamp", -1))

    @property
    def digest(self) -> int | None:
        """The XOR of the events' identities (select.IDENTITY_SQL, read as `_ident`): what the
        batch adds to a checkpoint's digest; None when the rows do not carry them."""
        if IDENTITY not in self.rows.column_names:
            return None
        values = self.rows.column(IDENTITY).combine_chunks()
        if values.null_count:
            return None
        return xor_all(values)

    def types(self) -> Counter[str]:
        counts = self.rows.column("event_type").value_counts()
        return Counter({str(item["values"]): int(item["counts"]) for item in counts.to_pylist()})


def batches(tables: Iterator[pa.RecordBatch], size: int) -> Iterator[Batch]:
    """Re-cut a stream of record batches into Batches of `size` events (the last shorter)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for record in tables:
        offset = 0
        while offset < record.num_rows:
            take = min(size - held, record.num_rows - offset)
            pending.append(record.slice(offset, take))
            held += take
            offset += take
            if held == size:
                yield Batch(pa.Table.from_batches(pending))
                pending, held = [], 0
    if held:
        yield Batch(pa.Table.from_batches(pending))


_UPPER_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u00([0-9A-F][0-9A-F])")
"""A `\\u00XX` escape (not an escaped backslash followed by `u00XX` text: the backslashes
before it come in pairs), capturing its hex digits."""


def _lower_escape(match: re.Match[bytes]) -> bytes:
    return match.group(1) + b"\\u00" + match.group(2).lower()


def _parse_stored(event_id: Any, payload: Any) -> Any:
    """A stored payload parsed, or InvalidEventError naming the event."""
    try:
        return loads_exact(payload)
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidEventError(
            "payload.not_json",
            f"its stored `event_payload` is not JSON ({type(exc).__name__}: {exc}), so it "
            f"cannot be replayed; leave it out: --where \"event_id <> {_quoted(event_id)}\"",
            event_id=str(event_id)) from exc


def _quoted(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _seed_line(event: Event) -> str:
    """The event's `seed` JSON line, built in Python (canonical JSON), naming the event when
    its payload breaks canonical JSON's rules."""
    try:
        return canonical_json(event) + "\n"
    except InvalidEventError as exc:
        raise InvalidEventError(exc.rule, f"its stored `event_payload` cannot be replayed: "
                                f"{exc.detail}", event_id=str(event["event_id"])) from exc


def _string_bytes(chunk: pa.Array) -> bytes:
    """The concatenated values of a string array, read from its data buffer (no per-value
    objects). Handles slices (the offsets are absolute) and large or view string types."""
    if pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type):
        if len(chunk) == 0:
            return b""
        _, offsets_buffer, data = chunk.buffers()
        offsets = memoryview(offsets_buffer).cast("q" if pa.types.is_large_string(chunk.type)
                                                  else "i")
        start, end = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
        return b"" if data is None else data.slice(start, end - start).to_pybytes()
    return "".join(chunk.to_pylist()).encode()
