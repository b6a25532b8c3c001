"""`export`: the events of a Selection, or the result of a named query of sql/ over them, read
through the lake's views on one snapshot, written by DuckDB (COPY, or a database file) as Parquet
(events optionally Hive-partitioned by `dt` or `event_type`), CSV, JSON lines or a DuckDB
database (export/database.py), to a local path or to S3 (export/s3.py), atomically.

Atomic: everything is written under a temporary name beside the destination
(`.<name>.tmp-...`, a file or a folder), then renamed onto it. A reader sees the old
destination or the whole new one, never half a file; a failed export removes what it wrote
and leaves an existing destination as it was. A run killed outright (SIGKILL, a lost host)
cannot remove its temporary; its name carries the host (with its pid namespace) and the process id
(`.<name>.tmp-<host>-<pid>-<random>`), and the next export to the same destination from that
host removes the temporaries of processes no longer running there (a plain `**` reader of the
parent folder would otherwise count them), and puts back a destination a killed overwrite had
moved aside. An existing destination is refused unless
`overwrite` (a file or a symlink is then replaced in one rename; a folder, or anything a folder
replaces, is moved aside, the new one renamed in, the old one deleted). The lake's `events/`
folder, its state (`_eventlake/`) and quarantine (`_quarantine/`) folders, anything in them,
and any folder holding the lake are refused as destinations. To S3,
the export is written so in a local temporary folder, then uploaded: one object (atomic), or a
folder's objects and `_SUCCESS` last.

A selection that matches nothing is exported as any other: a file of 0 rows with the columns
(Parquet, DuckDB), a CSV file of its header, an empty JSON lines file. Partitioned, there is no
partition to write: the folder holds one Parquet file of 0 rows (EMPTY_PARTITIONED) with the
columns a Hive reader sees in a non-empty export, so readers of `folder/**/*.parquet` read 0
rows (an empty folder fails DuckDB and Spark: "No files found"); an overwrite replaces the old
export with it.

Rows are written in (timestamp, event_id) order. Columns: the lake's (EVENT_SCHEMA), plus
`dt` in a DuckDB file (the sql/ queries and the typed views, created there as views, use it).
In CSV and JSON lines the timestamps are RFC 3339 UTC text (`2024-05-01T00:00:00.000000Z`); in
JSON lines the payload is the JSON object itself, its numbers as the lake holds them (a payload
that is not JSON stays a string; export/jsonl.py). CSV values are written verbatim, UTF-8
without a BOM: a value starting with `=`, `+`, `-` or `@` is not neutralised for spreadsheets
(that would change it for every other reader); the README says how to open it in Excel.

A named query (export/named.py) reads the selected events, redaction applied, as `events`; its
result is written in its own columns and order (TIMESTAMPTZ columns as RFC 3339 text in CSV and
JSON lines), and in a DuckDB file as a table named after the query.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args

import duckdb

from eventlake.aws import Clients
from eventlake.errors import ConfigError, EventLakeError
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.export.database import STORAGE_VERSION, write_events, write_table
from eventlake.export.jsonl import write_json_lines
from eventlake.export.named import NamedQuery, named_query, shadow_events
from eventlake.export.redact import payload_layers, rules
from eventlake.export.s3 import S3Target, existing_keys, is_s3_url, upload
from eventlake.lake.layout import EVENTS_DIR, QUARANTINE_DIR, STATE_DIR
from eventlake.lake.vanish import retry_on_vanish
from eventlake.logs import lazy_logger
from eventlake.query.views import Tiers, file_vanished_in_query
from eventlake.replay.read import open_reader, reopen_reader
from eventlake.replay.select import Selection

__all__ = ["EMPTY_PARTITIONED", "FORMATS", "PARTITIONS", "STORAGE_VERSION", "ExportError",
           "ExportFormat", "ExportReport", "PartitionBy", "export"]

ExportFormat = Literal["parquet", "csv", "jsonl", "duckdb"]
PartitionBy = Literal["dt", "event_type"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
PARTITIONS: tuple[str, ...] = get_args(PartitionBy)
_ISO = "strftime(timezone('UTC', {0}), '%Y-%m-%dT%H:%M:%S.%fZ') AS {0}"
EMPTY_PARTITIONED = "data_0.parquet"
"""The one file of a partitioned export of nothing (named as DuckDB names a partition's)."""
_KEPT = {STATE_DIR: "state: marker, watermark, leases, compaction records",
         QUARANTINE_DIR: "quarantined records, kept until someone deals with them"}
"""The lake's folders beside `events/` that no export may land in or replace."""
_COPY_OPTIONS = {"parquet": "FORMAT parquet, COMPRESSION zstd", "csv": "FORMAT csv, HEADER true",
                 "jsonl": "FORMAT json"}


def _host_token(hostname: str, pid_namespace: str) -> str:
    """This host and pid namespace, in the names of the temporaries: letters and digits (the
    name splits on `-`), the hostname's first ones and a digest of it and of the namespace
    (two containers with one hostname do not share pids; two long names may share a prefix)."""
    digest = hashlib.sha256(f"{hostname}\0{pid_namespace}".encode()).hexdigest()[:10]
    return (re.sub(r"[^A-Za-z0-9]", "", hostname)[:30] or "host") + digest


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:  # no /proc (macOS): the host's one namespace
        return ""


_HOST = _host_token(socket.gethostname(), _pid_namespace())
"""This host, in the names of the temporaries (`_host_token`)."""
_log = lazy_logger(__name__)


class ExportError(EventLakeError):
    """An export that failed while writing; nothing was left at the destination."""


@dataclass
class ExportReport:
    """What an export wrote: `rows` events (or, for `query`, result rows) into `files` (paths
    under `out`), `bytes` in all; `partition_by` the key of a partitioned export."""

    out: str
    format: str
    rows: int = 0
    bytes: int = 0
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    query: str | None = None
    partition_by: str | None = None

    def summary(self) -> str:
        what = f"{self.rows:,} events" if self.query is None else \
            f"{self.rows:,} rows of query `{self.query}`"
        empty = "" if self.rows else (" (the selection is empty)" if self.query is None
                                      else " (the result is empty)")
        where = self.out if len(self.files) <= 1 else f"{self.out} ({len(self.files)} files)"
        no_partitions = "" if self.rows or self.partition_by is None else (
            f"; no partitions: one file of 0 rows holds the columns ({EMPTY_PARTITIONED}), "
            "so readers of the folder read 0 rows")
        return (f"exported {what}{empty} as {self.format} to {where}: "
                f"{self.bytes:,} bytes in {self.seconds:.2f} s{no_partitions}")


@dataclass(frozen=True)
class _Plan:
    """What to write: the selection, in `format`, redaction `layers` (with `params`), and
    either the events (`partition_by` them) or the result of `query` (with `query_params`)."""

    selection: Selection
    format: str
    partition_by: str | None
    layers: list[str]
    params: dict[str, Any]
    query: NamedQuery | None
    query_params: dict[str, Any]


def export(tiers: Tiers, selection: Selection, out: str | os.PathLike[str], *,
           format: str = "parquet", partition_by: str | None = None,
           query: str | None = None, params: Mapping[str, Any] | None = None,
           redact: Sequence[str] = (), hash_: Sequence[str] = (), salt: str | None = None,
           overwrite: bool = False, now: datetime | None = None,
           clients: Clients | None = None) -> ExportReport:
    """Write the events of `selection` (or, when `query` names a query of sql/, its result
    over them, its parameters from `params`) to `out`, a local path or `s3://bucket/key`, as
    `format`; see the module docstring. `redact`/`hash_` are dotted payload paths
    (eventlake.export.redact), `salt` the hash's salt. `clients` give the S3 client (default:
    from the lake's settings). ConfigError before anything is written for what cannot work."""
    started = time.monotonic()
    if format not in FORMATS:
        raise ConfigError(f"unknown export format `{format}`: one of {', '.join(FORMATS)}")
    if partition_by is not None and (format != "parquet" or partition_by not in PARTITIONS):
        raise ConfigError(f"--partition-by `{partition_by}`: only parquet output is "
                          f"partitioned, by one of {', '.join(PARTITIONS)}")
    if partition_by is not None and query is not None:
        raise ConfigError(f"--partition-by `{partition_by}` partitions events: a query's "
                          f"result (`{query}`) is written as one file")
    named = named_query(query) if query is not None else None
    bound = named.bind(params or {}) if named is not None else {}
    if named is None and params:
        raise ConfigError(f"--param `{next(iter(params))}` is for a query (--query NAME)")
    layers, layer_params = payload_layers(rules(redact, hash_), salt)
    plan = _Plan(selection, format, partition_by, layers, layer_params, named, bound)
    _refuse_the_lake(tiers, out)
    if is_s3_url(out):
        report = _to_s3(tiers, plan, S3Target.parse(str(out)), overwrite, now, clients)
    else:
        report = _to_path(tiers, plan, Path(out), overwrite, now)
    report.seconds = time.monotonic() - started
    return report


def _refuse_the_lake(tiers: Tiers, out: str | os.PathLike[str]) -> None:
    """ConfigError when `out` is the lake's `events/` folder or inside it (the export would be
    read as events), its `_eventlake/` or `_quarantine/` or inside them (read as lake state or
    quarantined records; an overwrite would delete them), or holds the lake (an overwrite
    would delete it). The name `out` itself is
    compared, not what a symlink there points to: an overwrite replaces the link."""
    lake = tiers.cold
    if is_s3_url(out) != lake.is_s3:
        return
    if lake.is_s3:
        target = S3Target.parse(str(out))
        where = PurePosixPath("/", target.bucket, target.key)
        root = PurePosixPath("/", lake.root.removeprefix("s3://").rstrip("/"))
    else:
        given = Path(out)
        where = PurePosixPath(given.absolute().parent.resolve() / given.name)
        root = PurePosixPath(Path(lake.root).resolve())
    events = root / EVENTS_DIR
    if where in (events, root) or events in where.parents or where in root.parents:
        raise ConfigError(f"--out `{out}` is the lake's `{lake.root}` or its events, or holds "
                          "them: an export there would be read as events, or an overwrite "
                          "would delete the lake; choose another --out")
    for kept in _KEPT:
        folder = root / kept
        if where == folder or folder in where.parents:
            raise ConfigError(f"--out `{out}` is in the lake's `{kept}` folder (its "
                              f"{_KEPT[kept]}): an export there would be taken for it, or an "
                              "overwrite would delete it; choose another --out")


def _to_s3(tiers: Tiers, plan: _Plan, target: S3Target, overwrite: bool, now: datetime | None,
           clients: Clients | None) -> ExportReport:
    """Refuse an existing destination (unless `overwrite`), write locally, upload."""
    s3 = (clients or Clients(tiers.cold.settings)).s3
    existing = existing_keys(s3, target)
    if existing and not overwrite:
        raise ConfigError(f"`{target.url}` exists ({len(existing)} object(s), e.g. "
                          f"`{existing[0]}`): choose another --out, or overwrite it "
                          "(--overwrite)")
    folder = _staging()
    try:
        report = _to_path(tiers, plan, folder / target.name, False, now)
        upload(s3, folder / target.name, target, existing)
    finally:
        _remove(folder)
    report.out = target.url
    return report


def _staging() -> Path:
    """A new private folder in the system's temp folder for an S3 export's local copy, named
    for this host and process; first removes those of S3 exports killed on this host (their
    process gone), which no `finally` removed: each holds a whole export."""
    parent = Path(tempfile.gettempdir())
    prefix = f"eventlake-export-{_HOST}-"
    exact = re.compile(re.escape(prefix) + r"([0-9]+)-[A-Za-z0-9_]+")  # mkdtemp's names
    for path in sorted(parent.glob(f"{glob.escape(prefix)}*")):
        named = exact.fullmatch(path.name)
        if named is None or _running(pid := int(named.group(1))):
            continue
        _remove(path)
        if path.exists():  # another user's, in a shared temp folder: not ours to remove
            _log.warning("could not remove `%s`, the local copy of an S3 export killed on "
                         "this host (pid %s): remove it by hand", path, pid)
        else:
            _log.warning("removed `%s`, the local copy of an S3 export killed on this host "
                         "(pid %s)", path, pid)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def _to_path(tiers: Tiers, plan: _Plan, dest: Path, overwrite: bool, now: datetime | None
             ) -> ExportReport:
    """Write `plan` to the local `dest` under a temporary name, then rename it into place."""
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        raise ConfigError(f"`{dest}` exists: choose another --out, or overwrite it "
                          "(--overwrite)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(dest)
    if (dest.exists() or dest.is_symlink()) and not overwrite:  # a killed overwrite's, put back
        raise ConfigError(f"`{dest}` exists: choose another --out, or overwrite it "
                          "(--overwrite)")
    tmp = _sibling(dest, "tmp")
    report = ExportReport(str(dest), plan.format,
                          query=plan.query.name if plan.query is not None else None,
                          partition_by=plan.partition_by)
    con = open_reader(tiers, plan.selection, now=now)
    try:
        report.rows = _write_listing_again(con, tiers, plan, tmp, dest, now)
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
    return report


def _write_listing_again(con: duckdb.DuckDBPyConnection, tiers: Tiers, plan: _Plan, tmp: Path,
                         dest: Path, now: datetime | None) -> int:
    """`_write`; when compaction deleted a file `con` listed, again on a fresh listing
    (`reopen_reader`; the partial `tmp` removed first: nothing is published before the write
    ends), up to VANISH_ATTEMPTS times, then TransientError (safe to retry)."""
    attempts = 0

    def attempt() -> int:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            _remove(tmp)
            reopen_reader(con, tiers, plan.selection, now=now)
        return _write(con, plan, tmp)

    return retry_on_vanish(attempt, errors=duckdb.Error, vanished=file_vanished_in_query,
                           during=f"under the export to `{dest}`")


def _write(con: duckdb.DuckDBPyConnection, plan: _Plan, tmp: Path) -> int:
    """Write what `plan` asks to `tmp`; how many rows."""
    if plan.query is not None:
        shadow_events(con, *_selected(plan, with_dt=True, ordered=False))
        sql, params = plan.query.sql, plan.query_params
        if plan.format == "duckdb":
            return write_table(con, plan.query.name, sql, params, tmp)
        if plan.format in ("csv", "jsonl"):
            sql = _as_text(con, sql, params)
        return _copy(con, sql, params, tmp, plan.format, None)
    query, params = _selected(plan, with_dt=plan.format == "duckdb" or plan.partition_by == "dt",
                              ordered=plan.format != "jsonl")
    if plan.format == "duckdb":
        return write_events(con, query, params, tmp)
    if plan.format == "jsonl":  # DuckDB's JSON writer would round the payloads' numbers
        return write_json_lines(con, query, params, tmp)
    return _copy(con, query, params, tmp, plan.format, plan.partition_by)


def _selected(plan: _Plan, *, with_dt: bool, ordered: bool) -> tuple[str, dict[str, Any]]:
    """The SELECT of the events to write (redaction layers applied; for the text formats of an
    events export, the columns converted), ordered when `ordered`; and its parameters."""
    names = list(EVENT_SCHEMA.names) + (["dt"] if with_dt else [])
    first, last = plan.selection.day_range()
    sql, selected = plan.selection.window_sql(first, last, ordered=False,
                                              columns=", ".join(f'"{n}"' for n in names))
    for n, layer in enumerate(plan.layers):
        sql = f"SELECT * REPLACE ({layer} AS event_payload) FROM (\n{sql}\n) AS layer_{n}"
    converted: list[str] = []
    if plan.query is None and plan.format in ("csv", "jsonl"):
        converted += [_ISO.format("timestamp"), _ISO.format("ingested_at")]
    if converted:
        sql = f"SELECT * REPLACE ({', '.join(converted)}) FROM (\n{sql}\n) AS converted"
    params = {**plan.params, **selected}
    return (f"{sql}\nORDER BY timestamp, event_id" if ordered else sql), params


def _as_text(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> str:
    """`sql` with its TIMESTAMPTZ columns as RFC 3339 UTC text (as an events export writes
    them), in its own order."""
    described = con.execute(f"SELECT * FROM (\n{sql}\n) LIMIT 0", params).description or []
    stamps = [name for name, kind, *_ in described if str(kind) == "TIMESTAMP WITH TIME ZONE"]
    if not stamps:
        return sql
    converted = ", ".join(_ISO.format(f'"{name}"') for name in stamps)
    return f"SELECT * REPLACE ({converted}) FROM (\n{sql}\n) AS converted"


def _copy(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any], tmp: Path,
          format: str, partition_by: str | None) -> int:
    """COPY the rows of `query` to `tmp` as `format`; how many."""
    options = _COPY_OPTIONS[format]
    if partition_by is not None:
        tmp.mkdir()
        options += f", PARTITION_BY ({partition_by}), OVERWRITE_OR_IGNORE true"
    [(rows,)] = con.execute(f"COPY (\n{query}\n) TO {_quoted(tmp)} ({options})",
                            params).fetchall()
    if partition_by is not None and not rows:
        _write_empty_partitioned(con, query, params, tmp, partition_by)
    return int(rows)


def _write_empty_partitioned(con: duckdb.DuckDBPyConnection, query: str,
                             params: dict[str, Any], folder: Path, partition_by: str) -> None:
    """Write into the empty `folder` of a partitioned export of nothing one Parquet file of 0
    rows (EMPTY_PARTITIONED): its columns those a Hive reader sees in a non-empty export (the
    files' columns, then the partition key), so readers of the folder read 0 rows where an
    empty folder fails them (DuckDB, Spark: "No files found"), as a single-file export of
    nothing is a file of 0 rows."""
    key = f'"{partition_by}"'
    empty = f"SELECT * EXCLUDE ({key}), {key} FROM (\n{query}\n) AS selected LIMIT 0"
    con.execute(f"COPY ({empty}) TO {_quoted(folder / EMPTY_PARTITIONED)} "
                f"({_COPY_OPTIONS['parquet']})", params).fetchall()


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _publish(tmp: Path, dest: Path) -> None:
    """Rename `tmp` onto `dest`: one rename for a file replacing a file or a symlink (the link
    itself, never what it points to); when a folder is involved (a folder replacing anything,
    anything replacing a real folder), the old `dest` is moved aside first, put back if the
    new one cannot be renamed in, and deleted once it is."""
    there = dest.exists() or dest.is_symlink()
    if there and (tmp.is_dir() or (dest.is_dir() and not dest.is_symlink())):
        old = _sibling(dest, "old")
        os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except BaseException:
            os.replace(old, dest)
            raise
        _remove(old)
        return
    os.replace(tmp, dest)


def _sibling(dest: Path, kind: str) -> Path:
    """A temporary name beside `dest` saying which host and process made it."""
    return dest.parent / f".{dest.name}.{kind}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _clear_leftovers(dest: Path) -> None:
    """Remove the temporaries beside `dest` of exports killed on this host (the process that
    made one is no longer running), and put back a destination a killed overwrite moved aside
    (`.old-`) when nothing replaced it; another host's, or a live process's, are left alone."""
    for kind in ("tmp", "old"):
        prefix = f".{dest.name}.{kind}-{_HOST}-"
        exact = re.compile(re.escape(prefix) + r"([0-9]+)-[0-9a-f]{12}")  # `_sibling`'s names
        for path in sorted(dest.parent.glob(f"{glob.escape(prefix)}*")):
            named = exact.fullmatch(path.name)  # not another name that only starts so
            if named is None or _running(pid := int(named.group(1))):
                continue
            if kind == "old" and not (dest.exists() or dest.is_symlink()):
                os.replace(path, dest)
                _log.warning("put back `%s`, moved aside by an export killed during its "
                             "overwrite (pid %s)", dest, pid)
                continue
            _remove(path)
            _log.warning("removed `%s`, left by an export killed on this host (pid %s)",
                         path, pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: running
        return True
    return True


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
