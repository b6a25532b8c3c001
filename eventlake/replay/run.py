"""`replay`: read the selection in order, send it in batches, checkpoint each acknowledged
batch; and its `ReplayReport`.

    checkpoint? (refused unless of this selection, target and shape) -> target.resume
        (a JSONL file checks its last bytes, truncates to the checkpoint's offset)
    resumed? count the events at or before the checkpoint now, and XOR their identities (one
        aggregate): more than it counted are late arrivals it cannot send (a WARNING,
        report.missed_before_resume); fewer, vanished ones; as many but another digest, both
    count first? (dry run, or a progress bar's total) -> count.count, same snapshot
    for each day, in order: rows after the checkpoint's position, in (timestamp, event_id)
        -> Batches of `batch_size` (they run across days) -> rate.take -> target.send
        -> checkpoint (count and digest of what was sent) -> progress(report)
    done, or stopped by the target? recount the events at or before the last position made
        durable, on a fresh snapshot (one aggregate): more than this run sent and found are
        events that arrived during the run behind its position, never sent (a WARNING,
        report.missed_during_run); fewer vanished; as many but another digest, both

Whatever stops the loop once sending began carries the report (`error.report`: what was sent
and made durable), so a caller can say what a re-run resumes from.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import duckdb

from eventlake.aws import Clients
from eventlake.config import redact
from eventlake.events.times import as_utc, format_ts
from eventlake.lake.vanish import retry_on_vanish
from eventlake.query.views import Tiers, file_vanished_in_query
from eventlake.replay import checkpoint as checkpoints
from eventlake.replay.batch import Batch, Event, batches
from eventlake.replay.count import Identities, Tally, count, count_after, through
from eventlake.replay.rate import TokenBucket
from eventlake.replay.read import open_reader, read_batches, reopen_reader
from eventlake.replay.resolve import target_for
from eventlake.replay.select import (
    IDENTITY_SQL,
    Position,
    Selection,
    SelectionError,
)
from eventlake.replay.shapes import shape_for
from eventlake.replay.targets import CallableTarget, DeliveryError, Target

_log = logging.getLogger(__name__)
T = TypeVar("T")


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
    missed_before_resume: int = 0
    """A resumed run: selected events at or before the checkpoint's position that were not
    there when it was written (late arrivals): not sent by this run (see `warnings`)."""
    vanished_before_resume: int = 0
    """A resumed run: events the checkpoint counted that the selection no longer holds at or
    before its position (a lost-event alarm)."""
    late_and_vanished_before_resume: bool = False
    """A resumed run: as many events at or before the checkpoint's position as it counted, but
    not the same ones (its digest differs): some arrived late and as many vanished; the counts
    cannot tell how many (a WARNING)."""
    missed_during_run: int = 0
    """Selected events that arrived while this run went on, with a place at or before the last
    position it sent (its snapshot did not have them): not sent (a WARNING naming the range to
    replay again). Counted when the run ends or the target stops it."""
    vanished_during_run: int = 0
    """Events at or before that position, sent or found by this run, that the selection no
    longer holds when it ends (a lost-event alarm)."""
    arrived_after_run: int = 0
    """A run that finished: selected events after the last position it sent that its
    snapshot did not hold (they arrived during the run): not sent (a WARNING; logged at INFO
    when the selection's end is after the run began: a live stream's tail, expected)."""
    late_and_vanished_during_run: bool = False
    """As many events at or before that position as the run sent and found, but not the same
    ones: some arrived and as many vanished during the run (a WARNING)."""
    warnings: list[str] = field(default_factory=list)
    """What the run found wrong without stopping, one sentence each (the summary ends with
    them)."""

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
        batches = f"{self.batches} batch{'' if self.batches == 1 else 'es'}"
        warned = "".join(f"; WARNING: {w}" for w in self.warnings)
        if self.dry_run:
            return (f"replay: would send {self.sent:,} events in {batches}{resumed} "
                    f"(dry run, counted in {self.duration_s:.2f} s){warned}")
        waited = (f" ({self.rate_wait_s:.2f} s of it waiting for the rate)"
                  if self.rate_wait_s else "")
        return (f"replay: sent {self.sent:,} events in {batches}{resumed}, "
                f"{self.failed} failed, {self.duration_s:.2f} s{waited}, "
                f"{self.events_per_second:,.0f} events/s{warned}")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values."""
        return {"sent": self.sent, "failed": self.failed, "batches": self.batches,
                "first_timestamp": self.first_timestamp, "last_timestamp": self.last_timestamp,
                "per_type": dict(sorted(self.per_type.items())),
                "duration_s": round(self.duration_s, 3),
                "events_per_second": round(self.events_per_second, 1),
                "resumed_after": self.resumed_after, "total": self.total,
                "rate_wait_s": round(self.rate_wait_s, 3), "dry_run": self.dry_run,
                "missed_before_resume": self.missed_before_resume,
                "vanished_before_resume": self.vanished_before_resume,
                "late_and_vanished_before_resume": self.late_and_vanished_before_resume,
                "missed_during_run": self.missed_during_run,
                "vanished_during_run": self.vanished_during_run,
                "late_and_vanished_during_run": self.late_and_vanished_during_run,
                "arrived_after_run": self.arrived_after_run,
                "warnings": list(self.warnings)}


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

    A checkpoint is resumed only by the same selection, target and shape (CheckpointError
    otherwise); a local one that cannot be written is refused before anything is sent. A
    resumed run counts the selected events at or before the checkpoint's position and XORs
    their identities (aggregate queries over the days up to it) and reports those that arrived
    since, which it cannot send (`report.missed_before_resume`, a WARNING), and those that
    vanished. When it ends, or a target stops it, a run that sent anything (or resumed)
    counts the same way, on a fresh snapshot, the events at or before the last position made
    durable: those that arrived during the run behind it were not sent
    (`report.missed_during_run`, a WARNING); those that vanished are a lost-event alarm.

    A target that gives up on events raises DeliveryError: the replay stops there, with the
    report (`error.report`) saying what was sent and how many failed. Any other exception
    raised once sending began carries the report too."""
    if batch_size < 1:
        raise SelectionError(f"batch size `{batch_size}` must be at least 1")
    started = time.perf_counter()
    began = as_utc(now) if now is not None else datetime.now(UTC)
    bucket = TokenBucket(rate, batch_size) if isinstance(rate, int | float) else rate
    chosen_shape = shape_for(shape)  # an unknown shape is refused by a dry run too
    scope = {"sink": sink_name(target), "shape": shape}
    with checkpoints.held(None if dry_run else checkpoint):
        resume = (checkpoints.load(checkpoint, selection, clients, **scope)
                  if checkpoint is not None else None)
        sink = None if dry_run else target_for(target, chosen_shape, clients)
        # listed before the reader's snapshot, and again at the end: the same files bracket it
        listed = _cold_listing(tiers, selection) if sink is not None else None
        con = open_reader(tiers, selection, now=now)
        try:
            if sink is not None:
                resume = sink.resume(resume)  # None: the target cannot resume, start over
            report = ReplayReport(dry_run=dry_run, resumed_after=resume.count if resume else 0)
            after = resume.position if resume else None
            counting = _listing_again(con, tiers, selection, now)
            before = Identities()
            if resume is not None:
                checked = resume
                before = counting(lambda: _check_before(con, selection, checked, report))
            if dry_run or count_first:
                tally = counting(lambda: count(con, selection, after))
                report.total = tally.count
                if dry_run:
                    report.add_tally(tally, batch_size)
            if sink is not None:
                # the digest is what a checkpoint records: a run without one compares counts
                # (reading each event's identity along costs a replay about 5%)
                ledger = _Ledger(resume, before,
                                 IDENTITY_SQL if checkpoint is not None else None)
                fresh = lambda: reopen_reader(con, tiers, selection, now=now)  # noqa: E731
                unchanged = lambda: listed is not None and (  # noqa: E731
                    _cold_listing(tiers, selection) == listed)
                try:
                    try:
                        _send(sink, con, selection, after, report, batch_size=batch_size,
                              bucket=bucket, checkpoint=checkpoint, clients=clients,
                              progress=progress, started=started, scope=scope,
                              reopen=fresh, ledger=ledger)
                    except DeliveryError:
                        _check_after(con, selection, ledger, report, counting, fresh,
                                     unchanged=unchanged)
                        raise
                    _check_after(con, selection, ledger, report, counting, fresh,
                                 finished=True, unchanged=unchanged,
                                 live=selection.to_ts > began)
                finally:
                    _close(sink)
        finally:
            con.close()
    report.duration_s = time.perf_counter() - started
    return report


def _listing_again(con: Any, tiers: Tiers, selection: Selection, now: datetime | None
                   ) -> Callable[[Callable[[], T]], T]:
    """A runner of `con`'s counting queries: one that meets a listed file compaction deleted
    runs again on a fresh snapshot (`reopen_reader`), up to VANISH_ATTEMPTS times, then
    TransientError (safe to retry)."""
    def run(query: Callable[[], T]) -> T:
        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                reopen_reader(con, tiers, selection, now=now)
            return query()

        return retry_on_vanish(attempt, errors=duckdb.Error, vanished=file_vanished_in_query,
                               during="while counting the replay's selection")

    return run


def _close(sink: Target) -> None:
    """Close `sink`; when an error is already on its way out, a failing close is logged, not
    raised over it (that error carries the report and says what failed first)."""
    if sys.exc_info()[1] is None:
        sink.close()
        return
    try:
        sink.close()
    except Exception:
        _log.exception("closing the target failed after the replay had stopped")


def sink_name(target: str | Target | Callable[[list[Event]], Any]) -> str:
    """The target as a checkpoint records it: a name with any password redacted; a Target
    object as it describes itself; a callable by its qualified name."""
    if isinstance(target, str):
        kind, _, rest = target.partition(":")
        if kind == "jsonl" and rest and "://" not in rest:
            # one file however it is spelled (`out.jsonl`, `./out.jsonl`, absolute): the
            # file's own tail digest, in the checkpoint too, tells a replaced file apart
            return f"jsonl:{Path(rest).resolve()}"
        return redact(target)
    if isinstance(target, Target):
        return target.describe()
    return CallableTarget(target).describe()


def _check_before(con: Any, selection: Selection, resume: checkpoints.Checkpoint,
                  report: ReplayReport) -> Identities:
    """Compare the selected events at or before `resume`'s position now with the count (and
    digest, when it has one) it recorded: more are late arrivals this run cannot send (they
    sort before where it goes on), fewer vanished, as many with another digest both. One
    aggregate query per window of days up to the position. Returns what it counted."""
    found = through(con, selection, resume.position)
    now = found.count
    at = format_ts(resume.timestamp)
    if now == resume.count and resume.digest is not None and found.digest != resume.digest:
        report.late_and_vanished_before_resume = True
        report.warnings.append(
            f"the selection holds as many events at or before {at} as the checkpoint counted "
            f"({now}), but not the same ones: some arrived after it was written and were not "
            "sent, and as many vanished (the counts cannot tell how many). "
            + _replay_again(selection, resume.position) + "; and check the lake with "
            "`eventlake reconcile` (a lost-event alarm)")
        _log.error("replay: %s", report.warnings[-1])
    elif now > resume.count:
        report.missed_before_resume = now - resume.count
        report.warnings.append(
            f"{now - resume.count} events with timestamps before the checkpoint arrived after "
            f"it was written and were not sent: replay [{format_ts(selection.from_ts)}, {at}] "
            f"again to get them (--from {format_ts(selection.from_ts)} --to "
            f"{format_ts(resume.timestamp + timedelta(microseconds=1))}, without this "
            "checkpoint; it resends what was sent)")
        _log.warning("replay: %s", report.warnings[-1])
    elif now < resume.count:
        report.vanished_before_resume = resume.count - now
        report.warnings.append(
            f"{resume.count - now} of the {resume.count} events the checkpoint counted at or "
            f"before {at} are no longer in the selection: events vanished from the lake "
            "(a lost-event alarm: check it with `eventlake reconcile`)")
        _log.error("replay: %s", report.warnings[-1])
    return found


def _replay_again(selection: Selection, position: Position) -> str:
    """How to get the events at or before `position` again."""
    start, at = format_ts(selection.from_ts), format_ts(position.timestamp)
    end = format_ts(position.timestamp + timedelta(microseconds=1))
    return (f"Replay [{start}, {at}] again to get them (--from {start} --to {end}, without "
            "this checkpoint; it resends what was sent)")


class _Ledger:
    """What the target made durable: its position, how many events and the XOR of their
    identities (the run's own, and with the resumed checkpoint's), for the checkpoint and for
    the recount at the end. `before`: the events at or before the resumed position that the
    run's first snapshot held (what `_check_before` counted; nothing without a checkpoint)."""

    def __init__(self, resume: checkpoints.Checkpoint | None, before: Identities,
                 identity: str | None = IDENTITY_SQL) -> None:
        self.before = before
        self.identity = identity
        self.position = resume.position if resume else None
        self.base = resume.count if resume else 0
        self.base_digest = resume.digest if resume else 0  # None: a version 1 checkpoint
        self.count = 0
        """Events this run made durable."""
        self.digest: int | None = 0
        """The XOR of their identities (None: some batch did not carry them)."""
        self._sent: int | None = 0
        self._marks: dict[int, int | None] = {}

    def sent(self, batch: Batch, count: int) -> None:
        """`batch` went to the target; `count`: events sent so far, earlier runs included."""
        digest = batch.digest
        self._sent = None if self._sent is None or digest is None else self._sent ^ digest
        self._marks[count] = self._sent

    def durable(self, done: checkpoints.Checkpoint) -> checkpoints.Checkpoint:
        """Record that the target made the events up to `done` durable; `done` with the digest
        of all it counts (None when unknown)."""
        if done.count == self.base:
            return dataclasses.replace(done, digest=self.base_digest)
        digest = self._marks.get(done.count)
        for mark in [mark for mark in self._marks if mark <= done.count]:
            del self._marks[mark]
        self.position, self.count, self.digest = done.position, done.count - self.base, digest
        whole = None if digest is None or self.base_digest is None else self.base_digest ^ digest
        return dataclasses.replace(done, digest=whole)


