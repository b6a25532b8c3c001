"""`TokenBucket`: the replay's `--rate` (events per second), a token bucket whose burst is one
batch.

The bucket holds up to `burst` tokens and refills at `rate` tokens a second. Sending a batch of
n events takes n tokens; when fewer are there, `take` sleeps until the refill covers the
difference. Over any interval of t seconds at most `burst + rate * t` events go out, so the
average never exceeds `rate`, while a batch still leaves as one call (SQS, Kinesis and HTTP
targets send a batch at once; spacing its events out would only add calls).

A rate under `MIN_RATE` is refused: it is a typo, not a pace (0.001 events/s is one event
every 17 minutes), and a rate near zero would ask `time.sleep` for more seconds than it takes.
A long wait is slept in slices of at most `MAX_SLEEP_S` for the same reason.

No rate-limiting library is among the installed dependencies, and a new one for twenty lines
does not pay: it is written here. The clock and the sleep are parameters, so tests run the
schedule without waiting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from eventlake.errors import ConfigError

MIN_RATE = 0.001
"""The slowest rate taken, events/s (one event every ~17 minutes)."""
MAX_SLEEP_S = 86_400.0
"""The longest single sleep (a day); a longer wait is several."""


class TokenBucket:
    """At most `rate` events a second on average, in bursts of up to `burst` events."""

    def __init__(self, rate: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ConfigError(f"rate `{rate}` must be a positive number of events per second")
        if rate < MIN_RATE:
            raise ConfigError(f"rate `{rate}` is below the slowest rate taken, {MIN_RATE} "
                              "events per second")
        if burst < 1:
            raise ConfigError(f"burst `{burst}` must be at least 1 event")
        self.rate = float(rate)
        self.burst = burst
        self.clock = clock
        self.sleep = sleep
        self.tokens = float(burst)
        self._last = clock()

    def take(self, n: int) -> float:
        """Take `n` tokens (one per event), sleeping first when the bucket holds fewer; the
        seconds slept. `n` may exceed the burst: the wait then covers the whole deficit."""
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self._last) * self.rate)
        self._last = now
        wait = max(0.0, (n - self.tokens) / self.rate)
        if wait > 0:
            left = wait
            while left > 0:
                self.sleep(min(left, MAX_SLEEP_S))
                left -= MAX_SLEEP_S
            # the refill during the sleep is exactly the deficit: the bucket ends empty
            self.tokens, self._last = float(n), self._last + wait
        self.tokens -= n
        return wait
