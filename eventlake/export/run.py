"""`export`: the events of a Selection, read through the lake's views on one snapshot, written
by DuckDB (COPY, or a database file) as Parquet (optionally Hive-partitioned by `dt` or
`event_type`), CSV, JSON lines or a DuckDB database, atomically.

Atomic: everything is written under a temporary name beside the destination
(`.<name>.tmp-<random>`, a file or a folder), then renamed onto it. A reader sees the old
destination or the whole new one, never half a file; a failed export removes what it wrote
and leaves an existing destination as it was. An existing destination is refused unless
`overwrite` (a file is then replaced in one rename; a folder is moved aside, the new one
renamed in, the old one deleted).

Rows are written in (timestamp, event_id) order. Columns: the lake's (EVENT_SCHEMA), plus
`dt` in a DuckDB file (the sql/ queries, created there as views, group by it). In CSV and JSON
lines the timestamps are RFC 3339 UTC text (`2024-05-01T00:00:00.000000Z`); in JSON lines the
payload is the JSON object itself (a payload DuckDB cannot parse stays a string).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

import duckdb

from eventlake.errors import ConfigError, EventLakeError
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.export.redact import payload_layers, rules
from eventlake.query.views import Tiers, list_queries, load_sql
from eventlake.replay.read import open_reader
from eventlake.replay.select import Selection

ExportFormat = Literal["parquet", "csv", "jsonl", "duckdb"]
PartitionBy = Literal["dt", "event_type"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
PARTITIONS: tuple[str, ...] = get_args(PartitionBy)
STORAGE_VERSION = "v1.1.0"
"""The DuckDB file's storage version: DuckDB 1.1 and later (what BI tools bundle) open it."""
_ISO = "strftime(timezone('UTC', {0}), '%Y-%m-%dT%H:%M:%S.%fZ') AS {0}"


class ExportError(EventLakeError):
    """An export that failed while writing; nothing was left at the destination."""


@dataclass
class ExportReport:
    """What an export wrote: `rows` events into `files` (paths under `out`), `bytes` in all."""

    out: str
    format: str
    rows: int = 0
    bytes: int = 0
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        empty = " (the selection is empty)" if not self.rows else ""
        where = self.out if len(self.files) <= 1 else f"{self.out} ({len(self.files)} files)"
        return (f"exported {self.rows:,} events{empty} as {self.format} to {where}: "
                f"{self.bytes:,} bytes in {self.seconds:.2f} s")


def export(tiers: Tiers, selection: Selection, out: str | os.PathLike[str], *,
           format: str = "parquet", partition_by: str | None = None,
           redact: Sequence[str] = (), hash_: Sequence[str] = (), salt: str | None = None,
           overwrite: bool = False, now: datetime | None = None) -> ExportReport:
    """Write the events of `selection` to `out` (a local path) as `format`; see the module
    docstring. `redact`/`hash_` are dotted payload paths (eventlake.export.redact), `salt` the
    hash's salt. ConfigError before anything is written for what cannot work."""
    started = time.monotonic()
    if format not in FORMATS:
        raise ConfigError(f"unknown export format `{format}`: one of {', '.join(FORMATS)}")
    if partition_by is not None and (format != "parquet" or partition_by not in PARTITIONS):
        raise ConfigError(f"--partition-by `{partition_by}`: only parquet output is "
                          f"partitioned, by one of {', '.join(PARTITIONS)}")
    if str(out).startswith("s3://"):
        raise ConfigError(f"`{out}`: export writes to a local path (s3:// is not supported yet)")
    dest = Path(out)
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        raise ConfigError(f"`{dest}` exists: choose another --out, or overwrite it "
                          "(--overwrite)")
    layers, params = payload_layers(rules(redact, hash_), salt)
    query, selected = _query(selection, format, partition_by, layers)
    params.update(selected)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:12]}"
    report = ExportReport(str(dest), format)
    con = open_reader(tiers, selection, now=now)
    try:
        report.rows = _write(con, query, params, tmp, format, partition_by)
        _publish(tmp, dest)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, duckdb.Error):
            raise ExportError(f"export to `{dest}` failed, nothing was written: "
                              f"{str(exc).splitlines()[0]}") from exc
        raise
    finally:
        con.close()
    report.files = _files(dest)
    report.bytes = sum((dest / f).stat().st_size if f else dest.stat().st_size
                       for f in report.files)
    report.seconds = time.monotonic() - started
    return report


