"""`eventlake put` names a problem by its file and line, so a message loses the event's
position in its put_many call (`#N`), and nothing else."""

from __future__ import annotations

import pytest

from eventlake.cli.put import without_position
from eventlake.errors import InvalidEventError


@pytest.mark.parametrize(("message", "expected"), [
    ("event #3 `e-1`: payload too large [rule payload.size]",
     "event `e-1`: payload too large [rule payload.size]"),
    ("event #12: timestamp missing [rule timestamp.missing]",
     "timestamp missing [rule timestamp.missing]"),
    ("event `e-1`: payload too large [rule payload.size]",
     "event `e-1`: payload too large [rule payload.size]"),
    ("event: timestamp missing [rule timestamp.missing]",
     "event: timestamp missing [rule timestamp.missing]"),
    ("throttled; safe to retry", "throttled; safe to retry"),
    ("", ""),
    (None, None),
])
def test_the_position_is_dropped_and_the_rest_kept(message: str | None,
                                                   expected: str | None) -> None:
    assert without_position(message) == expected


def test_it_reads_the_messages_invalid_events_carry() -> None:
    with_id = InvalidEventError("payload.size", "too large", position=4, event_id="e-9")
    without_id = InvalidEventError("timestamp.missing", "missing", position=4)

    assert without_position(str(with_id)) == "event `e-9`: too large [rule payload.size]"
    assert without_position(str(without_id)) == "missing [rule timestamp.missing]"
