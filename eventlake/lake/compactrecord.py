"""The record of a compaction, `_eventlake/compaction/dt=<dt>`: "these inputs are replaced by
these outputs", written before the outputs, so the next run can finish one interrupted while
deleting its inputs (`finish_interrupted`) or redo one interrupted while writing
(`recorded_inputs`: the plan may have taken held files too).

Files are named in a record by `file_identity` (name, size, time): the very file that was merged,
not another written again under its name.
"""

from __future__ import annotations

import json
from contextlib import suppress
from datetime import datetime
from typing import NamedTuple

from eventlake.events.times import as_utc
from eventlake.lake.store import Lake, LakeFile, StateConflictError
from eventlake.logs import lazy_logger

__all__ = ["CompactionRecord", "file_identity", "finish_interrupted", "read_record",
           "recorded_inputs", "write_record"]

_log = lazy_logger("eventlake.lake.compact")

# compactplan (names of compaction outputs) is imported where it is used: readers import this
# module for `file_identity` alone (lake/disjoint.py, in every `eventlake sql`'s start-up).


class CompactionRecord(NamedTuple):
    """A partition's last compaction: its inputs (by `file_identity`), its outputs (by name)."""

    inputs: set[str]
    outputs: set[str]


def _record_key(dt: str) -> str:
    return f"compaction/dt={dt}"


def write_record(lake: Lake, dt: str, inputs: list[LakeFile], outputs: list[str],
                 now: datetime) -> None:
    """Best effort: without the record, a crash while deleting leaves copies for the next
    merge of the partition to remove (readers dedupe meanwhile), never a gap."""
    data = json.dumps({"inputs": sorted(file_identity(f) for f in inputs), "outputs": outputs,
                       "at": now.isoformat()}).encode()
    for _ in range(3):
        current = lake.read_state(_record_key(dt))
        if current is not None and current.data == data:
            return
        with suppress(StateConflictError):
            lake.write_state(_record_key(dt), data,
                             expected=None if current is None else current.version)
            return
    _log.warning("could not record the compaction of dt=%s (concurrent runs?)", dt)


def read_record(lake: Lake, dt: str, files: list[LakeFile]) -> CompactionRecord | None:
    """The partition's last compaction record, when an output of one is among `files`."""
    from eventlake.lake.compactplan import is_output

    if len(files) < 2 or not any(is_output(f) for f in files):
        return None
    found = lake.read_state(_record_key(dt))
    if found is None:
        return None
    try:
        record = json.loads(found.data)
        return CompactionRecord(set(record["inputs"]), set(record["outputs"]))
    except (ValueError, KeyError, TypeError) as exc:
        _log.warning("ignoring unreadable compaction record of dt=%s: %s", dt, exc)
        return None


def finish_interrupted(lake: Lake, dt: str, files: list[LakeFile],
                       record: CompactionRecord | None) -> list[LakeFile]:
    """Delete the inputs of the partition's last compaction if all its outputs exist (it was
    interrupted while deleting); returns the files deleted."""
    from eventlake.lake.compactplan import base_name

    if record is None:
        return []
    inputs, outputs = record.inputs, record.outputs
    present = {base_name(f.path): f for f in files}
    if not outputs or not outputs <= present.keys():
        return []
    # The very file that was merged (name, size and time), not one written again under its name
    left = [f for name, f in present.items()
            if file_identity(f) in inputs and name not in outputs]
    if left:
        lake.delete([f.path for f in left])
        _log.info("dt=%s: deleted %d input(s) of an interrupted compaction", dt, len(left))
    return left


def recorded_inputs(record: CompactionRecord | None, files: list[LakeFile]) -> list[LakeFile]:
    """The inputs of the partition's last compaction when every one is still there (the very
    files): it was interrupted while writing, and its plan may have taken held files too."""
    if record is None:
        return []
    named = [f for f in files if file_identity(f) in record.inputs]
    return named if len(named) == len(record.inputs) else []


def file_identity(f: LakeFile) -> str:
    """`<name> <size> <modified>`: one file as it was, not another written under its name."""
    modified = as_utc(f.modified).isoformat() if f.modified else "?"
    return f"{f.path.rpartition('/')[2]} {f.size} {modified}"  # compactplan.base_name's name
