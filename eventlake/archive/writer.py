"""Items -> the lake, writing only the events it lacks: the writer of the sweep and the backfill.

    items (AttributeValue form, eventlake's own or another producer's)
      -> chunks of `chunk_rows` items (memory stays bounded whatever the input)
      -> RowBuilder rows; what is not an event -> quarantine, raw, with the reason
      -> one row per event_id (the first copy in the input: `dedup.first_of_each`)
      -> anti-join on event_id against the chunk's dt partitions (event_id and content_hash)
      -> the missing rows -> events/dt=<dt>/<name>-<chunk>-<digest>.parquet
      -> an id the lake holds with another hash -> quarantine, raw, rule `event.id_reused`

An id the lake holds with other content is an event_id reused (typically after TTL deleted the
first event, so the hot tier accepted it as new): events are immutable, so the lake keeps the
first, and the newcomer goes to the quarantine, counted in `conflicts` and logged at ERROR,
never counted as archived and never silently shadowed.

Names are deterministic: `name`, the chunk number and a digest of the event_ids written. The
same rows get the same name, so a retried write replaces itself; other rows never get the name
of a file already there, so a re-run that finds part of a chunk archived (by the stream, by a
run that crashed) never overwrites an earlier file with fewer rows.

Idempotent: a second run over the same items finds every event in the lake and writes nothing.
A writer racing this one (the stream) can slip an event in between the anti-join's read and the
write; the lake then holds it twice, which compaction and the `events` view remove.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.codec import CodecError, RowBuilder
from eventlake.events import canonical
from eventlake.events.canonical import raw_identity
from eventlake.hot.store import Item
from eventlake.lake.dedup import first_of_each
from eventlake.lake.layout import dts_of
from eventlake.lake.store import Lake, QuarantineEntry, WrittenFile

__all__ = ["ID_REUSED", "ArchiveCounts", "archive_items", "event_keys"]

DEFAULT_CHUNK_ROWS = 50_000
ID_REUSED = "event.id_reused"
"""Quarantine rule of an item whose event_id the lake holds with other content."""
SAMPLE_IDS = 20
"""Conflicting event_ids a report lists (the count is always complete)."""
_log = logging.getLogger(__name__)


@dataclass
class ArchiveCounts:
    """What archiving some items did: `read == archived + already + quarantined + conflicts`."""

    read: int = 0
    """Items looked at."""
    archived: int = 0
    """Events written to the lake by this call."""
    already: int = 0
    """Events found in the lake already (or repeated in the input), so not written."""
    quarantined: int = 0
    """Items that are not events, written raw to the quarantine with the reason."""
    conflicts: int = 0
    """Events whose event_id the lake holds with other content (an id reused): written raw to
    the quarantine under rule `event.id_reused`, not to the lake."""
    conflict_ids: list[str] = field(default_factory=list)
    """The first SAMPLE_IDS of those event_ids."""
    files: list[WrittenFile] = field(default_factory=list)
    quarantine_files: list[str] = field(default_factory=list)

    def add(self, other: ArchiveCounts) -> None:
        self.read += other.read
        self.archived += other.archived
        self.already += other.already
        self.quarantined += other.quarantined
        self.conflicts += other.conflicts
        self.conflict_ids.extend(other.conflict_ids[:SAMPLE_IDS - len(self.conflict_ids)])
        self.files.extend(other.files)
        self.quarantine_files.extend(other.quarantine_files)

    def problem(self) -> str | None:
        """What an operator must be told about these counts (None: nothing): event_ids that are
        already in the lake with other content, quarantined, not archived."""
        if not self.conflicts:
            return None
        examples = ", ".join(f"`{i}`" for i in self.conflict_ids[:5])
        return (f"{self.conflicts} event_id(s) are already in the lake with other content "
                f"(reused, e.g. after TTL), e.g. {examples}: quarantined under rule "
                f"`{ID_REUSED}`, not archived; events are immutable, the producer must send "
                "them under new event_ids")

    def to_dict(self) -> dict[str, Any]:
        return {"read": self.read, "archived": self.archived, "already": self.already,
                "quarantined": self.quarantined, "conflicts": self.conflicts,
                "conflict_ids": list(self.conflict_ids),
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
        digest = _digest("\n".join(sorted(raw_identity(raw) for raw in raws)))
        counts.quarantine_files.append(lake.quarantine(entries, f"{name}-q{digest}"))
        counts.quarantined += len(bad)

    built = table = builder.to_table()
    del builder
    repeated = 0
    if table.num_rows and pc.count_distinct(table["event_id"]).as_py() < table.num_rows:
        table = table.filter(first_of_each(table["event_id"]))
        repeated = built.num_rows - table.num_rows
    missing, conflicts = _missing(lake, table)
    if conflicts:
        raws = _raw_items(chunk, origin, built, conflicts)
        counts.quarantine_files.append(_quarantine_conflicts(lake, raws, conflicts, source))
        counts.conflicts += len(conflicts)
        counts.conflict_ids.extend(sorted(conflicts)[:SAMPLE_IDS - len(counts.conflict_ids)])
    if missing.num_rows:
        ids = missing["event_id"].combine_chunks()
        written = lake.write(missing, f"{name}-{_digest(chr(10).join(sorted(ids.to_pylist())))}")
        counts.files.extend(written)
        if on_written is not None:
            on_written(ids)
    counts.archived += missing.num_rows
    counts.already += table.num_rows - missing.num_rows - len(conflicts) + repeated
    counts.read += len(chunk)


Conflicts = dict[str, tuple[str, list[str]]]
"""event_id -> (the item's content hash, the hashes the lake holds for that id)."""


def _missing(lake: Lake, table: pa.Table) -> tuple[pa.Table, Conflicts]:
    """The rows of `table` whose event_id is in none of the lake files of their dates, and
    the rows whose event_id is there with other content only (never written)."""
    if not table.num_rows:
        return table, {}
    # Only the chunk's own ids matter: the partitions may hold millions of rows (filtered as
    # they are scanned, so memory follows the matches).
    present = lake.read_hashes(dts_of(table), ids=pc.unique(table["event_id"]))
    if not present.num_rows:
        return table, {}
    held = pc.is_in(table["event_id"], value_set=present["event_id"])
    missing = table.filter(pc.invert(held))
    if missing.num_rows == table.num_rows:
        return missing, {}
    # A held id whose (id, hash) matches any stored copy is the same event (vectorised).
    same = pc.is_in(event_keys(table), value_set=event_keys(present))
    reused = table.filter(pc.and_(held, pc.invert(same)))
    if not reused.num_rows:
        return missing, {}
    stored: dict[str, set[str]] = {}
    present = present.filter(pc.is_in(present["event_id"], value_set=reused["event_id"]))
    for event_id, digest in zip(present["event_id"].to_pylist(),
                                present["content_hash"].to_pylist(), strict=True):
        stored.setdefault(event_id, set()).add(digest)
    conflicts: Conflicts = {
        event_id: (digest, sorted(stored[event_id]))
        for event_id, digest in zip(reused["event_id"].to_pylist(),
                                    reused["content_hash"].to_pylist(), strict=True)}
    return missing, conflicts


def event_keys(table: pa.Table) -> pa.ChunkedArray:
    """`<event_id> NUL <content_hash>` per row: one value to compare whole events by."""
    return pc.binary_join_element_wise(table["event_id"], table["content_hash"], "\x00")


def _raw_items(chunk: list[Item], origin: list[int], built: pa.Table, conflicts: Conflicts
               ) -> list[Item]:
    """The raw items of the conflicting events (the first of each id, as `first_of_each`)."""
    raws: dict[str, Item] = {}
    for row, event_id in enumerate(built["event_id"].to_pylist()):
        if event_id in conflicts and event_id not in raws:
            raws[event_id] = chunk[origin[row]]
    return [raws[event_id] for event_id in sorted(raws)]


def _quarantine_conflicts(lake: Lake, raws: list[Item], conflicts: Conflicts, source: str
                          ) -> str:
    entries = []
    for event_id in sorted(conflicts):
        digest, stored = conflicts[event_id]
        held = ", ".join(f"`{h[:12]}`" for h in stored)
        entries.append(f"event `{event_id}` is already in the lake with other content (lake "
                       f"hash {held}, this item `{digest[:12]}`): its event_id was reused, "
                       "e.g. after TTL deleted the first event from the table; the lake keeps "
                       "the first; events are immutable: send it under a new event_id")
    quarantine = [QuarantineEntry(reason=reason, rule=ID_REUSED, record=raw, source=source)
                  for reason, raw in zip(entries, raws, strict=True)]
    # Named by content alone: a sweep over the window again (its watermark lost), with other
    # bounds, or a backfill, rewrites the same file (on the same day) instead of adding one.
    digest = _digest("\n".join(sorted(raw_identity(raw) for raw in raws)))
    path = lake.quarantine(quarantine, f"id-reused-{digest}")
    sample = ", ".join(f"`{i}`" for i in sorted(conflicts)[:5])
    _log.error("%d item(s) reuse an event_id the lake holds with other content, e.g. %s: "
               "quarantined under rule %s in %s, not archived (events are immutable: the "
               "producer must send them under new event_ids)", len(conflicts), sample,
               ID_REUSED, path)
    return path


def _digest(text: str) -> str:
    return canonical.digest(text)[:12]
