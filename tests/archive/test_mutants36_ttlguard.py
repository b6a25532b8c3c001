"""The TTL guard on items not in eventlake's own layout (another producer's: no content_hash,
no ingested_at, a timestamp with an offset), the case mutation testing found unchecked
(mutants35/36: `event_key`'s slow path). Such an item is judged in the partition the archiver
writes it to (the UTC date of its timestamp): held there, it is safe; lacking, at risk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eventlake.archive.ttlguard import EventKey, MarginCheck, event_key
from eventlake.archive.writer import archive_items
from eventlake.config import Settings
from eventlake.hot.store import TTL_ATTRIBUTE
from eventlake.lake.store import Lake

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _foreign(event_id: str) -> dict[str, Any]:
    """Another producer's item, stamped 01:00 at +02:00 (the day before in UTC), expiring in
    an hour."""
    return {"event_id": {"S": event_id}, "event_type": {"S": "order.placed"},
            "timestamp": {"S": "2026-11-01T01:00:00+02:00"},
            "event_payload": {"S": '{"order":1}'},
            TTL_ATTRIBUTE: {"N": str(int((NOW + timedelta(hours=1)).timestamp()))}}


def test_a_foreign_item_is_keyed_by_its_utc_date() -> None:
    assert event_key(_foreign("evt-f"), NOW) == EventKey("evt-f", "2026-10-31")
    assert event_key({"event_id": {"S": "evt-bare"}, "colour": {"S": "blue"}}, NOW) is None


def test_the_guard_finds_a_foreign_item_the_lake_holds_and_the_one_it_lacks(
        tmp_path: Path) -> None:
    # given the lake holds one of two foreign items near their expiry
    settings = Settings(lake_uri=str(tmp_path / "lake"))
    lake = Lake(settings)
    archive_items(lake, [_foreign("evt-held")], name="sweep-test", fallback_ingested_at=NOW)
    check = MarginCheck(lake, settings, NOW, NOW - timedelta(hours=1))
    # when the guard checks both
    check.add([_foreign("evt-held"), _foreign("evt-lacking")])
    # then only the one the lake lacks is at risk
    margin = check.result()
    assert (margin.unarchived, margin.at_risk, margin.at_risk_ids) == (1, 1, ["evt-lacking"])
