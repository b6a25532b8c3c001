"""What the archive's runs report: the sweep, its expiry check and TTL margin, the backfill.

    SweepReport     one sweep: its window, ArchiveCounts, the watermark moved, and
      ExpiryCheck     the expiry check it ran first (expiry.py)
      TtlMargin       the TTL guard's margin after it (ttlguard.py)
    BackfillReport  one backfill: the Scan segments and ArchiveCounts (backfill.py)

`new_run_id` names a run; SweepNeedsAttentionError is raised (by the flows) when a run
archived everything it could but found what an operator must look at. The reports live here,
apart from the runs, so that the TTL guard's error can carry a sweep's report without the
guard importing the sweep.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventlake.archive.writer import ArchiveCounts
from eventlake.errors import EventLakeError
from eventlake.events.times import as_utc, format_ts

__all__ = ["SAMPLE_IDS", "BackfillReport", "ExpiryCheck", "SweepNeedsAttentionError",
           "SweepReport", "TtlMargin", "new_run_id"]

SAMPLE_IDS = 20
"""event_ids a report keeps as examples (the counts are always complete): enough to look
them up."""


def new_run_id(kind: str, now: datetime) -> str:
    """`<kind>-<UTC time>-<random>`: sortable by start time, unique across hosts."""
    return f"{kind}-{as_utc(now):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


@dataclass
class TtlMargin:
    """How much time TTL leaves to archive what is not archived yet."""

    unarchived: int
    """Events ingested since `since` (or in the unchecked expiry band) that no lake file
    holds."""
    at_risk: int
    """Of those, the ones whose expires_at is within ttl_safety_hours (or already past)."""
    nearest_expiry: datetime | None
    """The earliest expires_at of an unarchived event (None: nothing unarchived expires)."""
    hours_left: float | None
    """Hours from now to `nearest_expiry`; negative when it has passed (not yet deleted)."""
    checked: int = 0
    """Items read from the hot tier to decide."""
    since: datetime | None = None
    at_risk_ids: list[str] = field(default_factory=list)
    """Up to SAMPLE_IDS at-risk event_ids, nearest expiry first."""
    safety_hours: float = 0.0
    vanished: int = 0
    """Of the at-risk events, those deleted from the table (TTL) after a sweep's index read
    listed them and before it could fetch them, with no lake file holding them."""

    @property
    def ok(self) -> bool:
        return self.at_risk == 0

    def to_dict(self) -> dict[str, Any]:
        return {"unarchived": self.unarchived, "at_risk": self.at_risk,
                "nearest_expiry": format_ts(self.nearest_expiry) if self.nearest_expiry
                else None,
                "hours_left": None if self.hours_left is None else round(self.hours_left, 3),
                "checked": self.checked, "since": format_ts(self.since) if self.since else None,
                "at_risk_ids": list(self.at_risk_ids), "safety_hours": self.safety_hours,
                "vanished": self.vanished}


@dataclass
class ExpiryCheck:
    """What one expiry check did: read [since, until) (less what the sweep window covered),
    archived `counts.archived` events the lake lacked (`beyond_skew`), moved the checkpoint."""

    since: datetime
    until: datetime
    counts: ArchiveCounts = field(default_factory=ArchiveCounts)
    beyond_skew_ids: list[str] = field(default_factory=list)
    """Up to SAMPLE_IDS of the events it archived."""
    hole: tuple[datetime, datetime] | None = None
    """The stretch recorded on the checkpoint as one no sweep read before TTL could empty
    it (after an outage longer than the retention period; expiry.py)."""

    @property
    def beyond_skew(self) -> int:
        return self.counts.archived

    def to_dict(self) -> dict[str, Any]:
        return {"since": format_ts(self.since), "until": format_ts(self.until),
                "read": self.counts.read, "already": self.counts.already,
                "beyond_skew": self.beyond_skew, "beyond_skew_ids": list(self.beyond_skew_ids),
                "hole": [format_ts(t) for t in self.hole] if self.hole else None,
                "files": [f.path for f in self.counts.files]}


@dataclass
class SweepReport:
    """What one sweep did. `since` is the window's start: the clock skew before
    `watermark_before`. `watermark_after` equals `watermark_before` (or `since`) when the
    window was empty; `rescued` counts events this sweep archived that were already within
    ttl_safety_hours of expiry (the stream path missed them: a sign to look at it);
    `expiry.beyond_skew` the events only the expiry check found (see expiry.py)."""

    since: datetime
    until: datetime
    counts: ArchiveCounts
    watermark_before: datetime | None
    watermark_after: datetime
    ttl: TtlMargin
    duration_s: float
    run_id: str
    rescued: int = 0
    error: str | None = None
    """Set when the sweep failed part way (the exception says more)."""
    expiry: ExpiryCheck | None = None
    """The expiry check of this sweep (None: it did not run, the sweep failed before)."""
    overdue_until: datetime | None = None
    """Set when this window starts (`since`: the previous watermark less its look-back) more
    than the retention period ago: events ingested in [since, overdue_until) reached their TTL
    expiry before any sweep read them. None on the first sweep."""

    @property
    def beyond_skew(self) -> int:
        return self.expiry.beyond_skew if self.expiry else 0

    def problems(self) -> list[str]:
        """What an operator must look at (empty: nothing): event_ids reused with other content,
        events found only by the expiry check, a stretch TTL may have emptied before any sweep
        read it (`overdue_until`: then events may be lost)."""
        found = [p for p in [self.counts.problem()] if p]
        if self.overdue_until is not None:
            behind = self.expiry.hole[0] if self.expiry and self.expiry.hole else self.since
            found.append("the sweeps fell more than the retention period behind: events "
                         f"ingested in [{format_ts(self.since)}, {format_ts(self.overdue_until)}) "
                         "reached their TTL expiry before any sweep read them"
                         + (f" (and so may have those stamped further behind the watermark than "
                            f"EVENTLAKE_CLOCK_SKEW_SECONDS, from {format_ts(behind)}: only the "
                            "expiry check reads them)" if behind < self.since else "")
                         + ". This sweep archived those "
                         "still in the table; those TTL deleted first are in the lake only if "
                         "the stream path archived them (their INSERT, or their REMOVE's old "
                         "image): look at the stream Lambda's errors and the StreamFailures "
                         "queue for that period, and at why the sweeps stopped")
        if self.expiry is not None and self.beyond_skew:
            examples = ", ".join(f"`{i}`" for i in self.expiry.beyond_skew_ids[:5])
            found.append(f"{self.beyond_skew} event(s) were stamped further behind the watermark "
                         "than EVENTLAKE_CLOCK_SKEW_SECONDS and were archived only by the expiry "
                         f"check, e.g. {examples}: check the producers' clocks (NTP)")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "since": format_ts(self.since),
            "until": format_ts(self.until),
            "watermark_before": format_ts(self.watermark_before) if self.watermark_before
            else None,
            "watermark_after": format_ts(self.watermark_after),
            "counts": self.counts.to_dict(),
            "rescued": self.rescued,
            "overdue_until": format_ts(self.overdue_until) if self.overdue_until else None,
            "beyond_skew": self.beyond_skew,
            "expiry_check": self.expiry.to_dict() if self.expiry else None,
            "ttl": self.ttl.to_dict(),
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
        }


@dataclass
class BackfillReport:
    """What a backfill did: `scanned` items over `segments` parallel Scan segments."""

    segments: int
    scanned: int
    counts: ArchiveCounts
    duration_s: float
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "segments": self.segments, "scanned": self.scanned,
                "counts": self.counts.to_dict(), "duration_s": round(self.duration_s, 3)}


class SweepNeedsAttentionError(EventLakeError):
    """The run archived everything it could, but found what an operator must look at
    (`SweepReport.problems`, or a backfill's reused ids). Nothing is lost; `report` says more."""

    def __init__(self, report: SweepReport | BackfillReport, problems: list[str]) -> None:
        self.report = report
        lost = ("events may be lost: see above" if getattr(report, "overdue_until", None)
                else "nothing is lost")
        super().__init__(f"{'; '.join(problems)} (run `{report.run_id}`; {lost})")
