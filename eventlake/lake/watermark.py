"""The archive watermark: the ingestion time before which every event is in the lake.

    <root>/_eventlake/watermark.json   {"at", "updated_at", "run_id", "previous"}

    ingested_at ───────────────────────[skew)[watermark)──────────────── now
                 in the lake (the sweep     re-read      in DynamoDB; maybe in the lake too
                 wrote what the stream had not)          (the `events` view reads it hot)

Only the sweep moves it, by compare-and-swap on the version it read when it started, and only
after the files of its window are durable; it never moves backwards. A crash before the move
leaves the old watermark (the window is swept again, the anti-join skips what is there); a
crash after it leaves the new one, with everything before it already in the lake.

`ingested_at` is stamped by the writer's clock, so "before the watermark" holds for writers
whose clocks are at most EVENTLAKE_CLOCK_SKEW_SECONDS behind: every reader of the window (the
sweep, `events_hot`, the TTL guard) starts that much before the watermark (`window_start`).
Callers pass the settings agreed with the table (`HotStore.agree` / `table_settings`): the skew
recorded on it is the one writers size their retry budget by (hot/tablesettings.py).
What a slower clock stamps further back is found by the expiry check (`expiry.py`).

The same compare-and-swap mark, under another key, is the expiry checkpoint
(`expiry_check.json`): `read_watermark` and `advance_watermark` take `key=`. The checkpoint also
carries its `holes`: stretches of ingestion time it moved over that TTL may have emptied before
any sweep read them (the sweeps stopped for longer than the retention period), so that nothing
takes "before the checkpoint" there as "read by a sweep" (archive/removed.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eventlake.config import Settings
from eventlake.errors import StorageError
from eventlake.events.times import as_utc, format_ts, human_duration
from eventlake.lake.state import LakeState, StateConflictError

__all__ = ["EXPIRY_CHECK_KEY", "MAX_HOLES", "TTL_LATENESS", "WATERMARK_KEY", "Hole", "Watermark",
           "WatermarkAheadError", "WatermarkConflictError", "advance_watermark", "merge_holes",
           "read_watermark", "refuse_ahead", "window_start"]

WATERMARK_KEY = "watermark.json"
EXPIRY_CHECK_KEY = "expiry_check.json"
"""The expiry checkpoint (`expiry.py`): every item ingested before it has had its last look."""
_NAMES = {WATERMARK_KEY: "the watermark", EXPIRY_CHECK_KEY: "the expiry checkpoint"}
MAX_HOLES = 16
"""The most `Watermark.holes` a mark keeps: beyond it the two closest are merged into one
stretch covering both (wider is safe: it only sends more REMOVEs to the lake to be checked)."""
Hole = tuple[datetime, datetime]
"""[start, end) of ingestion time."""
TTL_LATENESS = timedelta(days=2)
"""How long DynamoDB may keep an item after its `expires_at` (TTL deletes lazily, typically
within 48 hours): with no watermark yet, items ingested this much before the retention period
may still be in the table."""


class WatermarkConflictError(StateConflictError):
    """The watermark changed while a sweep ran (another sweep moved it)."""


class WatermarkAheadError(StorageError):
    """The watermark is further ahead of now than any clock skew explains (edited, restored
    from elsewhere, or written by a sweeper whose clock ran fast): sweeping from it would
    skip every event ingested before it. Restore it, or delete it."""


@dataclass(frozen=True)
class Watermark:
    """Every event ingested before `at` is in the lake. `version` is the state's version, for
    the next compare-and-swap; `run_id` names the sweep that moved it there."""

    at: datetime
    version: str
    updated_at: datetime
    run_id: str
    skew_seconds: float = 0.0
    """The largest clock skew (EVENTLAKE_CLOCK_SKEW_SECONDS) of the sweeps that moved it, carried
    forward: every reader of the window starts at least that far back (`window_start`), so a
    sweep configured with a smaller skew than an earlier one cannot step over events the earlier
    one left to be re-read. A sweep run with a shorter settle than the table's (`--settle 0`)
    adds the difference: writers retry for the table's skew + settle, and that watermark is
    closer to now than they allow for. 0 in watermarks written before it was recorded."""
    settle_seconds: float = 0.0
    """The largest archive settle recorded on the table (EVENTLAKE_ARCHIVE_SETTLE_SECONDS) that the
    sweeps moving it saw, carried forward: writers that adopted it may still retry for it, so a
    sweep with a shorter settle (an override, or the tag lowered) adds the difference to the
    look-back it records in `skew_seconds`. 0 in watermarks written before it was recorded."""
    holes: tuple[Hole, ...] = ()
    """Stretches of ingestion time before `at` that no sweep read while TTL could not yet have
    deleted their items (the sweeps had stopped for longer than the retention period), carried
    forward: "ingested before the mark" does not mean "read by a sweep" there. Sorted, apart,
    at most MAX_HOLES. Empty in marks written before they were recorded."""

    def to_dict(self) -> dict[str, str]:
        return {"at": format_ts(self.at), "updated_at": format_ts(self.updated_at),
                "run_id": self.run_id, "version": self.version}


def read_watermark(lake: LakeState, key: str = WATERMARK_KEY) -> Watermark | None:
    """The current watermark (or the mark under `key`), or None before the first sweep."""
    found = lake.read_state(key)
    if found is None:
        return None
    data, version = found
    try:
        raw = json.loads(data)
        skew, settle = (_seconds(raw, name) for name in ("skew_seconds", "settle_seconds"))
        holes = tuple((_utc(a), _utc(b)) for a, b in raw.get("holes") or [])
        return Watermark(_utc(raw["at"]), version, _utc(raw["updated_at"]), str(raw["run_id"]),
                         skew, settle, holes)
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(
            f"`{key}` of lake `{getattr(lake, 'root', '?')}` is not readable ({exc}): "
            "restore it, or delete it to let the next sweep re-check the whole retention "
            "period (safe: the sweep skips events already in the lake)") from exc


def advance_watermark(lake: LakeState, to: datetime, *, expected: Watermark | None,
                      run_id: str, now: datetime | None = None, key: str = WATERMARK_KEY,
                      skew_seconds: float = 0.0, settle_seconds: float = 0.0,
                      holes: Sequence[Hole] = ()) -> Watermark:
    """Move the watermark to `to` if it is still `expected` (None: it must not exist yet).
    `skew_seconds`: the mover's look-back (clock skew, plus what a short settle owes);
    `settle_seconds`: the table's settle; the mark keeps the largest of each (`Watermark`).
    `holes`: stretches to add to the mark's (`Watermark.holes`), in the same write.

    Never backwards: when `to` is not after `expected.at`, the mark stays (and nothing is
    written unless `holes` adds to it). Losing the race raises WatermarkConflictError; the
    watermark is then left as the other writer set it.
    """
    to = as_utc(to)
    kept = merge_holes([*(expected.holes if expected else ()), *holes])
    if expected is not None and to <= expected.at:
        if kept == expected.holes:
            return expected
        to = expected.at
    updated_at = as_utc(now or datetime.now(UTC))
    skew = max(skew_seconds, expected.skew_seconds if expected else 0.0)
    settle = max(settle_seconds, expected.settle_seconds if expected else 0.0)
    record: dict[str, Any] = {
        "at": format_ts(to), "updated_at": format_ts(updated_at), "run_id": run_id,
        "skew_seconds": skew, "settle_seconds": settle,
        "previous": format_ts(expected.at) if expected else None}
    if kept:
        record["holes"] = [[format_ts(a), format_ts(b)] for a, b in kept]
    data = json.dumps(record, sort_keys=True).encode()
    try:
        version = lake.swap_state(key, data, expected=expected.version if expected else None)
    except StateConflictError as exc:
        current = read_watermark(lake, key)
        where = (f"`{format_ts(current.at)}` (run `{current.run_id}`)" if current
                 else "nothing (deleted)")
        raise WatermarkConflictError(
            f"{_NAMES.get(key, f'`{key}`')} changed while run `{run_id}` was sweeping: it expected "
            f"`{format_ts(expected.at) if expected else 'none'}` and found {where}. Another "
            "sweep ran at the same time (a lease that expired under a slow run?). Nothing is "
            "lost: this run's files are in the lake and later sweeps skip them; if it repeats, "
            "raise the sweep's lease TTL") from exc
    return Watermark(to, version, updated_at, run_id, skew, settle, kept)


def merge_holes(holes: Sequence[Hole]) -> tuple[Hole, ...]:
    """`holes` sorted, those that overlap or touch joined, empty ones dropped; then, while
    there are more than MAX_HOLES, the two with the smallest gap between them joined (the
    stretch between them is then taken as a hole too: safe, see MAX_HOLES)."""
    joined: list[Hole] = []
    for start, end in sorted((as_utc(a), as_utc(b)) for a, b in holes if b > a):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    while len(joined) > MAX_HOLES:
        i = min(range(len(joined) - 1), key=lambda j: joined[j + 1][0] - joined[j][1])
        joined[i:i + 2] = [(joined[i][0], joined[i + 1][1])]
    return tuple(joined)


def window_start(watermark: Watermark | None, now: datetime, settings: Settings, *,
                 skew: bool = True) -> datetime:
    """Where the next sweep (and the hot read, and the TTL guard) starts: the tolerated clock
    skew before the watermark, or with none yet the oldest ingestion time an item still in the
    table can have (retention plus TTL's lateness before `now`). `skew=False` starts at the
    mark itself: the expiry check's band starts at its checkpoint."""
    if watermark is not None:
        if not skew:
            return watermark.at
        # The larger of this process's skew and the largest a sweep moving the mark used: a
        # process configured with a smaller one must not start after what that sweep left to
        # be re-read (a late-landing event would be behind every later window).
        return watermark.at - timedelta(seconds=max(settings.clock_skew_seconds,
                                                    watermark.skew_seconds))
    return as_utc(now) - timedelta(days=settings.retention_days) - TTL_LATENESS


def refuse_ahead(watermark: Watermark | None, now: datetime, settings: Settings,
                 root: str = "?") -> None:
    """Raise WatermarkAheadError when `watermark` is more than the clock skew ahead of `now`."""
    if watermark is None or watermark.at - now <= settings.clock_skew:
        return
    ahead = human_duration((watermark.at - now).total_seconds())
    raise WatermarkAheadError(
        f"the watermark `{format_ts(watermark.at)}` (run `{watermark.run_id}`) is {ahead} ahead "
        f"of now `{format_ts(now)}`, more than the tolerated clock skew "
        f"({settings.env_name('clock_skew_seconds')}={settings.clock_skew_seconds:g}): it was "
        f"edited, or written by a sweeper whose clock ran fast, and sweeping from it would skip "
        f"every event ingested before it. Restore `{root}/_eventlake/{WATERMARK_KEY}` to its "
        "`previous` value, or delete it (safe: the next sweep re-checks the whole retention "
        "period and skips events already in the lake); then check the sweeper's clock (NTP)")


def _seconds(raw: Any, name: str) -> float:
    """A carried-forward number of seconds of the mark (0 when absent: an older mark)."""
    value = float(raw.get(name) or 0.0)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} {value!r} is not a number of seconds >= 0")
    return value


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"`{text}` has no time zone")
    return value.astimezone(UTC)
