"""The expiry check: the last look at every event before TTL may delete it.

    ingested_at ──[checkpoint)═══ band ═══[band_end)─────···─────[watermark - skew)──── now
                  read once by a sweep      band_end = now + ttl_safety_hours - retention:
                                            items ingested before it expire within the margin

The watermark vouches for events stamped at most EVENTLAKE_CLOCK_SKEW_SECONDS behind it. An
event stamped further back (a producer's clock slower than that, a watermark edited forward)
is behind every sweep window, and only this check sees it in time. Each sweep reads the index
once more over [checkpoint, band_end), archives what the lake lacks with the sweep's anti-join
(what is archived already is only counted), reports what it had to write as `beyond_skew` with
a WARNING, and moves the checkpoint to band_end (lake state `expiry_check.json`, compare-and-
swap, never backwards). So every event is read once more, `ttl_safety_hours` before it expires.
The TTL guard reads the unchecked band too: what the check could not archive is at risk.

The part of the band the sweep window itself covers (no watermark yet: the whole retention
period) is left to that window; the checkpoint still moves over it, because the watermark
moves only once that window is in the lake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from eventlake.archive.writer import ArchiveCounts, archive_items
from eventlake.config import Settings
from eventlake.events.times import as_utc, format_ts
from eventlake.hot.store import HotStore, Item
from eventlake.lake.shards import read_recorded_shards
from eventlake.lake.store import Lake
from eventlake.lake.watermark import (
    EXPIRY_CHECK_KEY,
    TTL_LATENESS,
    Watermark,
    advance_watermark,
    read_watermark,
)

__all__ = ["ExpiryCheck", "band_end", "check_expiry", "unchecked_band"]

_log = logging.getLogger("eventlake.archive.sweep")
SAMPLE_IDS = 20
"""event_ids kept as examples of what the check had to archive."""


@dataclass
class ExpiryCheck:
    """What one expiry check did: read [since, until) (less what the sweep window covered),
    archived `counts.archived` events the lake lacked (`beyond_skew`), moved the checkpoint."""

    since: datetime
    until: datetime
    counts: ArchiveCounts = field(default_factory=ArchiveCounts)
    beyond_skew_ids: list[str] = field(default_factory=list)
    """Up to SAMPLE_IDS of the events it archived."""

    @property
    def beyond_skew(self) -> int:
        return self.counts.archived

    def to_dict(self) -> dict[str, Any]:
        return {"since": format_ts(self.since), "until": format_ts(self.until),
                "read": self.counts.read, "already": self.counts.already,
                "beyond_skew": self.beyond_skew, "beyond_skew_ids": list(self.beyond_skew_ids),
                "files": [f.path for f in self.counts.files]}


def band_end(now: datetime, settings: Settings) -> datetime:
    """Items ingested before this expire (expires_at = ingested_at + retention) within
    ttl_safety_hours of `now`."""
    return (as_utc(now) + timedelta(hours=settings.ttl_safety_hours)
            - timedelta(seconds=settings.retention_seconds))


def _band_start(checkpoint: Watermark | None, now: datetime, settings: Settings) -> datetime:
    if checkpoint is not None:
        return checkpoint.at
    return as_utc(now) - timedelta(seconds=settings.retention_seconds) - TTL_LATENESS


def unchecked_band(lake: Lake, now: datetime, settings: Settings, since: datetime
                   ) -> tuple[datetime, datetime]:
    """[start, stop) of the band no expiry check has passed yet, ending where the window that
    starts at `since` (the sweep's, the guard's) takes over; empty when start >= stop."""
    start = _band_start(read_watermark(lake, EXPIRY_CHECK_KEY), now, settings)
    return start, min(band_end(now, settings), since)


def check_expiry(lake: Lake, hot: HotStore, settings: Settings, *, now: datetime,
                 window_since: datetime, run_id: str,
                 renew: Callable[[], None] = lambda: None) -> ExpiryCheck:
    """Archive what the lake lacks of the unchecked band, then move the checkpoint.

    `window_since` is where this sweep's window starts (the band stops there); `renew` is
    called between pages (the sweep's lease). A failure leaves the checkpoint where it was.
    """
    read_recorded_shards(lake, hot)  # every shard the lake has seen in force
    checkpoint = read_watermark(lake, EXPIRY_CHECK_KEY)
    start = _band_start(checkpoint, now, settings)
    end = band_end(now, settings)
    stop = min(end, window_since)
    check = ExpiryCheck(start, max(start, stop))
    if stop > start:
        def pages() -> Iterator[list[Item]]:
            for page in hot.read_ingested_pages(start, stop):
                renew()
                yield page

        def written(ids: pa.Array) -> None:
            room = SAMPLE_IDS - len(check.beyond_skew_ids)
            if room > 0:
                check.beyond_skew_ids.extend(ids.slice(0, room).to_pylist())

        archive_items(lake, pages(), name=f"expiry-{start:%Y%m%dT%H%M%S%f}-"
                                          f"{stop:%Y%m%dT%H%M%S%f}",
                      counts=check.counts, on_written=written)
    if end > start:
        renew()
        advance_watermark(lake, end, expected=checkpoint, run_id=run_id, now=now,
                          key=EXPIRY_CHECK_KEY)
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
