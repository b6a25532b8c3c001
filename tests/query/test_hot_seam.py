"""Adversarial: `events_hot` holds the hot events the listed lake lacks (query/views.py
`read_hot`, hot/index.py `entry_key`), and `events` shows each event_id once across the seam:
an event archived between the listing and the hot read, an id reused with other content, and
an item whose timestamp is not in eventlake's layout."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from archive_support import World

from eventlake import EventLake
from eventlake.archive.writer import archive_items
from eventlake.query import views


@pytest.fixture
def both(world: World) -> EventLake:
    return EventLake(world.settings, clients=world.clients)


def ids_in(lake: EventLake, view: str = "events") -> list[str]:
    return sorted(r["event_id"] for r in lake.sql(f"SELECT event_id FROM {view}").to_pylist())


@pytest.mark.parametrize("files_before", [1, 3])  # a partition read by path / by pattern
def test_an_event_archived_between_the_listing_and_the_hot_read_is_counted_once(
        world: World, both: EventLake, monkeypatch: pytest.MonkeyPatch,
        files_before: int) -> None:
    now = datetime.now(UTC)
    at = now - timedelta(minutes=5)
    for k in range(files_before):  # archived already (unverified files: no manifest)
        archive_items(world.lake, [world.item(f"old-{k}", at)], name=f"stream-{k}")
    world.ingest(["late"], at)
    real = views.read_hot

    def archived_meanwhile(*args: Any, **kwargs: Any) -> Any:
        # the lake was listed without it; the stream archives it before the hot read
        archive_items(world.lake, [world.item("late", at)], name="stream-late")
        return real(*args, **kwargs)

    monkeypatch.setattr(views, "read_hot", archived_meanwhile)

    assert ids_in(both) == sorted(["late", *(f"old-{k}" for k in range(files_before))])


def test_an_id_reused_with_other_content_shows_the_first_stored_copy_once(
        world: World, both: EventLake) -> None:
    # given `x` archived, then deleted from the table (TTL), then put again with other content
    now = datetime.now(UTC)
    first = world.item("x", now - timedelta(minutes=30))
    archive_items(world.lake, [first], name="stream-x")
    world.put_items([world.item("x", now - timedelta(minutes=10),
                                timestamp=now - timedelta(minutes=30), subject="other")])
    # then events shows the lake's copy (earliest ingested_at: DESIGN's one-copy rule), once
    rows = both.sql("SELECT event_id, subject, content_hash FROM events").to_pylist()
    assert rows == [{"event_id": "x", "subject": None,
                     "content_hash": first["content_hash"]["S"]}]


def test_an_item_whose_timestamp_is_not_in_eventlakes_layout_is_fetched_whole_and_seamed(
        world: World, both: EventLake) -> None:
    # given items of another writer (timestamp without microseconds) in the index window
    now = datetime.now(UTC)
    foreign = []
    for event_id in ("f-archived", "f-hot"):
        item = world.item(event_id, now - timedelta(minutes=5))
        item["timestamp"] = {"S": item["timestamp"]["S"][:19] + "+00:00"}
        foreign.append(item)
    world.put_items(foreign)
    archive_items(world.lake, foreign[:1], name="stream-f")
    # then the one the lake lacks is read whole from the table, the other shown once
    hot = both.sql("SELECT event_id, event_payload FROM events_hot").to_pylist()
    assert [(r["event_id"], json.loads(r["event_payload"])) for r in hot] == [
        ("f-hot", {"id": "f-hot"})]
    assert ids_in(both) == ["f-archived", "f-hot"]
