"""Sweep and expiry files are named after the ingestion window they read from the index
(`<kind>-<since>-<until>`). The stream used to judge by that name whether a sweep file may hold
a batch's events (archive/streamwrite.py; mutants35/36 found the `kind` test unchecked). The
name is not a bound on the rows: an item TTL deleted after the index read and sent again by
its producer before the fetch comes back ingested later, outside the window, and the stream
then wrote it a second time. Windowed files are judged by their footers' `ingested_at` range.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from archive_support import NOW, World, hours
from stream_support import lambda_event

from eventlake.archive.stream import archive_event
from eventlake.hot.fetch import Fetched
from eventlake.hot.store import HotStore


def _resent_before_fetch(world: World, monkeypatch: pytest.MonkeyPatch, event_id: str,
                         stamp: Any, again: Any) -> None:
    """On the first fetch, TTL deletes `event_id` and its producer sends it again (the same
    event, ingested at `again`) before the fetch reads it."""
    real = HotStore.fetch
    done: list[bool] = []

    def fetch(self: HotStore, event_ids: Any) -> Fetched:
        if not done and event_id in event_ids:
            done.append(True)
            world.clients.dynamodb.delete_item(TableName=world.settings.table,
                                               Key={"event_id": {"S": event_id}})
            world.put_items([world.item(event_id, again, timestamp=stamp)])
        return real(self, event_ids)

    monkeypatch.setattr(HotStore, "fetch", fetch)


def test_an_event_resent_during_the_sweep_is_archived_once(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an event about to expire, in the first sweep's window (the retention period)
    stamp = NOW - hours(70)
    world.ingest(["evt-resent"], NOW - hours(70) + timedelta(seconds=1), timestamp=stamp)
    again = NOW + timedelta(seconds=1)
    _resent_before_fetch(world, monkeypatch, "evt-resent", stamp, again)
    # when the sweep reads it, TTL deletes it and the producer sends it again, before the fetch
    world.sweep(NOW)
    # and the stream then delivers the new item's INSERT
    report = archive_event(world.lake, lambda_event(
        [world.item("evt-resent", again, timestamp=stamp)]))
    # then the lake holds the event once
    assert report.error is None
    assert world.stored_rows() == Counter({"evt-resent": 1})
    # and the next sweep, whose window holds the new item, adds no copy either
    world.sweep(NOW + timedelta(minutes=15))
    assert world.stored_rows() == Counter({"evt-resent": 1})


def _behind_the_watermark(world: World, event_id: str) -> Any:
    """`event_id` ingested 55 min behind a watermark at NOW (a producer's slow clock): no sweep
    window reads it, only the expiry check, once it is within 6 h of its TTL. Its stamp."""
    world.sweep(NOW)
    stamp = NOW - timedelta(minutes=56)
    world.ingest([event_id], NOW - timedelta(minutes=55), timestamp=stamp)
    return stamp


def test_a_batch_re_delivered_after_the_expiry_check_archived_it_adds_no_copy(
        world: World) -> None:
    # given the expiry check archived an event stamped behind the watermark
    stamp = _behind_the_watermark(world, "evt-slow")
    report = world.sweep(NOW + hours(66))
    assert report.beyond_skew == 1 and world.stored_rows() == Counter({"evt-slow": 1})
    # when the stream (re-)delivers its INSERT
    item = world.item("evt-slow", NOW - timedelta(minutes=55), timestamp=stamp)
    batch = archive_event(world.lake, lambda_event([item]))
    # then it adds no copy
    assert (batch.archived, batch.already_archived, batch.error) == (0, 1, None)
    assert world.stored_rows() == Counter({"evt-slow": 1})


def test_an_event_resent_during_the_expiry_check_is_archived_once(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an event only the expiry check reads, deleted by TTL and sent again by its
    # producer between the check's index read and its fetch
    stamp = _behind_the_watermark(world, "evt-slow")
    again = NOW + hours(66)
    _resent_before_fetch(world, monkeypatch, "evt-slow", stamp, again)
    world.sweep(NOW + hours(66))
    # when the stream delivers the new item's INSERT
    batch = archive_event(world.lake, lambda_event(
        [world.item("evt-slow", again, timestamp=stamp)]))
    # then the lake holds the event once
    assert batch.error is None
    assert world.stored_rows() == Counter({"evt-slow": 1})
