"""Review 30: index states real DynamoDB reports and moto never does. An index whose
configuration is being changed (provisioned or on-demand throughput, warm throughput, a billing
mode switch) is UPDATING, and "remains available for data operations" (DynamoDB API reference,
IndexStatus): readers must keep querying it, not stop every sweep and `events` read with "run
`eventlake init`" for the minutes the update takes. An index being created is not queryable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventlake import EventLake
from eventlake.errors import StorageError
from eventlake.hot.index import INDEX_NAME, LEGACY_INDEX_NAME, choose, index_spec


def described(status: str, **extra: Any) -> dict[str, Any]:
    return {**index_spec(), "IndexStatus": status, **extra}


def test_an_index_being_updated_is_still_the_one_readers_query() -> None:
    assert choose({"GlobalSecondaryIndexes": [described("UPDATING")]}, "t") == INDEX_NAME
    # an old index being updated during a migration is still read (it holds every item)
    legacy = {"IndexName": LEGACY_INDEX_NAME, "IndexStatus": "UPDATING"}
    assert choose({"GlobalSecondaryIndexes": [legacy, described("ACTIVE")]},
                  "t") == LEGACY_INDEX_NAME


def test_an_index_being_created_or_deleted_is_not_queried() -> None:
    for status in ("CREATING", "DELETING"):
        with pytest.raises(StorageError, match="no ACTIVE ingestion-time index"):
            choose({"GlobalSecondaryIndexes": [described(status, Backfilling=True)]}, "t")
    legacy = {"IndexName": LEGACY_INDEX_NAME, "IndexStatus": "UPDATING"}
    assert choose({"GlobalSecondaryIndexes": [described("CREATING", Backfilling=True), legacy]},
                  "t") == LEGACY_INDEX_NAME


def test_a_window_read_goes_on_while_the_tables_index_is_updated(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a stored event, and DynamoDB describing the index as UPDATING (moto never does)
    assert lake.put({"event_id": "u-1", "event_type": "t", "event_payload": {}}).ok
    ddb = lake.clients.dynamodb
    real = ddb.describe_table

    def updating(**kwargs: Any) -> Any:
        response = real(**kwargs)
        for index in response["Table"].get("GlobalSecondaryIndexes", []):
            index["IndexStatus"] = "UPDATING"
        return response

    monkeypatch.setattr(ddb, "describe_table", updating)
    # when a fresh reader reads the window, then it finds the event
    from eventlake.hot.store import HotStore

    store = HotStore(lake.settings, lake.clients)
    now = datetime.now(UTC)
    found = [e["event_id"]["S"] for page in store.read_index_pages(
        now - timedelta(hours=1), now + timedelta(hours=1)) for e in page]
    assert found == ["u-1"]
