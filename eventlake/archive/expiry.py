"""The expiry check: the last look at every event before TTL may delete it.

    ingested_at ──[checkpoint)═══ band ═══[band_end)─────···─────[watermark - skew)──── now
                  read once by a sweep      band_end = now + ttl_safety_hours - retention:
                                            items ingested before it expire within the margin

The watermark vouches for events stamped at most EVENTLAKE_CLOCK_SKEW_SECONDS behind it. An
event stamped further back (a producer's clock slower than that, a watermark edited forward)
is behind every sweep window, and only this check sees it in time. Each sweep reads the index
once more over [checkpoint, band_end), archives what the lake lacks with the sweep's read path
(lacking.py: index entries, anti-join, only what the lake lacks fetched whole; what is archived
already is only counted), reports what it had to write as `beyond_skew` with
a WARNING, and moves the checkpoint to band_end (lake state `expiry_check.json`, compare-and-
swap, never backwards). So every event is read once more, `ttl_safety_hours` before it expires.
The TTL guard reads the unchecked band too: what the check could not archive is at risk.
An item TTL deleted between the check's index read and its fetch stops the checkpoint short of
it: its REMOVE is then not taken as vouched for, and the stream archives the old image
(archive/removed.py); the next check moves on.

The part of the band the sweep window itself covers (no watermark yet: the whole retention
period) is left to that window; the checkpoint still moves over it, because the watermark
moves only once that window is in the lake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from eventlake.archive.lacking import lacking_items
from eventlake.archive.report import SAMPLE_IDS, ExpiryCheck
from eventlake.archive.writer import archive_items
from eventlake.config import Settings
from eventlake.events.times import as_utc, format_ts, parse_timestamp
from eventlake.hot.store import HotStore, Item
from eventlake.lake.names import window_name
from eventlake.lake.shards import read_recorded_shards
from eventlake.lake.store import Lake
from eventlake.lake.watermark import (
    EXPIRY_CHECK_KEY,
    Hole,
    advance_watermark,
    read_watermark,
    window_start,
)

__all__ = ["band_end", "check_expiry", "unchecked_band"]

_log = logging.getLogger("eventlake.archive.sweep")
_EPOCH = datetime.fromtimestamp(0, UTC)


def band_end(now: datetime, settings: Settings) -> datetime:
    """Items ingested before this expire (expires_at = ingested_at + retention) within
    ttl_safety_hours of `now`."""
    return (as_utc(now) + timedelta(hours=settings.ttl_safety_hours)
            - timedelta(seconds=settings.retention_seconds))


def unchecked_band(lake: Lake, now: datetime, settings: Settings, since: datetime
                   ) -> tuple[datetime, datetime]:
    """[start, stop) of the band no expiry check has passed yet, ending where the window that
    starts at `since` (the sweep's, the guard's) takes over; empty when start >= stop."""
    start = window_start(read_watermark(lake, EXPIRY_CHECK_KEY), now, settings, skew=False)
    return start, min(band_end(now, settings), since)


def check_expiry(lake: Lake, hot: HotStore, settings: Settings, *, now: datetime,
                 window_since: datetime, run_id: str,
                 renew: Callable[[], None] = lambda: None,
                 vanished: list[Item] | None = None, hole: Hole | None = None
                 ) -> ExpiryCheck:
    """Archive what the lake lacks of the unchecked band, then move the checkpoint.

    `window_since` is where this sweep's window starts (the band stops there); `renew` is
    called between pages (the sweep's lease). Index entries whose items TTL deleted before
    they could be fetched are appended to `vanished` (the sweep's TTL guard reports them).
    `hole`: a stretch of ingestion time no sweep read before TTL could empty it (the sweep's
    `_unread_expired`: the sweeps stopped for longer than the retention period). It is
    recorded on the checkpoint, widened, in the same write that moves it, so the checkpoint
    never vouches for it (archive/removed.py), and written even when the checkpoint does not
    move. Widened back to the old checkpoint (what a clock slower than the skew stamped behind
    the watermark only this check reads, and it may have expired unread too) and on to the
    band's end (an item expiring while this sweep runs, deleted before its Query lists it, is
    read by no one). `ExpiryCheck.hole` is what was recorded. A failure leaves the checkpoint
    where it was.
    """
    vanished = [] if vanished is None else vanished
    seen = len(vanished)
    read_recorded_shards(lake, hot)  # every shard the lake has seen in force
    checkpoint = read_watermark(lake, EXPIRY_CHECK_KEY)
    start = window_start(checkpoint, now, settings, skew=False)
    end = band_end(now, settings)
    stop = min(end, window_since)
    check = ExpiryCheck(start, max(start, stop))
    if hole is not None:
        check.hole = (min(hole[0], start) if checkpoint is not None else _EPOCH,
                      max(hole[1], end))
    if stop > start:
        def pages() -> Iterator[list[Item]]:
            for page in hot.read_index_pages(start, stop):
                renew()
                yield page

        def written(ids: pa.Array) -> None:
            room = SAMPLE_IDS - len(check.beyond_skew_ids)
            if room > 0:
                check.beyond_skew_ids.extend(ids.slice(0, room).to_pylist())

        archive_items(lake, lacking_items(lake, hot, pages(), counts=check.counts,
                                          vanished=vanished),
                      name=window_name("expiry", start, stop),
                      counts=check.counts, on_written=written)
    # An item TTL deleted between the index read and the fetch is not in the lake: the
    # checkpoint stops short of it, so that its REMOVE is not taken as vouched for and the
    # stream archives its old image (archive/removed.py). The next check moves on.
    held = _earliest(vanished[seen:])
    if held is not None and held < end:
        _log.warning("expiry check of run %s: %d item(s) were deleted by TTL before they could "
                     "be archived; the checkpoint stops at %s, before the first, so that the "
                     "stream archives them from their REMOVE records", run_id,
                     len(vanished) - seen, format_ts(held))
        end = held
    if end > start or hole is not None:
        renew()
        advance_watermark(lake, max(start, end), expected=checkpoint, run_id=run_id, now=now,
                          key=EXPIRY_CHECK_KEY, holes=[check.hole] if check.hole else ())
    if check.beyond_skew:
        examples = ", ".join(f"`{i}`" for i in check.beyond_skew_ids[:5])
        more = (f" and {check.beyond_skew - 5} more" if check.beyond_skew > 5 else "")
        _log.warning(
            "expiry check of run %s: archived %d event(s) ingested in [%s, %s) that no sweep "
            "had archived, %g h or less before TTL deletes them: %s%s. They were stamped "
            "further behind the watermark than %s=%g tolerates: a producer's clock runs that "
            "slow (check producer clocks / NTP), or the watermark was moved forward by hand",
            run_id, check.beyond_skew, format_ts(start), format_ts(stop),
            settings.ttl_safety_hours, examples, more,
            settings.env_name("clock_skew_seconds"), settings.clock_skew_seconds)
    return check


def _earliest(entries: list[Item]) -> datetime | None:
    """The earliest ingestion time of index entries (`ingest_key` = `<ingested_at>#<id>`);
    the epoch when one cannot be read (the checkpoint then does not move)."""
    times = []
    for entry in entries:
        key = entry.get("ingest_key", {}).get("S")
        try:
            times.append(parse_timestamp(str(key).partition("#")[0]))
        except ValueError:
            return datetime.fromtimestamp(0, UTC)
    return min(times, default=None)
