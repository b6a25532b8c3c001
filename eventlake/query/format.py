"""Writing a query result as an aligned text table, CSV, one JSON array, JSON Lines or
Parquet, to stdout or to a file. How each value reads is `values`' job, how a table is laid out
`table`'s; a file is replaced only once it is complete.

A result whose columns are all of plain types (`plain_type`) starts as DuckDB's Python rows:
an answer that fits in the first batch (`_BATCH_ROWS`) is written without pyarrow, so
`eventlake sql` on a small answer never imports it (its start-up is part of every answer).
A longer answer continues from the same cursor as Arrow record batches, where a Python object
per value would cost more than the import. Any other result, and Parquet output, goes through
Arrow from the start; both paths write the same text (tests/query/test_plain_rows.py).
"""

from __future__ import annotations

import csv
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from functools import cached_property, partial
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from eventlake.query.table import aligned, cut, display_width, is_number
from eventlake.query.values import json_column, json_value, text, text_column

_PLAIN = re.compile(r"VARCHAR|BOOLEAN|U?(TINYINT|SMALLINT|INTEGER|BIGINT)|FLOAT|DOUBLE|"
                    r"DECIMAL\(\d+,\d+\)|DATE|TIMESTAMP|TIMESTAMP WITH TIME ZONE|JSON")
_NUMBER = re.compile(r"U?(TINYINT|SMALLINT|INTEGER|BIGINT)|FLOAT|DOUBLE|DECIMAL\(\d+,\d+\)")
_BATCH_ROWS = 2048
"""Rows of a plain result read as Python objects before the rest goes through Arrow."""
_ARROW_BATCH_ROWS = 65_536


def plain_type(duckdb_type: str) -> bool:
    """Whether DuckDB hands values of this type to Python as `str`, `bool`, `int`, `float`,
    `Decimal`, `date` or `datetime`, which `values.text` writes as the Arrow path does.
    (HUGEINT goes through Arrow as a decimal; intervals, blobs, lists, structs, maps, UUIDs
    and time-of-day values stay on the Arrow path.)"""
    return _PLAIN.fullmatch(duckdb_type) is not None


class TextSink(Protocol):
    """Where text output goes: stdout, a file, anything with `write`."""

    def write(self, text: str, /) -> object: ...