def _cold_listing(tiers: Tiers, selection: Selection
                  ) -> tuple[tuple[str, int, datetime | None, int, int], ...] | None:
    """The files of the selection's days as listed now (path, size, modification time, and for
    a local lake the file's inode and change time), for a cold-only selection; None when the
    hot tier is read too (its rows change without a file) or a listed file is gone already.
    A local file replaced by another of the same size with its modification time set back
    (`cp -p`, `rsync -t`, a restore) has a new change time, which no one can set back. An S3
    object overwritten under the same key with the same size in the same second (LastModified
    counts seconds) is not told apart: eventlake's writers never reuse a key for other bytes."""
    if not selection.cold_only:
        return None
    files = tiers.cold.list_files(selection.from_ts.date(), selection.to_ts.date())
    local = not tiers.cold.is_s3
    try:
        return tuple((f.path, f.size, f.modified, *(_changed(f.path) if local else (0, 0)))
                     for f in files)
    except FileNotFoundError:
        return None  # deleted since listed (compaction): the lake is changing, recount


def _changed(path: str) -> tuple[int, int]:
    """A local file's inode and change time (ns): what a replacement cannot keep."""
    info = os.stat(path)
    return info.st_ino, info.st_ctime_ns


class _Counting(Protocol):
    """`_listing_again`'s runner: a counting query, run again on a fresh snapshot when a file
    vanished under it."""

    def __call__(self, query: Callable[[], T], /) -> T: ...


