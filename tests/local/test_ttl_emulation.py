"""expire_ttl: DynamoDB's TTL for moto, which accepts the setting but never deletes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from archive_support import NOW, World, hours, make_world

from eventlake import EventLake
from eventlake.local.stack import expire_ttl


@pytest.fixture
def world(lake: EventLake) -> World:
    return make_world(lake, retention_days=1.0)


def test_expire_ttl_deletes_exactly_the_expired_items(world: World) -> None:
    # given items expiring before, exactly at, and after `now`, and items without a TTL
    world.ingest(["gone-1", "gone-2"], NOW - hours(30))
    world.ingest(["at-now"], NOW - timedelta(days=1))
    world.ingest(["kept"], NOW - hours(23))
    no_ttl = world.item("no-ttl", NOW - hours(48))
    del no_ttl["expires_at"]
    text_ttl = {**world.item("text-ttl", NOW - hours(48)), "expires_at": {"S": "0"}}
    world.put_items([no_ttl, text_ttl])
    # when TTL runs
    deleted = expire_ttl(world.clients, world.settings.table, now=NOW)
    # then the items whose numeric expires_at <= now are gone, and only they
    assert sorted(deleted) == ["at-now", "gone-1", "gone-2"]
    assert world.hot_ids() == {"kept", "no-ttl", "text-ttl"}
    assert expire_ttl(world.clients, world.settings.table, now=NOW) == []


def test_expire_ttl_spares_an_item_rewritten_with_a_later_expiry_meanwhile(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.ingest(["renewed", "expired"], NOW - hours(30))
    ddb = world.clients.dynamodb
    real_delete = ddb.delete_item
    renewed = world.item("renewed", NOW)  # expires a day from now

    def rewrite_then_delete(**kwargs: Any) -> Any:
        if kwargs["Key"]["event_id"]["S"] == "renewed":
            ddb.put_item(TableName=world.settings.table, Item=renewed)
        return real_delete(**kwargs)

    monkeypatch.setattr(ddb, "delete_item", rewrite_then_delete)
    assert expire_ttl(world.clients, world.settings.table, now=NOW) == ["expired"]
    assert world.hot_ids() == {"renewed"}


def test_expire_ttl_pages_through_a_table_larger_than_one_scan_page(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    big = {"blob": "x" * 100_000}
    items = [world.item(f"big-{i:02d}", NOW - hours(30), event_payload=big) for i in range(12)]
    world.put_items(items)
    ddb = world.clients.dynamodb
    real_scan = ddb.scan
    scans: list[int] = []

    def counting_scan(**kwargs: Any) -> Any:
        scans.append(1)
        return real_scan(**kwargs)

    monkeypatch.setattr(ddb, "scan", counting_scan)
    deleted = expire_ttl(world.clients, world.settings.table, now=NOW)
    assert len(scans) >= 2  # 1.2 MB of items: DynamoDB's 1 MB page limit applies before projection
    assert sorted(deleted) == [f"big-{i:02d}" for i in range(12)]
    assert world.hot_ids() == set()
