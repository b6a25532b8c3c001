"""Reading the settings recorded on the table fails (ListTagsOfResource throttled past
botocore's retries, or denied): no write is made with a budget that was not the table's, and
the error says what was being read, on which table, and what to do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eventlake import EventLake, Settings
from eventlake.errors import StorageError, TransientError

TABLE = "orders-events"


def process(tmp_path: Path) -> EventLake:
    return EventLake(Settings.from_env(env={}, table=TABLE, lake_uri=str(tmp_path / "lake")))


def failing_list_tags(lake: EventLake, monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    def fail(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": code, "Message": "nope"}}, "ListTagsOfResource")

    monkeypatch.setattr(lake.clients.dynamodb, "list_tags_of_resource", fail)


def order() -> dict[str, Any]:
    return {"event_id": "ord-1", "event_type": "order.placed",
            "timestamp": datetime.now(UTC).isoformat(), "event_payload": {"order_id": 1}}


def items(lake: EventLake) -> list[Any]:
    return lake.clients.dynamodb.scan(TableName=TABLE)["Items"]


@pytest.mark.parametrize(("code", "error", "says"), [
    ("ThrottlingException", TransientError,
     r"^reading the settings recorded on table `orders-events` \(DescribeTable, "
     r"ListTagsOfResource\): DynamoDB kept failing: .*ThrottlingException"),
    ("AccessDeniedException", StorageError,
     r"^cannot read the settings recorded on table `orders-events` \(AccessDeniedException\): "
     r"allow dynamodb:DescribeTable and dynamodb:ListTagsOfResource on it"),
])
def test_a_put_whose_tag_read_fails_raises_naming_the_read_and_writes_nothing(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str,
        error: type[Exception], says: str) -> None:
    process(tmp_path).init()
    producer = process(tmp_path)
    failing_list_tags(producer, monkeypatch, code)
    with pytest.raises(error, match=says):
        producer.put_many([order()])
    assert items(producer) == []


def test_a_put_after_a_throttled_tag_read_reads_them_again_and_writes(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    process(tmp_path).init()
    producer = process(tmp_path)
    with monkeypatch.context() as throttled:
        failing_list_tags(producer, throttled, "ThrottlingException")
        with pytest.raises(TransientError):
            producer.put_many([order()])
    assert [r.outcome.value for r in producer.put_many([order()])] == ["created"]
    assert len(items(producer)) == 1
