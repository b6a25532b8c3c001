"""Reconcile: prove that the lake holds every hot event the watermark says is archived.

Days are UTC dates of *ingestion* time, because that is what the hot index can read. Each
day is read from DynamoDB up to the watermark; events ingested after it are legitimately not
archived yet and are not counted:

    ingested_at ─────[ day 1 ][ day 2 ][ da│y 3 ]───────────────▶
                      checked: must be in  │ watermark   not yet due (stream / next sweep)
                      the lake, same hash  │

The lake is partitioned by event time, not ingestion time, so each day reads only the `dt`
partitions its events' timestamps fall in (late events land in old partitions), and of those
only `event_id` and `content_hash`. Each hot event is then one of:

    found      in the lake with the same content hash (copies in several files count once)
    missing    not in the lake: `repair=True` re-archives it from the hot item
    different  in the lake with another hash: an immutability violation, never repaired

Lake rows whose events are no longer hot (expired by TTL) are expected and not looked at: the
lake cannot tell which of its rows were ingested on a given day without scanning every
partition. Items without the index attributes (other producers) are not in the index either;
the backfill, not reconcile, covers them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.archive.writer import archive_items
from eventlake.codec import CodecError, RowBuilder, fast_row
from eventlake.config import Settings
from eventlake.hot.store import HotStore, Item
from eventlake.lake.shards import read_recorded_shards
from eventlake.lake.store import Lake
from eventlake.lake.watermark import read_watermark

__all__ = ["MAX_IDS", "DayReconciliation", "ReconcileReport", "reconcile"]

MAX_IDS = 100
"""How many missing / different / lost ids a report lists (the counts are always complete)."""
_COLUMNS = ["event_id", "content_hash"]
_log = logging.getLogger(__name__)


@dataclass(slots=True)
class DayReconciliation:
    """One ingestion day (UTC): hot events due in the lake, and what the lake holds of them."""

    day: date
    hot: int
    """Events still in DynamoDB, ingested this day before the watermark."""
    cold: int
    """Of those, how many the lake holds (distinct event_ids, whatever their hash)."""
    missing: int
    """Hot events the lake does not hold (before any repair)."""
    different: int
    """Hot events the lake holds with another content hash (never repaired)."""
    repaired: int = 0
    """Missing events re-archived by this run (`repair=True`)."""

    @property
    def lost(self) -> int:
        """Missing events still not in the lake after this run."""
        return self.missing - self.repaired

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "hot": self.hot, "cold": self.cold,
                "missing": self.missing, "different": self.different,
                "repaired": self.repaired, "lost": self.lost}


@dataclass(slots=True)
class ReconcileReport:
    """The outcome of `reconcile` over ingestion days [start, end] (UTC)."""

    start: date
    end: date
    watermark: datetime | None
    """The archive watermark read at the start; None when no sweep has run (nothing is due)."""
    days: list[DayReconciliation]
    """Every day of the range that begins before the watermark, in order."""
    missing_ids: list[str]
    """The first `MAX_IDS` ids found missing (repaired or not), by day then id."""
    different_ids: list[str]
    """The first `MAX_IDS` ids stored in the lake with another content hash."""
    repaired: int
    duration_s: float
    lost_ids: list[str] = field(default_factory=list)
    """The first `MAX_IDS` missing ids that are still not in the lake after this run."""
    until: datetime | None = None
    """Exclusive end of what was checked, in ingestion time: min(end + 1 day, watermark)."""

    @property
    def hot(self) -> int:
        return sum(d.hot for d in self.days)

    @property
    def cold(self) -> int:
        return sum(d.cold for d in self.days)

    @property
    def missing(self) -> int:
        return sum(d.missing for d in self.days)

    @property
    def lost(self) -> int:
        """Events missing from the lake after any repair: the count that must be zero."""
        return sum(d.lost for d in self.days)

    @property
    def different(self) -> int:
        """Events stored in the lake with another content hash: must be zero, never repaired."""
        return sum(d.different for d in self.days)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.different == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "days_are": "UTC dates of ingestion time",
            "watermark": None if self.watermark is None else self.watermark.isoformat(),
            "checked_until": None if self.until is None else self.until.isoformat(),
            "ok": self.ok, "hot": self.hot, "cold": self.cold, "missing": self.missing,
            "repaired": self.repaired, "lost": self.lost, "different": self.different,
            "days": [d.to_dict() for d in self.days],
            "missing_ids": self.missing_ids, "lost_ids": self.lost_ids,
            "different_ids": self.different_ids,
            "duration_s": round(self.duration_s, 3),
        }


def reconcile(lake: Lake, hot: HotStore, settings: Settings, *, start: date, end: date,
              repair: bool = False, now: datetime | None = None) -> ReconcileReport:
    """Check that every event still in DynamoDB, ingested on UTC days `start`..`end`
    (inclusive) before the archive watermark, is in the lake with the same content hash.

    Days are ingestion days, not event days: the ingestion-time index is what can be read.
    `repair=True` re-archives missing events from their hot items through the sweep's writer,
    in files named `repair-<start>-<end>-<day>-<chunk>-<ids digest>` under each event's dt
    partition: what is missing is by definition not in
    the lake, so nothing is written twice, and a repair cut short and run again writes only
    what is still missing (the same files again when nothing was written). Events stored with
    another hash are reported, never overwritten. `now` (default: the clock) caps the range.
    `settings` is the run's configuration, as for the sweep; the stores carry their own.
    Raises TableNotFoundError / LakeNotFoundError when either tier does not exist.
    """
    if end < start:
        raise ValueError(f"reconcile range ends (`{end}`) before it starts (`{start}`)")
    # A check that finds nothing to check (no table, no lake: misconfigured) must not pass.
    hot.require_table()
    lake.require_exists()
    read_recorded_shards(lake, hot)  # every shard the lake has seen in force
    began = time.monotonic()
    now = now or datetime.now(UTC)
    watermark = read_watermark(lake)
    at = None if watermark is None else watermark.at
    bound = None if at is None else min(at, now, _midnight(end) + timedelta(days=1))
    report = ReconcileReport(start, end, at, [], [], [], 0, 0.0, until=bound)
    cold = _ColdHashes(lake)
    day = start
    while bound is not None and day <= end and _midnight(day) < bound:
        since = _midnight(day)
        until = min(since + timedelta(days=1), bound)
        result, missing = _check_day(day, hot.read_ingested(since, until), cold, report)
        written = (_repair(lake, hot, since, until, missing, f"repair-{start}-{end}-{day}")
                   if repair and missing else set())
        result.repaired = len(written)
        _extend(report.lost_ids, [i for i in missing if i not in written])
        report.days.append(result)
        report.repaired += result.repaired
        # The next day's events from just before midnight need `day` again. (Rows repaired
        # here are not in the cached tables; they are this day's events, not the next's.)
        cold.forget_before(day.isoformat())
        day += timedelta(days=1)
    report.duration_s = time.monotonic() - began
    if report.different:
        _log.error("reconcile %s..%s: %d event(s) stored in the lake with another content "
                   "hash (immutability violated), e.g. %s", start, end, report.different,
                   report.different_ids[:5])
    return report


class Archived(NamedTuple):
    """How the archiver writes a hot event: its content hash, in partition `dt`."""

    content_hash: str
    dt: str


# -- one day ---------------------------------------------------------------------------------

def _check_day(day: date, items: Iterable[Item], cold: _ColdHashes, report: ReconcileReport
               ) -> tuple[DayReconciliation, list[str]]:
    """Compare one day's hot events with the lake; returns the day and its missing ids."""
    expected: dict[str, Archived] = {}
    undecodable: list[str] = []
    for item in items:
        event_id, archived = _expected(item)
        if archived is None:
            undecodable.append(event_id)
        else:
            expected[event_id] = archived
    bad_dts = {e.dt for e in expected.values() if not _is_date(e.dt)}
    if bad_dts:  # the fast path trusts the layout; Feb 30 would fail the archiver too
        undecodable += [i for i, e in expected.items() if e.dt in bad_dts]
        expected = {i: e for i, e in expected.items() if e.dt not in bad_dts}
    found: dict[str, set[str]] = {}
    if expected:
        rows = cold.rows({e.dt for e in expected.values()})
        rows = rows.filter(pc.is_in(rows["event_id"], value_set=pa.array(list(expected))))
        for event_id, digest in zip(rows["event_id"].to_pylist(),
                                    rows["content_hash"].to_pylist(), strict=True):
            found.setdefault(event_id, set()).add(digest)
    # An item the codec cannot read was quarantined, not archived: it counts as missing.
    missing = sorted([i for i in expected if i not in found] + undecodable)
    # Any copy with another hash is a violation, even beside a good copy: readers pick one.
    different = sorted(i for i, hashes in found.items()
                       if hashes != {expected[i].content_hash})
    _extend(report.missing_ids, missing)
    _extend(report.different_ids, different)
    result = DayReconciliation(day, hot=len(expected) + len(undecodable), cold=len(found),
                               missing=len(missing), different=len(different))
    return result, missing


