"""This host's clock against AWS's: an offset measured from the `Date` header of responses that
arrive anyway (it sends no request of its own).

    local   sent ─────────────────────────────────────────────▶ received
    AWS               Date (whole seconds, stamped while answering)
    offset  ≈ Date + 0.5 s - (sent + received) / 2      error ≤ 0.5 s + half the round trip

Why: `ingested_at` is stamped by the writer's clock, and the sweep trusts it. A producer whose
clock runs minutes slow would stamp its events behind the archive watermark. With the offset, it
stamps (nearly) AWS's time instead. The correction applies only from MIN_OFFSET_S up, so a healthy
clock (NTP keeps it within milliseconds) stamps exactly as it reads. Until the first response
the offset is unknown and 0: the first writes of a process are stamped by its clock as it is
(the sweep's look-back, EVENTLAKE_CLOCK_SKEW_SECONDS, covers them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["MAX_ROUND_TRIP_S", "MIN_OFFSET_S", "ClockOffset"]

MIN_OFFSET_S = 2.0
"""Smaller offsets are within what one `Date` header (1 s resolution) and a round trip can
tell apart from zero: they are not applied."""
MAX_ROUND_TRIP_S = 2.0
"""A slower call (retried, or a large page) says too little about when `Date` was stamped."""
_SENT = "eventlake_clock_sent"


class ClockOffset:
    """The latest measured offset (AWS's time minus this host's), thread-safe.

    `attach(client)` hooks a boto3 client's event system; `wall` is the host clock (tests
    inject one). The latest measurement wins: clocks are stepped (NTP), not only drifting.
    """

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        self._measured: float | None = None

    @property
    def measured(self) -> float | None:
        """The last measured offset in seconds (None: no response with a `Date` yet)."""
        with self._lock:
            return self._measured

    @property
    def seconds(self) -> float:
        """The correction to add to this host's clock: the measured offset when it is at least
        MIN_OFFSET_S either way, else 0."""
        measured = self.measured
        return measured if measured is not None and abs(measured) >= MIN_OFFSET_S else 0.0

    def observe(self, date: float, sent: float, received: float) -> None:
        """Record one exchange: AWS's `Date` (epoch seconds) and the local send/receive times."""
        offset = date + 0.5 - (sent + received) / 2
        with self._lock:
            self._measured = offset

    def attach(self, client: Any) -> None:
        """Measure on every response of `client` (a boto3 client); idempotent per client."""
        service = client.meta.service_model.service_id.hyphenize()
        events = client.meta.events
        events.register(f"before-call.{service}", self._before_call,
                        unique_id=f"eventlake-clock-sent-{id(self)}")
        events.register(f"after-call.{service}", self._after_call,
                        unique_id=f"eventlake-clock-received-{id(self)}")

    def _before_call(self, context: Any = None, **_: Any) -> None:
        if isinstance(context, dict):
            context[_SENT] = self._wall()

    def _after_call(self, http_response: Any = None, parsed: Any = None, context: Any = None,
                    **_: Any) -> None:
        received = self._wall()
        try:  # a clock reading must never fail the call it rides on
            date = _date_header(http_response, parsed)
            sent = context.get(_SENT, received) if isinstance(context, dict) else received
            if date is not None and 0 <= received - sent <= MAX_ROUND_TRIP_S:
                self.observe(date, sent, received)
        except Exception:  # a malformed header is just not a reading
            pass


def _date_header(http_response: Any, parsed: Any) -> float | None:
    """The `Date` header as epoch seconds, from the raw response or the parsed metadata."""
    value = None
    headers = getattr(http_response, "headers", None)
    if headers is not None:
        value = headers.get("Date") or headers.get("date")
    if value is None and isinstance(parsed, dict):
        value = parsed.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not value:
        return None
    return parsedate_to_datetime(str(value)).timestamp()
