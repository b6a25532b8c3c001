"""Where replayed events go, and the shape they take there.

Targets (`target_for`): `stdout` (JSON lines), `jsonl:PATH` (a local file; resumed exactly by
truncating to the checkpoint's offset), or any callable taking a list of event dicts. A target
acknowledges a batch by returning from `send`; the replay then writes its checkpoint.

Shape `seed`: the event as the seed describes it, `event_payload` a JSON object again
(parsed with `loads_exact`: big and precise numbers stay exact), `timestamp` ISO 8601 in UTC
with `Z` and microseconds. JSON lines are canonical JSON (sorted keys, exact numbers).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from eventlake.errors import ConfigError
from eventlake.events.canonical import canonical_json, loads_exact
from eventlake.events.times import format_ts
from eventlake.replay.checkpoint import Checkpoint

Event = dict[str, Any]


class TargetError(ConfigError):
    """A target that cannot be used: an unknown kind, a file that cannot resume."""


def seed_events(batch: pa.RecordBatch) -> list[Event]:
    """The `seed` shape of each row of `batch` (the columns of `select.COLUMNS`)."""
    return [{"event_id": row["event_id"], "event_type": row["event_type"],
             "timestamp": format_ts(row["timestamp"]),
             "event_payload": loads_exact(row["event_payload"]),
             "source": row["source"], "subject": row["subject"]}
            for row in batch.to_pylist()]


def json_lines(events: list[Event]) -> str:
    return "".join(canonical_json(event) + "\n" for event in events)


class Target:
    """A target: `start` before the first batch (with the checkpoint resumed, if any),
    `send` each batch (returning is the acknowledgement; the result is the byte offset a
    JSONL file has reached, else None), `close` at the end."""

    def start(self, checkpoint: Checkpoint | None) -> None:
        """Prepare to send after `checkpoint` (None: from the start)."""

    def send(self, events: list[Event]) -> int | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what `start` took."""


class StdoutTarget(Target):
    """JSON lines on a stream (standard output by default), flushed after each batch."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def send(self, events: list[Event]) -> int | None:
        stream = self.stream or sys.stdout
        stream.write(json_lines(events))
        stream.flush()
        return None


class JsonlTarget(Target):
    """JSON lines in a local file. A fresh run replaces the file; a resumed one truncates it
    to the checkpoint's offset (dropping lines written after the last checkpoint) and appends."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[bytes] | None = None

    def start(self, checkpoint: Checkpoint | None) -> None:
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
        file.truncate(checkpoint.offset)
        file.seek(checkpoint.offset)
        self._file = file

    def send(self, events: list[Event]) -> int | None:
        if self._file is None:
            raise RuntimeError("JsonlTarget.send before start")
        self._file.write(json_lines(events).encode("utf-8"))
        self._file.flush()
        return self._file.tell()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class CallableTarget(Target):
    """Any callable taking a list of event dicts; returning is the acknowledgement."""

    def __init__(self, func: Callable[[list[Event]], Any]) -> None:
        self.func = func

    def send(self, events: list[Event]) -> int | None:
        self.func(events)
        return None


def target_for(spec: str | Target | Callable[[list[Event]], Any]) -> Target:
    """The target `spec` names: `stdout`, `jsonl:PATH`, a Target, or a callable."""
    if isinstance(spec, Target):
        return spec
    if not isinstance(spec, str):
        if callable(spec):
            return CallableTarget(spec)
        raise TargetError(f"target {spec!r} is neither a name nor a callable")
    kind, sep, rest = spec.partition(":")
    if spec == "stdout":
        return StdoutTarget()
    if kind == "jsonl" and sep and rest:
        if "://" in rest:
            raise TargetError(f"target `{spec}`: only local paths are supported so far "
                              "(s3:// is not done yet)")
        return JsonlTarget(rest)
    raise TargetError(f"unknown target `{spec}`; expected one of: stdout, jsonl:PATH "
                      "(or, in Python, a callable taking a list of events)")
