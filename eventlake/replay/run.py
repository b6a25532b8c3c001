"""`replay`: read the selection in order, send it in batches, checkpoint each acknowledged
batch; and its `ReplayReport`.

    checkpoint? -> target.start (a JSONL file truncates to the checkpoint's offset)
    for each day, in order: rows after the checkpoint's position, in (timestamp, event_id)
        -> Batches of `batch_size` (they run across days) -> target.send -> checkpoint
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventlake.aws import Clients
from eventlake.events.times import format_ts
from eventlake.query.views import Tiers
from eventlake.replay import checkpoint as checkpoints
from eventlake.replay.batch import Batch, Event, batches
from eventlake.replay.read import open_reader, read_batches
from eventlake.replay.resolve import target_for
from eventlake.replay.select import Selection, SelectionError
from eventlake.replay.shapes import shape_for
from eventlake.replay.targets import DeliveryError, Target


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
    failed: int = 0
    """Events the target refused after its retries (the replay stopped at them)."""

    def add(self, batch: Batch) -> None:
        """Count `batch` as sent (a dry run: as selected)."""
        self.batches += 1
        self.sent += len(batch)
        self.per_type.update(batch.types())
        self.first_timestamp = self.first_timestamp or format_ts(batch.first_timestamp)
        self.last_timestamp = format_ts(batch.last_timestamp)

    @property
    def events_per_second(self) -> float:
        return self.sent / self.duration_s if self.duration_s > 0 else 0.0

    def summary(self) -> str:
        verb = "would send" if self.dry_run else "sent"
        resumed = f" (resumed after {self.resumed_after})" if self.resumed_after else ""
        failed = f", {self.failed} failed" if self.failed else ""
        return (f"replay: {verb} {self.sent} events in {self.batches} batches{resumed}"
                f"{failed}, {self.duration_s:.2f} s, {self.events_per_second:,.0f} events/s")


def replay(tiers: Tiers, selection: Selection,
           target: str | Target | Callable[[list[Event]], Any], *, batch_size: int = 500,
           checkpoint: str | os.PathLike[str] | None = None, dry_run: bool = False,
           shape: str = "seed", now: datetime | None = None,
           clients: Clients | None = None) -> ReplayReport:
    """Send every event of `selection`, in (timestamp, event_id) order, once, to `target`
    (`stdout`, `jsonl:PATH`, a Target or a callable taking a list of events), in batches of
    `batch_size`, each event in `shape`. With `checkpoint` (a local path or s3://) the position is
    recorded after each acknowledged batch and a re-run resumes right after it. `dry_run` counts
    what would be sent and touches neither the target nor the checkpoint. `now` fixes the hot
    read's clock (default: the hot store's). AWS targets use `clients` (default: from the
    environment).

    A target that gives up on events raises DeliveryError: the replay stops there, with the
    report (`error.report`) saying what was sent and how many failed."""
    if batch_size < 1:
        raise SelectionError(f"batch size `{batch_size}` must be at least 1")
    started = time.perf_counter()
    resume = (checkpoints.load(checkpoint, selection, clients) if checkpoint is not None
              else None)
    report = ReplayReport(dry_run=dry_run, resumed_after=resume.count if resume else 0)
    sink = None if dry_run else target_for(target, shape_for(shape), clients)
    con = open_reader(tiers, selection, now=now)
    try:
        if sink is not None:
            resume = sink.resume(resume)
            report.resumed_after = resume.count if resume else 0
        try:
            sent = report.resumed_after
            after = resume.position if resume else None
            for batch in batches(read_batches(con, selection, after=after), batch_size):
                if sink is not None:
                    try:
                        offset = sink.send(batch)
                    except DeliveryError as exc:
                        _stopped(exc, report, started)
                        raise
                    sent += len(batch)
                    done = sink.acknowledged(batch, sent, offset)
                    if checkpoint is not None and done is not None:
                        checkpoints.save(checkpoint, done, selection, clients)
                report.add(batch)
            try:
                done = sink.finish() if sink is not None else None
            except DeliveryError as exc:
                _stopped(exc, report, started)
                raise
            if checkpoint is not None and done is not None:
                checkpoints.save(checkpoint, done, selection, clients)
        finally:
            if sink is not None:
                sink.close()
    finally:
        con.close()
    report.duration_s = time.perf_counter() - started
    return report


def _stopped(error: DeliveryError, report: ReplayReport, started: float) -> None:
    """Attach the report so far to `error`, which stops the replay."""
    report.failed = len(error.event_ids)
    report.duration_s = time.perf_counter() - started
    error.report = report
