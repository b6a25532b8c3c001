"""`replay`: read the selection in order, send it in batches, checkpoint each acknowledged
batch; and its `ReplayReport`.

    checkpoint? -> target.start (a JSONL file truncates to the checkpoint's offset)
    count first? (dry run, or a progress bar's total) -> count.count, same snapshot
    for each day, in order: rows after the checkpoint's position, in (timestamp, event_id)
        -> Batches of `batch_size` (they run across days) -> rate.take -> target.send
        -> checkpoint -> progress(report)
"""

from __future__ import annotations

import math
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
from eventlake.replay.count import Tally, count
from eventlake.replay.rate import TokenBucket
from eventlake.replay.read import open_reader, read_batches
from eventlake.replay.resolve import target_for
from eventlake.replay.select import Position, Selection, SelectionError
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
    """Seconds since the run began (counting, rate waits and the target's retries included)."""
    resumed_after: int = 0
    """Events an earlier run had sent (the checkpoint's count), skipped by this one."""
    dry_run: bool = False
    failed: int = 0
    """Events the target refused after its retries (the replay stopped at them)."""
    total: int | None = None
    """Events this run has to send, when counted first (a dry run, or `count_first`)."""
    rate_wait_s: float = 0.0
    """Seconds spent waiting to keep to `rate`."""

    def add(self, batch: Batch) -> None:
        """Count `batch` as sent."""
        self.batches += 1
        self.sent += len(batch)
        self.per_type.update(batch.types())
        self.first_timestamp = self.first_timestamp or format_ts(batch.first_timestamp)
        self.last_timestamp = format_ts(batch.last_timestamp)

    def add_tally(self, tally: Tally, batch_size: int) -> None:
        """Count a dry run's tally as what would be sent, in batches of `batch_size`."""
        self.sent = tally.count
        self.batches = math.ceil(tally.count / batch_size)
        self.per_type = Counter(tally.per_type)
        self.first_timestamp = format_ts(tally.first) if tally.first else None
        self.last_timestamp = format_ts(tally.last) if tally.last else None

    @property
    def events_per_second(self) -> float:
        return self.sent / self.duration_s if self.duration_s > 0 else 0.0

    def summary(self) -> str:
        """One line: sent (or would send), failed, duration, events/s."""
        resumed = f" (resumed after {self.resumed_after})" if self.resumed_after else ""
        if self.dry_run:
            return (f"replay: would send {self.sent} events in {self.batches} batches{resumed} "
                    f"(dry run, counted in {self.duration_s:.2f} s)")
        waited = (f" ({self.rate_wait_s:.2f} s of it waiting for the rate)"
                  if self.rate_wait_s else "")
        return (f"replay: sent {self.sent} events in {self.batches} batches{resumed}, "
                f"{self.failed} failed, {self.duration_s:.2f} s{waited}, "
                f"{self.events_per_second:,.0f} events/s")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values."""
        return {"sent": self.sent, "failed": self.failed, "batches": self.batches,
                "first_timestamp": self.first_timestamp, "last_timestamp": self.last_timestamp,
                "per_type": dict(sorted(self.per_type.items())),
                "duration_s": round(self.duration_s, 3),
                "events_per_second": round(self.events_per_second, 1),
                "resumed_after": self.resumed_after, "total": self.total,
                "rate_wait_s": round(self.rate_wait_s, 3), "dry_run": self.dry_run}


Progress = Callable[[ReplayReport], None]
"""Called after each acknowledged batch with the report so far (`report.total`: the events
this run has to send, when counted first)."""


def replay(tiers: Tiers, selection: Selection,
           target: str | Target | Callable[[list[Event]], Any], *, batch_size: int = 500,
           checkpoint: str | os.PathLike[str] | None = None, dry_run: bool = False,
           shape: str = "seed", rate: float | TokenBucket | None = None,
           progress: Progress | None = None, count_first: bool = False,
           now: datetime | None = None, clients: Clients | None = None) -> ReplayReport:
    """Send every event of `selection`, in (timestamp, event_id) order, once, to `target`
    (see resolve.KINDS, a Target or a callable taking a list of events), in batches of
    `batch_size`, each event in `shape`. With `checkpoint` (a local path or s3://) the
    position is recorded after each batch the target acknowledged (a JSONL file on S3: after
    each part) and a re-run resumes right after it. `dry_run` counts what would be sent
    (count.count: no event is read) and touches neither the target nor the checkpoint. `now`
    fixes the hot read's clock (default: the hot store's). AWS targets use `clients`
    (default: from the environment).

    `rate` (events/s, or a TokenBucket) spaces the batches out: at most one batch at once, `rate`
    on average. `progress` is called after each batch sent with the report so far;
    `count_first` counts the selection before sending (one aggregate query a day, on the same
    snapshot), so `report.total` is known from the first call.

    A target that gives up on events raises DeliveryError: the replay stops there, with the
    report (`error.report`) saying what was sent and how many failed."""
    if batch_size < 1:
        raise SelectionError(f"batch size `{batch_size}` must be at least 1")
    started = time.perf_counter()
    bucket = TokenBucket(rate, batch_size) if isinstance(rate, int | float) else rate
    chosen_shape = shape_for(shape)  # an unknown shape is refused by a dry run too
    with checkpoints.held(None if dry_run else checkpoint):
        resume = (checkpoints.load(checkpoint, selection, clients) if checkpoint is not None
                  else None)
        sink = None if dry_run else target_for(target, chosen_shape, clients)
        con = open_reader(tiers, selection, now=now)
        try:
            if sink is not None:
                resume = sink.resume(resume)  # None: the target cannot resume, start over
            report = ReplayReport(dry_run=dry_run, resumed_after=resume.count if resume else 0)
            after = resume.position if resume else None
            if dry_run or count_first:
                tally = count(con, selection, after)
                report.total = tally.count
                if dry_run:
                    report.add_tally(tally, batch_size)
            if sink is not None:
                try:
                    _send(sink, con, selection, after, report, batch_size=batch_size,
                          bucket=bucket, checkpoint=checkpoint, clients=clients,
                          progress=progress, started=started)
                finally:
                    sink.close()
        finally:
            con.close()
    report.duration_s = time.perf_counter() - started
    return report


def _send(sink: Target, con: Any, selection: Selection, after: Position | None,
          report: ReplayReport, *, batch_size: int, bucket: TokenBucket | None,
          checkpoint: str | os.PathLike[str] | None, clients: Clients | None,
          progress: Progress | None, started: float) -> None:
    """The loop: each batch through the rate, to the target, then the checkpoint the target
    acknowledges (every batch, or a JSONL file on S3 part by part), then `progress`."""
    sent = report.resumed_after
    durable = report.resumed_after
    try:
        for batch in batches(read_batches(con, selection, after=after), batch_size):
            if bucket is not None:
                report.rate_wait_s += bucket.take(len(batch))
            offset = sink.send(batch)
            sent += len(batch)
            done = sink.acknowledged(batch, sent, offset)
            if done is not None:
                durable = done.count
                if checkpoint is not None:
                    checkpoints.save(checkpoint, done, selection, clients)
            report.add(batch)
            if progress is not None:
                report.duration_s = time.perf_counter() - started
                progress(report)
        done = sink.finish()
        if done is not None and checkpoint is not None:
            checkpoints.save(checkpoint, done, selection, clients)
    except DeliveryError as exc:
        # What the target had taken but not yet made durable counts as failed, not sent.
        report.sent = min(report.sent, durable - report.resumed_after)
        report.failed = len(exc.event_ids)
        report.duration_s = time.perf_counter() - started
        exc.report = report
        raise