class Format(StrEnum):
    """Output formats of `eventlake sql`."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"
    PARQUET = "parquet"


@dataclass
class Result:
    """What a statement returned. The query runs when `reader` is first read, and only once:
    a DuckDB connection runs nothing else while a result is open, so read results in order."""

    relation: Any
    """A DuckDB relation (anything with `to_arrow_reader()`)."""
    json_columns: frozenset[int] = frozenset()
    """Positions of the columns DuckDB types `JSON`: their text is embedded in JSON output."""
    plain: bool = False
    """Table output prints the last column's text as it is (EXPLAIN's plan)."""
    run: Callable[[], Any] | None = None
    """Runs the statement, returning a DuckDB cursor to `fetchmany` from: given for a SELECT
    whose columns are all of plain types (`plain_type`), whose text output then reads Python
    rows instead of Arrow batches. It runs the query, as reading `reader` would."""

    @cached_property
    def reader(self) -> Any:
        """The `pyarrow.RecordBatchReader` over the rows."""
        return self.relation.to_arrow_reader()

    @property
    def names(self) -> list[str]:
        if self.run is not None:
            return list(self.relation.columns)
        return list(self.reader.schema.names)

    def numeric(self) -> list[bool]:
        """Per column, whether it holds numbers (the table right-aligns those)."""
        if self.run is not None:
            return [_NUMBER.fullmatch(str(t)) is not None for t in self.relation.types]
        return [is_number(field.type) for field in self.reader.schema]

    def batches(self) -> Iterator[list[tuple[Any, ...]] | Any]:
        """The rows a batch at a time: a list of Python tuples, or a `pyarrow.RecordBatch`.

        With `run`, the first batch is Python rows; when it is full, the rest of the same
        cursor is read as Arrow batches (no row is read twice or skipped)."""
        if self.run is None:
            yield from self.reader
            return
        cursor = self.run()
        rows = cursor.fetchmany(_BATCH_ROWS)
        if not _python_holds(rows, [str(t) for t in self.relation.types]):
            # a date or timestamp Python cannot hold (infinity, a year past 9999 or before 1):
            # DuckDB clamped it or gave its own text; the SELECT runs again, through Arrow
            yield from self.reader
            return
        if rows:
            yield rows
        if len(rows) < _BATCH_ROWS:
            return
        with warnings.catch_warnings():  # the copy it warns of is the one Arrow output needs
            warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
            rest = cursor.to_arrow_reader(_ARROW_BATCH_ROWS)
        yield from rest

    def text_batches(self) -> Iterator[list[tuple[str | None, ...]]]:
        """The rows as text cells (None for NULL), a batch at a time."""
        for batch in self.batches():
            if isinstance(batch, list):
                yield _rows_text(batch, len(batch))
            else:
                yield _arrow_text(batch, batch.num_rows)

    def text_rows(self) -> Iterator[tuple[str | None, ...]]:
        for batch in self.text_batches():
            yield from batch


class TableStyle(NamedTuple):
    """How table output is cut. (A named tuple: a frozen dataclass costs ~0.4 ms to create at
    import, on every `eventlake sql`.)"""

    max_rows: int = 100
    """Rows shown; the rest are counted in the footer (0 shows every row)."""
    max_width: int = 40
    """Characters per cell before it is cut with `…` (0 never cuts)."""


def write(result: Result, fmt: Format, out: str | None, style: TableStyle, *,
          stdout: TextSink | None = None) -> None:
    """Write `result` to the file `out` (replaced only once complete) or to stdout."""
    if fmt is Format.PARQUET:
        if out is None:
            raise ValueError("parquet output needs a file")
        _atomic(out, lambda tmp: _write_parquet(result, tmp), binary=True)
        return
    if out is None:
        write_text(result, fmt, stdout or sys.stdout, style)
        return
    _atomic(out, lambda stream: write_text(result, fmt, stream, style), binary=False)


def write_text(result: Result, fmt: Format, stream: TextSink, style: TableStyle) -> None:
    if fmt is Format.TABLE:
        _write_table(result, stream, style)
    elif fmt is Format.CSV:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(result.names)
        writer.writerows(result.text_rows())  # NULL is an empty field
    elif fmt is Format.JSONL:
        for line in _json_rows(result):
            stream.write(line + "\n")
    elif fmt is Format.JSON:
        stream.write("[")
        n = -1
        for n, line in enumerate(_json_rows(result)):
            stream.write(("\n" if n == 0 else ",\n") + line)
        stream.write("]\n" if n < 0 else "\n]\n")
    else:  # pragma: no cover - Format is closed
        raise ValueError(f"not a text format: {fmt}")


def _json_rows(result: Result) -> Iterator[str]:
    """One JSON object per row, keys in column order."""
    keys = [f"{encode_basestring(k)}: " for k in _unique(result.names)]
    verbatim = [i in result.json_columns for i in range(len(keys))]
    for batch in result.batches():
        if isinstance(batch, list):
            for row in batch:
                yield "{" + ", ".join([k + json_value(v, verbatim=j) for k, v, j in
                                       zip(keys, row, verbatim, strict=True)]) + "}"
            continue
        columns = [json_column(c, verbatim=i in result.json_columns)
                   for i, c in enumerate(batch.columns)]
        for values in zip(*columns, strict=True):
            yield "{" + ", ".join([k + v for k, v in zip(keys, values, strict=True)]) + "}"


def _atomic(out: str, write_to: Callable[[Any], None], *, binary: bool) -> None:
    """Write through a temporary sibling, renamed into place: a failed query leaves no
    half-written file behind."""
    path = Path(out)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if binary:
            write_to(str(tmp))
        else:
            with tmp.open("w", encoding="utf-8", newline="") as stream:
                write_to(stream)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_parquet(result: Result, path: str) -> None:
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, result.reader.schema, compression="zstd") as writer:
        for batch in result.reader:
            writer.write_batch(batch)


# --- the aligned table ------------------------------------------------------------------------

def _write_table(result: Result, stream: TextSink, style: TableStyle) -> None:
    if result.plain:
        for row in result.text_rows():
            stream.write((row[-1] or "").rstrip("\n") + "\n")
        return
    names, right = result.names, result.numeric()
    shown: list[list[str]] = []
    total = 0
    for batch in _batches(result):  # rows past max_rows are counted, never rendered
        wanted = batch.num_rows if not style.max_rows else style.max_rows - len(shown)
        if wanted > 0:
            shown.extend([_cell(v, style.max_width) for v in row] for row in batch.text(wanted))
        total += batch.num_rows
    for line in aligned([_one_line(name) for name in names], shown, right):
        stream.write(line + "\n")
    stream.write(footer(total, len(shown)) + "\n")


_DATE_MIN, _DATE_MAX = date.min, date.max
_NAIVE_MIN, _NAIVE_MAX = datetime.min, datetime.max


def _python_holds(rows: Sequence[tuple[Any, ...]], types: Sequence[str]) -> bool:
    """Whether every DATE and TIMESTAMP value of `rows` (columns of DuckDB `types`) reached
    Python as it is. DuckDB hands over infinities clamped to `date.max`/`min` or naive
    `datetime.max`/`min` (a TIMESTAMPTZ losing its zone too), and a year Python cannot hold as
    its own text; the Arrow path writes what is stored. A real 9999-12-31 or 0001-01-01 is
    taken for a clamp (the Arrow path then writes it, the same text)."""
    for i, kind in enumerate(types):
        if kind == "DATE":
            if any(v is not None and (type(v) is not date or v in (_DATE_MIN, _DATE_MAX))
                   for v in (row[i] for row in rows)):
                return False
        elif kind in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"):
            zoned = kind != "TIMESTAMP"
            for row in rows:
                v = row[i]
                if v is None:
                    continue
                if not isinstance(v, datetime) or (v.tzinfo is not None) != zoned \
                        or v.replace(tzinfo=None) in (_NAIVE_MIN, _NAIVE_MAX):
                    return False
    return True


class _Batch(NamedTuple):
    """Rows of either path, rendered as text only as far as the table shows them. (A named
    tuple: a frozen dataclass costs ~0.4 ms to create at import, on every `eventlake sql`.)"""

    num_rows: int
    text: Callable[[int], Sequence[tuple[str | None, ...]]]
    """The first n rows as text cells."""


def _batches(result: Result) -> Iterator[_Batch]:
    for batch in result.batches():
        if isinstance(batch, list):
            yield _Batch(len(batch), partial(_rows_text, batch))
        else:
            yield _Batch(batch.num_rows, partial(_arrow_text, batch))


def _rows_text(rows: Sequence[tuple[Any, ...]], n: int) -> list[tuple[str | None, ...]]:
    return [tuple(None if v is None else text(v) for v in row) for row in rows[:n]]


def _arrow_text(batch: Any, n: int) -> list[tuple[str | None, ...]]:
    return list(zip(*(text_column(c) for c in batch.slice(0, n).columns), strict=True))


def footer(total: int, shown: int) -> str:
    """`(3 rows)`, or `(250 rows, 150 not shown: --max-rows 0 shows all)`."""
    rows = f"{total} row{'' if total == 1 else 's'}"
    if shown < total:
        return f"({rows}, {total - shown} not shown: --max-rows 0 shows all)"
    return f"({rows})"


def _cell(value: str | None, max_width: int) -> str:
    cell = "NULL" if value is None else _one_line(value)
    if max_width and display_width(cell) > max_width:
        return cut(cell, max_width)
    return cell


def _one_line(cell: str) -> str:
    """Control characters escaped, so every row is one line and columns stay aligned."""
    if cell.isprintable():
        return cell
    return "".join(c if c.isprintable() else _ESCAPES.get(c, f"\\x{ord(c):02x}") for c in cell)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _unique(names: Sequence[str]) -> list[str]:
    """Column names made unique for JSON objects (`a`, `a_2`): DuckDB allows `SELECT 1, 1`."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out
