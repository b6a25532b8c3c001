"""What a put did: one `PutResult` per event (`Outcome`), their counts, and the `Deadline` a
caller (a Lambda invocation) sets so that every event gets a result in time."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["DERIVED_DUPLICATE", "RETRY_ADVICE", "TABLE_MISSING", "Deadline", "Outcome",
           "PutResult", "count_outcomes"]

TABLE_MISSING = "table.missing"
"""The `rule` of a write refused because the table does not exist (PutResult, FAILED)."""
RETRY_ADVICE = ("safe to retry: re-send the same events; they get the same ids and stored ones "
                "come back as `duplicate`")
DERIVED_DUPLICATE = (
    "an identical event sent without event_id is already stored (its id is derived from its "
    "content): to store repeats of the same content, send each with its own event_id or "
    "timestamp")


class Outcome(StrEnum):
    CREATED = "created"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    INVALID = "invalid"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PutResult:
    """What happened to one event of a request; `position` is its index in the request."""

    position: int
    event_id: str | None
    outcome: Outcome
    message: str | None = None
    rule: str | None = None
    retryable: bool = False
    """For `failed`: True when the same write may succeed later (throttling, 5xx); False when
    the store refused it for good (missing table, permissions) and an operator must act."""

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.CREATED, Outcome.DUPLICATE)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"position": self.position, "event_id": self.event_id,
                               "outcome": self.outcome.value}
        if self.rule:
            out["rule"] = self.rule
        if self.message:
            out["message"] = self.message
        if self.outcome is Outcome.FAILED:
            out["retryable"] = self.retryable
        return out


def count_outcomes(results: Sequence[PutResult]) -> dict[str, int]:
    """Counts by outcome, every outcome present (zeros included), in a stable order."""
    counts = Counter(r.outcome for r in results)
    return {o.value: counts.get(o, 0) for o in Outcome}


@dataclass(frozen=True, slots=True)
class Deadline:
    """When to stop retrying so that a caller (a Lambda invocation) can still answer."""

    left: Callable[[], float]
    """Seconds still available (negative once the deadline has passed)."""

    @classmethod
    def after(cls, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """A deadline `seconds` from now on `clock`."""
        end = clock() + seconds
        return cls(lambda: end - clock())
