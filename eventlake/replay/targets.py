"""Where replayed events go.

A target gets each `Batch` through `send`; returning is the acknowledgement (the replay then
writes its checkpoint). A target that gives up on some events raises `DeliveryError` naming
them: the replay stops there, its checkpoint still at the last acknowledged batch.

Here: the base class, the errors, and the local targets: `stdout` (JSON lines), `jsonl:PATH`
(a local file, resumed exactly by truncating it to the checkpoint's offset), and any callable
taking a list of events (in the chosen shape). Each target sends events in a shape (shapes.py;
`seed` by default). `resolve.target_for` turns a name into a target; the AWS targets live in
aws/ (a package), HTTP in http.py, JSONL on S3 in s3jsonl.py.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from eventlake.errors import ConfigError, EventLakeError
from eventlake.replay.batch import Batch
from eventlake.replay.checkpoint import Checkpoint
from eventlake.replay.shapes import Shape


class TargetError(ConfigError):
    """A target that cannot be used: an unknown kind, a file that cannot resume."""


class DeliveryError(EventLakeError):
    """A target refused events and retrying did not help: the replay stops (nothing is
    skipped). `event_ids` are the events not delivered; `reason` what the target said."""

    def __init__(self, target: str, event_ids: Sequence[str], reason: str) -> None:
        self.target = target
        self.event_ids = list(event_ids)
        self.reason = reason
        self.report: Any = None
        """The replay's report up to here (set by `replay`)."""
        shown = ", ".join(f"`{e}`" for e in self.event_ids[:5])
        more = f" and {len(self.event_ids) - 5} more" if len(self.event_ids) > 5 else ""
        super().__init__(f"{target}: {len(self.event_ids)} event(s) not delivered "
                         f"({shown}{more}): {reason}")


class Target:
    """A target: `start` before the first batch (with the checkpoint resumed, if any),
    `send` each batch (returning is the acknowledgement; the result is the byte offset a
    JSONL file has reached, else None), `finish` after the last one (only when nothing
    failed), `close` at the end (always). `shape` is applied to each event (None: `seed`).

    A target that makes events durable later than `send` returns (JSONL on S3: a part of a
    multipart upload at a time) overrides `acknowledged` and `finish` to say when, and
    `resume` when it may have to start over:

        resume(checkpoint) -> [send(batch) -> acknowledged(...) -> checkpoint?]*
                           -> finish() -> checkpoint? -> close()
    """

    shape: Shape | None = None

    def describe(self) -> str:
        """What this target is, as a checkpoint records it (a resume by another target is
        refused): the qualified name of its class, unless a target says better (`stdout`,
        `jsonl:PATH`, `sqs:QUEUE`, ...). Never a password."""
        return _qualified(type(self))

    def start(self, checkpoint: Checkpoint | None) -> None:
        """Prepare to send after `checkpoint` (None: from the start)."""

    def resume(self, checkpoint: Checkpoint | None) -> Checkpoint | None:
        """`start`, then the checkpoint the replay goes on from: `checkpoint` itself, or None
        when the target cannot continue it and starts over (an S3 upload that is gone)."""
        self.start(checkpoint)
        return checkpoint

    def send(self, batch: Batch) -> int | None:
        raise NotImplementedError

    def acknowledged(self, batch: Batch, count: int, offset: int | None) -> Checkpoint | None:
        """The checkpoint to record now that `send(batch)` returned `offset` (`count`: events
        sent so far, earlier runs included), or None when nothing new is durable yet. By
        default the batch is acknowledged by returning from `send`."""
        last = batch.last
        return Checkpoint(last.timestamp, last.event_id, count, offset)

    def finish(self) -> Checkpoint | None:
        """After the last batch, when nothing failed: make what is still pending durable;
        the checkpoint to record then, or None (nothing was pending)."""
        return None

    def close(self) -> None:
        """Release what `start` took (after a failure too: then nothing is made final)."""


