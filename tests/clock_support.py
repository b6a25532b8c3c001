"""A settable clock for the code that takes `clock=` (a callable returning an aware datetime)."""

from __future__ import annotations

from datetime import datetime


class Clock:
    """Returns `at` until a test moves it (`clock.at = ...`)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at
