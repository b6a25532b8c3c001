"""The replay's checkpoint: a small JSON document naming the last event a target acknowledged,
in a local file or an S3 object (`s3://bucket/key`).

    {"version": 3, "timestamp": "...Z", "event_id": "...", "count": 1500,
     "digest": "9f86d081884c7d65", "offset": 123456, "selection": {...},
     "sink": "jsonl:out.jsonl", "shape": "seed",
     "target": {...}}                          ("target" only when the target keeps state)

It is written after each acknowledged batch, atomically: a local file through a temporary file
in the same folder and `os.replace`; an S3 object by PutObject, which S3 applies whole (a reader
gets the old object or the new one). A process killed at any moment leaves the previous
checkpoint or the new one, never half of one. `offset` is the size of a local JSONL target's
file after that batch (None for other targets); `count` the events sent so far, earlier runs
included; `target` what a target needs to resume besides the position (a local JSONL file: a
digest of its bytes before `offset`; JSONL on S3: its multipart upload). `selection`, `sink`
(the target, any password redacted) and `shape` say what was replayed where and how: a
checkpoint is resumed only by the same replay, since another target would silently miss the
events before the position and another shape would mix shapes in one output.

`digest` (version 3) is the XOR of the identities (select.IDENTITY_SQL) of the `count` events
sent, 16 hex digits: a resumed run compares it with the events at or before the position now, so
a late event and a vanished one that leave the count equal are still seen. A version 1
checkpoint (no `version`, no `digest`) resumes as before, checked by its count alone, and so do
the checkpoints a run resumed from it writes (it cannot know the digest of what was sent
before). So does a version 2 one: its digest is of an earlier identity (an MD5 of the event_id
and content_hash), which compared with today's would report events late and vanished that are
not. A version above VERSION is refused: a newer eventlake wrote it.

A checkpoint without `sink` and `shape` (written before they were recorded) is refused:
eventlake is not released, no such checkpoint exists outside its own history, and accepting
one would accept exactly the mismatch this guards against.

What a process kill can leave, and why resuming is exact for a JSONL file:

    write batch -> flush -> [kill here: lines past `offset`] -> checkpoint -> next batch
    resume: check the digest of the bytes before the checkpoint's `offset`, truncate the file
            to it, read after its position, append

A power loss is another matter: nothing here calls fsync.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventlake.aws import Clients, error_code
from eventlake.errors import ConfigError
from eventlake.events.times import as_utc, format_ts
from eventlake.replay.select import Position, Selection

if TYPE_CHECKING:
    from eventlake.config import Settings


VERSION = 3
"""The checkpoint format `dumps` writes (1: no `version` field, no `digest`; 2: a digest of
another identity, not compared)."""
DIGEST_FROM = 3
"""The first format whose `digest` is of select.IDENTITY_SQL's identity."""


class CheckpointError(ConfigError):
    """A checkpoint that cannot be resumed or written: unreadable, malformed, written by
    another replay (selection, target, shape), or a location that cannot be written."""


@dataclass(frozen=True)
class Checkpoint:
    """The last acknowledged event, how many were sent, the JSONL file's size then, the
    target's own resume state (None for most targets), and the digest of the identities of the
    events sent (None: unknown, a version 1 checkpoint or one resumed from it)."""

    timestamp: datetime
    event_id: str
    count: int
    offset: int | None = None
    target: dict[str, Any] | None = None
    digest: int | None = None

    @property
    def position(self) -> Position:
        return Position(self.timestamp, self.event_id)


def load(path: str | os.PathLike[str], selection: Selection,
         clients: Clients | None = None, *, sink: str | None = None,
         shape: str | None = None) -> Checkpoint | None:
    """The checkpoint at `path` (local, or s3:// read with `clients`, default: from the
    environment), None when there is none (a first run). CheckpointError when it cannot be
    read, is malformed, or was written for another selection, or (when given) another `sink`
    (target name) or `shape`."""
    if _is_s3(path):
        text = _read_s3(str(path), clients)
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read the checkpoint `{path}` ({exc}); delete it "
                                  "to replay from the start") from exc
    return None if text is None else parse(text, selection, str(path), sink=sink, shape=shape)


