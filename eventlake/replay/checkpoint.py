"""The replay's checkpoint: a local JSON file naming the last event a target acknowledged.

    {"timestamp": "...Z", "event_id": "...", "count": 1500, "offset": 123456,
     "selection": {...}}

It is written after each acknowledged batch, atomically (a temporary file in the same folder,
then `os.replace`): a process killed at any moment leaves the previous checkpoint or the new
one, never half of one. `offset` is the size of a JSONL target's file after that batch (None
for other targets); `count` the events sent so far, earlier runs included; `selection` what
was being replayed, so that a checkpoint is not resumed by a different selection.

What a process kill can leave, and why resuming is exact for a JSONL file:

    write batch -> flush -> [kill here: lines past `offset`] -> checkpoint -> next batch
    resume: truncate the file to the checkpoint's `offset`, read after its position, append

A power loss is another matter: nothing here calls fsync.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from eventlake.errors import ConfigError
from eventlake.events.times import as_utc, format_ts
from eventlake.replay.select import Position, Selection


class CheckpointError(ConfigError):
    """A checkpoint that cannot be resumed: unreadable, or written by another selection."""


@dataclass(frozen=True)
class Checkpoint:
    """The last acknowledged event, how many were sent, and the JSONL file's size then."""

    timestamp: datetime
    event_id: str
    count: int
    offset: int | None = None

    @property
    def position(self) -> Position:
        return Position(self.timestamp, self.event_id)


def load(path: str | os.PathLike[str], selection: Selection) -> Checkpoint | None:
    """The checkpoint at `path`, None when there is no file (a first run). CheckpointError when
    it was written for another selection or cannot be read."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the checkpoint `{file}` ({exc}); delete it to "
                              "replay from the start") from exc
    if data.get("selection") != selection.describe():
        raise CheckpointError(f"the checkpoint `{file}` was written by another selection "
                              f"({data.get('selection')}); use another --checkpoint path, or "
                              "delete it to replay from the start")
    try:
        offset = data.get("offset")
        return Checkpoint(as_utc(datetime.fromisoformat(data["timestamp"])),
                          str(data["event_id"]), int(data["count"]),
                          None if offset is None else int(offset))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint `{file}` is malformed ({exc!r}); delete it to "
                              "replay from the start") from exc


def save(path: str | os.PathLike[str], checkpoint: Checkpoint, selection: Selection) -> None:
    """Write `checkpoint` to `path` atomically: a temp file beside it, then os.replace."""
    file = Path(path)
    data: dict[str, Any] = {"timestamp": format_ts(checkpoint.timestamp),
                            "event_id": checkpoint.event_id, "count": checkpoint.count,
                            "offset": checkpoint.offset, "selection": selection.describe()}
    fd, temp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp",
                                dir=file.parent if str(file.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, sort_keys=True)
            out.write("\n")
        os.replace(temp, file)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
