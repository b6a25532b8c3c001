"""The replay's checkpoint: a small JSON document naming the last event a target acknowledged,
in a local file or an S3 object (`s3://bucket/key`).

    {"timestamp": "...Z", "event_id": "...", "count": 1500, "offset": 123456,
     "selection": {...}}                       (+ "target": {...} when the target keeps state)

It is written after each acknowledged batch, atomically: a local file through a temporary file
in the same folder and `os.replace`; an S3 object by PutObject, which S3 applies whole (a reader
gets the old object or the new one). A process killed at any moment leaves the previous
checkpoint or the new one, never half of one. `offset` is the size of a local JSONL target's
file after that batch (None for other targets); `count` the events sent so far, earlier runs
included; `target` what a target needs to resume besides the position (JSONL on S3: its
multipart upload); `selection` what was being replayed, so that a checkpoint is not resumed by
a different selection.

What a process kill can leave, and why resuming is exact for a JSONL file:

    write batch -> flush -> [kill here: lines past `offset`] -> checkpoint -> next batch
    resume: truncate the file to the checkpoint's `offset`, read after its position, append

A power loss is another matter: nothing here calls fsync.
"""

from __future__ import annotations

import contextlib
import functools
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


class CheckpointError(ConfigError):
    """A checkpoint that cannot be resumed: unreadable, or written by another selection."""


@dataclass(frozen=True)
class Checkpoint:
    """The last acknowledged event, how many were sent, the JSONL file's size then, and the
    target's own resume state (None for most targets)."""

    timestamp: datetime
    event_id: str
    count: int
    offset: int | None = None
    target: dict[str, Any] | None = None

    @property
    def position(self) -> Position:
        return Position(self.timestamp, self.event_id)


def load(path: str | os.PathLike[str], selection: Selection,
         clients: Clients | None = None) -> Checkpoint | None:
    """The checkpoint at `path` (local, or s3:// read with `clients`, default: from the
    environment), None when there is none (a first run). CheckpointError when it was written
    for another selection or cannot be read."""
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
    return None if text is None else parse(text, selection, str(path))


def save(path: str | os.PathLike[str], checkpoint: Checkpoint, selection: Selection,
         clients: Clients | None = None) -> None:
    """Write `checkpoint` to `path` atomically: a local file through a temp file beside it and
    os.replace; s3:// with one PutObject (through `clients`, default: from the environment)."""
    text = dumps(checkpoint, selection)
    if _is_s3(path):
        bucket, key = _split(str(path))
        (clients or _clients()).s3.put_object(Bucket=bucket, Key=key, Body=text.encode(),
                                              ContentType="application/json")
        return
    file = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp",
                                dir=file.parent if str(file.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, file)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def held(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Hold the local checkpoint `path` for one replay: an exclusive lock on `PATH.lock` beside
    it (kept there; the lock, not the file, is what counts), so a second replay given the same
    checkpoint at the same time stops with CheckpointError instead of interleaving with the
    first (two writers would break both the file target and the checkpoint). The lock goes with
    the process, a killed one included. S3 checkpoints take no lock (say so: README)."""
    if path is None or _is_s3(path):
        yield
        return
    import fcntl

    lock = Path(f"{os.fspath(path)}.lock")
    with lock.open("a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointError(f"another replay is using the checkpoint `{path}` (it holds "
                                  f"`{lock}`); wait for it, or give this one another "
                                  "--checkpoint") from None
        yield


def dumps(checkpoint: Checkpoint, selection: Selection) -> str:
    """The checkpoint's JSON document (one line)."""
    data: dict[str, Any] = {"timestamp": format_ts(checkpoint.timestamp),
                            "event_id": checkpoint.event_id, "count": checkpoint.count,
                            "offset": checkpoint.offset, "selection": selection.describe()}
    if checkpoint.target is not None:
        data["target"] = checkpoint.target
    return json.dumps(data, sort_keys=True) + "\n"


def parse(text: str, selection: Selection, where: str) -> Checkpoint:
    """The checkpoint in `text` (read from `where`), refused when written for another
    selection."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise CheckpointError(f"cannot read the checkpoint `{where}` ({exc}); delete it to "
                              "replay from the start") from exc
    if data.get("selection") != selection.describe():
        raise CheckpointError(f"the checkpoint `{where}` was written by another selection "
                              f"({data.get('selection')}); use another --checkpoint path, or "
                              "delete it to replay from the start")
    try:
        offset, target = data.get("offset"), data.get("target")
        if target is not None and not isinstance(target, dict):
            raise TypeError(f"`target` is {target!r}, not an object")
        return Checkpoint(as_utc(datetime.fromisoformat(data["timestamp"])),
                          str(data["event_id"]), int(data["count"]),
                          None if offset is None else int(offset), target)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint `{where}` is malformed ({exc!r}); delete it to "
                              "replay from the start") from exc


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