def _check_after(con: Any, selection: Selection, ledger: _Ledger, report: ReplayReport,
                 counting: _Counting, fresh: Callable[[], None], *,
                 finished: bool = False, unchanged: Callable[[], bool] | None = None,
                 live: bool = False) -> None:
    """Count the selected events at or before the last durable position on a fresh snapshot
    (`fresh`, then one aggregate query per window of days) and compare with what the run
    found before its position and sent: more arrived during the run behind it (not sent),
    fewer vanished. A run that `finished` also counts the selected events after that position
    (the days after it only): they arrived during the run after the last event it saw, and
    were not sent either (`report.arrived_after_run`). A recount that fails is a WARNING, not
    the run's failure. When `unchanged` says the selection's days list the same files as
    before the run's snapshot (a cold-only selection nothing wrote to or compacted meanwhile),
    the recount would find exactly what the run read: it is not made. A `live` selection (its
    end after the run began) expects events after its last position to keep arriving: those
    are logged (INFO) and counted, not a WARNING."""
    position = ledger.position
    if position is None:
        return  # nothing sent, nothing resumed: no place behind which an event could be late
    expected = ledger.before.count + ledger.count
    try:
        if unchanged is not None and unchanged():
            return
        fresh()
        found = counting(lambda: through(con, selection, position, ledger.identity))
        later = counting(lambda: count_after(con, selection, position)) if finished else 0
    except Exception as exc:
        report.warnings.append(f"could not recount the selection after the run to find events "
                               f"that arrived behind it: {exc}")
        _log.warning("replay: %s", report.warnings[-1], exc_info=True)
        return
    at = format_ts(position.timestamp)
    digest = None if ledger.digest is None else ledger.before.digest ^ ledger.digest
    if found.count > expected:
        report.missed_during_run = found.count - expected
        report.warnings.append(
            f"{report.missed_during_run} events with timestamps at or before the last one sent "
            f"({at}) arrived during the run and were not sent. "
            + _replay_again(selection, position).replace("this checkpoint", "a checkpoint"))
        _log.warning("replay: %s", report.warnings[-1])
    elif found.count < expected:
        report.vanished_during_run = expected - found.count
        report.warnings.append(
            f"{report.vanished_during_run} of the {expected} events at or before {at} that "
            "this run sent or found are no longer in the selection: events vanished from the "
            "lake during the run (a lost-event alarm: check it with `eventlake reconcile`)")
        _log.error("replay: %s", report.warnings[-1])
    elif digest is not None and found.digest != digest:
        report.late_and_vanished_during_run = True
        report.warnings.append(
            f"the selection holds as many events at or before {at} as this run sent and found "
            f"({expected}), but not the same ones: some arrived during the run and were not "
            "sent, and as many vanished (the counts cannot tell how many). "
            + _replay_again(selection, position).replace("this checkpoint", "a checkpoint")
            + "; and check the lake with `eventlake reconcile` (a lost-event alarm)")
        _log.error("replay: %s", report.warnings[-1])
    if later:
        report.arrived_after_run = later
        said = (f"{later} selected events with timestamps after the last one sent ({at}) "
                "arrived during the run and were not sent: run the same replay again with a "
                f"checkpoint to send them (or --from {format_ts(position.timestamp)}; an event "
                "at exactly that time is then sent again)")
        if live:  # the selection reaches past the run's start: its stream went on meanwhile
            _log.info("replay: %s", said)
        else:
            report.warnings.append(said)
            _log.warning("replay: %s", said)


