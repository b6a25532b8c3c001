"""The cold tier: Hive-partitioned Parquet under one root, on S3 or on local disk.

    <root>/events/dt=YYYY-MM-DD/<name>.parquet      events; dt = UTC date of `timestamp`
    <root>/_quarantine/dt=YYYY-MM-DD/<name>.jsonl   records that could not be archived, raw
    <root>/_eventlake/<key>                         lake state (watermark, leases), CAS-written

This module owns the events: writing tables as sorted, date-partitioned Parquet files and
reading them back (pruned by directory, safe against compaction replacing files: `vanish`). The
rest of `Lake` comes from its bases: `fs` (filesystem, atomic publish, listing, error mapping),
`quarantine` and `state`.

File names are the writer's: the same name rewrites the same file, so a retry replaces itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, NamedTuple

from eventlake.aws import Clients
from eventlake.config import Settings
from eventlake.errors import StorageError
from eventlake.events.times import as_utc
from eventlake.lake.fs import LakeFile, LakeFileError, LakeFileExistsError, StateConflictError
from eventlake.lake.layout import (
    EVENTS_DIR,
    LakeDataError,
    check_dt,
    check_name,
    dt_filter,
    split_by_dt,
)
from eventlake.lake.names import is_own_file
from eventlake.lake.quarantine import LakeQuarantine, QuarantineEntry
from eventlake.lake.state import LakeState
from eventlake.lake.vanish import (
    VANISH_ATTEMPTS,
    file_vanished,
    retry_on_vanish,
    vanish_backoff,
    vanished_too_often,
)

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

# pyarrow (and the schema, made of its types) is imported by the functions that read or write
# Parquet: listing the lake, and `eventlake sql --cold-only` on a local one, need none of it.

__all__ = [
    "ROW_GROUP_ROWS",
    "Lake",
    "LakeDataError",
    "LakeFile",
    "LakeFileError",
    "LakeFileExistsError",
    "QuarantineEntry",
    "StateConflictError",
    "TimeRange",
    "WrittenFile",
    "conform",
    "projection",
]

_RANGES_KEPT = 10_000
"""Footer ranges a Lake remembers (a warm Lambda keeps its Lake between batches)."""
ROW_GROUP_ROWS = 128 * 1024
"""Rows per Parquet row group: large enough for fast scans, small enough to prune on stats."""
_DICTIONARY_COLUMNS = ["event_type", "source"]
_STATISTICS_COLUMNS = ["event_id", "event_type", "timestamp", "ingested_at", "source", "subject"]
"""Min/max statistics where readers prune; none for payloads (large, never pruned on)."""


class TimeRange(NamedTuple):
    """The least and greatest value of a time column in a file (UTC)."""

    low: datetime
    high: datetime


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """One file a write produced; `path` is full (`s3://...` or an absolute local path)."""

    path: str
    dt: str
    rows: int
    bytes: int


class Lake(LakeQuarantine, LakeState):
    """The Parquet cold store under `settings.lake_uri`; the filesystem is built on first use."""

    def __init__(self, settings: Settings, *, clients: Clients | None = None) -> None:
        super().__init__(settings, clients=clients)
        self._ranges: dict[tuple[str, int], TimeRange | None] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, clients: Clients | None = None) -> Lake:
        return cls(settings, clients=clients)

    @property
    def events_glob(self) -> str:
        """`<root>/events/*/*.parquet`, for engines that read the lake by glob (DuckDB)."""
        return f"{self.root}/{EVENTS_DIR}/*/*.parquet"

    # -- writing -----------------------------------------------------------------------------

    def write(self, table: pa.Table, name: str, *, if_absent: bool = False
              ) -> list[WrittenFile]:
        """Write `table` as one file per UTC date, `events/dt=<dt>/<name>.parquet`, rows sorted.

        Each file is atomic; the call is not (several dates are written in parallel), but a
        retry with the same name converges. `if_absent` refuses to overwrite (after writing
        the other files) with `LakeFileExistsError`.
        """
        check_name(name, ".parquet")
        parts = split_by_dt(conform(table))
        if len(parts) <= 1:
            return [self._write_sorted(dt, part, name, if_absent) for dt, part in parts]
        from concurrent.futures import ThreadPoolExecutor  # a writer's: not at a reader's start-up

        with ThreadPoolExecutor(min(8, len(parts))) as pool:
            futures = [pool.submit(self._write_sorted, dt, part, name, if_absent)
                       for dt, part in parts]
            return [future.result() for future in futures]

    def write_partition(self, dt: str, table: pa.Table, name: str, *, if_absent: bool = False,
                        presorted: bool = False) -> WrittenFile:
        """Write rows that all fall on UTC date `dt` as `events/dt=<dt>/<name>.parquet`.
        `presorted`: the caller already sorted the rows by SORT_KEYS (skips a sort)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from eventlake.events.schema import SORT_KEYS

        check_dt(dt)
        table = conform(table)
        if table.num_rows:
            low, high = pc.min_max(pc.cast(table["timestamp"], pa.date32())).values()
            if (low.as_py().isoformat(), high.as_py().isoformat()) != (dt, dt):
                raise LakeDataError(f"partition `dt={dt}` got rows timestamped from {low} to "
                                    f"{high} (UTC dates); use `write` to group them by date")
        return self._write_sorted(dt, table if presorted else table.sort_by(SORT_KEYS), name,
                                  if_absent)

    def _write_sorted(self, dt: str, table: pa.Table, name: str, if_absent: bool
                      ) -> WrittenFile:
        path = f"{self._base}/{EVENTS_DIR}/dt={dt}/{check_name(name, '.parquet')}"
        size = self._publish(path, lambda sink: _write_parquet(table, sink), if_absent)
        return WrittenFile(self._full(path), dt, table.num_rows, size)

    # -- listing and reading -----------------------------------------------------------------

    def list_files(self, start: date | None = None, end: date | None = None, *,
                   dts: Iterable[str] | None = None) -> list[LakeFile]:
        """Event files with `start <= dt <= end` (and dt in `dts` when given), by (dt, path).

        Pruning uses directory names only; no file is opened. Hidden and temporary files
        (".", "_") and anything not `*.parquet` are ignored.
        """
        every = start is None and end is None and dts is None
        return self._list(EVENTS_DIR, ".parquet", None if every else dt_filter(start, end, dts))

    def read(self, start: date | None = None, end: date | None = None,
             columns: Sequence[str] | None = None) -> pa.Table:
        """Events of the partitions in [start, end] (EVENT_SCHEMA, or just `columns`)."""
        return retry_on_vanish(lambda: self.read_files(self.list_files(start, end), columns))

    def read_ids(self, dts: Iterable[str]) -> pa.Array:
        """The event_ids stored in partitions `dts`, reading only that column of their files."""
        import pyarrow as pa

        wanted = {check_dt(dt) for dt in dts}
        if not wanted:
            return pa.array([], pa.string())
        table = retry_on_vanish(lambda: self.read_files(self.list_files(dts=wanted),
                                                        ["event_id"]))
        return table["event_id"].combine_chunks()

    def read_hashes(self, dts: Iterable[str], ids: pa.Array | None = None) -> pa.Table:
        """(event_id, content_hash) of the rows in partitions `dts`, reading only those two
        columns of their files: "is this exact event stored", not just "is this id". With
        `ids`, only the rows of those event_ids (filtered as the files are scanned: memory
        follows what matches, not the partitions' size)."""
        import pyarrow.dataset as ds

        wanted = {check_dt(dt) for dt in dts}
        columns = ["event_id", "content_hash"]
        if not wanted:
            return projection(columns).empty_table()
        where = None if ids is None else ds.field("event_id").isin(ids)
        return retry_on_vanish(lambda: self.read_files(self.list_files(dts=wanted), columns,
                                                       where=where))

    def read_ids_of(self, paths: Iterable[str]) -> set[str]:
        """The event_ids in these files (full paths, as listed), reading only that column.

        A file that vanished meanwhile (compaction merged it into another) raises its OSError:
        list again and retry (`vanish.retry_on_vanish`), the merged file holds its ids.
        """
        return {i for table in self.read_each(paths, ["event_id"])
                for i in table["event_id"].to_pylist()}

    def ingested_range(self, file: LakeFile) -> TimeRange | None:
        """The least and greatest `ingested_at` of `file`, from its footer's statistics (one
        small read, remembered per path and size: files are immutable); None when the footer
        has none (no rows, or a writer that wrote no statistics)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        key = (file.path, file.size)
        if key in self._ranges:
            return self._ranges[key]
        with self._mapped(f"read `{file.path}`"), \
                self.fs.open_input_file(self.fs_path(file.path)) as f:
            try:
                meta = pq.ParquetFile(f).metadata
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise LakeFileError(file.path, f"it cannot be read as Parquet ({exc})") from exc
        found = _column_range(meta, "ingested_at")
        if len(self._ranges) >= _RANGES_KEPT:
            self._ranges.clear()
        self._ranges[key] = found
        return found

    def iter_tables(self, start: date | None = None, end: date | None = None,
                    columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """One table per file of [start, end], so memory stays bounded by the largest file.

        When a file vanishes (compaction replaced it) the listing is taken again and the files
        not yet yielded are read: rows may then come twice (from a merged file), never not at
        all; callers that need each event once dedupe by event_id.
        """
        schema = projection(columns)
        done: set[str] = set()
        # Not `retry_on_vanish`: a generator resumes after the files it has yielded.
        for attempt in range(1, VANISH_ATTEMPTS + 1):
            if attempt > 1:
                time.sleep(vanish_backoff(attempt))
            for file in self.list_files(start, end):
                if file.path in done:
                    continue
                try:
                    table = self._read_file(file.path, schema)
                except OSError as exc:
                    if not file_vanished(exc):
                        raise
                    if attempt == VANISH_ATTEMPTS:
                        raise vanished_too_often(exc) from exc
                    break
                done.add(file.path)
                yield table
            else:
                return

    def read_file(self, path: str, columns: Sequence[str] | None = None, *,
                  whole_schema: bool = False) -> pa.Table:
        """One file (a full path, as listed): its events (EVENT_SCHEMA, or just `columns`).

        A file that is corrupt or not of the lake's schema raises LakeFileError naming it; one
        that vanished (compaction deleted it) its OSError (see `vanish`). `whole_schema`: its
        footer must hold every column of the lake (castable variants aside, `check_foreign`'s
        rule), not just `columns`: free, the footer is read anyway."""
        from eventlake.events.schema import EVENT_SCHEMA

        schema = projection(columns)
        return self._read_file(path, schema, EVENT_SCHEMA if whole_schema else schema)

    def read_each(self, paths: Iterable[str], columns: Sequence[str] | None = None
                  ) -> list[pa.Table]:
        """`read_file` of each path, in the same order (in parallel on S3)."""
        return self._map(lambda path: self.read_file(path, columns), list(paths))

    def read_files(self, files: Sequence[LakeFile], columns: Sequence[str] | None = None, *,
                   where: pc.Expression | None = None) -> pa.Table:
        """The events of `files` as one table (EVENT_SCHEMA, or just `columns`), in one scan;
        `where` keeps only the rows it holds for (applied as the files are scanned).

        A file that is corrupt or not of the lake's schema raises LakeFileError naming it (a
        dataset would read its missing columns as NULLs); one that vanished its OSError."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        from eventlake.events.schema import EVENT_SCHEMA

        schema = projection(columns)
        if not files:
            return schema.empty_table()
        with self._mapped(f"read `{self.root}`"):
            dataset = ds.dataset([self.fs_path(f.path) for f in files], schema=EVENT_SCHEMA,
                                 format="parquet", filesystem=self.fs)
            # Each fragment keeps the footer it opens here, so the scan below reads no more.
            fragments = {f.path: f for f in dataset.get_fragments()}
            listed = {self.fs_path(f.path): f.path for f in files}
            self._map(lambda p: _check_footer(listed[p], lambda: fragments[p].physical_schema,
                                              schema), list(fragments))
            try:
                table = dataset.to_table(columns=schema.names, filter=where)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                self._name_bad_file(files, schema, exc)
                raise
        if _nulls_in_required(table, schema):
            self._name_bad_file(files, schema, None)
        return table

    def _name_bad_file(self, files: Sequence[LakeFile], schema: pa.Schema,
                       exc: BaseException | None) -> None:
        """Raise LakeFileError for the first of `files` that fails on its own (the error path
        of a read over many files: one at a time, to say which)."""
        for f in files:
            self._read_file(f.path, schema)
        if exc is None:
            raise LakeDataError(f"reading {len(files)} file(s) of `{self.root}` gave nulls in "
                                "required columns, yet each file reads correctly alone")

    def _read_file(self, path: str, schema: pa.Schema, footer: pa.Schema | None = None
                   ) -> pa.Table:
        """`path`'s columns of `schema`, its footer checked against `footer` (default: `schema`)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._mapped(f"read `{path}`"), self.fs.open_input_file(self.fs_path(path)) as f:
            try:
                parquet = pq.ParquetFile(f)
                _check_footer(path, lambda: parquet.schema_arrow,
                              schema if footer is None else footer)
                table = parquet.read(columns=schema.names)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise LakeFileError(path, f"it cannot be read as Parquet ({exc})") from exc
        if _nulls_in_required(table, schema):
            raise LakeFileError(path, "required column(s) "
                                f"{_nulls_in_required(table, schema)} hold nulls")
        if table.schema.equals(schema):
            return table
        try:
            return table.cast(schema)
        except (pa.ArrowInvalid, ValueError) as exc:
            raise LakeFileError(path, f"its columns do not cast to the lake's ({exc})") from exc

    def check_foreign(self, files: Iterable[LakeFile]) -> None:
        """Refuse (LakeFileError, naming it) any of `files` that none of eventlake's writers
        named and whose footer is not the lake's schema: engines reading the lake by its
        schema would turn its missing columns into NULL rows. The writers' own files
        (`names.WRITERS`: `stream-`, `sweep-`, `backfill-`, `removed-`, `compacted-`...) have the
        lake's schema and are not opened, so the usual lake costs nothing here. Callers leave
        out the files a disjoint-files manifest names (`disjoint.verify` checked their footers
        this way when it read their ids): a lake copied in from another tool is then opened
        here only until its first verify, not on every query."""
        foreign = [f.path for f in files if not is_own_file(f.path.rpartition("/")[2])]
        if not foreign:
            return
        import pyarrow.parquet as pq

        from eventlake.events.schema import EVENT_SCHEMA

        def check(path: str) -> None:
            try:
                with self._mapped(f"read `{path}`"), \
                        self.fs.open_input_file(self.fs_path(path)) as f:
                    _check_footer(path, lambda: pq.ParquetFile(f).schema_arrow, EVENT_SCHEMA)
            except OSError as exc:
                if not file_vanished(exc):  # compacted away: not read by anyone, not refused
                    raise

        self._map(check, foreign)

    # -- files -------------------------------------------------------------------------------

    def delete(self, paths: Iterable[str]) -> None:
        """Delete files of this lake (full paths as listed); already-missing files are fine."""
        fs_paths = [self.fs_path(p) for p in paths]
        if not self.is_s3:
            for path in fs_paths:
                with suppress(FileNotFoundError):
                    self.fs.delete_file(path)
            return
        # boto3, not pyarrow: pyarrow leaves a `dir/` marker object behind each emptied folder.
        keys = [path[len(self._bucket) + 1:] for path in fs_paths]
        for i in range(0, len(keys), 1000):
            with self._boto_errors(f"delete files under `{self.root}`"):
                response = self._s3.delete_objects(Bucket=self._bucket, Delete={
                    "Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageError(f"could not delete {len(response['Errors'])} file(s) under "
                                   f"`{self.root}`, e.g. `{first.get('Key')}`: "
                                   f"{first.get('Code')} {first.get('Message')}")


# -- tables ----------------------------------------------------------------------------------

def conform(table: pa.Table) -> pa.Table:
    """`table` as exactly EVENT_SCHEMA: columns reordered, string views and timestamp units or
    zones cast; anything else (missing, extra or mistyped columns, nulls where the schema
    forbids them) is refused with `LakeDataError`."""
    import pyarrow as pa

    from eventlake.events.schema import EVENT_SCHEMA

    names = table.schema.names
    expected = EVENT_SCHEMA.names
    if sorted(names) != sorted(expected):
        missing = sorted(set(expected) - set(names))
        extra = sorted(set(names) - set(expected))
        raise LakeDataError(f"table does not have the lake's columns: missing {missing}, "
                            f"unexpected {extra} (duplicates: {len(names) != len(set(names))})")
    table = table.select(expected)
    for field in EVENT_SCHEMA:
        got = table.schema.field(field.name).type
        if got != field.type and not _castable(got, field.type):
            raise LakeDataError(f"column `{field.name}` is {got}, expected {field.type}")
        if not field.nullable and table[field.name].null_count:
            raise LakeDataError(f"column `{field.name}` has {table[field.name].null_count} "
                                "null(s) but is required")
    if table.schema.equals(EVENT_SCHEMA):
        return table
    try:
        return table.cast(EVENT_SCHEMA)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise LakeDataError(f"table does not fit the lake's schema: {exc}") from exc


def _write_parquet(table: pa.Table, sink: pa.NativeFile) -> None:
    import pyarrow.parquet as pq

    from eventlake.events.schema import EVENT_SCHEMA, SORT_KEYS

    sorting = pq.SortingColumn.from_ordering(EVENT_SCHEMA, SORT_KEYS)
    with pq.ParquetWriter(sink, EVENT_SCHEMA, compression="zstd",
                          write_statistics=_STATISTICS_COLUMNS,
                          use_dictionary=_DICTIONARY_COLUMNS, sorting_columns=sorting) as writer:
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


def _column_range(meta: pq.FileMetaData, name: str) -> TimeRange | None:
    """(min, max) of column `name` over every row group's statistics, as UTC datetimes; None
    when a row group lacks them or the file has no rows."""
    index = next((j for j in range(meta.num_columns) if meta.schema.column(j).path == name),
                 None)
    if index is None or meta.num_row_groups == 0:
        return None
    lows, highs = [], []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(index).statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.min, datetime):
            return None
        lows.append(as_utc(stats.min))
        highs.append(as_utc(stats.max))
    return TimeRange(min(lows), max(highs))



def _check_footer(path: str, file_schema: Callable[[], pa.Schema], wanted: pa.Schema) -> None:
    """Refuse, naming `path`, a file whose footer lacks a `wanted` column or types it other
    than the lake does (castable variants aside): a reader would turn those into NULLs or
    silently cast them. Also turns an unreadable footer into LakeFileError."""
    import pyarrow as pa

    try:
        got = file_schema()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise LakeFileError(path, f"it cannot be read as Parquet ({exc})") from exc
    missing = [f.name for f in wanted if got.get_field_index(f.name) < 0]
    mistyped = [f"`{f.name}` is {got.field(f.name).type}, expected {f.type}" for f in wanted
                if f.name not in missing and got.field(f.name).type != f.type
                and not _castable(got.field(f.name).type, f.type)]
    if missing or mistyped:
        problems = ([f"it lacks column(s) {missing}"] if missing else []) + mistyped
        raise LakeFileError(path, f"its schema is not the lake's: {'; '.join(problems)}")


def _nulls_in_required(table: pa.Table, schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if not f.nullable and table[f.name].null_count]


def _castable(got: pa.DataType, want: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_string(want):
        if pa.types.is_dictionary(got):  # dictionary-encoded text (pandas categoricals)
            got = got.value_type
        return bool(pa.types.is_string(got) or pa.types.is_large_string(got)
                    or pa.types.is_string_view(got))
    return bool(pa.types.is_timestamp(got) and got.tz is not None)


def projection(columns: Sequence[str] | None) -> pa.Schema:
    """EVENT_SCHEMA narrowed to `columns`, in their order (all of it for None); LakeDataError
    for a column the lake does not have."""
    import pyarrow as pa

    from eventlake.events.schema import EVENT_SCHEMA

    if columns is None:
        return EVENT_SCHEMA
    unknown = [c for c in columns if c not in EVENT_SCHEMA.names]
    if unknown or isinstance(columns, str):
        raise LakeDataError(f"unknown column(s) {unknown or [columns]}: the lake has "
                            f"{EVENT_SCHEMA.names}")
    return pa.schema([EVENT_SCHEMA.field(c) for c in columns])
