"""Which files of a partition compaction merges, into which outputs, under which names.

    fits        all files together <= target_bytes   -> every file is an input: one output
    too big     otherwise                            -> only the small files are inputs; the
                                                        large ones (earlier outputs) are held
    copies      held files storing an event_id       -> inputs too (a backfill racing a sweep);
                another held file stores                held files sharing ids only with
                                                        inputs stay: the inputs drop their copies
    outputs     `compacted-<digest>-<k>-of-<n>.parquet`, digest = sha256 of the sorted input
                names, n = ceil(input bytes / target_bytes), inputs split into n runs of
                about equal bytes

Because a name says which inputs it came from, a run interrupted while writing is recognised
by the next one: outputs whose digest is that of exactly the other small files, or of the
inputs the partition's compaction record names (a plan that took held files too).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from eventlake.events import canonical
from eventlake.lake.fs import LakeFile

__all__ = [
    "DEFAULT_MIN_FILES",
    "DEFAULT_SMALL_FILE_BYTES",
    "DEFAULT_TARGET_BYTES",
    "NO_COPIES",
    "Copies",
    "Plan",
    "base_name",
    "is_output",
    "needs_compaction",
    "plan_partition",
]

DEFAULT_MIN_FILES = 4
DEFAULT_SMALL_FILE_BYTES = 32 * 1024 * 1024
DEFAULT_TARGET_BYTES = 128 * 1024 * 1024
_OUTPUT = re.compile(r"compacted-([0-9a-f]{16})-\d+-of-\d+\.parquet")


def needs_compaction(files: Sequence[LakeFile], *, min_files: int, small_file_bytes: int,
                     target_bytes: int = DEFAULT_TARGET_BYTES) -> bool:
    """Whether `compact` merges these files of one partition (all of them old enough).

    The inputs are every file when together they fit in one `target_bytes` file, else only
    the files smaller than `small_file_bytes`. A merge needs at least `max(2, min_files)`
    inputs, one of them small. So one file, or files all large, are already compacted; a busy
    partition is rewritten once per `min_files` new files, not once per file; and a big one
    only has its small files merged, never its large ones rewritten. For days that are closed
    (no more writes), `min_files=2` turns their last few files into one.
    """
    inputs, _ = _select(files, small_file_bytes, target_bytes)
    return len(inputs) >= max(2, min_files) and any(f.size < small_file_bytes for f in inputs)


@dataclass(frozen=True)
class Copies:
    """Whether a partition's files store an event_id twice, and where."""

    found: bool
    """Some event_id is stored twice among the files asked about."""
    held: tuple[LakeFile, ...]
    """The held files storing an event_id another held file stores: they are merged too."""


NO_COPIES = Copies(False, ())


@dataclass(frozen=True)
class Plan:
    """What one partition's compaction merges."""

    inputs: list[LakeFile]
    """Merged, then deleted."""
    held: list[LakeFile]
    """Large files that stay: input rows whose event_id they store are not written again."""
    digest: str
    leftovers: list[LakeFile]
    """Outputs of an interrupted run of this very plan: rewritten, or deleted if not."""

    def groups(self, target_bytes: int) -> list[list[int]]:
        """Input indexes per output: consecutive runs of about equal bytes, each about
        `target_bytes` or less (estimated by input bytes: inputs that fit make one group)."""
        total = sum(f.size for f in self.inputs)
        count = max(1, math.ceil(total / target_bytes))
        groups: list[list[int]] = [[] for _ in range(count)]
        before = 0
        for index, f in enumerate(self.inputs):
            groups[min(count - 1, int((before + f.size / 2) * count / max(total, 1)))].append(
                index)
            before += f.size
        return [g for g in groups if g]

    def output_name(self, k: int, of: int) -> str:
        return f"compacted-{self.digest}-{k}-of-{of}.parquet"


def plan_partition(files: list[LakeFile], *, min_files: int, small_file_bytes: int,
                   target_bytes: int, now: datetime, min_age_seconds: float,
                   holds_copies: Callable[[list[LakeFile], list[LakeFile]], Copies]
                   | None = None, recorded: Sequence[LakeFile] = ()) -> Plan | None:
    """The plan for one partition's files, or None when it needs no compaction. Files younger
    than `min_age_seconds` at `now` are left out; an interrupted plan is taken up again
    (`recorded`: the inputs the partition's compaction record names, all still there).

    `holds_copies(inputs, held)` says where the files store an event twice. It is asked of a
    partition the thresholds would skip (all its files): one holding copies is merged anyway,
    whatever its file count, so that a plain scan of the lake counts each event once. And it is
    asked of the held files of one they take (`inputs` empty): held files storing an event
    another held file stores are merged too; the others are never rewritten."""
    eligible = [f for f in files if _old_enough(f, now, min_age_seconds)]
    earlier: dict[str, list[LakeFile]] = defaultdict(list)
    for f in files:
        match = _OUTPUT.fullmatch(base_name(f.path))
        if match:
            earlier[match.group(1)].append(f)
    for digest, outputs in earlier.items():  # outputs named from exactly the other files?
        rest = [f for f in eligible if f not in outputs]
        inputs, held = _select(rest, small_file_bytes, target_bytes)
        if inputs and _digest(inputs) == digest:
            return Plan(inputs, held, digest, outputs)
        if recorded and _digest(recorded) == digest and all(f in rest for f in recorded):
            return Plan(list(recorded), [f for f in rest if f not in recorded], digest, outputs)
    inputs, held = _select(eligible, small_file_bytes, target_bytes)
    take = needs_compaction(eligible, min_files=min_files, small_file_bytes=small_file_bytes,
                            target_bytes=target_bytes)
    if holds_copies is not None and (len(held) > 1 or not take):
        copies = holds_copies([] if take else inputs, held)
        take = take or copies.found
        if copies.held:
            inputs = [f for f in eligible if f in inputs or f in copies.held]
            held = [f for f in held if f not in copies.held]
    if not take or not inputs:
        return None
    return Plan(inputs, held, _digest(inputs), [])


def is_output(f: LakeFile) -> bool:
    """Whether `f` was written by a compaction."""
    return _OUTPUT.fullmatch(base_name(f.path)) is not None


def base_name(path: str) -> str:
    return path.rpartition("/")[2]


def _select(files: Sequence[LakeFile], small_file_bytes: int, target_bytes: int
            ) -> tuple[list[LakeFile], list[LakeFile]]:
    """(inputs, held): the files to merge, and the large files left as they are."""
    if sum(f.size for f in files) <= target_bytes:
        return list(files), []
    return ([f for f in files if f.size < small_file_bytes],
            [f for f in files if f.size >= small_file_bytes])


def _old_enough(f: LakeFile, now: datetime, min_age_seconds: float) -> bool:
    # A file of unknown age counts as settled: the age only spares fresh files a rewrite.
    return (min_age_seconds <= 0 or f.modified is None
            or (now - f.modified).total_seconds() >= min_age_seconds)


def _digest(inputs: Sequence[LakeFile]) -> str:
    names = "\n".join(sorted(base_name(f.path) for f in inputs))
    return canonical.digest(names)[:16]