def _send(sink: Target, con: Any, selection: Selection, after: Position | None,
          report: ReplayReport, *, batch_size: int, bucket: TokenBucket | None,
          checkpoint: str | os.PathLike[str] | None, clients: Clients | None,
          progress: Progress | None, started: float, scope: dict[str, str],
          reopen: Callable[[], None] | None = None, ledger: _Ledger | None = None) -> None:
    """The loop: each batch through the rate, to the target, then the checkpoint the target
    acknowledges (every batch, or a JSONL file on S3 part by part; with the digest `ledger`
    keeps), then `progress`. What stops it carries the report (`error.report`)."""
    ledger = ledger or _Ledger(None, Identities())
    sent = report.resumed_after
    durable = report.resumed_after
    try:
        for batch in batches(read_batches(con, selection, after=after, reopen=reopen,
                                          identity=ledger.identity), batch_size):
            if bucket is not None:
                report.rate_wait_s += bucket.take(len(batch))
            offset = sink.send(batch)
            sent += len(batch)
            ledger.sent(batch, sent)
            done = sink.acknowledged(batch, sent, offset)
            if done is not None:
                done = ledger.durable(done)
                if checkpoint is not None:
                    checkpoints.save(checkpoint, done, selection, clients, **scope)
                durable = done.count  # after the save: a failed save leaves it not durable
            report.add(batch)
            if progress is not None:
                report.duration_s = time.perf_counter() - started
                progress(report)
        done = sink.finish()
        if done is not None:
            done = ledger.durable(done)
            if checkpoint is not None:
                checkpoints.save(checkpoint, done, selection, clients, **scope)
    except BaseException as exc:
        # What the target had taken but not yet made durable counts as not sent.
        report.sent = min(report.sent, durable - report.resumed_after)
        report.duration_s = time.perf_counter() - started
        if isinstance(exc, DeliveryError):
            report.failed = len(exc.event_ids)
        exc.report = report  # type: ignore[attr-defined]
        raise
