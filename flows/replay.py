"""The replay flow: send past events, in (timestamp, event_id) order, once, to a target
(eventlake.replay). On demand, no schedule; run it with its parameters:

    prefect deployment run eventlake-replay/replay -p from_ts=2026-01-01T00:00:00Z \\
        -p to_ts=2026-01-02T00:00:00Z -p target=sqs:orders.fifo -p checkpoint=s3://b/ckpt

Retries: a retried task replays again from the start of the selection, or, with a
`checkpoint`, from right after the last acknowledged batch. So the task retries I/O trouble
(throttling, timeouts, a dropped connection) only when that is safe: with a checkpoint (the
batch in flight may be sent twice: the at-least-once every non-file target has, event_id the
key to deduplicate), or for a `jsonl:` file (a run without a checkpoint rewrites the file).
Any other target without a checkpoint is never retried by Prefect: it would receive every
event again. A DeliveryError is final either way: the target already retried with backoff,
and the error names the events it refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from eventlake.config import redact
from eventlake.replay.run import ReplayReport
from eventlake.replay.select import Selection
from eventlake.replay.targets import DeliveryError
from flows.common import IO_RETRIES, IO_RETRY_DELAYS, lake, publish, retry_transient

LOG_EVERY_S = 30.0
"""How often a running replay prints its progress to the run's logs."""


@task(cache_policy=NO_CACHE, retry_condition_fn=retry_transient)
def send_events(selection: Selection, target: str, shape: str, batch_size: int,
                rate: float | None, checkpoint: str | None) -> ReplayReport:
    """One library call: eventlake.replay.run.replay (through EventLake.replay). Never cached:
    the same parameters twice are two replays."""
    return lake().replay(selection, target, batch_size=batch_size, checkpoint=checkpoint,
                         shape=shape, rate=rate, progress=_log_progress(LOG_EVERY_S))


def retries_for(target: str, checkpoint: str | None) -> int:
    """Task retries that cannot resend what a target already has (see the module's note)."""
    return IO_RETRIES if checkpoint is not None or target.startswith("jsonl:") else 0


@flow(name="eventlake-replay", log_prints=True)
def replay(from_ts: datetime, to_ts: datetime, target: str, types: list[str] | None = None,
           subject: str | None = None, where: str | None = None, cold_only: bool = False,
           shape: str = "seed", batch_size: int = 500, rate: float | None = None,
           checkpoint: str | None = None) -> dict[str, Any]:
    """Replay the events with from_ts <= timestamp < to_ts (of `types`, of `subject`, matching
    the SQL predicate `where`; the lake alone when `cold_only`) to `target` (stdout, jsonl:PATH,
    sqs:QUEUE, eventbridge:BUS, kinesis:STREAM, lambda:FUNCTION, http(s)://URL) in `shape`, in
    batches of `batch_size`, at most `rate` events/s, resumable from `checkpoint`."""
    selection = Selection(from_ts, to_ts, tuple(types or ()), subject, where, cold_only)
    rows: dict[str, Any] = {"selection": _describe(selection), "target": f"`{redact(target)}`",
                            "shape": shape, "checkpoint": checkpoint or "none"}
    send = send_events.with_options(retries=retries_for(target, checkpoint),
                                    retry_delay_seconds=IO_RETRY_DELAYS)
    try:
        report = send(selection, target, shape, batch_size, rate, checkpoint)
    except DeliveryError as exc:
        if isinstance(exc.report, ReplayReport):
            rows |= _rows(exc.report)
        resume = ("re-run with the same checkpoint to resume after the last acknowledged "
                  "batch" if checkpoint else "no checkpoint was given: a re-run starts over")
        publish("eventlake-replay", "eventlake replay run", rows,
                note=f"**Delivery failed:** {redact(str(exc))}\n\n{resume}")
        raise
    publish("eventlake-replay", "eventlake replay run", rows | _rows(report),
            note="\n".join(f"**Warning:** {w}" for w in report.warnings) or None)
    print(report.summary())
    return report.to_dict()


def _rows(report: ReplayReport) -> dict[str, Any]:
    return {"events sent": report.sent, "failed": report.failed, "batches": report.batches,
            "resumed after": report.resumed_after,
            "first timestamp": report.first_timestamp or "-",
            "last timestamp": report.last_timestamp or "-",
            "duration": f"{report.duration_s:.1f} s",
            "events/s": f"{report.events_per_second:,.0f}",
            "waiting for the rate": f"{report.rate_wait_s:.1f} s"}


def _describe(selection: Selection) -> str:
    parts = [f"[{selection.from_ts.isoformat()}, {selection.to_ts.isoformat()})"]
    if selection.event_types:
        parts.append("types " + ", ".join(f"`{t}`" for t in selection.event_types))
    if selection.subject is not None:
        parts.append(f"subject `{selection.subject}`")
    if selection.where is not None:
        parts.append(f"where `{selection.where}`")
    if selection.cold_only:
        parts.append("cold only")
    return "; ".join(parts)


def _log_progress(every_s: float) -> Callable[[ReplayReport], None]:
    """A progress callback printing (to the run's logs) at most every `every_s` seconds."""
    last = time.monotonic()

    def progress(report: ReplayReport) -> None:
        nonlocal last
        if time.monotonic() - last >= every_s:
            last = time.monotonic()
            total = f" of {report.total}" if report.total is not None else ""
            print(f"replay: {report.sent}{total} events sent, "
                  f"{report.events_per_second:,.0f} events/s")

    return progress
