"""Lake state: small objects under `<root>/_eventlake/<key>` (watermarks, leases), written by
compare-and-swap so two writers never both win; and whether the lake exists at all.

    S3      PUT with `If-None-Match: *` (create) or `If-Match: <ETag>` (replace); version = ETag
    local   flock on `.<key>.lock` -> compare content hash -> atomic rename; version = blake2b
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime
from typing import NamedTuple

from eventlake.aws import error_code
from eventlake.config import VERSION
from eventlake.errors import LakeNotFoundError
from eventlake.lake.fs import LakeFS, StateConflictError
from eventlake.lake.layout import EVENTS_DIR, STATE_DIR, LakeDataError, dt_of_dir

__all__ = ["LAKE_MARKER", "LakeState", "StateConflictError", "StoredState"]

LAKE_MARKER = "lake.json"
"""`<root>/_eventlake/lake.json`, written by `eventlake init`: the lake exists. Readers and
writers refuse a lake without it (or without events, for lakes made before it), so a wrong
EVENTLAKE_LAKE_URI fails loudly instead of reading nothing or archiving where nobody reads."""

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+@-]*(?:/[A-Za-z0-9][A-Za-z0-9._=+@-]*)*")


class StoredState(NamedTuple):
    """What `read_state` found: the content, and the version to pass as `expected` to replace
    it (the ETag on S3, a content hash on local disk)."""

    data: bytes
    version: str


class LakeState(LakeFS):
    """`read_state` / `write_state` of `lake.Lake`: compare-and-swap lake state by key."""

    def read_state(self, key: str) -> StoredState | None:
        """The content and version of state `key`, or None when it does not exist."""
        path = self._state_path(key)
        if self.is_s3:
            with self._boto_errors(f"read state `{key}`"):
                try:
                    got = self._s3.get_object(Bucket=self._bucket, Key=self._key(path))
                except Exception as exc:
                    if error_code(exc) == "NoSuchKey":
                        return None
                    raise
                return StoredState(got["Body"].read(), got["ETag"])
        try:
            with open(path, "rb") as f:  # local disk (no pyarrow needed to read a state)
                data = f.read()
        except FileNotFoundError:
            return None
        return StoredState(data, _version(data))

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
        import fcntl  # a writer's: not at a reader's start-up

        fd = os.open(f"{directory}/.{base}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = self.read_state(key)
            if expected is None and current is not None:
                raise StateConflictError(f"state `{key}` already exists")
            if expected is not None and (current is None or current.version != expected):
                raise StateConflictError(f"state `{key}` changed since version `{expected}`")
            self._publish(path, lambda sink: sink.write(data), False)
        finally:
            os.close(fd)
        return _version(data)

    def swap_state(self, key: str, data: bytes, *, expected: str | None) -> str:
        """`write_state`, settling the lost-to-itself case: after a conflict the state is read
        again, and when it holds exactly `data` the write landed (an S3 PUT retried after a
        lost response fails its own precondition) and its version is returned. Otherwise
        `StateConflictError` as before. Only meaningful when `data` is unique to the writer
        (a run id in it), which is how the watermark and the leases write."""
        try:
            return self.write_state(key, data, expected=expected)
        except StateConflictError:
            current = self.read_state(key)
            if current is not None and current.data == data:
                return current.version
            raise

    # -- existence -------------------------------------------------------------------------

    def create_marker(self, *, table: str) -> bool:
        """Write the lake's marker (the table it archives, when, by which eventlake) unless
        it is there; True when this call created it. The bucket must exist (`ensure_bucket`)."""
        data = json.dumps({"table": table, "created_at": datetime.now(UTC).isoformat(),
                           "eventlake_version": VERSION}, indent=2).encode()
        try:
            self.write_state(LAKE_MARKER, data, expected=None)
        except StateConflictError:
            return False
        return True

    def lake_exists(self) -> bool:
        """The lake was initialised (its marker is there) or, made before the marker, holds
        event partitions. One read, plus one listing of `events/` when the marker is absent."""
        import pyarrow.fs as pafs

        try:
            if self.read_state(LAKE_MARKER) is not None:
                return True
            with self._mapped(f"list `{self.root}/{EVENTS_DIR}`"):
                entries = self.fs.get_file_info(pafs.FileSelector(
                    f"{self._base}/{EVENTS_DIR}", allow_not_found=True))
        except LakeNotFoundError:  # no bucket
            return False
        return any(e.type == pafs.FileType.Directory and dt_of_dir(e.base_name)
                   for e in entries)

    def require_exists(self) -> None:
        """Raise LakeNotFoundError unless the lake exists (`lake_exists`)."""
        if not self.lake_exists():
            raise self.lake_not_found()

    def lake_not_found(self) -> LakeNotFoundError:
        """The error for a lake that does not exist: which root, and what to do."""
        return LakeNotFoundError(f"lake `{self.root}` does not exist: run `eventlake init`, or "
                                 "point --lake-uri (or EVENTLAKE_LAKE_URI) at the lake's root")

    def _state_path(self, key: str) -> str:
        if len(key) > 512 or not _KEY.fullmatch(key):
            raise LakeDataError(f"state key `{key}` is not valid: use `/`-separated names of "
                                "letters, digits and `._=+@-`, each starting with a letter or "
                                "digit")
        return f"{self._base}/{STATE_DIR}/{key}"


def _version(data: bytes) -> str:
    """The version of local state: its content hash (like an S3 ETag, content decides)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()
