"""`replay`: read the selection in order, send it in batches, checkpoint each acknowledged
batch; and its `ReplayReport`.

    checkpoint? -> target.start (a JSONL file truncates to the checkpoint's offset)
    for each day, in order: rows after the checkpoint's position, in (timestamp, event_id)
        -> batches of `batch_size` (they run across days) -> target.send -> checkpoint
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventlake.events.times import as_utc
from eventlake.query.views import Tiers
from eventlake.replay import checkpoint as checkpoints
from eventlake.replay.checkpoint import Checkpoint
from eventlake.replay.read import open_reader, read_batches
from eventlake.replay.select import Selection, SelectionError
from eventlake.replay.targets import Event, Target, seed_events, target_for


@dataclass
class ReplayReport:
    """What one run sent (a dry run: what it would have sent)."""

    sent: int = 0
    """Events sent by this run (a dry run: selected and not yet checkpointed)."""
    batches: int = 0
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    per_type: Counter[str] = field(default_factory=Counter)
    duration_s: float = 0.0
    resumed_after: int = 0
    """Events an earlier run had sent (the checkpoint's count), skipped by this one."""
    dry_run: bool = False

    @property
    def events_per_second(self) -> float:
        return self.sent / self.duration_s if self.duration_s > 0 else 0.0

    def summary(self) -> str:
        verb = "would send" if self.dry_run else "sent"
        resumed = f" (resumed after {self.resumed_after})" if self.resumed_after else ""
        return (f"replay: {verb} {self.sent} events in {self.batches} batches{resumed}, "
                f"{self.duration_s:.2f} s, {self.events_per_second:,.0f} events/s")


def replay(tiers: Tiers, selection: Selection,
           target: str | Target | Callable[[list[Event]], Any], *, batch_size: int = 500,
           checkpoint: str | os.PathLike[str] | None = None, dry_run: bool = False,
           now: datetime | None = None) -> ReplayReport:
    """Send every event of `selection`, in (timestamp, event_id) order, once, to `target`
    (`stdout`, `jsonl:PATH`, a Target or a callable taking a list of event dicts), in
    batches of `batch_size`. With `checkpoint` (a local path) the position is recorded after
    each acknowledged batch and a re-run resumes right after it. `dry_run` counts what would be
    sent and touches neither the target nor the checkpoint. `now` fixes the hot read's clock
    (default: the hot store's)."""
    if batch_size < 1:
        raise SelectionError(f"batch size `{batch_size}` must be at least 1")
    started = time.perf_counter()
    resume = checkpoints.load(checkpoint, selection) if checkpoint is not None else None
    report = ReplayReport(dry_run=dry_run, resumed_after=resume.count if resume else 0)
    sink = None if dry_run else target_for(target)
    con = open_reader(tiers, selection, now=now)
    try:
        if sink is not None:
            sink.start(resume)
        try:
            sent = report.resumed_after
            for events in _batches(con, selection, resume, batch_size):
                report.batches += 1
                report.sent += len(events)
                report.per_type.update(e["event_type"] for e in events)
                report.first_timestamp = report.first_timestamp or events[0]["timestamp"]
                report.last_timestamp = events[-1]["timestamp"]
                if sink is None:
                    continue
                offset = sink.send(events)
                sent += len(events)
                if checkpoint is not None:
                    last = events[-1]
                    checkpoints.save(checkpoint, Checkpoint(
                        as_utc(datetime.fromisoformat(last["timestamp"])), last["event_id"],
                        sent, offset), selection)
        finally:
            if sink is not None:
                sink.close()
    finally:
        con.close()
    report.duration_s = time.perf_counter() - started
    return report


def _batches(con: Any, selection: Selection, resume: Checkpoint | None, size: int
             ) -> Iterator[list[Event]]:
    """The selected events after the checkpoint, shaped, in lists of `size` (the last shorter)."""
    pending: list[Event] = []
    after = resume.position if resume else None
    for batch in read_batches(con, selection, after=after):
        pending.extend(seed_events(batch))
        full = len(pending) - len(pending) % size
        for start in range(0, full, size):
            yield pending[start:start + size]
        del pending[:full]
    if pending:
        yield pending
