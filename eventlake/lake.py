"""The cold tier: Hive-partitioned Parquet under one root, on S3 or on local disk.

    <root>/events/dt=YYYY-MM-DD/<name>.parquet      events; dt = UTC date of `timestamp`
    <root>/_quarantine/dt=YYYY-MM-DD/<name>.jsonl   records that could not be archived, raw
    <root>/_eventlake/<key>                         lake state (watermark, leases), CAS-written

One IO layer (pyarrow filesystems) lists, reads and writes both backends. On S3, boto3 does the
three things pyarrow cannot: conditional writes (`If-None-Match`/`If-Match`), ETags, and deletes
that leave no `dir/` marker objects behind.

A file is visible whole or not at all, so a reader never sees a partial one:

    local   serialise into `.<name>.parquet.tmp-<hex>` -> fsync -> rename over `<name>.parquet`
            (readers skip names starting with "." or "_"; a crash leaves only a hidden temp)
    S3      serialise into memory -> one upload, completed on close (an exception before the
            upload sends nothing: pyarrow would complete a half-written stream on close)

File names are the writer's: the same name rewrites the same file, so a retry replaces itself.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from eventlake.aws import Clients, error_code, is_transient
from eventlake.bucket import split_s3_uri
from eventlake.config import Settings
from eventlake.errors import EventLakeError, StorageError, TransientError
from eventlake.schema import EVENT_SCHEMA, EVENTS_DIR, QUARANTINE_DIR, SORT_KEYS, STATE_DIR

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")
ROW_GROUP_ROWS = 128 * 1024
"""Rows per Parquet row group: large enough for fast scans, small enough to prune on stats."""
_SORTING = pq.SortingColumn.from_ordering(EVENT_SCHEMA, SORT_KEYS)
_DICTIONARY_COLUMNS = ["event_type", "source"]
_STATISTICS_COLUMNS = ["event_id", "event_type", "timestamp", "ingested_at", "source", "subject"]
"""Min/max statistics where readers prune; none for payloads (large, never pruned on)."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+@-]{0,199}")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+@-]*(?:/[A-Za-z0-9][A-Za-z0-9._=+@-]*)*")
_DT_DIR = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")
_ARROW_TRANSIENT = ("THROTTLING", "SLOW_DOWN", "SERVICE_UNAVAILABLE", "INTERNAL_FAILURE",
                    "NETWORK_CONNECTION", "REQUEST_TIMEOUT")
_HTTP_5XX = re.compile(r"HTTP status 5\d\d")


class StateConflictError(EventLakeError):
    """A conditional write lost: the object exists, or changed since it was read. Re-read it
    and decide again; retrying the same write will fail the same way."""


class LakeFileExistsError(StateConflictError):
    """`if_absent=True` and the file is already there; it was left untouched."""


class LakeDataError(EventLakeError, ValueError):
    """A table, name or key handed to the lake does not fit it; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """One file a write produced; `path` is full (`s3://...` or an absolute local path)."""

    path: str
    dt: str
    rows: int
    bytes: int


@dataclass(frozen=True, slots=True)
class LakeFile:
    """One listed file; `dt` comes from its directory name, `size` in bytes."""

    path: str
    dt: str
    size: int


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A record that could not be archived, kept raw with the reason and the rule it broke."""

    reason: str
    rule: str
    record: Any
    source: str = "stream"
    quarantined_at: datetime | None = None
    """Set to the time of writing when None."""


