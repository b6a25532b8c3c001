"""REMOVE records: the last sight of an event the table deletes (TTL, or someone's DeleteItem).

A REMOVE's old image is the whole item (the stream is NEW_AND_OLD_IMAGES). Normally the lake
has held that event for days: the stream archived its INSERT, and a sweep's expiry check read
it once more `ttl_safety_hours` before TTL (lake state `expiry_check.json`: every item ingested
before its checkpoint was archived, or quarantined with its reason). Only when both failed (the
INSERT's batch given up to the on-failure queue, and no sweep since) is the REMOVE the event's
last copy, and counting it would lose the event. So, per REMOVE with an old image:

    listed by the index before the expiry      -> counted, nothing read: a sweep vouched for it
      checkpoint and the archive watermark,      (the checkpoint alone moves over the band its
      outside the checkpoint's holes             sweep's window covers before that is written;
                                                 a hole: a stretch TTL may have emptied before
                                                 any sweep read it, after an outage)
    otherwise, or no checkpoint yet           -> looked up by id in its dt partition (a
                                                 filtered scan: memory follows the matches);
                                                 what the lake lacks, or holds with other
                                                 content, goes to the writer (archive_items)

The normal path costs two state reads per batch holding REMOVEs (checkpoint and watermark),
and the index shard count the lake records once per process (`_shards_read`).
What is archived here is logged at ERROR: the sweep is behind, or not running. An old image
that is not an event (another producer's item) is only counted, as before: its INSERT was
quarantined already.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import datetime

import pyarrow.compute as pc

from eventlake.archive.writer import ArchiveCounts, archive_items, event_keys
from eventlake.codec import CodecError, RowBuilder
from eventlake.errors import InvalidEventError
from eventlake.events.times import format_ts, parse_timestamp
from eventlake.hot.index import KEY, SHARD, binary, key_bound
from eventlake.hot.store import Item
from eventlake.lake.layout import dts_of
from eventlake.lake.shards import read_shard_record
from eventlake.lake.store import Lake
from eventlake.lake.watermark import EXPIRY_CHECK_KEY, Hole, read_watermark
from eventlake.logs import lazy_logger

__all__ = ["REMOVED_NAME", "Removed", "archive_removed"]

REMOVED_NAME = "removed"
"""The name the files written from REMOVEs start with (`removed-<chunk>-<digest>.parquet`)."""
_log = lazy_logger("eventlake.archive.stream")
_known_shards: weakref.WeakKeyDictionary[Lake, int] = weakref.WeakKeyDictionary()
"""The shard count each lake recorded, as this process last read it (`_shards_read`)."""

Removed = tuple[Item, datetime | None]
"""A REMOVE's old image and its record's ApproximateCreationDateTime (the deletion)."""


def archive_removed(lake: Lake, removed: Sequence[Removed]) -> ArchiveCounts:
    """Archive the events among `removed` that no expiry check vouched for and the lake lacks;
    the counts the stream reports: `read` (the REMOVEs checked against the lake) and
    `archived`. Raises on a failed read or write (the batch is then retried from its first
    REMOVE)."""
    counts = ArchiveCounts()
    if not removed:
        return counts
    checkpoint, holes = _vouched_until(lake)
    shards = _shards_read(lake, [image for image, _ in removed]) \
        if checkpoint is not None else None
    builder, images = RowBuilder(), []
    for image, deleted in removed:
        if _vouched(image, checkpoint, shards, holes):
            continue
        try:
            builder.add_image(image, fallback_ingested_at=deleted)
        except CodecError:  # not an event: its INSERT was quarantined already
            continue
        images.append((image, deleted))
    rejected = {position for position, _ in builder.reject_invalid()}  # Feb 30: as above
    images = [pair for position, pair in enumerate(images) if position not in rejected]
    if not images:
        return counts
    rows = builder.to_table()
    # Usually the lake holds them all: looked up by id (memory follows the matches, not the
    # partitions' size); the few it lacks, or holds with other content, go to the writer.
    held = lake.read_hashes(dts_of(rows), ids=pc.unique(rows["event_id"]))
    same = pc.is_in(event_keys(rows), value_set=event_keys(held)).to_pylist()
    lacking = [pair for pair, kept in zip(images, same, strict=True) if not kept]
    ids: list[str] = []
    if lacking:
        archive_items(
            lake, [image for image, _ in lacking], name=REMOVED_NAME, source="stream-remove",
            fallback_ingested_at=max((d for _, d in lacking if d is not None), default=None),
            counts=counts, on_written=lambda new: ids.extend(new.to_pylist()))
    counts.read += len(images) - len(lacking)
    if counts.archived:
        _log.error(
            "%d event(s) were deleted from the table (TTL, or a DeleteItem) before the lake held "
            "them, and were archived from their REMOVE records' old images (of %d checked, "
            "e.g. %s). No sweep's expiry check had vouched for them (its checkpoint: %s): is "
            "the archive flow running? (`eventlake status`; the ArchiveLag and TtlMargin "
            "alarms)", counts.archived, counts.read, ", ".join(f"`{i}`" for i in ids[:5]),
            checkpoint.isoformat() if checkpoint else "none yet")
    return counts


def _vouched_until(lake: Lake) -> tuple[datetime | None, tuple[Hole, ...]]:
    """The ingestion time before which the lake holds every item (or quarantined it): the
    expiry checkpoint, but no further than the archive watermark. A sweep's expiry check moves
    the checkpoint over the part of its band that the sweep's own window covers before that
    window is written (expiry.py); until the watermark passes it too, that part is unread
    (the window's write failed, or is running). None: nothing vouched for. With it, the
    checkpoint's holes: stretches before it that TTL may have emptied before any sweep read
    them (the sweeps had stopped for longer than the retention period), vouched for by no one."""
    mark = read_watermark(lake, EXPIRY_CHECK_KEY)
    if mark is None:
        return None, ()
    swept = read_watermark(lake)
    return (None, ()) if swept is None else (min(mark.at, swept.at), mark.holes)


def _shards_read(lake: Lake, images: Sequence[Item]) -> int | None:
    """The index shards per day every sweep since the lake recorded them has queried (the
    sweep records the table's count before it reads: `remember_shards`); None when the lake
    records none. The record only ever grows, so a count read earlier by this process is kept
    (a smaller one only vouches for fewer items) and read again only when an image names a
    shard at or past it: a warm stream Lambda reads it once."""
    known = _known_shards.get(lake)
    if known is None or max(map(_shard_number, images), default=-1) >= known:
        record = read_shard_record(lake)
        if record is None:
            return None
        known = _known_shards[lake] = record.index_shards_max
    return known


def _shard_number(image: Item) -> int:
    """n of an item's `ingest_shard` `<day>#<n>` written as a Query names it (decimal, no
    leading zero); -1 for anything else."""
    shard = image.get("ingest_shard")
    text = shard.get("S") if isinstance(shard, dict) else None
    if not isinstance(text, str):
        return -1
    _, sep, n = text.partition("#")
    if not sep or not (n.isascii() and n.isdigit()) or str(int(n)) != n:
        return -1
    return int(n)


def _vouched(image: Item, checkpoint: datetime | None, shards: int | None,
             holes: Sequence[Hole] = ()) -> bool:
    """Whether an expiry check read the item (so the lake holds it, or quarantined it): the
    index lists it where a sweep's Query of the band reads, and at a time before the
    checkpoint. A sweep queries shards `<UTC day>#0` to `#<shards - 1>` (at least the count the
    lake records, `lake/shards.py`) with `ingest_key BETWEEN` two fixed-width times, as text
    (an old index, during a migration), or `k BETWEEN` their 8-byte forms (hot/index.py).
    So the sort key must start with such a time (`format_ts`), the shard must be that
    time's day and one of those numbers, written as a Query names it, and the item must be in
    both indexes alike: `s` the same shard, `k` starting with the same time (an item without
    them, written before the index had them or by an older writer, is in no index once the
    old one is gone). An item without the index's keys (another producer's), or with keys no
    such Query reads, is checked against the lake, whatever its `ingested_at` says; so is
    every item while the lake records no shard count (`shards` None), and every item
    ingested in one of the checkpoint's `holes`."""
    if checkpoint is None or shards is None:
        return False
    shard, key = image.get("ingest_shard"), image.get("ingest_key")
    if not isinstance(shard, dict) or not isinstance(key, dict):
        return False
    shard_text, key_text = shard.get("S"), key.get("S")
    if not isinstance(shard_text, str) or not isinstance(key_text, str):
        return False
    stamp = key_text.split("#", 1)[0]
    try:
        when = parse_timestamp(stamp)
    except InvalidEventError:
        return False
    if format_ts(when) != stamp:  # another text of a time sorts elsewhere in BETWEEN
        return False
    if (when.year < 1970 or image.get(SHARD) != shard
            or (binary(image.get(KEY)) or b"")[:8] != key_bound(when)):
        return False  # (before 1970 `k` cannot say the time: key_bound holds it as 1970)
    return (shard_text.partition("#")[0] == stamp[:10]
            and 0 <= _shard_number(image) < shards and when < checkpoint
            and not any(start <= when < end for start, end in holes))
