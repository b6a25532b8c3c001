"""The JSON lines of an events export, each payload the JSON text the lake holds, its numbers
exactly as stored.

DuckDB's JSON writer re-serialises a JSON value: it rounds numbers to doubles
(`1.2345678901234567890123` -> `1.2345678901234567`, where a payload written as a DynamoDB map
carries up to 38 digits) and respells them (`1E-130` -> `1e-130`). So DuckDB builds each line as
text (the other columns through `to_json`), pasting the stored payload where it is safe
(replay's PASTABLE_PAYLOAD_SQL: canonical JSON, what eventlake stores); the few other payloads
are checked here: strict JSON is pasted with its line breaks (whitespace between tokens) made
spaces, anything else (not JSON, or a NaN only DuckDB's lenient parser takes) is written as a
JSON string.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import duckdb

from eventlake.events.schema import EVENT_SCHEMA
from eventlake.replay.select import PASTABLE_PAYLOAD_SQL

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["write_json_lines"]

_PAYLOAD = "event_payload"
_BATCH_ROWS = 100_000


def write_json_lines(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any],
                     path: Path) -> int:
    """Write the rows of `query` (EVENT_SCHEMA's columns, the timestamps as text, unordered)
    to `path` as JSON lines in (timestamp, event_id) order; how many rows."""
    fields = [f"{_literal(json.dumps(name))} || ':' || "
              f"coalesce(to_json(\"{name}\"), 'null')" for name in EVENT_SCHEMA.names]
    at = EVENT_SCHEMA.names.index(_PAYLOAD)
    head = "'{' || " + " || ',' || ".join([*fields[:at], f"'\"{_PAYLOAD}\":'"])
    tail = " || ".join([*(f"',' || {f}" for f in fields[at + 1:]), "'}'"])
    pasted = f"CASE WHEN {PASTABLE_PAYLOAD_SQL} THEN true ELSE false END"
    sql = (f"SELECT CASE WHEN pasted THEN {head} || {_PAYLOAD} || {tail} || chr(10) END AS line,"
           f"\n  CASE WHEN NOT pasted THEN {head} END AS head, CASE WHEN NOT pasted THEN "
           f"{_PAYLOAD} END AS payload, CASE WHEN NOT pasted THEN {tail} END AS tail\n"
           f"FROM (SELECT *, {pasted} AS pasted FROM (\n{query}\n) AS selected) AS checked\n"
           "ORDER BY timestamp, event_id")
    rows = 0
    with path.open("wb") as out:
        reader = con.sql(sql, params=params).to_arrow_reader(_BATCH_ROWS)
        try:
            for batch in reader:
                _write_batch(out, batch)
                rows += batch.num_rows
        finally:
            reader.close()
    return rows


def _write_batch(out: BinaryIO, batch: pa.RecordBatch) -> None:
    """Write a batch's lines: the pasted ones as Arrow holds them (no Python string per row),
    the others built here."""
    import pyarrow as pa

    lines = batch.column(0)
    if not batch.num_rows:
        return
    if lines.null_count == 0:  # every payload pasted: the lines are one run of the data buffer
        if not pa.types.is_large_string(lines.type):  # string, or a view: offsets to read
            lines = lines.cast(pa.large_string())
        _, offsets, data = lines.buffers()
        bounds = pa.Array.from_buffers(pa.int64(), len(lines) + 1, [None, offsets],
                                       offset=lines.offset)
        out.write(data[bounds[0].as_py():bounds[-1].as_py()])
        return
    columns = (batch.column(n).to_pylist() for n in range(4))
    out.write("".join(line if line is not None else f"{h}{_payload_json(p)}{t}\n"
                      for line, h, p, t in zip(*columns, strict=True)).encode("utf-8"))


def _payload_json(text: str | None) -> str:
    """A payload DuckDB could not paste, as JSON: itself when it is strict JSON (line breaks,
    whitespace between tokens, made spaces), else a JSON string holding it."""
    if text is None:
        return "null"
    try:
        json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return json.dumps(text, ensure_ascii=False)
    return text.replace("\r", " ").replace("\n", " ")


def _refuse(constant: str) -> Any:
    raise ValueError(f"`{constant}` is not JSON")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