def _query(selection: Selection, format: str, partition_by: str | None,
           layers: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The SELECT of the rows to write (redaction layers applied, text formats' columns
    converted, ordered), and its parameters."""
    names = list(EVENT_SCHEMA.names)
    if format == "duckdb" or partition_by == "dt":
        names.append("dt")
    first, last = selection.day_range()
    sql, params = selection.window_sql(first, last, ordered=False,
                                       columns=", ".join(f'"{n}"' for n in names))
    for n, layer in enumerate(layers):
        sql = f"SELECT * REPLACE ({layer} AS event_payload) FROM (\n{sql}\n) AS layer_{n}"
    converted: list[str] = []
    if format in ("csv", "jsonl"):
        converted += [_ISO.format("timestamp"), _ISO.format("ingested_at")]
    if format == "jsonl":
        converted.append("CASE WHEN json_valid(event_payload) THEN json(event_payload) "
                         "ELSE to_json(event_payload) END AS event_payload")
    if converted:
        sql = f"SELECT * REPLACE ({', '.join(converted)}) FROM (\n{sql}\n) AS converted"
    return f"{sql}\nORDER BY timestamp, event_id", params


def _write(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any], tmp: Path,
           format: str, partition_by: str | None) -> int:
    """Write the rows of `query` to `tmp`; how many."""
    target = _literal(str(tmp))
    if format == "duckdb":
        con.execute(f"ATTACH {target} AS eventlake_export (STORAGE_VERSION '{STORAGE_VERSION}')")
        try:
            con.execute(f"CREATE TABLE eventlake_export.events AS\n{query}", params)
            _create_query_views(con)
            [(rows,)] = con.execute("SELECT count(*) FROM eventlake_export.events").fetchall()
        finally:
            con.execute("USE memory")
            con.execute("DETACH eventlake_export")
        return int(rows)
    options = {"parquet": "FORMAT parquet, COMPRESSION zstd", "csv": "FORMAT csv, HEADER true",
               "jsonl": "FORMAT json"}[format]
    if partition_by is not None:
        tmp.mkdir()
        options += f", PARTITION_BY ({partition_by}), OVERWRITE_OR_IGNORE true"
    [(rows,)] = con.execute(f"COPY (\n{query}\n) TO {target} ({options})", params).fetchall()
    return int(rows)


def _create_query_views(con: duckdb.DuckDBPyConnection) -> None:
    """The parameterless queries of sql/ as views of the exported file, over its `events`
    (created with the file as the default database, so `events` names its table)."""
    con.execute("USE eventlake_export")
    for name in list_queries():
        text = load_sql(name)
        if not con.extract_statements(text)[0].named_parameters:
            body = text.strip().rstrip(";")
            con.execute(f'CREATE VIEW "{name}" AS\n{body}')


def _publish(tmp: Path, dest: Path) -> None:
    """Rename `tmp` onto `dest`: one rename for a file; a folder replacing a folder moves the
    old one aside first (and deletes it once the new one is in place)."""
    if tmp.is_dir() and dest.exists():
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:12]}"
        os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except BaseException:
            os.replace(old, dest)
            raise
        _remove(old)
        return
    if dest.is_dir():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _files(dest: Path) -> list[str]:
    """The files written: `[""]` for a single file, else paths relative to the folder."""
    if not dest.is_dir():
        return [""]
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