def save(path: str | os.PathLike[str], checkpoint: Checkpoint, selection: Selection,
         clients: Clients | None = None, *, sink: str | None = None,
         shape: str | None = None) -> None:
    """Write `checkpoint` (of `selection`, sent to `sink` in `shape`, when given) to `path`
    atomically: a local file through a temp file beside it and os.replace; s3:// with one
    PutObject (through `clients`, default: from the environment). A local file that cannot be
    written: CheckpointError naming `path`."""
    text = dumps(checkpoint, selection, sink=sink, shape=shape)
    if _is_s3(path):
        bucket, key = _split(str(path))
        (clients or _clients()).s3.put_object(Bucket=bucket, Key=key, Body=text.encode(),
                                              ContentType="application/json")
        return
    file = Path(path)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=_folder(file))
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, file)
    except BaseException as exc:
        Path(temp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unwritable(path, exc) from exc
        raise


def check_writable(path: str | os.PathLike[str]) -> None:
    """Refuse, before anything is sent, a local checkpoint that `save` could not write: its
    folder missing, or no permission to create a file in it (a replay would otherwise send its
    first batch and then stop, unable to record it). s3:// is not probed: that would take a
    write; a bucket that refuses it stops the replay at its first checkpoint, with the report."""
    if _is_s3(path):
        return
    file = Path(path)
    folder = Path(_folder(file))
    if not folder.is_dir():
        raise CheckpointError(f"cannot write the checkpoint `{path}`: the folder `{folder}` "
                              "does not exist (or is not a folder); create it or give another "
                              "--checkpoint")
    if file.is_dir():
        raise CheckpointError(f"cannot write the checkpoint `{path}`: it is a folder; give a "
                              "file path as --checkpoint")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _unwritable(path, exc) from exc


@contextlib.contextmanager
def held(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Hold the local checkpoint `path` for one replay: an exclusive lock on `PATH.lock` beside
    it (kept there; the lock, not the file, is what counts), so a second replay given the same
    checkpoint at the same time stops with CheckpointError instead of interleaving with the
    first (two writers would break both the file target and the checkpoint). The lock goes with
    the process, a killed one included. Once held, the temp files of `save`s killed before
    their rename are removed (no live replay writes them: the lock says so). S3 checkpoints
    take no lock (say so: README). A location that cannot be written is refused first
    (`check_writable`)."""
    if path is None or _is_s3(path):
        yield
        return
    import fcntl

    check_writable(path)
    lock = Path(f"{os.fspath(path)}.lock")
    try:
        file = lock.open("a+")
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointError(f"another replay is using the checkpoint `{path}` (it holds "
                                  f"`{lock}`); wait for it, or give this one another "
                                  "--checkpoint") from None
        _remove_temps(Path(path))
        yield


def _remove_temps(file: Path) -> None:
    """Delete the temp files `save` left beside `file` when killed before its rename
    (mkstemp's names: `.NAME.`, 8 letters, digits or `_`, `.tmp`)."""
    prefix, suffix = f".{file.name}.", ".tmp"
    for temp in Path(_folder(file)).glob(f"{glob.escape(prefix)}*{suffix}"):
        middle = temp.name[len(prefix):-len(suffix)]
        if len(middle) == 8 and all(c.isalnum() or c == "_" for c in middle):
            temp.unlink(missing_ok=True)


def dumps(checkpoint: Checkpoint, selection: Selection, *, sink: str | None = None,
          shape: str | None = None) -> str:
    """The checkpoint's JSON document (one line)."""
    data: dict[str, Any] = {"version": VERSION, "timestamp": format_ts(checkpoint.timestamp),
                            "event_id": checkpoint.event_id, "count": checkpoint.count,
                            "offset": checkpoint.offset, "selection": selection.describe()}
    if sink is not None:
        data["sink"] = sink
    if shape is not None:
        data["shape"] = shape
    if checkpoint.target is not None:
        data["target"] = checkpoint.target
    if checkpoint.digest is not None:
        data["digest"] = f"{checkpoint.digest:016x}"
    return json.dumps(data, sort_keys=True) + "\n"


def parse(text: str, selection: Selection, where: str, *, sink: str | None = None,
          shape: str | None = None) -> Checkpoint:
    """The checkpoint in `text` (read from `where`), refused when written for another
    selection, or (when given) another `sink` or `shape`, or when a value is malformed."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise CheckpointError(f"cannot read the checkpoint `{where}` ({exc}); delete it to "
                              "replay from the start") from exc
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _malformed(where, "version", version, f"a whole number from 1 to {VERSION}")
    if version > VERSION:
        raise CheckpointError(f"the checkpoint `{where}` is of format version {version}, newer "
                              f"than this eventlake reads ({VERSION}): resume it with the "
                              "eventlake that wrote it, or delete it to replay from the start")
    if data.get("selection") != selection.describe():
        raise CheckpointError(f"the checkpoint `{where}` was written by another selection "
                              f"({data.get('selection')}); use another --checkpoint path, or "
                              "delete it to replay from the start")
    for name, expected, what in (("sink", sink, "target"), ("shape", shape, "shape")):
        if expected is None:
            continue
        recorded = data.get(name)
        if recorded is None:
            raise CheckpointError(f"the checkpoint `{where}` does not say which {what} it was "
                                  "written for (an earlier eventlake wrote it), so resuming "
                                  f"into {what} `{expected}` could skip or mix events; delete "
                                  "it to replay from the start")
        if recorded != expected:
            raise CheckpointError(f"the checkpoint `{where}` was written for the {what} "
                                  f"`{recorded}`, not `{expected}`: resuming would skip the "
                                  "events before it (or mix shapes); use another --checkpoint "
                                  "path, or delete it to replay from the start")
    return Checkpoint(_timestamp(data, selection, where), _event_id(data, where),
                      _count(data, where), _offset(data, where), _target(data, where),
                      _digest(data, where) if version >= DIGEST_FROM else None)


def _malformed(where: str, field: str, value: Any, expected: str) -> CheckpointError:
    return CheckpointError(f"the checkpoint `{where}` is malformed: `{field}` is {value!r}, "
                           f"expected {expected}; delete it to replay from the start")


def _timestamp(data: dict[str, Any], selection: Selection, where: str) -> datetime:
    value = data.get("timestamp")
    expected = (f"an RFC 3339 time in the selection [{format_ts(selection.from_ts)}, "
                f"{format_ts(selection.to_ts)})")
    if not isinstance(value, str):
        raise _malformed(where, "timestamp", value, expected)
    try:
        moment = as_utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise _malformed(where, "timestamp", value, expected) from exc
    if not selection.from_ts <= moment < selection.to_ts:
        raise _malformed(where, "timestamp", value, expected)
    return moment


def _event_id(data: dict[str, Any], where: str) -> str:
    value = data.get("event_id")
    if not isinstance(value, str) or not value:
        raise _malformed(where, "event_id", value, "a non-empty string")
    return value


def _count(data: dict[str, Any], where: str) -> int:
    value = data.get("count")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _malformed(where, "count", value, "a whole number >= 0")
    return value


def _offset(data: dict[str, Any], where: str) -> int | None:
    value = data.get("offset")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 0):
        raise _malformed(where, "offset", value, "null or a whole number of bytes >= 0")
    return value


def _target(data: dict[str, Any], where: str) -> dict[str, Any] | None:
    value = data.get("target")
    if value is not None and not isinstance(value, dict):
        raise _malformed(where, "target", value, "null or an object")
    return value


def _digest(data: dict[str, Any], where: str) -> int | None:
    value = data.get("digest")
    if value is None:
        return None
    if (not isinstance(value, str) or len(value) != 16
            or value.strip("0123456789abcdef")):
        raise _malformed(where, "digest", value, "null or 16 lower-case hex digits")
    return int(value, 16)


def _folder(file: Path) -> str:
    return str(file.parent) if str(file.parent) else "."


def _unwritable(path: str | os.PathLike[str], exc: OSError) -> CheckpointError:
    reason = exc.strerror or str(exc)
    return CheckpointError(f"cannot write the checkpoint `{path}` ({reason}); check the "
                           "folder's permissions, or give another --checkpoint")


def _is_s3(path: str | os.PathLike[str]) -> bool:
    return isinstance(path, str) and path.startswith("s3://")


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key or key.endswith("/"):
        raise CheckpointError(f"checkpoint `{uri}`: expected s3://bucket/key (an object, not a "
                              "folder)")
    return bucket, key


def _read_s3(uri: str, clients: Clients | None) -> str | None:
    """The object's text, None when there is no such key."""
    bucket, key = _split(uri)
    try:
        body = (clients or _clients()).s3.get_object(Bucket=bucket, Key=key)["Body"]
        return body.read().decode("utf-8")
    except Exception as exc:
        code = error_code(exc)
        if code in ("NoSuchKey", "404"):
            return None
        if code == "NoSuchBucket":
            raise CheckpointError(f"checkpoint `{uri}`: the bucket `{bucket}` does not exist; "
                                  "create it or use another --checkpoint") from exc
        if isinstance(exc, UnicodeDecodeError):
            raise CheckpointError(f"cannot read the checkpoint `{uri}` ({exc}); delete it to "
                                  "replay from the start") from exc
        raise


def _clients() -> Clients:
    """Clients from the environment, the same for equal Settings: a replay called without
    `clients` saves a checkpoint per batch, and building a boto3 client costs ~0.4 s."""
    from eventlake.config import Settings

    return _clients_for(Settings.from_env())


@functools.lru_cache(maxsize=4)
def _clients_for(settings: Settings) -> Clients:
    return Clients(settings)
