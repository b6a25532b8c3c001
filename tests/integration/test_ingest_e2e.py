"""The ingest Lambda end to end: API Gateway v2 events over a moto server reached via HTTP.

Each test gets its own table, made the way `eventlake init` makes it, and a fresh handler cache,
so the handler builds its EventLake from the environment as it does on AWS.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import load_event

from eventlake import EventLake
from eventlake.handlers import ingest

pytestmark = pytest.mark.integration


@pytest.fixture
def table(server_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    name = f"ingest-e2e-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("EVENTLAKE_TABLE", name)
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    EventLake.from_env().init()
    ingest.reset()
    yield name
    ingest.reset()


def post(body: Any) -> tuple[int, dict[str, Any]]:
    """POST `body` through an HTTP API (v2) proxy event; returns (status, parsed body)."""
    event = copy.deepcopy(load_event("apigw_v2_cookies_list_body.json"))
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    response = ingest.handler(event, None)
    return response["statusCode"], json.loads(response["body"])


def three_orders() -> list[dict[str, Any]]:
    return [{"event_id": f"e2e-ord-{i}", "event_type": "order.placed",
             "timestamp": f"2026-03-14T09:0{i}:00Z", "source": "shop.checkout",
             "event_payload": {"order_id": f"A-{i}", "total": 10.5 * i}} for i in (1, 2, 3)]


def get_item(event_id: str) -> dict[str, Any]:
    lake = EventLake.from_env()
    response = lake.clients.dynamodb.get_item(TableName=lake.settings.table,
                                              Key={"event_id": {"S": event_id}},
                                              ConsistentRead=True)
    return dict(response["Item"])


def test_three_valid_events_are_201_then_200_on_retry(table: str) -> None:
    first = post({"events": three_orders()})
    again = post({"events": three_orders()})

    assert first[0] == 201, first[1]
    assert first[1]["counts"]["created"] == 3
    assert again[0] == 200, again[1]
    assert again[1]["counts"]["duplicate"] == 3


def test_changed_payload_is_409_and_the_stored_item_is_unchanged(table: str) -> None:
    assert post(three_orders())[0] == 201
    before = get_item("e2e-ord-2")
    changed = three_orders()
    changed[1]["event_payload"]["total"] = 999

    status, body = post(changed)

    assert status == 409, body
    assert [r["outcome"] for r in body["results"]] == ["duplicate", "conflict", "duplicate"]
    assert get_item("e2e-ord-2") == before
    assert json.loads(before["event_payload"]["S"])["total"] == 21


def test_a_body_that_is_not_json_is_400_with_a_message(table: str) -> None:
    status, body = post("not json")

    assert status == 400
    assert body["rule"] == "request.not_json"
    assert "not valid JSON" in body["message"]


def test_a_500_kb_payload_is_400_naming_the_size_rule(table: str) -> None:
    event = {"event_id": "e2e-big-1", "event_type": "blob.uploaded",
             "timestamp": "2026-03-14T09:00:00Z", "event_payload": {"data": "x" * 500_000}}

    status, body = post(event)

    assert status == 400, body
    assert body["results"][0]["rule"] == "item.too_large"
    assert "400 KB" in body["results"][0]["message"]
