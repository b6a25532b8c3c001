"""A settable clock for the code that takes `clock=` (a callable returning an aware datetime),
and a process local time zone away from UTC (for code that must not read local time as UTC)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta


class Clock:
    """Returns `at` until a test moves it (`clock.at = ...`)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@contextmanager
def nine_hours_east_of_utc() -> Iterator[None]:
    """This process's local time zone UTC+9 while inside (a POSIX rule: no time zone database
    needed), TZ back as it was on the way out, also when the body failed."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "JST-9"
    time.tzset()
    try:
        assert datetime.now().astimezone().utcoffset() == timedelta(hours=9)
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