class StdoutTarget(Target):
    """JSON lines on a stream (standard output by default), flushed after each batch."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def describe(self) -> str:
        return "stdout"

    def send(self, batch: Batch) -> int | None:
        stream = self.stream or sys.stdout
        stream.write(batch.lines(self.shape).decode("utf-8"))
        stream.flush()
        return None


class JsonlTarget(Target):
    """JSON lines in a local file. A fresh run replaces the file; a resumed one checks that the
    file is still the one the checkpoint belongs to (the SHA-256 of its last bytes before the
    checkpoint's offset, up to `TAIL_BYTES`), then truncates it to that offset (dropping lines
    written after the last checkpoint) and appends. The checkpoint's `target` state:

        {"kind": "jsonl-file", "path": "/abs/out.jsonl", "tail_bytes": 4096, "tail_sha256": "..."}

    The digest catches a file replaced, rewritten or appended to by something else between
    runs (not a change further back than its last bytes: that would take reading the file)."""

    KIND = "jsonl-file"
    TAIL_BYTES = 4096

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[bytes] | None = None
        self._tail = b""
        """The file's last bytes (up to TAIL_BYTES) as written so far."""

    def describe(self) -> str:
        return f"jsonl:{self.path.resolve()}"

    def start(self, checkpoint: Checkpoint | None) -> None:
        self._tail = b""
        if checkpoint is None:
            self._file = self.path.open("wb")
            return
        if checkpoint.offset is None:
            raise TargetError(f"the checkpoint has no file offset: it was not written by a "
                              f"jsonl target, so `{self.path}` cannot resume from it")
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = -1
        if size < checkpoint.offset:
            raise TargetError(f"`{self.path}` holds {max(size, 0)} bytes but the checkpoint "
                              f"says {checkpoint.offset} were written: it is not the file the "
                              "checkpoint belongs to (delete the checkpoint to start over)")
        file = self.path.open("r+b")
        try:
            self._tail = self._verified_tail(file, checkpoint)
            file.truncate(checkpoint.offset)
            file.seek(checkpoint.offset)
        except BaseException:
            file.close()
            raise
        self._file = file

    def _verified_tail(self, file: IO[bytes], checkpoint: Checkpoint) -> bytes:
        """The file's bytes before the checkpoint's offset (up to TAIL_BYTES), when their
        digest is the checkpoint's; else TargetError."""
        assert checkpoint.offset is not None
        state = checkpoint.target or {}
        start_over = ("delete the checkpoint (and the file) to replay from the start, or give "
                      "this replay another --checkpoint")
        recorded = state.get("tail_sha256")
        if state.get("kind") != self.KIND or not isinstance(recorded, str):
            raise TargetError(f"the checkpoint records no digest of `{self.path}`, so the file "
                              f"cannot be checked before appending to it: {start_over}")
        length = min(self.TAIL_BYTES, checkpoint.offset)
        file.seek(checkpoint.offset - length)
        tail = file.read(length)
        if state.get("tail_bytes") != length or hashlib.sha256(tail).hexdigest() != recorded:
            was = state.get("path")
            moved = f" (it was `{was}`)" if was != str(self.path.absolute()) else ""
            raise TargetError(f"`{self.path}` is not the file the checkpoint belongs to{moved}: "
                              f"its last {length} bytes before "
                              f"offset {checkpoint.offset} differ from what the replay wrote "
                              f"(replaced or changed since): {start_over}")
        return tail

    def send(self, batch: Batch) -> int | None:
        if self._file is None:
            raise RuntimeError("JsonlTarget.send before start")
        data = batch.lines(self.shape)
        self._file.write(data)
        self._file.flush()
        keep = self.TAIL_BYTES
        self._tail = data[-keep:] if len(data) >= keep else (self._tail + data)[-keep:]
        return self._file.tell()

    def acknowledged(self, batch: Batch, count: int, offset: int | None) -> Checkpoint | None:
        """The position, the file's size and the digest of its last bytes."""
        last = batch.last
        state = {"kind": self.KIND, "path": str(self.path.absolute()),
                 "tail_bytes": len(self._tail),
                 "tail_sha256": hashlib.sha256(self._tail).hexdigest()}
        return Checkpoint(last.timestamp, last.event_id, count, offset, state)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class CallableTarget(Target):
    """Any callable taking a list of events (in the target's shape); returning is the
    acknowledgement."""

    def __init__(self, func: Callable[[list[Any]], Any]) -> None:
        self.func = func

    def describe(self) -> str:
        return f"callable:{_qualified(self.func)}"

    def send(self, batch: Batch) -> int | None:
        self.func(batch.shaped(self.shape))
        return None


def _qualified(thing: Any) -> str:
    """`module.QualifiedName` of a class or a function (a callable object: of its class)."""
    named = thing if hasattr(thing, "__qualname__") else type(thing)
    module = getattr(named, "__module__", None) or getattr(type(thing), "__module__", "?")
    return f"{module}.{named.__qualname__}"
