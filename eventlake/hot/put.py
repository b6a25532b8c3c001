"""Raw events in, one result each out: validation (events/) then conditional writes (store).

The one path behind `EventLake.put_many` and the ingest Lambda (which has no EventLake: it
must not import the query layer).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from eventlake.aws import OutOfTime, retry_deadline
from eventlake.errors import InvalidEventError, TransientError
from eventlake.events.model import Event, parse_event
from eventlake.hot.results import Deadline, Outcome, PutResult
from eventlake.hot.store import HotStore

__all__ = ["put_events"]


def put_events(store: HotStore, events: Iterable[Any], *, now: datetime | None = None,
               deadline: Deadline | None = None) -> list[PutResult]:
    """Validate and store events; one result per input event, in input order.

    Invalid events are reported (outcome `invalid`, with the rule) and the valid ones are
    still stored. Nothing is written partially without a result saying so. Events sent
    without an event_id get one derived from their content, so re-sending the same events
    never stores a second copy. With a `deadline`, throttling retries stop in time and the
    events not stored by then are `failed` (retryable).
    """
    # The store's corrected clock (see Clock skew): a producer whose clock is slow must not
    # default timestamps, or judge "too far in the future", by it.
    if now is None:
        try:  # the table's settings are read once (also measuring the clock offset), in time
            with retry_deadline(deadline.left if deadline is not None else None):
                store.table_settings()
        except OutOfTime as stopped:
            raise TransientError(f"reading table `{store.table}`'s settings {stopped} to "
                                 "answer in time; send the events again") from stopped.last
        now = store.now()
    results: list[PutResult | None] = []
    valid: list[Event] = []
    positions: list[int] = []
    for position, raw in enumerate(events):
        try:
            event = raw if isinstance(raw, Event) else parse_event(raw, position=position,
                                                                   now=now)
        except InvalidEventError as exc:
            results.append(PutResult(position, exc.event_id, Outcome.INVALID, str(exc),
                                     exc.rule))
            continue
        results.append(None)
        valid.append(event)
        positions.append(position)
    for result in store.put_many(valid, positions, deadline=deadline):
        results[result.position] = result
    return [r for r in results if r is not None]