class Lake:
    """The Parquet cold store under `settings.lake_uri`; the filesystem is built on first use."""

    def __init__(self, settings: Settings, *, clients: Clients | None = None) -> None:
        self.settings = settings
        self._clients = clients
        self._fs: pafs.FileSystem | None = None
        self._lock = threading.Lock()
        uri = settings.lake_uri
        self.is_s3 = uri.startswith("s3://")
        if self.is_s3:
            self._bucket, prefix = split_s3_uri(uri)
            self._base = f"{self._bucket}/{prefix}" if prefix else self._bucket
            self.root = f"s3://{self._base}"
        else:
            path = unquote(urlparse(uri).path) if uri.startswith("file://") else uri
            self._base = os.path.abspath(os.path.expanduser(path)).rstrip("/") or "/"
            self.root = self._base

    @classmethod
    def from_settings(cls, settings: Settings, *, clients: Clients | None = None) -> Lake:
        return cls(settings, clients=clients)

    @property
    def events_glob(self) -> str:
        """`<root>/events/*/*.parquet`, for engines that read the lake by glob (DuckDB)."""
        return f"{self.root}/{EVENTS_DIR}/*/*.parquet"

    @property
    def fs(self) -> pafs.FileSystem:
        if self._fs is None:
            with self._lock:
                if self._fs is None:
                    self._fs = self._make_fs()
        return self._fs

    def _make_fs(self) -> pafs.FileSystem:
        if not self.is_s3:
            return pafs.LocalFileSystem()
        # The bare constructor ignores AWS_ENDPOINT_URL, so pass the one the clients use.
        options: dict[str, Any] = {"region": self.settings.region}
        if self.settings.endpoint_url:
            endpoint = urlparse(self.settings.endpoint_url)
            options.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme)
        return pafs.S3FileSystem(**options)

    @property
    def _s3(self) -> S3Client:
        if self._clients is None:
            self._clients = Clients(self.settings)
        return self._clients.s3

    # -- writing -----------------------------------------------------------------------------

    def write(self, table: pa.Table, name: str, *, if_absent: bool = False
              ) -> list[WrittenFile]:
        """Write `table` as one file per UTC date, `events/dt=<dt>/<name>.parquet`, rows sorted.

        Each file is atomic; the call is not (several dates are written in parallel), but a
        retry with the same name converges. `if_absent` refuses to overwrite (after writing
        the other files) with `LakeFileExistsError`.
        """
        _check_name(name, ".parquet")
        parts = split_by_dt(conform(table))
        if len(parts) <= 1:
            return [self._write_sorted(dt, part, name, if_absent) for dt, part in parts]
        with ThreadPoolExecutor(min(8, len(parts))) as pool:
            futures = [pool.submit(self._write_sorted, dt, part, name, if_absent)
                       for dt, part in parts]
            return [future.result() for future in futures]

    def write_partition(self, dt: str, table: pa.Table, name: str, *, if_absent: bool = False,
                        presorted: bool = False) -> WrittenFile:
        """Write rows that all fall on UTC date `dt` as `events/dt=<dt>/<name>.parquet`.
        `presorted`: the caller already sorted the rows by SORT_KEYS (skips a sort)."""
        _check_dt(dt)
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
        path = f"{self._base}/{EVENTS_DIR}/dt={dt}/{_check_name(name, '.parquet')}"
        size = self._publish(path, lambda sink: _write_parquet(table, sink), if_absent)
        return WrittenFile(self._full(path), dt, table.num_rows, size)

    def _publish(self, path: str, fill: Callable[[pa.NativeFile], None], if_absent: bool
                 ) -> int:
        """Make `path` hold what `fill` writes, atomically; returns its size in bytes."""
        if self.is_s3:
            sink = pa.BufferOutputStream()
            fill(sink)
            data = sink.getvalue()
            if if_absent:
                self._put_object(path, data.to_pybytes(), LakeFileExistsError, IfNoneMatch="*")
            else:
                with self._mapped(f"write `{self._full(path)}`"), \
                        self.fs.open_output_stream(path) as out:
                    out.write(data)
            return int(data.size)
        directory, _, base = path.rpartition("/")
        temp = f"{directory}/.{base}.tmp-{secrets.token_hex(6)}"
        self.fs.create_dir(directory, recursive=True)
        try:
            with self.fs.open_output_stream(temp) as out:
                fill(out)
                size = int(out.tell())
            _fsync(temp)
            if if_absent:
                os.link(temp, path)  # atomic, and refuses an existing name
            else:
                self.fs.move(temp, path)  # rename(2): atomic replace
            _fsync(directory)
        except FileExistsError:
            raise LakeFileExistsError(f"`{path}` already exists; left untouched") from None
        finally:
            with suppress(FileNotFoundError):
                os.unlink(temp)
        return size

    # -- listing and reading -----------------------------------------------------------------

    def list_files(self, start: date | None = None, end: date | None = None, *,
                   dts: Iterable[str] | None = None) -> list[LakeFile]:
        """Event files with `start <= dt <= end` (and dt in `dts` when given), by (dt, path).

        Pruning uses directory names only; no file is opened. Hidden and temporary files
        (".", "_") and anything not `*.parquet` are ignored.
        """
        return self._list(EVENTS_DIR, ".parquet", _dt_filter(start, end, dts))

    def read(self, start: date | None = None, end: date | None = None,
             columns: Sequence[str] | None = None) -> pa.Table:
        """Events of the partitions in [start, end] (EVENT_SCHEMA, or just `columns`)."""
        schema = _projection(columns)
        return self._vanish_safe(lambda: self._read_files(self.list_files(start, end), schema))

    def read_ids(self, dts: Iterable[str]) -> pa.Array:
        """The event_ids stored in partitions `dts`, reading only that column of their files."""
        wanted = {_check_dt(dt) for dt in dts}
        if not wanted:
            return pa.array([], pa.string())
        schema = _projection(["event_id"])
        table = self._vanish_safe(lambda: self._read_files(self.list_files(dts=wanted), schema))
        return table["event_id"].combine_chunks()

    def read_ids_of(self, paths: Iterable[str]) -> set[str]:
        """The event_ids in these files (full paths, as listed), reading only that column.

        A file that vanished meanwhile (compaction merged it into another) is skipped: this
        feeds "skip what is already stored", where missing an id writes a duplicate that
        compaction and queries remove, never loses an event.
        """
        schema = _projection(["event_id"])

        def ids_of(path: str) -> list[str]:
            try:
                return list(self._read_file(path, schema)["event_id"].to_pylist())
            except OSError as exc:
                if _vanished(exc):
                    return []
                raise

        return {i for ids in self._map(ids_of, list(paths)) for i in ids}

    def iter_tables(self, start: date | None = None, end: date | None = None,
                    columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """One table per file of [start, end], so memory stays bounded by the largest file.

        When a file vanishes (compaction replaced it) the listing is taken again and the files
        not yet yielded are read: rows may then come twice (from a merged file), never not at
        all; callers that need each event once dedupe by event_id.
        """
        schema = _projection(columns)
        done: set[str] = set()
        for attempt in (1, 2):
            for file in self.list_files(start, end):
                if file.path in done:
                    continue
                try:
                    table = self._read_file(file.path, schema)
                except OSError as exc:
                    if not _vanished(exc):
                        raise
                    if attempt == 2:
                        raise _vanished_twice(exc) from exc
                    break
                done.add(file.path)
                yield table
            else:
                return

    def _read_files(self, files: Sequence[LakeFile], schema: pa.Schema) -> pa.Table:
        if not files:
            return schema.empty_table()
        with self._mapped(f"read `{self.root}`"):
            dataset = ds.dataset([self._fs_path(f.path) for f in files], schema=EVENT_SCHEMA,
                                 format="parquet", filesystem=self.fs)
            return dataset.to_table(columns=schema.names)

    def _read_file(self, path: str, schema: pa.Schema) -> pa.Table:
        with self._mapped(f"read `{path}`"), self.fs.open_input_file(self._fs_path(path)) as f:
            table = pq.ParquetFile(f).read(columns=schema.names)
        return table if table.schema.equals(schema) else table.cast(schema)

    def _vanish_safe(self, read: Callable[[], T]) -> T:
        """Run `read` (listing included); once more with a fresh listing if a file vanished.

        Compaction writes its merged file before deleting the ones it replaced, so a fresh
        listing finds every row again.
        """
        try:
            return read()
        except OSError as exc:
            if not _vanished(exc):
                raise
        try:
            return read()
        except OSError as exc:
            if _vanished(exc):
                raise _vanished_twice(exc) from exc
            raise

    def _list(self, top: str, suffix: str, keep: Callable[[str], bool]) -> list[LakeFile]:
        # A local listing races with writers: a temp file renamed away, or a directory made,
        # between readdir and stat fails it with ENOENT. Listing again sees a settled state.
        for attempt in range(4):
            try:
                return self._list_once(top, suffix, keep)
            except FileNotFoundError:
                if self.is_s3 or attempt == 3:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _list_once(self, top: str, suffix: str, keep: Callable[[str], bool]) -> list[LakeFile]:
        top_path = f"{self._base}/{top}"
        with self._mapped(f"list `{self._full(top_path)}`"):
            entries = self.fs.get_file_info(pafs.FileSelector(top_path, allow_not_found=True))
            partitions: dict[str, str] = {}
            for entry in entries:
                dt = _dt_of_dir(entry.base_name) if entry.type == pafs.FileType.Directory else None
                if dt is not None and keep(dt):
                    partitions[entry.path] = dt
            if not partitions:
                # allow_not_found also hides a missing bucket: an unset-up lake is not empty
                if self.is_s3 and not entries and self.fs.get_file_info(
                        self._bucket).type == pafs.FileType.NotFound:
                    raise self._no_bucket()
                return []
            if 2 * len(partitions) > len(entries):  # most of the lake: one recursive listing
                infos = self.fs.get_file_info(
                    pafs.FileSelector(top_path, recursive=True, allow_not_found=True))
            else:
                infos = [info for listing in self._map(
                    lambda p: self.fs.get_file_info(pafs.FileSelector(p, allow_not_found=True)),
                    list(partitions)) for info in listing]
        files = []
        for info in infos:
            parent, _, base = info.path.rpartition("/")
            dt = partitions.get(parent)
            if (dt is not None and info.type == pafs.FileType.File and base.endswith(suffix)
                    and not base.startswith((".", "_"))):
                files.append(LakeFile(self._full(info.path), dt, int(info.size)))
        return sorted(files, key=lambda f: (f.dt, f.path))

    def _map(self, fn: Callable[[str], T], items: list[str]) -> list[T]:
        if not self.is_s3 or len(items) < 2:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(min(16, len(items))) as pool:
            return list(pool.map(fn, items))

    # -- files -------------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        with self._mapped(f"look up `{path}`"):
            return bool(self.fs.get_file_info(self._fs_path(path)).type == pafs.FileType.File)

    def delete(self, paths: Iterable[str]) -> None:
        """Delete files of this lake (full paths as listed); already-missing files are fine."""
        fs_paths = [self._fs_path(p) for p in paths]
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

    # -- quarantine --------------------------------------------------------------------------

    def quarantine(self, entries: Sequence[QuarantineEntry], name: str, *,
                   now: datetime | None = None) -> str:
        """Write entries as JSON Lines to `_quarantine/dt=<UTC today>/<name>.jsonl`; its path.

        The same name (on the same day) rewrites the same file, so a retried batch replaces
        itself. Records are kept raw: bytes as base64, datetimes ISO, Decimals as exact text.
        """
        if not entries:
            raise LakeDataError("nothing to quarantine: `entries` is empty")
        now = (now or datetime.now(UTC)).astimezone(UTC)
        lines = [json.dumps({"reason": e.reason, "rule": e.rule,
                             "quarantined_at": (e.quarantined_at or now).isoformat(),
                             "source": e.source, "record": e.record},
                            default=_json_default, ensure_ascii=False, separators=(",", ":"))
                 for e in entries]
        data = ("\n".join(lines) + "\n").encode()
        path = (f"{self._base}/{QUARANTINE_DIR}/dt={now.date().isoformat()}/"
                f"{_check_name(name, '.jsonl')}")
        self._publish(path, lambda sink: sink.write(data), False)
        return self._full(path)

    def list_quarantine(self, start: date | None = None, end: date | None = None
                        ) -> list[LakeFile]:
        return self._list(QUARANTINE_DIR, ".jsonl", _dt_filter(start, end, None))

    def read_quarantine(self, start: date | None = None, end: date | None = None
                        ) -> list[QuarantineEntry]:
        entries = []
        for file in self.list_quarantine(start, end):
            with self._mapped(f"read `{file.path}`"), \
                    self.fs.open_input_stream(self._fs_path(file.path)) as f:
                text = f.read().decode()
            for line in text.splitlines():
                if line.strip():
                    raw = json.loads(line)
                    entries.append(QuarantineEntry(
                        raw["reason"], raw["rule"], raw["record"], raw["source"],
                        datetime.fromisoformat(raw["quarantined_at"])))
        return entries

    # -- state -------------------------------------------------------------------------------

    def read_state(self, key: str) -> tuple[bytes, str] | None:
        """`(content, version)` of state `key`, or None when it does not exist."""
        path = self._state_path(key)
        if self.is_s3:
            with self._boto_errors(f"read state `{key}`"):
                try:
                    got = self._s3.get_object(Bucket=self._bucket, Key=self._key(path))
                except Exception as exc:
                    if error_code(exc) == "NoSuchKey":
                        return None
                    raise
                return got["Body"].read(), got["ETag"]
        try:
            with self.fs.open_input_stream(path) as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data, _version(data)

    def write_state(self, key: str, data: bytes, *, expected: str | None) -> str:
        """Compare-and-swap state `key`; returns the new version.

        `expected=None` creates it only if absent; otherwise it is replaced only while its
        version is still `expected`. Losing either race raises `StateConflictError`. On S3 a
        request retried after a lost response can lose to itself: after a conflict, re-read,
        and if the content is what you wrote, your write landed.
        """
        path = self._state_path(key)
        if self.is_s3:
            condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
            return self._put_object(path, data, StateConflictError, **condition)
        directory, _, base = path.rpartition("/")
        self.fs.create_dir(directory, recursive=True)
        # Every writer of the key holds this lock while it compares and renames; readers need
        # none because the rename is atomic. flock is released by the kernel if we die.
        fd = os.open(f"{directory}/.{base}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = self.read_state(key)
            if expected is None and current is not None:
                raise StateConflictError(f"state `{key}` already exists")
            if expected is not None and (current is None or current[1] != expected):
                raise StateConflictError(f"state `{key}` changed since version `{expected}`")
            self._publish(path, lambda sink: sink.write(data), False)
        finally:
            os.close(fd)
        return _version(data)

    def _state_path(self, key: str) -> str:
        if len(key) > 512 or not _KEY.fullmatch(key):
            raise LakeDataError(f"state key `{key}` is not valid: use `/`-separated names of "
                                "letters, digits and `._=+@-`, each starting with a letter or "
                                "digit")
        return f"{self._base}/{STATE_DIR}/{key}"

    # -- paths and errors --------------------------------------------------------------------

    def _full(self, fs_path: str) -> str:
        return f"s3://{fs_path}" if self.is_s3 else fs_path

    def _key(self, fs_path: str) -> str:
        return fs_path[len(self._bucket) + 1:]

    def _fs_path(self, path: str) -> str:
        """A full path (as listed or written) -> the filesystem's path; must be in this lake."""
        fs_path = path
        if self.is_s3 and path.startswith("s3://"):
            fs_path = path[len("s3://"):]
        elif not self.is_s3 and path.startswith("file://"):
            fs_path = unquote(urlparse(path).path)
        if not fs_path.startswith(self._base.rstrip("/") + "/") or "/../" in fs_path:
            raise LakeDataError(f"`{path}` is not a file of lake `{self.root}`")
        return fs_path

    def _put_object(self, path: str, data: bytes, conflict: type[StateConflictError],
                    **condition: str) -> str:
        """A conditional S3 PUT (pyarrow cannot send If-None-Match / If-Match); the new ETag."""
        try:
            with self._boto_errors(f"write `{self._full(path)}`"):
                return self._s3.put_object(Bucket=self._bucket, Key=self._key(path), Body=data,
                                           **condition)["ETag"]  # type: ignore[arg-type]
        except StateConflictError as exc:
            raise conflict(str(exc)) from exc.__cause__

    @contextmanager
    def _boto_errors(self, action: str) -> Iterator[None]:
        """boto3 errors -> domain errors; a failed precondition -> StateConflictError."""
        try:
            yield
        except Exception as exc:
            code = error_code(exc)
            # NoSuchKey here answers If-Match on an object that is gone: the version changed.
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
                raise StateConflictError(f"could not {action}: it exists or changed meanwhile "
                                         f"({code})") from exc
            if code == "NoSuchBucket":
                raise self._no_bucket() from exc
            if code in ("AccessDenied", "403"):
                raise StorageError(f"access denied while trying to {action}: check the "
                                   "credentials and the bucket policy") from exc
            if is_transient(exc):
                raise TransientError(f"S3 failed to {action} (safe to retry): {exc}") from exc
            raise

    @contextmanager
    def _mapped(self, action: str) -> Iterator[None]:
        """pyarrow's S3 errors (OSError with the SDK's error name) -> domain errors."""
        try:
            yield
        except OSError as exc:
            mapped = self._arrow_error(exc, action) if self.is_s3 else None
            if mapped is None:
                raise
            raise mapped from exc

    def _no_bucket(self) -> StorageError:
        return StorageError(f"bucket `{self._bucket}` of lake `{self.root}` does not exist: "
                            "run `eventlake init`")

    def _arrow_error(self, exc: OSError, action: str) -> EventLakeError | None:
        text = str(exc)
        if _vanished(exc):
            return None
        if "NO_SUCH_BUCKET" in text:
            return self._no_bucket()
        if "ACCESS_DENIED" in text or "HTTP status 403" in text:
            return StorageError(f"access denied while trying to {action}: check the "
                                f"credentials and the bucket policy ({text})")
        if any(name in text for name in _ARROW_TRANSIENT) or _HTTP_5XX.search(text):
            return TransientError(f"S3 failed to {action} (safe to retry): {text}")
        return None


# -- tables ----------------------------------------------------------------------------------

def conform(table: pa.Table) -> pa.Table:
    """`table` as exactly EVENT_SCHEMA: columns reordered, string views and timestamp units or
    zones cast; anything else (missing, extra or mistyped columns, nulls where the schema
    forbids them) is refused with `LakeDataError`."""
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


def split_by_dt(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """(dt, rows sorted by SORT_KEYS) per UTC date, in date order; slices of one sorted table."""
    if not table.num_rows:
        return []
    days = pc.cast(table["timestamp"], pa.date32())  # exact: a UTC timestamp's date
    keyed = table.append_column("__dt", days).sort_by([("__dt", "ascending"), *SORT_KEYS])
    counts = pc.value_counts(keyed["__dt"])
    parts, offset = [], 0
    for day, count in sorted(zip(counts.field("values").to_pylist(),
                                 counts.field("counts").to_pylist(), strict=True)):
        parts.append((day.isoformat(), keyed.slice(offset, count).drop_columns(["__dt"])))
        offset += count
    return parts


def _write_parquet(table: pa.Table, sink: pa.NativeFile) -> None:
    with pq.ParquetWriter(sink, EVENT_SCHEMA, compression="zstd",
                          write_statistics=_STATISTICS_COLUMNS,
                          use_dictionary=_DICTIONARY_COLUMNS, sorting_columns=_SORTING) as writer:
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


def _castable(got: pa.DataType, want: pa.DataType) -> bool:
    if pa.types.is_string(want):
        return bool(pa.types.is_large_string(got) or pa.types.is_string_view(got))
    return bool(pa.types.is_timestamp(got) and got.tz is not None)


def _projection(columns: Sequence[str] | None) -> pa.Schema:
    if columns is None:
        return EVENT_SCHEMA
    unknown = [c for c in columns if c not in EVENT_SCHEMA.names]
    if unknown or isinstance(columns, str):
        raise LakeDataError(f"unknown column(s) {unknown or [columns]}: the lake has "
                            f"{EVENT_SCHEMA.names}")
    return pa.schema([EVENT_SCHEMA.field(c) for c in columns])


# -- names, dates, small helpers -------------------------------------------------------------

def _check_name(name: str, suffix: str) -> str:
    stem = name.removesuffix(suffix)
    if not _NAME.fullmatch(stem):
        raise LakeDataError(f"file name `{name}` is not valid: 1-200 letters, digits and "
                            "`._=+@-`, starting with a letter or digit")
    return stem + suffix


def _check_dt(dt: str) -> str:
    if not isinstance(dt, str) or not _DT_DIR.fullmatch(f"dt={dt}") or _parse_day(dt) is None:
        raise LakeDataError(f"partition `{dt}` is not a date in the form YYYY-MM-DD")
    return dt


def _parse_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _dt_of_dir(base_name: str) -> str | None:
    match = _DT_DIR.fullmatch(base_name)
    return match.group(1) if match and _parse_day(match.group(1)) else None


def _day(value: date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # a datetime is a date too: take its UTC date
        value = (value.astimezone(UTC) if value.tzinfo else value).date()
    return value.isoformat()


def _dt_filter(start: date | None, end: date | None, dts: Iterable[str] | None
               ) -> Callable[[str], bool]:
    low, high = _day(start), _day(end)
    allowed = None if dts is None else {_check_dt(d) for d in dts}
    return lambda dt: ((low is None or dt >= low) and (high is None or dt <= high)
                       and (allowed is None or dt in allowed))


def _vanished(exc: BaseException) -> bool:
    return isinstance(exc, FileNotFoundError) or "NO_SUCH_KEY" in str(exc)


def _vanished_twice(exc: BaseException) -> TransientError:
    return TransientError(f"lake files vanished twice while reading (compaction running?); "
                          f"safe to retry: {exc}")


def _version(data: bytes) -> str:
    """The version of local state: its content hash (like an S3 ETag, content decides)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)  # never drop a record because one value is exotic
