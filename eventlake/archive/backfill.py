"""The backfill: archive every item of the table, whatever wrote it, through a parallel Scan.

    scan     Scan segments 0..n-1 in threads (at most EVENTLAKE_PUT_CONCURRENCY at a time)
    write    archive_items per segment, in files `backfill-<k>of<n>-...` (lake/names.py):
             the anti-join skips what the lake holds, non-events go to the quarantine

For tables written before the stream existed, or by other producers whose items carry no
index attributes (the sweep reads the index, so it never sees them). It does not read or move
the watermark, and a re-run writes nothing new.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from eventlake.archive.lakeof import require_lake_of
from eventlake.archive.report import BackfillReport, new_run_id
from eventlake.archive.writer import ArchiveCounts, archive_items
from eventlake.config import Settings
from eventlake.hot.store import HotStore
from eventlake.lake.store import Lake

__all__ = ["backfill"]

_log = logging.getLogger(__name__)


def backfill(lake: Lake, hot: HotStore, settings: Settings, *, segments: int = 4
             ) -> BackfillReport:
    """Archive every item of the table through a parallel Scan (segments in threads).

    Items of other producers archive too (payload as a map, no index attributes): a missing
    `ingested_at` becomes the scan's start time, a missing hash is computed. Non-events are
    quarantined. Idempotent, and independent of the watermark, which it does not move.
    """
    if not 1 <= segments <= 1_000_000:
        raise ValueError(f"segments must be from 1 to 1,000,000 (DynamoDB's limit), "
                         f"got {segments}")
    hot.require_table()  # a missing table is said first: it also explains a marker's table
    require_lake_of(lake, settings.table)
    started = time.perf_counter()
    scan_time = datetime.now(UTC)
    run_id = new_run_id("backfill", scan_time)

    def segment(number: int) -> ArchiveCounts:
        # The name holds no time: a re-run rewrites nothing (the anti-join finds it all), and
        # a run retried after a crash names identical chunks identically.
        return archive_items(lake, hot.scan_pages(number, segments),
                             name=f"backfill-{number:03d}of{segments:03d}",
                             fallback_ingested_at=scan_time, source="backfill")

    counts = ArchiveCounts()
    with ThreadPoolExecutor(max_workers=min(segments, settings.put_concurrency),
                            thread_name_prefix="eventlake-backfill") as pool:
        for result in pool.map(segment, range(segments)):
            counts.add(result)
    report = BackfillReport(segments, counts.read, counts, time.perf_counter() - started,
                            run_id)
    _log.info("backfill %s: %s", run_id, report.to_dict())
    return report
