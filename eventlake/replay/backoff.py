"""Retrying what a target refused: whole requests (HTTP 429/5xx, a timeout) and single entries
(SQS, EventBridge and Kinesis answer per entry).

`Backoff` is the schedule: up to `attempts` tries, waiting a random time up to
min(cap, base * 2^n) between them ("full jitter": many replays against one throttled target
do not retry in step). `deliver` resends only the entries that failed, until none is left or
the tries are spent; then DeliveryError names what was not delivered. Nothing is skipped.

The sleep and the random source are parameters, so tests run the schedule without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from eventlake.replay.targets import DeliveryError

Entry = TypeVar("Entry")


@dataclass
class Backoff:
    """Up to `attempts` tries with full-jitter waits of up to min(cap_s, base_s * 2^n)."""

    attempts: int = 8
    base_s: float = 0.2
    cap_s: float = 20.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def waits(self) -> Iterator[float]:
        """The wait before each retry (attempts - 1 of them)."""
        for n in range(self.attempts - 1):
            yield self.rng.uniform(0, min(self.cap_s, self.base_s * 2 ** n))


@dataclass(frozen=True)
class Refused(Generic[Entry]):
    """One entry a target refused, with its event_id and the target's reason; `final` when
    the service says resending cannot help (SQS's SenderFault, EventBridge's non-retryable
    codes)."""

    entry: Entry
    event_id: str
    reason: str
    final: bool = False


def deliver(target: str, entries: Sequence[Entry],
            send: Callable[[Sequence[Entry]], list[Refused[Entry]]],
            backoff: Backoff) -> int:
    """Send `entries` with `send` (which returns those refused), resending the refused ones
    after a backoff wait, until all are accepted; returns the number of tries. DeliveryError
    (naming the events and the last reason) when tries run out, or at once when an entry is
    refused for good (`Refused.final`: waiting would only delay the same answer)."""
    refused = send(entries)
    tries = 1
    for wait in backoff.waits():
        _stop_if_final(target, refused)
        if not refused:
            return tries
        backoff.sleep(wait)
        refused = send([r.entry for r in refused])
        tries += 1
    _stop_if_final(target, refused)
    if refused:
        raise DeliveryError(target, [r.event_id for r in refused],
                            f"still refused after {tries} tries: {refused[-1].reason}")
    return tries


def _stop_if_final(target: str, refused: list[Refused[Entry]]) -> None:
    final = next((r for r in refused if r.final), None)
    if final is not None:
        raise DeliveryError(target, [r.event_id for r in refused],
                            f"refused, not retried (the service says resending cannot help): "
                            f"{final.reason}")
