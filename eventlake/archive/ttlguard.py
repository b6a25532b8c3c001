"""The TTL guard: events that are still only in DynamoDB, and how soon TTL may delete them.

    ingested_at ──[watermark)──── e ──── now ═══════ safety ═══════▶ e.expires_at ···▶ deleted
                                                                                  (lazily, ≤ ~48 h)
    unarchived  events ingested since the watermark less the clock skew (up to now), or in
                the expiry band no expiry check has passed yet, that no lake file holds
    at risk     unarchived events whose expires_at is within `ttl_safety_hours` of now,
                or already past it but not yet deleted (negative hours left), and events
                deleted from the table after the index listed them, before any lake file held
                them (`vanished`: no copy is left in DynamoDB)

    read        the index entries (keys, timestamp, expires_at: hot/index.py) of both ranges,
                anti-joined on (dt, event_id) against the lake; only the entries the lake
                lacks are fetched whole (BatchGetItem), to count only real events

What the guard can and cannot promise. It sees what is still in the table: an unarchived event
is reported as long as TTL has not deleted it, so a sweep that runs at least once inside every
`ttl_safety_hours` window fails loudly, in time to act, before any event is lost. An event that
TTL deleted before the stream or any sweep archived it is gone from the table, and no read of
the table can report it; the guard exists so that this never happens unannounced. Events
stamped before the watermark, by clocks at most EVENTLAKE_CLOCK_SKEW_SECONDS behind, are in
the lake by construction (the sweep moves the watermark only after writing them), so the guard
reads what came after the watermark less that skew. What a slower clock (or a watermark moved
forward by hand) put further back is read in the expiry band (expiry.py): items ingested
before `now + ttl_safety_hours - retention` that no expiry check has passed. So whatever the
watermark says, an unarchived event within ttl_safety_hours of expiry is never left out.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.archive.expiry import unchecked_band
from eventlake.archive.report import SAMPLE_IDS, SweepReport, TtlMargin
from eventlake.codec import CodecError, RowBuilder, fast_row
from eventlake.config import Settings, redact
from eventlake.errors import EventLakeError
from eventlake.events.times import as_utc, format_ts
from eventlake.hot.fetch import Fetched
from eventlake.hot.index import entry_key, is_whole
from eventlake.hot.store import TTL_ATTRIBUTE, HotStore, Item
from eventlake.lake.shards import read_recorded_shards
from eventlake.lake.store import Lake
from eventlake.lake.watermark import read_watermark, window_start

__all__ = ["EventKey", "MarginCheck", "TtlGuardError", "event_key", "expires_at",
           "reuse_window_read", "ttl_margin"]

_DAY = re.compile(r"\d{4}-\d\d-\d\d")


class EventKey(NamedTuple):
    """Where the archiver would write an item: its event_id in the partition `dt`."""

    event_id: str
    dt: str


class TtlGuardError(EventLakeError):
    """Unarchived events are within EVENTLAKE_TTL_SAFETY_HOURS of deletion by TTL. An operator
    must act: find why they are not archived (the sweep's error, the stream archiver) and run
    the sweep again. `report` holds the sweep's report when a sweep raised it."""

    def __init__(self, margin: TtlMargin, *, report: SweepReport | None = None,
                 failure: BaseException | None = None) -> None:
        self.margin = margin
        self.at_risk = margin.at_risk
        self.hours_left = margin.hours_left if margin.hours_left is not None else 0.0
        self.event_ids = list(margin.at_risk_ids)
        self.report = report
        super().__init__(_message(margin, failure))


def _message(margin: TtlMargin, failure: BaseException | None) -> str:
    gone = (f" {margin.vanished} of them were deleted from the table (TTL) after the index "
            "listed them and before they could be read or archived: no copy is left in "
            "DynamoDB; recover them from the stream (24 h) or a point-in-time backup."
            if margin.vanished else "")
    examples = ", ".join(f"`{i}`" for i in margin.at_risk_ids[:5])
    more = f" and {margin.at_risk - 5} more" if margin.at_risk > 5 else ""
    hours = margin.hours_left if margin.hours_left is not None else 0.0
    when = (f"the nearest expires in {hours:.1f} h" if hours >= 0 else
            f"the nearest expired {-hours:.1f} h ago and is kept only until DynamoDB's lazy "
            "TTL deletes it (usually within 48 h)")
    if margin.nearest_expiry is not None:
        when += f" (expires_at {format_ts(margin.nearest_expiry)})"
    cause = (f"The sweep failed ({type(failure).__name__}: {redact(str(failure))}): fix that "
             "and run it "
             "again" if failure is not None else
             "Run the sweep again (`eventlake archive`), and check the stream archiver "
             "and the sweep's schedule: a healthy pipeline archives events long before this")
    return (f"TTL guard: {margin.at_risk} unarchived event(s) are within "
            f"{margin.safety_hours:g} h of their TTL expiry, {when}; e.g. {examples}{more}. "
            f"{cause}.{gone} {margin.unarchived} event(s) in all are not archived yet.")


def ttl_margin(lake: Lake, hot: HotStore, settings: Settings, *, now: datetime | None = None,
               since: datetime | None = None, vanished: list[Item] | None = None,
               read: Sequence[Item] | None = None) -> TtlMargin:
    """The TTL margin of the events ingested in [since, now], and in the unchecked expiry band
    before `since`, that the lake does not hold.

    `now` defaults to `hot.now()` (the corrected clock); `since` to the watermark less the
    clock skew (with none yet, the oldest ingestion time an item in the table can have).
    Reads both ranges through the index and the lake's event_id columns of the dates they
    touch, and fetches whole only the items the lake lacks. `vanished`: index entries a
    sweep found deleted from the table before it could fetch them: at risk unless a lake
    file holds them now. `read`: the index entries of at least [since, now] that the caller
    read moments ago (the sweep's window read, `reuse_window_read`): judged against the lake
    as it is now instead of querying that range again (the unchecked band is still queried).
    """
    now = as_utc(now or hot.now())
    settings = hot.agree(settings)  # the retention recorded on the table sets the window
    read_recorded_shards(lake, hot)  # every shard the lake has seen in force
    if since is None:
        since = window_start(read_watermark(lake), now, settings)
    check = MarginCheck(lake, settings, now, since, fetch=hot.fetch)
    ranges = [unchecked_band(lake, now, settings, since)]
    if read is None:
        ranges.append((since, now + timedelta(microseconds=1)))
    else:
        # [since, now] as the Query reads it; a vanished entry is counted once, below
        lo, hi = format_ts(since), format_ts(now + timedelta(microseconds=1))
        gone = {entry["event_id"]["S"] for entry in vanished or []}
        check.add([entry for entry in read
                   if lo <= _ingest_key(entry) < hi and entry["event_id"]["S"] not in gone])
    for lo_at, hi_at in ranges:
        for page in hot.read_index_pages(lo_at, hi_at):
            check.add(page)
    if vanished:
        check.add_vanished(vanished)
    return check.result()


class MarginCheck:
    """Accumulates a TtlMargin over pages of items (memory: the ids of the dates touched)."""

    def __init__(self, lake: Lake, settings: Settings, now: datetime, since: datetime, *,
                 fetch: Callable[[Sequence[str]], Fetched] | None = None) -> None:
        """`fetch` reads whole items (HotStore.fetch): index entries the lake lacks are
        fetched to tell events from other items; without it, entries are whole items."""
        self.lake = lake
        self._fetch = fetch
        self.vanished = 0
        self.now = now
        self.since = since
        self.safety_hours = settings.ttl_safety_hours
        self._risk_limit = now.timestamp() + settings.ttl_safety_hours * 3600
        self._lake_ids: dict[str, pa.Array] = {}
        self.checked = self.unarchived = self.at_risk = 0
        self._nearest: float | None = None
        self._sample: list[tuple[float, str]] = []  # max-heap by expiry (negated)

    def add(self, items: list[Item]) -> None:
        """Count items or index entries: an entry the lake lacks is fetched whole first (an
        item that is not an event is left out: the sweep quarantines it, raw)."""
        self.checked += len(items)
        whole: list[Item] = []
        entries: list[tuple[EventKey, Item]] = []
        unread: list[Item] = []
        for item in items:
            if self._fetch is None or is_whole(item):
                whole.append(item)
                continue
            decided = entry_key(item)
            if decided is None:
                unread.append(item)  # the entry alone cannot say: read the item
            else:
                entries.append((EventKey(decided[0], decided[1]), item))
        for (_, entry), held in zip(entries, self._held([k for k, _ in entries]),
                                    strict=True):
            if not held:
                unread.append(entry)
        if unread and self._fetch is not None:
            fetched = self._fetch([entry["event_id"]["S"] for entry in unread])
            for entry in unread:
                found = fetched.items.get(entry["event_id"]["S"])
                if found is None:
                    self._gone(entry)
                else:
                    whole.append(found)
        keyed = [(key, item) for item in whole
                 if (key := event_key(item, self.now)) is not None]
        for (found_key, item), held in zip(keyed, self._held([k for k, _ in keyed]),
                                           strict=True):
            if not held:
                self._unarchived(found_key.event_id, expires_at(item))

    def add_vanished(self, entries: list[Item]) -> None:
        """Index entries whose items were deleted before they could be fetched: at risk
        unless the lake holds them now (the stream may have archived them meanwhile)."""
        self._lake_ids.clear()  # read the lake again: it may hold them by now
        keys = [entry_key(entry) for entry in entries]
        decided = [EventKey(k[0], k[1]) for k in keys if k is not None]
        held = iter(self._held(decided))
        for entry, key in zip(entries, keys, strict=True):
            if key is None or not next(held):
                self._gone(entry)

    def _held(self, keys: list[EventKey]) -> list[bool]:
        """For each key: whether a lake file of its dt holds its event_id."""
        held = [False] * len(keys)
        by_dt: dict[str, list[int]] = {}
        for position, key in enumerate(keys):
            by_dt.setdefault(key.dt, []).append(position)
        for dt, positions in by_dt.items():
            present = self._ids(dt)
            if not len(present):
                continue
            ids = pa.array([keys[p].event_id for p in positions], pa.string())
            for position, stored in zip(positions, pc.is_in(ids, value_set=present).to_pylist(),
                                        strict=True):
                held[position] = bool(stored)
        return held

    def _gone(self, entry: Item) -> None:
        """An unarchived event no longer in the table: lost to DynamoDB, so at risk
        whatever its expires_at said."""
        self.vanished += 1
        event_id = entry["event_id"]["S"]  # the table's key: every entry has it
        expires = expires_at(entry)
        self._unarchived(event_id, expires if expires is not None else self.now.timestamp(),
                         force=True)

    def _unarchived(self, event_id: str, expires: float | None, *, force: bool = False
                    ) -> None:
        self.unarchived += 1
        if expires is None:  # no TTL on this item: it never expires
            return
        if self._nearest is None or expires < self._nearest:
            self._nearest = expires
        if force or expires <= self._risk_limit:
            self.at_risk += 1
            entry = (-expires, event_id)
            if len(self._sample) < SAMPLE_IDS:
                heapq.heappush(self._sample, entry)
            elif entry > self._sample[0]:
                heapq.heapreplace(self._sample, entry)

    def _ids(self, dt: str) -> pa.Array:
        if dt not in self._lake_ids:
            self._lake_ids[dt] = self.lake.read_ids([dt])
        return self._lake_ids[dt]

    def result(self) -> TtlMargin:
        nearest = (None if self._nearest is None
                   else datetime.fromtimestamp(self._nearest, UTC))
        hours = None if nearest is None else (nearest - self.now).total_seconds() / 3600
        sample = [event_id for _, event_id in sorted(self._sample, reverse=True)]
        return TtlMargin(self.unarchived, self.at_risk, nearest, hours, self.checked,
                         self.since, sample, self.safety_hours, self.vanished)


def reuse_window_read(settings: Settings, now: datetime, since: datetime) -> bool:
    """Whether the TTL guard over [since, now] may judge the entries the sweep's window read
    listed instead of querying the range again: when no item eventlake writes there can be at
    risk (expires_at = ingested_at + retention > now + ttl_safety_hours for every ingested_at
    >= since). What the re-read would add is only items that appeared in the index since the
    window read (stragglers, seconds later): the next sweep's window reads them (it starts at
    this one's `since`), and by this bound none of them can be near expiry. Otherwise (a
    retention barely above the safety margin) the guard queries again, as before."""
    # expires_at is whole seconds (truncated): one second of slack
    return (since + timedelta(seconds=settings.retention_seconds - 1)
            > now + timedelta(hours=settings.ttl_safety_hours))


def _ingest_key(entry: Item) -> str:
    """The entry's index sort key `<ingested_at>#<id>` (compared like the Query compares):
    always there, a string (the index is keyed by it, hot/index.py)."""
    return str(entry["ingest_key"]["S"])


def event_key(item: Item, now: datetime) -> EventKey | None:
    """Where the archiver would write an item; None for a non-event."""
    row = fast_row(item)
    if row is None:
        builder = RowBuilder()
        try:
            builder.add_image(item, fallback_ingested_at=now)
        except CodecError:
            return None
        event_id, dt = builder.event_ids()[0], builder.dt_strings()[0]
    else:
        event_id, _type, timestamp, *_ = row
        dt = timestamp[:10]
    if not _DAY.fullmatch(dt):
        return None
    try:
        date.fromisoformat(dt)
    except ValueError:  # Feb 30 in the right layout: the sweep quarantines it
        return None
    return EventKey(event_id, dt)


def expires_at(item: Item) -> float | None:
    """The item's TTL (epoch seconds), or None when it has none DynamoDB would act on."""
    value = item.get(TTL_ATTRIBUTE)
    if not isinstance(value, dict) or not isinstance(value.get("N"), str):
        return None
    try:
        return float(Decimal(value["N"]))
    except (InvalidOperation, ValueError):
        return None