def _expected(item: Item) -> tuple[str, Archived | None]:
    """The event_id of a hot item and how the archiver would write it; None when the codec
    cannot turn it into a lake row."""
    row = fast_row(item)
    if row is not None:
        event_id, _type, timestamp, *_, digest = row
        return event_id, Archived(digest, timestamp[:10])
    event_id = str(item.get("event_id", {}).get("S", "?"))
    builder = RowBuilder()  # another producer's layout: normalised as the archiver does
    try:
        builder.add_image(item)
        table = builder.to_table()
    except CodecError:
        return event_id, None
    return event_id, Archived(table["content_hash"][0].as_py(), builder.dt_strings()[0])


def _repair(lake: Lake, hot: HotStore, since: datetime, until: datetime, missing: list[str],
            name: str) -> set[str]:
    """Re-archive a day's missing events from their hot items; returns the ids written.

    The sweep's writer does it (`archive_items`): the same rows, an anti-join that checks the
    lake once more right before writing, undecodable items to the quarantine with the reason,
    deterministic file names. The day is read again rather than held in memory: repairs are
    rare, days can be large. Items that expired meanwhile stay lost.
    """
    wanted = set(missing)
    written: set[str] = set()
    archive_items(lake, (item for item in hot.read_ingested(since, until)
                         if item.get("event_id", {}).get("S") in wanted),
                  name=name, source="reconcile",
                  on_written=lambda ids: written.update(ids.to_pylist()))
    return written


def _extend(ids: list[str], more: list[str]) -> None:
    ids.extend(more[:MAX_IDS - len(ids)])


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class _ColdHashes:
    """(event_id, content_hash) of lake partitions, each read once while days still need it.

    Consecutive ingestion days share partitions (events ingested just after midnight carry
    timestamps from just before it), so a partition is kept until the loop passes its day.
    """

    def __init__(self, lake: Lake) -> None:
        self._lake = lake
        self._tables: dict[str, pa.Table] = {}

    def rows(self, dts: set[str]) -> pa.Table:
        todo = sorted(dts - self._tables.keys())
        if len(todo) > 1:
            with ThreadPoolExecutor(min(8, len(todo))) as pool:
                tables = list(pool.map(self._read, todo))
        else:
            tables = [self._read(dt) for dt in todo]
        self._tables.update(zip(todo, tables, strict=True))
        return pa.concat_tables([self._tables[dt] for dt in sorted(dts)])

    def forget_before(self, dt: str) -> None:
        for key in [k for k in self._tables if k < dt]:
            del self._tables[key]

    def _read(self, dt: str) -> pa.Table:
        day = date.fromisoformat(dt)
        return self._lake.read(day, day, columns=_COLUMNS)
