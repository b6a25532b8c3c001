"""The sweep's read path: index entries, an anti-join against the lake, and whole items
fetched (BatchGetItem) only for what the lake lacks; the `events` view's hot read likewise."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from archive_support import NOW, World, hours

from eventlake.archive.writer import archive_items
from eventlake.hot.store import HotStore
from eventlake.lake.store import Lake
from eventlake.query.views import connect


@dataclass
class Tiers:
    hot: HotStore
    cold: Lake


@pytest.fixture
def el(world: World) -> Tiers:
    """The world's own stores (the `fetched` fixture watches its hot store)."""
    return Tiers(world.hot, world.lake)


@pytest.fixture
def fetched(world: World, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The event_ids the hot store fetches whole, in order."""
    asked: list[str] = []
    real = world.hot.fetch

    def counting(event_ids: Any) -> Any:
        asked.extend(event_ids)
        return real(event_ids)

    monkeypatch.setattr(world.hot, "fetch", counting)
    return asked


def test_a_sweep_over_archived_events_fetches_none_and_counts_them(
        world: World, fetched: list[str]) -> None:
    items = [world.item(f"e-{i}", NOW - hours(2)) for i in range(10)]
    world.put_items(items)
    archive_items(world.lake, items, name="stream-000-001")  # the stream got there first

    report = world.sweep(NOW)

    assert fetched == []
    assert (report.counts.read, report.counts.already, report.counts.archived) == (10, 10, 0)
    assert world.stored_rows() == Counter(f"e-{i}" for i in range(10))


def test_a_sweep_fetches_exactly_the_events_the_lake_lacks(
        world: World, fetched: list[str]) -> None:
    items = [world.item(f"e-{i}", NOW - hours(2)) for i in range(10)]
    world.put_items(items)
    archive_items(world.lake, items[:7], name="stream-000-001")  # the stream lost three

    report = world.sweep(NOW)

    assert sorted(fetched) == ["e-7", "e-8", "e-9"]
    assert (report.counts.read, report.counts.already, report.counts.archived) == (10, 7, 3)
    assert world.stored_rows() == Counter(f"e-{i}" for i in range(10))


def test_an_id_the_lake_holds_with_other_content_is_fetched_and_quarantined(
        world: World, fetched: list[str]) -> None:
    # given the lake holding `x` with one payload, the table with another (an id reused)
    stamp = NOW - hours(31)
    archive_items(world.lake, [world.item("x", NOW - hours(30), timestamp=stamp,
                                          source="first")], name="old")
    world.put_items([world.item("x", NOW - hours(2), timestamp=stamp, source="second")])

    report = world.sweep(NOW)

    assert fetched == ["x"]
    assert (report.counts.conflicts, report.counts.conflict_ids) == (1, ["x"])
    assert world.stored_rows() == Counter(["x"])


def test_an_entry_the_index_alone_cannot_place_is_fetched_and_archived(
        world: World, fetched: list[str]) -> None:
    # an item whose timestamp is not in eventlake's layout (another writer): the item decides
    item = world.item("odd", NOW - hours(2))
    item["timestamp"] = {"S": "2024-05-10T09:59:59+00:00"}
    world.put_items([item])

    report = world.sweep(NOW)

    assert fetched == ["odd"] and report.counts.archived == 1
    assert world.stored_rows() == Counter(["odd"])


def test_the_events_view_fetches_only_hot_events_the_listed_files_lack(
        world: World, el: Tiers, fetched: list[str]) -> None:
    world.ingest(["a"], NOW - hours(5))
    world.sweep(NOW - hours(1))
    items = [world.item(i, NOW - hours(0.5)) for i in ("d", "e", "f")]
    world.put_items(items)
    archive_items(world.lake, items[:2], name="stream-000-001")
    fetched.clear()  # what the sweep fetched

    con = connect(el, now=NOW)

    assert fetched == ["f"]
    rows = con.sql("SELECT event_id FROM events ORDER BY event_id").fetchall()
    assert [r[0] for r in rows] == ["a", "d", "e", "f"]


def test_a_file_written_after_the_listing_hides_no_hot_event(
        world: World, el: Tiers, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a hot event the stream archives between the view's listing and its hot read
    world.ingest(["a"], NOW - hours(5))
    world.sweep(NOW - hours(1))
    [late] = [world.item("d", NOW - hours(0.5))]
    world.put_items([late])
    lake = el.cold
    real = lake.list_files

    def list_then_stream(*args: Any, **kwargs: Any) -> Any:
        files = list(real(*args, **kwargs))
        monkeypatch.setattr(lake, "list_files", real)
        archive_items(lake, [late], name="stream-000-002")
        return files

    monkeypatch.setattr(lake, "list_files", list_then_stream)

    con = connect(el, now=NOW)

    # then the event is read from DynamoDB (the listed files lack it): in `events` once
    rows = con.sql("SELECT event_id FROM events ORDER BY event_id").fetchall()
    assert [r[0] for r in rows] == ["a", "d"]
