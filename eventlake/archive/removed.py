"""REMOVE records: the last sight of an event the table deletes (TTL, or someone's DeleteItem).

A REMOVE's old image is the whole item (the stream is NEW_AND_OLD_IMAGES). Normally the lake
has held that event for days: the stream archived its INSERT, and a sweep's expiry check read
it once more `ttl_safety_hours` before TTL (lake state `expiry_check.json`: every item ingested
before its checkpoint was archived, or quarantined with its reason). Only when both failed (the
INSERT's batch given up to the on-failure queue, and no sweep since) is the REMOVE the event's
last copy, and counting it would lose the event. So, per REMOVE with an old image:

    ingested_at before the expiry checkpoint  -> counted, nothing read: a sweep vouched for it
    otherwise, or no checkpoint yet           -> archived from the old image if the lake lacks
                                                 it (archive_items: an anti-join against its
                                                 dt partition, then only what is missing)

The normal path costs one read of the checkpoint per batch holding REMOVEs. What is archived
here is logged at ERROR: the sweep is behind, or not running. An old image that is not an event
(another producer's item) is only counted, as before: its INSERT was quarantined already.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from eventlake.archive.writer import ArchiveCounts, archive_items
from eventlake.codec import CodecError, RowBuilder
from eventlake.errors import InvalidEventError
from eventlake.events.times import parse_timestamp
from eventlake.hot.store import Item
from eventlake.lake.store import Lake
from eventlake.lake.watermark import EXPIRY_CHECK_KEY, read_watermark
from eventlake.logs import lazy_logger

__all__ = ["REMOVED_NAME", "Removed", "archive_removed"]

REMOVED_NAME = "removed"
"""The name the files written from REMOVEs start with (`removed-<chunk>-<digest>.parquet`)."""
_log = lazy_logger("eventlake.archive.stream")

Removed = tuple[Item, datetime | None]
"""A REMOVE's old image and its record's ApproximateCreationDateTime (the deletion)."""


def archive_removed(lake: Lake, removed: Sequence[Removed]) -> ArchiveCounts:
    """Archive the events among `removed` that no expiry check vouched for and the lake lacks;
    the counts (`read`: the REMOVEs checked against the lake). Raises on a failed read or
    write (the batch is then retried from its first REMOVE)."""
    counts = ArchiveCounts()
    if not removed:
        return counts
    mark = read_watermark(lake, EXPIRY_CHECK_KEY)
    checkpoint = mark.at if mark is not None else None
    due = [(image, deleted) for image, deleted in removed
           if _event(image, deleted) and not _vouched(image, checkpoint)]
    if not due:
        return counts
    ids: list[str] = []
    archive_items(lake, [image for image, _ in due], name=REMOVED_NAME, source="stream-remove",
                  fallback_ingested_at=max((d for _, d in due if d is not None), default=None),
                  counts=counts, on_written=lambda written: ids.extend(
                      written.slice(0, 5 - len(ids)).to_pylist() if len(ids) < 5 else []))
    if counts.archived:
        _log.error(
            "%d event(s) were deleted from the table (TTL, or a DeleteItem) before the lake held "
            "them, and were archived from their REMOVE records' old images (of %d checked, "
            "e.g. %s). No sweep's expiry check had vouched for them (its checkpoint: %s): is "
            "the archive flow running? (`eventlake status`; the ArchiveLag and TtlMargin "
            "alarms)", counts.archived, counts.read, ", ".join(f"`{i}`" for i in ids),
            checkpoint.isoformat() if checkpoint else "none yet")
    return counts


def _event(image: Item, deleted: datetime | None) -> bool:
    """Whether the old image is an event the lake could hold."""
    try:
        RowBuilder().add_image(image, fallback_ingested_at=deleted)
    except CodecError:
        return False
    return True


def _vouched(image: Item, checkpoint: datetime | None) -> bool:
    """Whether an expiry check passed the item's ingestion time (so the lake holds it)."""
    if checkpoint is None:
        return False
    value = image.get("ingested_at", {})
    text = value.get("S") if isinstance(value, dict) else None
    if not isinstance(text, str):
        return False
    try:
        return parse_timestamp(text) < checkpoint
    except InvalidEventError:
        return False
