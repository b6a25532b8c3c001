"""The sweep: archive everything ingested since the watermark that the lake lacks, move the
watermark, and fail loudly when TTL is about to delete events that are still not archived.

    lease    `_eventlake/locks/sweep` (one sweep at a time; a crashed one's lease expires)
    expiry   the expiry check (expiry.py): archive what the lake lacks of the items about to
             expire that no sweep window reached (`beyond_skew`: loud), move its checkpoint
    refuse   a watermark further ahead of now than the clock skew: WatermarkAheadError
    window   [watermark - skew, now - settle)   on INGESTION time: late events (old
             timestamps, ingested now) fall in it and are written under their own dt; the
             look-back (EVENTLAKE_CLOCK_SKEW_SECONDS) catches events from producers whose clocks
             run behind (re-read events are counted `already`)
    read     the ingestion-time index, parallel Queries per (day, shard), page by page: its
             entries (keys, timestamp, content_hash, expires_at), anti-joined against the
             lake; only what the lake lacks is fetched whole, by BatchGetItem (lacking.py)
    write    archive_items: decode, quarantine non-events, anti-join on event_id, write
             (an id the lake holds with other content -> quarantine, `counts.conflicts`)
    move     the watermark to the window's end, by compare-and-swap, files durable first
    verify   record which files of the partitions written (and of today and yesterday, the
             stream's) are disjoint on event_id: readers read those bare (lake/disjoint.py)
    guard    ttl_margin over [new watermark - skew, now] and the unchecked expiry band:
             TtlGuardError when any unarchived event is within ttl_safety_hours of expires_at
             (also after a failed write), or was deleted from the table between the index
             read and the fetch before any lake file held it (`vanished`: lost to DynamoDB).
             The window read runs on to `now`, so the guard judges the entries it listed
             against the lake after the writes instead of querying [new watermark - skew,
             now] again (`_Tail`; ttlguard.reuse_window_read says when, and what a re-read
             would add); after a failed sweep it reads everything again

`now` is the hot store's (`HotStore.now`): the host clock corrected by the offset measured
from AWS's responses, so a sweeper with a fast clock does not push the watermark ahead of
honest producers.

Crash safety, at any point:

    crash before the watermark moves -> old watermark: the window is swept again and the
                                        anti-join skips what the crashed run wrote
    crash after it moved             -> new watermark: everything before it is in the lake

The settle lag (EVENTLAKE_ARCHIVE_SETTLE_SECONDS) covers what the watermark cannot see: the
index is eventually consistent, and `ingested_at` is stamped just before the PutItem lands,
so an item can appear in the index shortly after its ingestion time. The sweep leaves the last
`settle` seconds to the next run (and to the stream path); settle 0 archives everything
visible now, at the price of possibly stepping over such a straggler (the stream still has it).

The backfill (backfill.py) scans the whole table instead. Lower-level pieces: the writer
(`archive_items`), `watermark`, `lease`, `ttlguard`, `expiry`; the reports are in report.py.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from eventlake.archive.expiry import check_expiry
from eventlake.archive.lacking import lacking_items
from eventlake.archive.lakeof import require_lake_of
from eventlake.archive.lease import SweepLockedError, acquire_lease
from eventlake.archive.metrics import publish_sweep
from eventlake.archive.report import ExpiryCheck, SweepReport, TtlMargin, new_run_id
from eventlake.archive.ttlguard import (
    TtlGuardError,
    expires_at,
    reuse_window_read,
    ttl_margin,
)
from eventlake.archive.writer import ArchiveCounts, archive_items
from eventlake.config import Settings, redact
from eventlake.events.times import as_utc, format_ts
from eventlake.hot.store import HotStore, Item
from eventlake.lake.disjoint import verify_recent
from eventlake.lake.names import window_name
from eventlake.lake.shards import remember_shards
from eventlake.lake.store import Lake
from eventlake.lake.watermark import (
    Hole,
    Watermark,
    WatermarkConflictError,
    advance_watermark,
    read_watermark,
    refuse_ahead,
    window_start,
)

__all__ = ["DEFAULT_LOCK_TTL_SECONDS", "SWEEP_LOCK", "sweep"]

_log = logging.getLogger("eventlake.archive.sweep")
SWEEP_LOCK = "sweep"
DEFAULT_LOCK_TTL_SECONDS = 900.0
_REUSE_WINDOW_READ = True
"""The TTL guard judges the window read's entries instead of querying its range again
(`_Tail`). benchmarks/read_units.py turns it off to measure the read path before issue 12."""


def sweep(lake: Lake, hot: HotStore, settings: Settings, *, settle_seconds: float | None = None,
          now: datetime | None = None, lock_ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS
          ) -> SweepReport:
    """Run the expiry check, archive what was ingested in [watermark - skew, now - settle),
    move the watermark, check TTL. `now` defaults to `hot.now()` (the corrected clock).

    Raises LakeNotFoundError / TableNotFoundError when either tier does not exist,
    SweepLockedError when another sweep holds the lease, WatermarkAheadError (after the expiry
    check) when the watermark is ahead of now by more than the clock skew, TtlGuardError (with
    `.report`) when unarchived events are within ttl_safety_hours of expiry, and the underlying
    error when reading or writing fails (the watermark then stays where it was).
    """
    started = time.perf_counter()
    # The table's shards, retention, clock skew and settle (read again at every run: `init`
    # may have raised the skew), or a refusal (tablesettings.py).
    settings = hot.agree(settings, fresh=True)
    settle = settings.archive_settle_seconds if settle_seconds is None else settle_seconds
    if not settle >= 0:
        raise ValueError(f"settle_seconds must be >= 0, got {settle!r}")
    run_id = new_run_id("sweep", now or hot.now())
    # A wrong EVENTLAKE_LAKE_URI must not get a lease, a watermark and files nobody reads,
    # nor another table's lake this table's events and a watermark on its ingestion.
    hot.require_table()
    require_lake_of(lake, settings.table)
    remember_shards(lake, hot)  # a lowered shard count must not hide the old shards' events
    with acquire_lease(lake, SWEEP_LOCK, ttl_seconds=lock_ttl_seconds, run_id=run_id) as lease:
        before = read_watermark(lake)
        # Writers retry for the skew + settle they adopted from the table: a watermark moved
        # closer to now than the largest settle in force (an override such as `--settle 0`,
        # or the tag lowered under warm writers) owes the next sweeps the difference, which it
        # records with the skew (carried forward: `Watermark`).
        table_settle = max(settings.archive_settle_seconds,
                           before.settle_seconds if before else 0.0)
        look_back = settings.clock_skew_seconds + max(0.0, table_settle - settle)
        # Read after the lease and the watermark: on an S3 lake their responses have measured
        # this host's clock offset by now.
        now = as_utc(now or hot.now())
        since = window_start(before, now, settings)
        until = max(since, now - timedelta(seconds=settle))
        counts = ArchiveCounts()
        watch = _RescueWatch(now, settings)
        vanished: list[Item] = []  # index entries whose items were gone when fetched
        tail: _Tail | None = None  # what the window read saw of the guard's range
        expiry: ExpiryCheck | None = None
        mark = before
        # What TTL may have emptied before any sweep read it: recorded on the expiry
        # checkpoint before anything moves past it (REMOVEs from it are then checked against
        # the lake), and reported (`overdue_until`) unless this is the first sweep.
        unread = _unread_expired(before, since, now, settings)
        try:
            # First the events about to expire: they are the most urgent, and a watermark
            # that cannot be swept from must not keep them from the lake.
            expiry = check_expiry(lake, hot, settings, now=now, window_since=since,
                                  run_id=run_id, renew=lease.renew_if_due, vanished=vanished,
                                  hole=unread)
            refuse_ahead(before, now, settings, lake.root)
            if until > since:
                name = window_name("sweep", since, until)
                kept = max(look_back, before.skew_seconds if before else 0.0)
                tail = _Tail(until, kept) if _REUSE_WINDOW_READ else None

                def pages() -> Iterator[list[Item]]:
                    # with a tail: [since, now], the window and the settle range the guard counts
                    read = (hot.read_index_pages(since, until) if tail is None else
                            hot.read_index_pages(since, _through(now)))
                    for page in read:
                        lease.renew_if_due()
                        window = page if tail is None else tail.split(page)
                        if window:
                            watch.look(window)
                            yield window

                archive_items(lake, lacking_items(lake, hot, pages(), counts=counts,
                                                  vanished=vanished),
                              name=name, counts=counts, on_written=watch.written)
                lease.renew_if_due()
                mark = advance_watermark(lake, until, expected=before, run_id=run_id,
                                         skew_seconds=look_back,
                                         settle_seconds=settings.archive_settle_seconds)
            # else nothing new to look at (a large settle, or the clock went back)
            after = mark.at if mark else since
        except Exception as exc:
            report = SweepReport(since, until, counts, before.at if before else None,
                                 before.at if before else since, TtlMargin(0, 0, None, None),
                                 time.perf_counter() - started, run_id, watch.rescued,
                                 f"{type(exc).__name__}: {redact(str(exc))}", expiry)
            _guard_failed_sweep(lake, hot, settings, now, since, report, exc, vanished)
            raise
        verify_recent(lake, counts.files, now)  # readers then read these files bare
        if watch.rescued:
            _log.warning("sweep %s archived %d event(s) already within %g h of their TTL "
                         "expiry: the stream path missed them; check it", run_id, watch.rescued,
                         settings.ttl_safety_hours)
        guard_since = window_start(mark, now, settings)
        reuse = (tail is not None and mark is not None
                 and guard_since >= tail.start and guard_since >= since
                 and reuse_window_read(settings, now, guard_since))
        try:
            margin = ttl_margin(lake, hot, settings, now=now, since=guard_since,
                                vanished=vanished,
                                read=tail.entries if reuse and tail is not None else None)
        except Exception as exc:  # the sweep's own work stands: say what it was
            moved = f"moved to {format_ts(after)}" if mark is not None and mark is not before \
                else f"stays at {format_ts(after)}"
            exc.add_note(f"sweep {run_id}: archived {counts.archived} event(s) "
                         f"({counts.already} already in the lake, {counts.quarantined} "
                         f"quarantined) and the watermark {moved} before this; the TTL "
                         "margin was not checked: the next sweep checks it")
            raise
        report = SweepReport(since, until, counts, before.at if before else None, after, margin,
                             time.perf_counter() - started, run_id, watch.rescued,
                             expiry=expiry,
                             overdue_until=unread[1] if unread and before is not None else None)
        if before is not None and unread is not None:
            _log.warning("sweep %s: the sweeps fell more than the retention period behind "
                         "(previous watermark %s): events ingested in [%s, %s) reached their "
                         "TTL expiry before any sweep read them; those TTL deleted first are in "
                         "the lake only if the stream path archived them", run_id,
                         format_ts(before.at), format_ts(since), format_ts(unread[1]))
        publish_sweep(report, settings, hot.clients, now)  # EVENTLAKE_METRICS (metrics.py)
        if margin.at_risk:
            raise TtlGuardError(margin, report=report)
        _log.info("sweep %s: %s", run_id, report.to_dict())
        return report


def _guard_failed_sweep(lake: Lake, hot: HotStore, settings: Settings, now: datetime,
                        since: datetime, report: SweepReport, exc: Exception,
                        vanished: list[Item]) -> None:
    """After a failed sweep, check the margin of everything since the old watermark (what the
    sweep could not write included): raise TtlGuardError from `exc` when events are at risk.
    Returns (the caller re-raises `exc`) when they are not, or when the check fails too."""
    if isinstance(exc, SweepLockedError | WatermarkConflictError):
        return  # another sweep is (or was) at work: its guard speaks for the window
    try:
        margin = ttl_margin(lake, hot, settings, now=now, since=since, vanished=vanished)
    except Exception as guard_exc:
        _log.warning("could not check the TTL margin after the failed sweep: %s", guard_exc)
        exc.add_note(f"sweep {report.run_id}: the TTL margin could not be checked either "
                     f"({type(guard_exc).__name__}: {guard_exc})")
        return
    report.ttl = margin
    if margin.at_risk:
        raise TtlGuardError(margin, report=report, failure=exc) from exc
    stays = report.watermark_before or since
    exc.add_note(f"sweep {report.run_id}: the watermark stays at {format_ts(stays)}; "
                 f"{margin.unarchived} event(s) are not archived yet and none is within "
                 f"{settings.ttl_safety_hours:g} h of TTL expiry")


def _unread_expired(before: Watermark | None, since: datetime, now: datetime,
                    settings: Settings) -> Hole | None:
    """[start, end) of the ingestion times no sweep has read whose items may have expired
    by `now` (so TTL may have deleted them unread): from this window's start (`since`, the
    previous watermark less its look-back: a writer whose clock runs slow stamps that far
    back after the sweep that moved it; with no watermark, the epoch: nothing was read yet)
    to the first ingestion time not expired. None when the window starts after that, which
    is every sweep that runs in time.

    expires_at is whole seconds (`int(ingested_at) + retention`, hot/store.py `item_of`): an
    item ingested up to a second after `now - retention` has expired too, so the stretch ends
    at `floor(now) - retention + 1 s`."""
    first_unexpired = math.floor(now.timestamp()) - settings.retention_seconds + 1
    end = datetime.fromtimestamp(first_unexpired, UTC)
    start = since if before is not None else datetime.fromtimestamp(0, UTC)
    return (start, end) if start < end else None


def _through(now: datetime) -> datetime:
    """The end of a read that includes `now` (reads are [since, until))."""
    return now + timedelta(microseconds=1)


class _Tail:
    """Splits the window read [since, now] into the window proper [since, until), which the
    sweep archives, and keeps the entries of [until - look-back, now]: the range the TTL guard
    checks after the watermark moves to `until` (window_start: the watermark less the largest
    look-back it records).

    The guard then judges these entries against the lake as it is after the writes instead of
    querying the range again (ttlguard.reuse_window_read says when that is allowed, and what
    a re-read would have added). Memory: the entries of skew + settle seconds of ingestion."""

    def __init__(self, until: datetime, look_back_seconds: float) -> None:
        self.start = until - timedelta(seconds=look_back_seconds)
        self._from, self._until = format_ts(self.start), format_ts(until)
        self.entries: list[Item] = []

    def split(self, page: list[Item]) -> list[Item]:
        """The entries of `page` in the window proper; keeps those the guard will need."""
        window: list[Item] = []
        for entry in page:
            # Every entry of either index carries its sort key, a string (hot/index.py `_KEYS`;
            # DynamoDB rejects an item whose key attribute has another type).
            key: str = entry["ingest_key"]["S"]
            if key >= self._from:
                self.entries.append(entry)
            if key < self._until:  # as the Query compares: `<ts>#<id>` < `<until>` iff ts < until
                window.append(entry)
        return window


class _RescueWatch:
    """Counts the events the sweep writes that were already close to (or past) expiry."""

    def __init__(self, now: datetime, settings: Settings) -> None:
        self.limit = now.timestamp() + settings.ttl_safety_hours * 3600
        self.near: set[str] = set()
        self.rescued = 0

    def look(self, page: list[Item]) -> None:
        for item in page:
            expires = expires_at(item)
            if expires is not None and expires <= self.limit:
                event_id = item.get("event_id", {}).get("S")
                if isinstance(event_id, str):
                    self.near.add(event_id)

    def written(self, ids: pa.Array) -> None:
        if self.near:
            self.rescued += sum(1 for event_id in ids.to_pylist() if event_id in self.near)
