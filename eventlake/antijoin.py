"""Items -> the lake, writing only the events it lacks: the writer of the sweep and the backfill.

    items (AttributeValue form, eventlake's own or another producer's)
      -> chunks of `chunk_rows` items (memory stays bounded whatever the input)
      -> RowBuilder rows; what is not an event -> quarantine, raw, with the reason
      -> one row per event_id (the first copy)
      -> anti-join on event_id against the chunk's dt partitions (their event_id column only)
      -> the missing rows -> events/dt=<dt>/<name>-<chunk>-<digest>.parquet

Names are deterministic: `name`, the chunk number and a digest of the event_ids written. The
same rows get the same name, so a retried write replaces itself; other rows never get the name
of a file already there, so a re-run that finds part of a chunk archived (by the stream, by a
run that crashed) never overwrites an earlier file with fewer rows.

Idempotent: a second run over the same items finds every event in the lake and writes nothing.
A writer racing this one (the stream) can slip an event in between the anti-join's read and the
write; the lake then holds it twice, which compaction and the `events` view remove.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.codec import CodecError, RowBuilder
from eventlake.hot import Item
from eventlake.lake import Lake, QuarantineEntry, WrittenFile

__all__ = ["ArchiveCounts", "archive_items"]

DEFAULT_CHUNK_ROWS = 50_000


@dataclass
class ArchiveCounts:
    """What archiving some items did: `read == archived + already + quarantined`."""

    read: int = 0
    """Items looked at."""
    archived: int = 0
    """Events written to the lake by this call."""
    already: int = 0
    """Events found in the lake already (or repeated in the input), so not written."""
    quarantined: int = 0
    """Items that are not events, written raw to the quarantine with the reason."""
    files: list[WrittenFile] = field(default_factory=list)
    quarantine_files: list[str] = field(default_factory=list)

    def add(self, other: ArchiveCounts) -> None:
        self.read += other.read
        self.archived += other.archived
        self.already += other.already
        self.quarantined += other.quarantined
        self.files.extend(other.files)
        self.quarantine_files.extend(other.quarantine_files)

    def to_dict(self) -> dict[str, Any]:
        return {"read": self.read, "archived": self.archived, "already": self.already,
                "quarantined": self.quarantined,
                "files": [{"path": f.path, "dt": f.dt, "rows": f.rows, "bytes": f.bytes}
                          for f in self.files],
                "quarantine_files": list(self.quarantine_files)}


def archive_items(lake: Lake, items: Iterable[Item] | Iterable[list[Item]], *, name: str,
                  fallback_ingested_at: datetime | None = None,
                  chunk_rows: int = DEFAULT_CHUNK_ROWS, source: str = "sweep",
                  counts: ArchiveCounts | None = None,
                  on_written: Callable[[pa.Array], None] | None = None) -> ArchiveCounts:
    """Archive the events among `items` (single items or pages of them) that the lake lacks.

    `fallback_ingested_at` stands in for a missing `ingested_at` (other producers' items);
    `source` labels quarantine entries. Pass `counts` to keep the tally of the chunks done
    when a later chunk fails (it is updated in place and returned). `on_written` gets the
    event_ids of each chunk once its files are durable.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    counts = ArchiveCounts() if counts is None else counts
    chunk: list[Item] = []
    number = 0
    for item in _flatten(items):
        chunk.append(item)
        if len(chunk) >= chunk_rows:
            _archive_chunk(lake, chunk, f"{name}-{number:04d}", fallback_ingested_at, source,
                           counts, on_written)
            chunk, number = [], number + 1
    if chunk:
        _archive_chunk(lake, chunk, f"{name}-{number:04d}", fallback_ingested_at, source,
                       counts, on_written)
    return counts


def _flatten(items: Iterable[Item] | Iterable[list[Item]]) -> Iterator[Item]:
    for element in items:
        if isinstance(element, list):
            yield from element
        else:
            yield element


def _archive_chunk(lake: Lake, chunk: list[Item], name: str,
                   fallback_ingested_at: datetime | None, source: str, counts: ArchiveCounts,
                   on_written: Callable[[pa.Array], None] | None) -> None:
    builder = RowBuilder()
    origin: list[int] = []  # builder row i came from chunk[origin[i]]
    bad: list[tuple[int, CodecError]] = []
    for position, item in enumerate(chunk):
        try:
            builder.add_image(item, fallback_ingested_at=fallback_ingested_at)
        except CodecError as exc:
            bad.append((position, exc))
            continue
        origin.append(position)
    rejected = builder.reject_invalid()  # impossible dates (Feb 30) in the fixed layout
    if rejected:
        bad.extend((origin[row], exc) for row, exc in rejected)
        dropped = {row for row, _ in rejected}
        origin = [p for row, p in enumerate(origin) if row not in dropped]
    if bad:
        bad.sort(key=lambda pair: pair[0])
        raws = [chunk[position] for position, _ in bad]
        entries = [QuarantineEntry(reason=str(exc), rule=exc.rule, record=raw, source=source)
                   for raw, (_, exc) in zip(raws, bad, strict=True)]
        digest = _digest("\n".join(sorted(_identity(raw) for raw in raws)))
        counts.quarantine_files.append(lake.quarantine(entries, f"{name}-q{digest}"))
        counts.quarantined += len(bad)

    table = builder.to_table()
    del builder
    repeated = 0
    if table.num_rows and pc.count_distinct(table["event_id"]).as_py() < table.num_rows:
        table, repeated = _first_copies(table)
    missing = _missing(lake, table)
    if missing.num_rows:
        ids = missing["event_id"].combine_chunks()
        written = lake.write(missing, f"{name}-{_digest(chr(10).join(sorted(ids.to_pylist())))}")
        counts.files.extend(written)
        if on_written is not None:
            on_written(ids)
    counts.archived += missing.num_rows
    counts.already += table.num_rows - missing.num_rows + repeated
    counts.read += len(chunk)


def _missing(lake: Lake, table: pa.Table) -> pa.Table:
    """The rows of `table` whose event_id is in none of the lake files of their dates."""
    if not table.num_rows:
        return table
    days = pc.unique(pc.cast(table["timestamp"], pa.date32())).to_pylist()
    present = lake.read_ids(day.isoformat() for day in days)
    if not len(present):
        return table
    return table.filter(pc.invert(pc.is_in(table["event_id"], value_set=present)))


def _first_copies(table: pa.Table) -> tuple[pa.Table, int]:
    seen: set[str] = set()
    keep: list[int] = []
    for row, event_id in enumerate(table["event_id"].to_pylist()):
        if event_id not in seen:
            seen.add(event_id)
            keep.append(row)
    return table.take(pa.array(keep, pa.int64())), table.num_rows - len(keep)


def _identity(raw: Any) -> str:
    """The same text for the same raw item, whatever it holds (bytes, Decimals, ...)."""
    try:
        return json.dumps(raw, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(raw)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
