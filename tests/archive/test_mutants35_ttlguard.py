"""Index entries whose items vanished from the table before the lake held them, in the cases
mutation testing found unchecked (mutants35): each is at risk whatever its TTL says (none at
all included), and the margin reports its own expiry, not the check's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eventlake.archive.report import TtlMargin
from eventlake.archive.ttlguard import MarginCheck, TtlGuardError
from eventlake.config import Settings
from eventlake.hot.store import TTL_ATTRIBUTE
from eventlake.lake.store import Lake

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HASH = "0" * 64


def _entry(event_id: str, expires: datetime | None) -> dict[str, Any]:
    """An index entry in eventlake's layout (keys, timestamp, content_hash, expires_at)."""
    entry: dict[str, Any] = {"event_id": {"S": event_id},
                             "timestamp": {"S": "2026-11-01T08:00:00.000000Z"},
                             "content_hash": {"S": HASH}}
    if expires is not None:
        entry[TTL_ATTRIBUTE] = {"N": str(int(expires.timestamp()))}
    return entry


def _check(tmp_path: Path) -> MarginCheck:
    settings = Settings(lake_uri=str(tmp_path / "lake"))
    return MarginCheck(Lake(settings), settings, NOW, NOW - timedelta(hours=1))


def test_a_vanished_entry_without_a_ttl_is_still_at_risk(tmp_path: Path) -> None:
    check = _check(tmp_path)

    check.add_vanished([_entry("evt-no-ttl", None)])

    margin = check.result()
    assert (margin.vanished, margin.unarchived, margin.at_risk) == (1, 1, 1)
    assert margin.at_risk_ids == ["evt-no-ttl"]


def test_a_vanished_entry_reports_its_own_expiry(tmp_path: Path) -> None:
    check = _check(tmp_path)
    expired = NOW - timedelta(hours=30)  # TTL deleted it: its expiry is in the past

    check.add_vanished([_entry("evt-expired", expired)])

    margin = check.result()
    assert (margin.vanished, margin.at_risk) == (1, 1)
    assert margin.nearest_expiry == expired
    assert margin.hours_left == -30


def _margin(at_risk: int, *, vanished: int = 0, hours_left: float = -30.0) -> TtlMargin:
    nearest = NOW + timedelta(hours=hours_left)
    return TtlMargin(unarchived=at_risk + 2, at_risk=at_risk, nearest_expiry=nearest,
                     hours_left=hours_left, at_risk_ids=[f"e{i}" for i in range(at_risk)],
                     safety_hours=6, vanished=vanished)


def test_the_error_names_five_events_and_counts_the_rest() -> None:
    message = str(TtlGuardError(_margin(7)))

    assert "e.g. `e0`, `e1`, `e2`, `e3`, `e4` and 2 more." in message
    assert "`e5`" not in message
    assert message.endswith("long before this. 9 event(s) in all are not archived yet.")
    assert "`e4` and 1 more." in str(TtlGuardError(_margin(6)))


def test_the_error_names_exactly_five_events_without_a_rest() -> None:
    message = str(TtlGuardError(_margin(5)))

    assert "e.g. `e0`, `e1`, `e2`, `e3`, `e4`. " in message
    assert "more" not in message


def test_the_error_says_an_expired_event_expired_and_a_coming_one_expires() -> None:
    expired = str(TtlGuardError(_margin(1, hours_left=-30.0)))
    coming = str(TtlGuardError(_margin(1, hours_left=2.5)))

    assert "the nearest expired 30.0 h ago and is kept only until" in expired
    assert "the nearest expires in 2.5 h" in coming


def test_the_error_says_when_no_copy_is_left_in_dynamodb_and_only_then() -> None:
    gone = str(TtlGuardError(_margin(3, vanished=2)))
    kept = str(TtlGuardError(_margin(3)))

    assert " 2 of them were deleted from the table (TTL)" in gone
    assert "no copy is left in DynamoDB; recover them from the stream (24 h)" in gone
    assert "deleted from the table" not in kept


def test_the_sample_names_the_twenty_nearest_expiries_nearest_first(tmp_path: Path) -> None:
    check = _check(tmp_path)
    # given 25 vanished entries, expiring 1..25 h ago, in no particular order
    hours = [7, 3, 25, 1, 12, 19, 5, 22, 9, 14, 2, 17, 24, 11, 6, 20, 4, 23, 8, 15, 13, 21, 10,
             18, 16]
    check.add_vanished([_entry(f"e{h:02d}", NOW - timedelta(hours=h)) for h in hours])

    margin = check.result()
    assert margin.at_risk == 25
    assert margin.at_risk_ids == [f"e{h:02d}" for h in range(25, 5, -1)]

