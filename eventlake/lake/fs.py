"""Where the lake's bytes live and how they move: the root (S3 or local), the pyarrow
filesystem built on first use, atomic publishing, dt-partition listing, and AWS/Arrow errors
turned into domain errors (`StorageError`, `TransientError`, `StateConflictError`).

One IO layer (pyarrow filesystems) lists, reads and writes both backends. On S3, boto3 does the
three things pyarrow cannot: conditional writes (`If-None-Match`/`If-Match`), ETags, and deletes
that leave no `dir/` marker objects behind.

A file is visible whole or not at all, so a reader never sees a partial one:

    local   serialise into `.<name>.parquet.tmp-<hex>` -> fsync -> rename over `<name>.parquet`
            (readers skip names starting with "." or "_"; a crash leaves only a hidden temp)
    S3      serialise into memory -> one upload, completed on close (an exception before the
            upload sends nothing: pyarrow would complete a half-written stream on close)

`LakeFS` is the base of `store.Lake`; the events (`store`), quarantine (`quarantine`) and state
(`state`) layers build on its private helpers.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlparse

from eventlake.aws import Clients, error_code, is_transient
from eventlake.config import Settings, redact
from eventlake.errors import EventLakeError, LakeNotFoundError, StorageError, TransientError
from eventlake.lake.bucket import split_s3_uri
from eventlake.lake.layout import LakeDataError, dt_of_dir
from eventlake.lake.vanish import file_vanished

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs
    from mypy_boto3_s3 import S3Client

__all__ = ["LakeFS", "LakeFile", "LakeFileError", "LakeFileExistsError", "StateConflictError"]

T = TypeVar("T")
_ARROW_TRANSIENT = ("THROTTLING", "SLOW_DOWN", "SERVICE_UNAVAILABLE", "INTERNAL_FAILURE",
                    "NETWORK_CONNECTION", "REQUEST_TIMEOUT")
_HTTP_5XX = re.compile(r"HTTP status 5\d\d")


class StateConflictError(EventLakeError):
    """A conditional write lost: the object exists, or changed since it was read. Re-read it
    and decide again; retrying the same write will fail the same way."""


class LakeFileExistsError(StateConflictError):
    """`if_absent=True` and the file is already there; it was left untouched."""


class LakeFileError(LakeDataError):
    """A file among the lake's events is not one eventlake can read: it is corrupt, or its
    schema is not the lake's (a missing or mistyped column would read as NULLs). `path` names
    it. Retrying will not help: move the file out of `events/` (or delete it)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"`{path}` is not a readable lake file: {problem}; move it out of the "
                         "lake's `events/` folder (or delete it), then run again")


@dataclass(frozen=True, slots=True)
class LakeFile:
    """One listed file; `dt` comes from its directory name, `size` in bytes, `modified` the
    store's modification time (UTC; None when unknown). `modified` is not part of equality."""

    path: str
    dt: str
    size: int
    modified: datetime | None = field(default=None, compare=False)


