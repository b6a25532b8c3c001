"""Export to S3 (`--out s3://bucket/key`): the export is written to a local temporary folder
(run.py's `_staging`) as for a local path, then uploaded with boto3's managed transfer
(multipart for large files, several files at once) through the project's S3 client (endpoint
and retries from Settings).

    one file      one object at `key`. S3 makes an object visible whole: readers see the old
                  object or the new one, never part of it (as a local rename)
    partitioned   one object per file under `key/`, then the empty `key/_SUCCESS` last (the
                  Hadoop/Spark convention). S3 has no rename: readers wait for `_SUCCESS`

An existing destination (the object `key`, or any object under `key/`) is refused unless
`overwrite`. Overwriting deletes the old `_SUCCESS` first (the folder then reads as incomplete),
uploads the new files, deletes the old keys the new export does not have, and writes `_SUCCESS`
last. A failure deletes every object it uploaded and writes no `_SUCCESS`: a new destination is
left empty; an overwritten folder keeps what remains of the old export, without `_SUCCESS`
(export again); an overwritten single object keeps the old object unless the upload had
replaced it. Once a single object is uploaded it stays: a failure to delete what an older
partitioned export left under `key/` then says so, naming the keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eventlake.aws import error_code, is_transient
from eventlake.config import redact
from eventlake.errors import ConfigError, EventLakeError, StorageError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SUCCESS = "_SUCCESS"
"""The marker a partitioned export writes last: its folder is complete once it exists."""
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys


class UploadError(EventLakeError):
    """An upload to S3 failed; what it had uploaded was deleted."""


@dataclass(frozen=True)
class S3Target:
    """Where an export goes on S3: one object `key`, or (partitioned) the objects under `key/`."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> S3Target:
        """`s3://bucket/key`; ConfigError for a URL without a bucket or a key, or a key
        ending in `/` (name the object, or the partitioned export's folder without it)."""
        bucket, _, key = url.removeprefix("s3://").partition("/")
        if not bucket or not key or key.endswith("/"):
            raise ConfigError(f"--out `{url}`: name the bucket and the object (or, partitioned, "
                              "the folder) without a trailing `/`, e.g. "
                              "s3://bucket/exports/day.parquet")
        return cls(bucket, key)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        """The key's last part: the local temporary file's (or folder's) name."""
        return self.key.rpartition("/")[2]


def is_s3_url(out: object) -> bool:
    return str(out).startswith("s3://")


def existing_keys(s3: S3Client, target: S3Target) -> list[str]:
    """The object `key` (when it exists) and every key under `key/`."""
    with _mapped(target, "list the destination"):
        found = []
        try:
            s3.head_object(Bucket=target.bucket, Key=target.key)
            found.append(target.key)
        except Exception as exc:
            if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=target.bucket,
                                                              Prefix=target.key + "/")
        found += [o["Key"] for page in pages for o in page.get("Contents", [])]
    return found


def upload(s3: S3Client, local: Path, target: S3Target, existing: Sequence[str]) -> list[str]:
    """Upload `local` (a file, or a folder: partitioned) to `target`, replacing the export at
    `existing` (its keys, from `existing_keys`); the keys written, `_SUCCESS` last. See the
    module docstring for the order and what a failure leaves."""
    if local.is_dir():
        files = {f"{target.key}/{p.relative_to(local).as_posix()}": p
                 for p in sorted(local.rglob("*")) if p.is_file()}
        success: str | None = f"{target.key}/{SUCCESS}"
    else:
        files, success = {target.key: local}, None
    uploaded: list[str] = []
    try:
        with _mapped(target, "upload the export"):
            if success is not None and success in existing:
                _delete(s3, target.bucket, [success])
            _upload_files(s3, target.bucket, files, uploaded)
            keep = set(files) | {success}
            stale = [k for k in existing if k not in keep]
            if success is None:  # the new object is in place, whole: keep it whatever follows
                uploaded = []
                _delete_stale(s3, target, stale)
                return [target.key]
            _delete(s3, target.bucket, stale)
            s3.put_object(Bucket=target.bucket, Key=success, Body=b"")
            uploaded.append(success)
    except BaseException as exc:
        left = _delete_quietly(s3, target.bucket, uploaded)
        if left:
            raise UploadError(f"export to `{target.url}` failed ({redact(str(exc))}), and "
                              f"{len(left)} uploaded object(s) could not be deleted: "
                              f"{', '.join(left[:5])}; delete them") from exc
        raise
    return uploaded


def _delete_stale(s3: S3Client, target: S3Target, stale: Sequence[str]) -> None:
    """Delete the keys a single-object export leaves from the partitioned export it replaced
    (under `key/`); a failure says the new object is in place and which keys remain."""
    try:
        _delete(s3, target.bucket, stale)
    except Exception as exc:
        raise StorageError(f"the export is in place at `{target.url}`, but the old export's "
                           f"objects under `{target.key}/` could not all be deleted "
                           f"({redact(str(exc))}): delete them ({', '.join(stale[:5])}"
                           f"{', ...' if len(stale) > 5 else ''})") from exc


def _upload_files(s3: S3Client, bucket: str, files: dict[str, Path],
                  uploaded: list[str]) -> None:
    """Upload `files` (key -> path) at once with a managed transfer, appending to `uploaded`
    the keys whose object was written (also when another fails: the first failure cancels the
    rest, and is raised once they stopped)."""
    from boto3.s3.transfer import TransferConfig, create_transfer_manager

    futures = []
    try:
        # the context manager, not shutdown(cancel=True): s3transfer's shutdown passes
        # its arguments to _shutdown in the wrong order (seen on 0.19.3)
        with create_transfer_manager(s3, TransferConfig()) as manager:
            futures = [(key, manager.upload(str(path), bucket, key))
                       for key, path in files.items()]
            for _, future in futures:
                future.result()
    finally:
        for key, future in futures:
            try:
                future.result()
            except BaseException:
                continue
            uploaded.append(key)


def _delete(s3: S3Client, bucket: str, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = keys[start:start + _DELETE_BATCH]
        answer = s3.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": k} for k in batch], "Quiet": True})
        errors = answer.get("Errors", [])
        if errors:
            first = errors[0]
            raise StorageError(f"could not delete `s3://{bucket}/{first.get('Key')}` (and "
                               f"{len(errors) - 1} more): {first.get('Code')} "
                               f"{first.get('Message', '')}".rstrip())


def _delete_quietly(s3: S3Client, bucket: str, keys: Sequence[str]) -> list[str]:
    """Delete `keys`; those it could not delete."""
    try:
        _delete(s3, bucket, keys)
    except Exception:
        return list(keys)
    return []


@contextmanager
def _mapped(target: S3Target, action: str) -> Iterator[None]:
    """S3's errors as eventlake's (the message names the destination and what to do)."""
    try:
        yield
    except EventLakeError:
        raise
    except Exception as exc:
        code = error_code(exc)
        where = f"`{target.url}`"
        error: EventLakeError
        if code == "NoSuchBucket":
            error = ConfigError(f"--out {where}: bucket `{target.bucket}` does not exist; create "
                                "it, or choose another --out")
        elif code in ("AccessDenied", "403"):
            error = StorageError(f"access denied while trying to {action} {where}: check the "
                                 "credentials and the bucket policy")
        elif is_transient(exc):
            error = TransientError(f"S3 failed to {action} {where} (safe to retry): "
                                   f"{redact(str(exc))}")
        elif code is not None:
            error = StorageError(f"S3 refused to {action} {where}: {redact(str(exc))}")
        else:
            raise
        raise error from exc
