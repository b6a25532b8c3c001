"""Replay against a lake that changes under it: the sweep archiving, compaction merging and
deleting, TTL deleting hot items, all between two batches of one run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from archive_support import NOW, World, hours

from eventlake import EventLake, Settings
from eventlake.errors import TransientError
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.store import Lake
from eventlake.lake.vanish import VANISH_ATTEMPTS
from eventlake.local.stack import expire_ttl
from eventlake.replay import checkpoint as checkpoints
from eventlake.replay import read
from eventlake.replay.run import replay
from eventlake.replay.select import Selection
from tests.lake.test_vanish import EVERY_PAUSE, pauses_recorded


def test_a_replay_sends_each_event_once_in_order_while_the_lake_changes_under_it(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given events over three days: archived ones in several files a day, and hot ones not
    # yet archived (a late one among them, in the oldest day)
    el = EventLake(world.settings, clients=world.clients)
    days = [NOW - timedelta(days=2), NOW - timedelta(days=1), NOW - hours(2)]
    for d, day in enumerate(days):
        for f in range(2):  # two sweeps a day: two files
            world.ingest([f"c{d}{f}{i}" for i in range(3)], day + hours(f),
                         timestamp=day - hours(1 - 0.1 * f))
            world.sweep(day + hours(f + 0.5))
    world.ingest([f"h{i}" for i in range(3)], NOW - hours(0.25), timestamp=NOW - hours(1.5))
    world.ingest(["late"], NOW - hours(0.25), timestamp=days[0] - hours(3))
    expected = sorted(world.hot_ids())
    archived = len(world.stored_rows())
    assert archived == 18 and len(expected) == 22
    monkeypatch.setattr(read, "WINDOW_BYTES", 1)  # one query a day: the later days read later
    got: list[dict[str, Any]] = []
    changed: list[Any] = []

    def target(events: list[dict[str, Any]]) -> None:
        if not got:  # after the first batch: archive the hot events, compact, expire them
            changed.append(world.sweep(NOW + hours(1)).counts.archived)
            changed.append(len(el.compact(min_files=2).partitions))
            changed.append(len(expire_ttl(world.clients, world.settings.table,
                                          now=NOW + timedelta(days=30))))
        got.extend(events)

    # when one replay runs through it all
    replay(el, Selection(NOW - timedelta(days=4), NOW + hours(1)), target, batch_size=2,
           now=NOW)
    # (the sweep archived the rest, compaction rewrote days, TTL emptied the table)
    assert changed == [4, 3, 22]
    # then every event came once, in (timestamp, event_id) order
    assert sorted(e["event_id"] for e in got) == expected
    keys = [(e["timestamp"], e["event_id"]) for e in got]
    assert keys == sorted(keys)


def test_compaction_in_the_middle_of_a_day_read_loses_and_doubles_nothing(
        world: World) -> None:
    # given one day of three files, read a few rows at a time (the day's sorted query has
    # read its files before the first rows come out: nothing is left to vanish under it)
    el = EventLake(world.settings, clients=world.clients)
    for f in range(3):
        world.ingest([f"e{f}{i}" for i in range(4)], NOW - hours(6 - f),
                     timestamp=NOW - hours(10 - f))
        world.sweep(NOW - hours(5.5 - f))
    selection = Selection(NOW - timedelta(days=1), NOW)
    con = read.open_reader(el, selection, now=NOW)
    got: list[str] = []
    reopened: list[int] = []

    def reopen() -> None:
        reopened.append(1)
        read.reopen_reader(con, el, selection, now=NOW)

    try:
        for batch in read.read_batches(con, selection, rows=3, reopen=reopen):
            got.extend(batch.column("event_id").to_pylist())
            if len(got) == 3:  # compaction merges the day and deletes its files mid-read
                assert len(el.compact(min_files=2).partitions) == 1
    finally:
        con.close()
    # then each event came once and in order, without a fresh listing
    assert reopened == []
    assert got == [f"e{f}{i}" for f in range(3) for i in range(4)]


def test_files_that_keep_vanishing_stop_the_read_with_a_transient_error(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a connection whose listing names files compaction has deleted, and a reopen that
    # never finds better
    el = EventLake(world.settings, clients=world.clients)
    for f in range(2):
        world.ingest([f"v{f}"], NOW - hours(6 - f), timestamp=NOW - hours(10 - f))
        world.sweep(NOW - hours(5.5 - f))
    selection = Selection(NOW - timedelta(days=1), NOW)
    con = read.open_reader(el, selection, now=NOW)
    assert len(el.compact(min_files=2).partitions) == 1
    tries: list[int] = []
    pauses = pauses_recorded(monkeypatch, read)
    # when it is read, then it gives up after VANISH_ATTEMPTS tries, saying it is safe to retry
    try:
        with pytest.raises(TransientError, match=r"vanished .* under the replay's read"):
            list(read.read_batches(con, selection, reopen=lambda: tries.append(1)))
    finally:
        con.close()
    assert len(tries) == VANISH_ATTEMPTS - 1
    assert pauses == EVERY_PAUSE  # one before each fresh snapshot


class Killed(BaseException):
    """The process dying (a BaseException, as a signal's would be)."""


def test_a_crash_between_a_send_and_its_checkpoint_resends_that_batch_and_skips_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given 7 archived events, a callable target, and a process that dies right after the
    # target took the second batch, before its checkpoint is written
    world_lake = Lake(Settings.from_env(table="unused", lake_uri=str(tmp_path / "lake")))
    rows = [{"event_id": f"e{n}", "event_type": "click", "timestamp": NOW + timedelta(minutes=n),
             "ingested_at": NOW, "source": None, "subject": None, "event_payload": "{}",
             "content_hash": f"h{n}"} for n in range(7)]
    world_lake.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "a")
    tiers = SimpleNamespace(cold=world_lake, hot=None)
    selection = Selection(NOW, NOW + hours(1), cold_only=True)
    ckpt = tmp_path / "ckpt"
    got: list[str] = []
    save = checkpoints.save
    saves: list[int] = []

    def dying_save(*args: Any, **kwargs: Any) -> None:
        saves.append(1)
        if len(saves) == 2:
            raise Killed  # between the send and the checkpoint
        save(*args, **kwargs)

    def target(events: list[dict[str, Any]]) -> None:
        got.extend(e["event_id"] for e in events)

    monkeypatch.setattr(checkpoints, "save", dying_save)
    with pytest.raises(Killed):
        replay(tiers, selection, target, batch_size=3, checkpoint=ckpt, now=NOW)
    monkeypatch.setattr(checkpoints, "save", save)
    # when the replay runs again
    report = replay(tiers, selection, target, batch_size=3, checkpoint=ckpt, now=NOW)
    # then the unacknowledged batch comes again (at least once), and nothing is skipped
    assert got == ["e0", "e1", "e2", "e3", "e4", "e5", "e3", "e4", "e5", "e6"]
    assert (report.resumed_after, report.sent) == (3, 4)