class LakeFS:
    """The lake's root and filesystem: paths, atomic publishing, listing, error mapping."""

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

    @property
    def fs(self) -> pafs.FileSystem:
        if self._fs is None:
            with self._lock:
                if self._fs is None:
                    self._fs = self._make_fs()
        return self._fs

    def _make_fs(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs

        if not self.is_s3:
            return pafs.LocalFileSystem()
        # The bare constructor ignores AWS_ENDPOINT_URL, so pass the one the clients use; its
        # retries are the AWS SDK's standard ones, with the attempts every AWS call gets.
        options: dict[str, Any] = {
            "region": self.settings.region,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(
                max_attempts=self.settings.aws_max_attempts)}
        if self.settings.endpoint_url:
            endpoint = urlparse(self.settings.endpoint_url)
            # host[:port] only: user info in the endpoint is not a host pyarrow can reach
            options.update(endpoint_override=endpoint.netloc.rpartition("@")[2],
                           scheme=endpoint.scheme)
        return pafs.S3FileSystem(**options)

    @property
    def _s3(self) -> S3Client:
        if self._clients is None:
            self._clients = Clients(self.settings)
        return self._clients.s3

    # -- publishing --------------------------------------------------------------------------

    def _publish(self, path: str, fill: Callable[[pa.NativeFile], None], if_absent: bool
                 ) -> int:
        """Make `path` hold what `fill` writes, atomically; returns its size in bytes."""
        import pyarrow as pa

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

    # -- listing -----------------------------------------------------------------------------

    def _list(self, top: str, suffix: str, keep: Callable[[str], bool] | None
              ) -> list[LakeFile]:
        """The files under `top` named `*suffix` in the dt partitions `keep` accepts (None:
        every partition; on S3 one recursive listing)."""
        # A local listing races with writers: a temp file renamed away, or a directory made,
        # between readdir and stat fails it with ENOENT. Listing again sees a settled state.
        for attempt in range(4):
            try:
                return self._list_once(top, suffix, keep)
            except FileNotFoundError:
                if self.is_s3 or attempt == 3:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _list_once(self, top: str, suffix: str, keep: Callable[[str], bool] | None
                   ) -> list[LakeFile]:
        top_path = f"{self._base}/{top}"
        if not self.is_s3:
            return _list_local(top_path, suffix, keep or (lambda dt: True))
        import pyarrow.fs as pafs

        with self._mapped(f"list `{self._full(top_path)}`"):
            if keep is None:  # every partition: one recursive listing, no folder listing first
                infos = self.fs.get_file_info(
                    pafs.FileSelector(top_path, recursive=True, allow_not_found=True))
                if not infos:
                    self._require_bucket()
                folders = {info.path.rpartition("/")[0] for info in infos}
                return self._listed(infos, {
                    folder: dt for folder in folders if folder.rpartition("/")[0] == top_path
                    and (dt := dt_of_dir(folder.rpartition("/")[2])) is not None}, suffix)
            entries = self.fs.get_file_info(pafs.FileSelector(top_path, allow_not_found=True))
            partitions: dict[str, str] = {}
            for entry in entries:
                dt = dt_of_dir(entry.base_name) if entry.type == pafs.FileType.Directory else None
                if dt is not None and keep(dt):
                    partitions[entry.path] = dt
            if not partitions:
                # allow_not_found also hides a missing bucket: an unset-up lake is not empty
                if not entries:
                    self._require_bucket()
                return []
            if 2 * len(partitions) > len(entries):  # most of the lake: one recursive listing
                infos = self.fs.get_file_info(
                    pafs.FileSelector(top_path, recursive=True, allow_not_found=True))
            else:
                infos = [info for listing in self._map(
                    lambda p: self.fs.get_file_info(pafs.FileSelector(p, allow_not_found=True)),
                    list(partitions)) for info in listing]
        return self._listed(infos, partitions, suffix)

    def _listed(self, infos: list[pafs.FileInfo], partitions: dict[str, str], suffix: str
                ) -> list[LakeFile]:
        """The files among `infos` directly in one of `partitions` (folder path -> dt)."""
        import pyarrow.fs as pafs

        files = []
        for info in infos:
            parent, _, base = info.path.rpartition("/")
            dt = partitions.get(parent)
            if (dt is not None and info.type == pafs.FileType.File and base.endswith(suffix)
                    and not base.startswith((".", "_"))):
                files.append(LakeFile(self._full(info.path), dt, int(info.size), info.mtime))
        return sorted(files, key=lambda f: (f.dt, f.path))

    def _map(self, fn: Callable[[str], T], items: list[str]) -> list[T]:
        if not self.is_s3 or len(items) < 2:
            return [fn(item) for item in items]
        from concurrent.futures import ThreadPoolExecutor  # S3 only: not at start-up

        with ThreadPoolExecutor(min(16, len(items))) as pool:
            return list(pool.map(fn, items))

    # -- paths and errors --------------------------------------------------------------------

    def _full(self, fs_path: str) -> str:
        return f"s3://{fs_path}" if self.is_s3 else fs_path

    def _key(self, fs_path: str) -> str:
        return fs_path[len(self._bucket) + 1:]

    def fs_path(self, path: str) -> str:
        """A full path (as listed or written) -> the path in `fs` (for engines reading the
        lake's files through `fs` themselves); LakeDataError unless it is in this lake."""
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
                raise TransientError(f"S3 failed to {action} (safe to retry): "
                                     f"{redact(str(exc))}") from exc
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

    def _require_bucket(self) -> None:
        """LakeNotFoundError when the lake's bucket does not exist. Asked with a listing under
        the lake's prefix (ListObjectsV2), not HeadBucket: a role whose s3:ListBucket is limited
        to the prefix by `s3:prefix` (infra/template.yaml) is refused HeadBucket, which carries
        no prefix."""
        prefix = self._key(self._base)
        with self._boto_errors(f"list `{self.root}`"):
            self._s3.list_objects_v2(Bucket=self._bucket, Prefix=f"{prefix}/" if prefix else "",
                                     MaxKeys=1)

    def _no_bucket(self) -> LakeNotFoundError:
        return LakeNotFoundError(f"bucket `{self._bucket}` of lake `{self.root}` does not "
                                 "exist: run `eventlake init`, or point --lake-uri "
                                 "(or EVENTLAKE_LAKE_URI) at the lake's root")

    def _arrow_error(self, exc: OSError, action: str) -> EventLakeError | None:
        text = redact(str(exc))
        if file_vanished(exc):
            return None
        if "NO_SUCH_BUCKET" in text:
            return self._no_bucket()
        if "ACCESS_DENIED" in text or "HTTP status 403" in text:
            return StorageError(f"access denied while trying to {action}: check the "
                                f"credentials and the bucket policy ({text})")
        if any(name in text for name in _ARROW_TRANSIENT) or _HTTP_5XX.search(text):
            return TransientError(f"S3 failed to {action} (safe to retry): {text}")
        return None


# -- small helpers ---------------------------------------------------------------------------

def _list_local(top_path: str, suffix: str, keep: Callable[[str], bool]) -> list[LakeFile]:
    """`LakeFS._list_once` on local disk with the os module: what pyarrow's LocalFileSystem
    lists (symlinks followed, broken ones left out, `modified` as its `mtime`), without
    importing pyarrow (`eventlake sql` on a local lake starts on DuckDB alone). A file or
    partition removed between reading a folder and looking at an entry raises
    FileNotFoundError: `_list` lists again."""
    try:
        partitions = [(entry.path, dt) for entry in os.scandir(top_path)
                      if entry.is_dir() and (dt := dt_of_dir(entry.name)) is not None
                      and keep(dt)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    files = []
    for folder, dt in partitions:
        for entry in os.scandir(folder):
            if (entry.name.endswith(suffix) and not entry.name.startswith((".", "_"))
                    and entry.is_file()):
                info = entry.stat()
                files.append(LakeFile(entry.path, dt, info.st_size,
                                      datetime.fromtimestamp(info.st_mtime_ns / 1e9, UTC)))
    return sorted(files, key=lambda f: (f.dt, f.path))


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
