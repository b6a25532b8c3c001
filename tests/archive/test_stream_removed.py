"""REMOVE records as the last copy of an event (eventlake/archive/removed.py).

A REMOVE's old image is the whole item. When no sweep's expiry check has vouched for it (the
INSERT's batch was given up and no sweep ran since), the stream archives it from the old image
if the lake lacks it; otherwise the REMOVE is only counted, reading nothing. Lake contents are
read back raw (every row of every file), so "once" means one row.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from stream_support import (
    STORE,
    lake_files,
    lambda_event,
    new_lake,
    raw_rows,
    record_shards,
    removal,
)

from eventlake.archive.removed import REMOVED_NAME
from eventlake.archive.stream import archive_event
from eventlake.events.model import Event, parse_event
from eventlake.lake.store import Lake
from eventlake.lake.watermark import EXPIRY_CHECK_KEY, advance_watermark

INGESTED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def event_of(event_id: str) -> Event:
    return parse_event({"event_id": event_id, "event_type": "order.placed",
                        "timestamp": "2026-11-01T08:00:00Z",
                        "event_payload": {"order": event_id}}, now=INGESTED)


def item(event_id: str) -> dict[str, Any]:
    """An eventlake item as the hot tier stores it (`HotStore.to_item`), ingested at INGESTED."""
    return STORE.to_item(event_of(event_id), INGESTED)


def expected_row_of(event_id: str) -> dict[str, Any]:
    """The lake row of `item(event_id)`."""
    event = event_of(event_id)
    return {"event_id": event.event_id, "event_type": event.event_type,
            "timestamp": event.timestamp, "ingested_at": INGESTED, "source": None,
            "subject": None, "event_payload": event.payload, "content_hash": event.content_hash}


def inserts(*items: dict[str, Any], first_seq: int) -> list[dict[str, Any]]:
    return list(lambda_event(list(items), first_seq=first_seq)["Records"])


def checkpoint(lake: Lake, at: datetime) -> None:
    """A sweep's expiry check passed every item ingested before `at` (having recorded the
    index shards it reads)."""
    record_shards(lake)
    advance_watermark(lake, at, expected=None, run_id="sweep-x", key=EXPIRY_CHECK_KEY)


def ids(lake: Lake) -> list[str]:
    return sorted(r["event_id"] for r in raw_rows(lake))


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return new_lake(tmp_path / "lake", vouched=False)


@pytest.mark.parametrize("ttl", [True, False], ids=["ttl", "delete-item"])
def test_a_remove_of_an_event_the_lake_lacks_archives_its_old_image(
        lake: Lake, ttl: bool, caplog: pytest.LogCaptureFixture) -> None:
    # given an event whose INSERT never reached the lake, and no expiry check yet
    lost = item("evt-lost")

    # when the table deletes it (TTL, or someone's DeleteItem)
    with caplog.at_level(logging.ERROR, logger="eventlake.archive.stream"):
        report = archive_event(lake, {"Records": [removal(lost, 900, ttl=ttl)]})

    # then the old image is archived, once, as the event it was, and an operator is told
    assert raw_rows(lake) == [expected_row_of("evt-lost")]
    assert (report.removed_checked, report.removed_archived, report.archived) == (1, 1, 0)
    assert (report.ttl_removals, report.other_removals) == ((1, 0) if ttl else (0, 1))
    assert [p.name.startswith(f"{REMOVED_NAME}-") for p in lake_files(lake)] == [True]
    assert report.failed_from is None
    assert "`evt-lost`" in caplog.text and "is the archive flow running?" in caplog.text
    assert "its checkpoint: none yet" in caplog.text


def test_a_remove_of_an_archived_event_adds_no_copy_and_reads_only_its_id(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an event the stream archived from its INSERT, among 50 others of its day
    kept = item("evt-kept")
    archive_event(lake, {"Records": inserts(kept, *(item(f"evt-{n}") for n in range(50)),
                                            first_seq=100)})
    files = lake_files(lake)
    real, looked_up = lake.read_hashes, []

    def read_hashes(dts: Any, ids: Any = None) -> Any:
        found = real(dts, ids)
        looked_up.append((ids.to_pylist() if ids is not None else None, found.num_rows))
        return found

    monkeypatch.setattr(lake, "read_hashes", read_hashes)

    # when TTL deletes it before any expiry check ran
    report = archive_event(lake, {"Records": [removal(kept, 900)]})

    # then the lake is looked up for that id alone, holds it once, and no file is added
    assert looked_up == [(["evt-kept"], 1)]
    assert ids(lake).count("evt-kept") == 1 and lake_files(lake) == files
    assert (report.removed_checked, report.removed_archived) == (1, 0)


def test_a_remove_an_expiry_check_vouched_for_reads_nothing(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an expiry check past the event's ingestion (a sweep archived it, or quarantined
    # it), and the archive watermark past it too
    checkpoint(lake, INGESTED + timedelta(minutes=1))
    advance_watermark(lake, INGESTED + timedelta(hours=1), expected=None, run_id="sweep-x")

    def no_reads(*_: Any, **__: Any) -> Any:
        raise AssertionError("the lake was read for a REMOVE an expiry check vouched for")

    monkeypatch.setattr(lake, "read_hashes", no_reads)

    # when TTL deletes it
    report = archive_event(lake, {"Records": [removal(item("evt-vouched"), 900)]})

    # then it is only counted
    assert (report.ttl_removals, report.removed_checked, report.removed_archived) == (1, 0, 0)
    assert lake_files(lake) == [] and report.failed_from is None


def test_a_remove_ingested_after_the_checkpoint_is_checked_and_archived(lake: Lake) -> None:
    # given an expiry check that has not reached the event's ingestion yet
    checkpoint(lake, INGESTED - timedelta(minutes=1))

    # when TTL (or a delete) removes it before the lake held it
    report = archive_event(lake, {"Records": [removal(item("evt-ahead"), 900)]})

    # then it is archived from the old image
    assert ids(lake) == ["evt-ahead"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)


def test_a_remove_of_another_producers_item_is_only_counted(lake: Lake) -> None:
    # given a REMOVE of an item that is not an event (its INSERT was quarantined long ago)
    foreign = {"pk": {"S": "user#7"}, "name": {"S": "Zoë"}}
    record = removal(foreign, 900, ttl=False, key="pk")

    # when archived
    report = archive_event(lake, {"Records": [record]})

    # then nothing is written or quarantined again
    assert (report.other_removals, report.removed_checked, report.quarantined) == (1, 0, 0)
    assert lake_files(lake) == [] and lake.read_quarantine() == []


def test_an_event_inserted_and_removed_in_one_batch_is_stored_once(lake: Lake) -> None:
    # given a batch with an INSERT and the REMOVE of the same item after it
    short = item("evt-short")
    event = {"Records": [*inserts(short, first_seq=100), removal(short, 900)]}

    # when archived, twice (Lambda retried the whole invocation)
    first, again = archive_event(lake, event), archive_event(lake, event)

    # then the event is in the lake once, written by its INSERT (the retry rewrites that file)
    assert ids(lake) == ["evt-short"]
    assert (first.archived, first.removed_checked, first.removed_archived) == (1, 1, 0)
    assert (again.removed_checked, again.removed_archived) == (1, 0)


def test_a_failed_write_of_an_old_image_is_retried_from_its_remove_and_lands_once(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given INSERT a, REMOVE of a lost b, INSERT c; the first write of b's old image fails
    a, b, c = item("evt-a"), item("evt-b"), item("evt-c")
    event = {"Records": [*inserts(a, first_seq=100), removal(b, 150),
                         *inserts(c, first_seq=200)]}
    real = lake.write
    failures = [OSError("SlowDown")]

    def write(table: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith(f"{REMOVED_NAME}-") and failures:
            raise failures.pop()
        return real(table, name, *args, **kwargs)

    monkeypatch.setattr(lake, "write", write)

    # when archived, the batch reports the REMOVE as where to retry from
    report = archive_event(lake, event)
    assert report.failed_from == "150"
    assert "archiving REMOVEs' old images failed" in (report.error or "")

    # and Lambda re-delivers from there
    retry = archive_event(lake, {"Records": event["Records"][1:]})

    # then each event is in the lake once
    assert retry.failed_from is None and retry.removed_archived == 1
    assert ids(lake) == ["evt-a", "evt-b", "evt-c"]


def test_a_remove_of_an_item_with_an_impossible_date_is_only_counted(lake: Lake) -> None:
    # given the old image of an item in eventlake's layout on Feb 30 (its INSERT was
    # quarantined: it is no event), and a lost event beside it
    bad = {**item("evt-feb30"), "timestamp": {"S": "2026-02-30T08:00:00.000000Z"}}
    event = {"Records": [removal(bad, 900), removal(item("evt-lost"), 901)]}

    # when removed
    report = archive_event(lake, event)

    # then the batch succeeds: the lost event archived, the other only counted
    assert report.failed_from is None and report.quarantined == 0
    assert ids(lake) == ["evt-lost"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)


# --- review23: attacks -------------------------------------------------------------------


def test_a_checkpoint_moved_over_a_sweep_window_that_failed_vouches_for_nothing(
        lake: Lake) -> None:
    # given a first sweep whose expiry check moved the checkpoint over the band its own window
    # covers (expiry.py: "the checkpoint still moves over it"), and whose window write then
    # failed: the checkpoint is past the event, no watermark is, and the lake lacks the event
    checkpoint(lake, INGESTED + timedelta(days=1))

    # when TTL deletes the event (it was in the band: about to expire)
    report = archive_event(lake, {"Records": [removal(item("evt-window"), 900)]})

    # then its old image is archived, not only counted
    assert ids(lake) == ["evt-window"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)


def test_a_throttled_checkpoint_read_fails_the_batch_from_its_first_remove(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given INSERT a, then REMOVEs of lost b and c; the checkpoint read is throttled once
    a, b, c = item("evt-a"), item("evt-b"), item("evt-c")
    event = {"Records": [*inserts(a, first_seq=100), removal(b, 150), removal(c, 151)]}
    real = lake.read_state
    failures = [OSError("SlowDown: reduce your request rate")]

    def read_state(key: str) -> Any:
        if failures:
            raise failures.pop()
        return real(key)

    monkeypatch.setattr(lake, "read_state", read_state)

    # when archived, the batch fails from the first REMOVE and says why
    report = archive_event(lake, event)
    assert report.failed_from == "150"
    assert "archiving REMOVEs' old images failed" in (report.error or "")
    assert "SlowDown" in (report.error or "")
    assert ids(lake) == ["evt-a"]

    # and the re-delivery archives both, each once
    retry = archive_event(lake, {"Records": event["Records"][1:]})
    assert retry.failed_from is None and retry.removed_archived == 2
    assert ids(lake) == ["evt-a", "evt-b", "evt-c"]


def test_a_remove_without_ingested_at_finds_the_copy_its_insert_wrote(lake: Lake) -> None:
    # given another producer's event (no ingested_at) the stream archived from its INSERT,
    # stamped with that record's creation time
    [insert] = inserts(item("evt-bare"), first_seq=100)
    bare = {k: v for k, v in item("evt-bare").items() if k != "ingested_at"}
    insert["dynamodb"]["NewImage"] = bare
    archive_event(lake, {"Records": [insert]})
    files = lake_files(lake)

    # when TTL deletes it (the REMOVE's creation time is later)
    report = archive_event(lake, {"Records": [removal(bare, 900)]})

    # then the lake's copy is found: nothing added
    assert (report.removed_checked, report.removed_archived) == (1, 0)
    assert lake_files(lake) == files and ids(lake) == ["evt-bare"]


@pytest.mark.parametrize("created", [datetime(2026, 12, 1, tzinfo=UTC), 1796112000123],
                         ids=["datetime", "epoch-ms"])
def test_a_remove_whose_creation_time_is_a_datetime_or_epoch_ms_is_rescued(
        lake: Lake, created: Any) -> None:
    # given a lost event of another producer (no ingested_at): the REMOVE's time stands in
    bare = {k: v for k, v in item("evt-bare").items() if k != "ingested_at"}
    record = removal(bare, 900)
    record["dynamodb"]["ApproximateCreationDateTime"] = created

    # when removed
    report = archive_event(lake, {"Records": [record]})

    # then archived, once
    assert report.failed_from is None and report.removed_archived == 1
    assert ids(lake) == ["evt-bare"]


def test_a_remove_redelivered_in_its_batch_and_from_another_shard_lands_once(
        lake: Lake) -> None:
    # given a lost event's REMOVE twice in one batch (re-delivered inside it)
    lost = item("evt-lost")
    first = archive_event(lake, {"Records": [removal(lost, 900), removal(lost, 900)]})

    # when another shard's batch (after a reshard) carries it again, with another one
    again = archive_event(lake, {"Records": [removal(item("evt-other"), 5),
                                             removal(lost, 6)]})

    # then each event is in the lake once
    assert first.removed_archived == 1 and again.removed_archived == 1
    assert ids(lake) == ["evt-lost", "evt-other"]


def test_a_remove_of_a_reused_id_neither_doubles_nor_shadows_the_lakes_event(
        lake: Lake) -> None:
    # given an event in the lake, and a REMOVE of another event under the same id (reused)
    archive_event(lake, {"Records": inserts(item("evt-x"), first_seq=100)})
    other = STORE.to_item(parse_event({"event_id": "evt-x", "event_type": "order.cancelled",
                                       "timestamp": "2026-11-01T08:30:00Z",
                                       "event_payload": {}}, now=INGESTED), INGESTED)

    # when removed, twice (Lambda retried the whole invocation)
    for _ in range(2):
        report = archive_event(lake, {"Records": [removal(other, 900)]})
        assert report.failed_from is None and report.removed_archived == 0

    # then the lake holds the first event only; the newcomer is quarantined
    assert raw_rows(lake) == [expected_row_of("evt-x")]
    assert lake.read_quarantine() != []


def test_a_later_stream_batch_skips_what_a_remove_archived(lake: Lake) -> None:
    # given a lost event archived from its REMOVE
    lost = item("evt-lost")
    archive_event(lake, {"Records": [removal(lost, 900)]})

    # when its INSERT is delivered after all (the given-up batch replayed from the queue)
    report = archive_event(lake, {"Records": inserts(lost, first_seq=100)})

    # then the overlap check finds the removed-* file: no second copy
    assert ids(lake) == ["evt-lost"] and report.already_archived == 1


def test_a_thousand_removes_over_many_days_read_the_lake_once(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given 1,000 lost events over 50 days, and no checkpoint
    images = []
    for n in range(1000):
        event = parse_event({"event_id": f"evt-{n:04d}", "event_type": "t",
                             "timestamp": (INGESTED - timedelta(days=n % 50)).isoformat(),
                             "event_payload": {}}, now=INGESTED)
        images.append(STORE.to_item(event, INGESTED))
    real, calls = lake.read_hashes, []

    def read_hashes(dts: Any, ids: Any = None) -> Any:
        calls.append((len(set(dts)), len(ids) if ids is not None else None))
        return real(dts, ids)

    monkeypatch.setattr(lake, "read_hashes", read_hashes)

    # when TTL deletes them in one batch
    report = archive_event(lake, {"Records": [removal(i, 900 + n)
                                              for n, i in enumerate(images)]})

    # then the lake is read for those ids in those days only (the lookup, and the writer's
    # anti-join of what the lookup found lacking): never whole partitions; each lands once
    assert calls == [(50, 1000), (50, 1000)]
    assert report.removed_archived == 1000 and len(ids(lake)) == 1000


@pytest.mark.integration
def test_on_an_s3_lake_a_remove_rescues_once_and_finds_what_is_there(s3_lake: Lake) -> None:
    # given an S3 lake (moto's server) holding one event from its INSERT, no checkpoint
    kept, lost = item("evt-kept"), item("evt-lost")
    archive_event(s3_lake, {"Records": inserts(kept, first_seq=100)})

    # when both are removed, twice (Lambda retried the whole invocation)
    event = {"Records": [removal(kept, 900), removal(lost, 901)]}
    first, again = archive_event(s3_lake, event), archive_event(s3_lake, event)

    # then the lost one is archived from its old image, and each event is stored once
    files = s3_lake.list_files()
    rows = [r for f in files for r in s3_lake.read_file(f.path, ["event_id"]).to_pylist()]
    assert sorted(r["event_id"] for r in rows) == ["evt-kept", "evt-lost"]
    assert (first.removed_checked, first.removed_archived, first.failed_from) == (2, 1, None)
    assert (again.removed_checked, again.removed_archived, again.failed_from) == (2, 0, None)


def test_a_later_insert_of_another_producers_event_skips_what_a_remove_archived(
        lake: Lake) -> None:
    # given another producer's lost event (no ingested_at) archived from its REMOVE, stamped
    # with the REMOVE's time
    [insert] = inserts(item("evt-bare"), first_seq=100)
    bare = {k: v for k, v in item("evt-bare").items() if k != "ingested_at"}
    insert["dynamodb"]["NewImage"] = bare
    archive_event(lake, {"Records": [removal(bare, 900)]})

    # when its INSERT is delivered after all (stamped with the INSERT's earlier time)
    archive_event(lake, {"Records": [insert]})

    # then no second copy is written
    assert ids(lake) == ["evt-bare"]


@pytest.mark.parametrize("stamp", [{"N": "1793523600"}, {"N": "1793523600000"},
                                   {"S": "2026-11-01T10:00:00+01:00"}],
                         ids=["epoch-s", "epoch-ms", "offset"])
def test_a_vouched_remove_with_ingested_at_in_another_layout_reads_nothing(
        lake: Lake, monkeypatch: pytest.MonkeyPatch, stamp: dict[str, str]) -> None:
    # given another producer's event stamped 2026-11-01T09:00Z in a layout the codec reads,
    # and a checkpoint and watermark past it
    checkpoint(lake, INGESTED + timedelta(minutes=1))
    advance_watermark(lake, INGESTED + timedelta(hours=1), expected=None, run_id="sweep-x")

    def no_reads(*_: Any, **__: Any) -> Any:
        raise AssertionError("the lake was read for a REMOVE an expiry check vouched for")

    monkeypatch.setattr(lake, "read_hashes", no_reads)

    # when TTL deletes it
    report = archive_event(lake, {"Records": [removal({**item("evt-o"), "ingested_at": stamp},
                                                      900)]})

    # then it is only counted, as one stamped in eventlake's layout
    assert (report.removed_checked, report.failed_from) == (0, None)


@pytest.mark.parametrize("index_keys", ["none", "other-day"])
def test_a_remove_of_an_item_the_index_never_listed_is_checked_though_the_checkpoint_passed_it(
        lake: Lake, index_keys: str) -> None:
    # given another producer's event stamped with an `ingested_at` before the checkpoint but
    # without the index's keys (or with a shard of another day than its sort key: a Query of
    # the band's days never reads it), so no expiry check ever read it; its INSERT was lost
    checkpoint(lake, INGESTED + timedelta(minutes=1))
    advance_watermark(lake, INGESTED + timedelta(hours=1), expected=None, run_id="sweep-x")
    stored = item("evt-unindexed")
    if index_keys == "none":
        stored = {k: v for k, v in stored.items() if k not in ("ingest_shard", "ingest_key")}
    else:
        stored = {**stored, "ingest_shard": {"S": "2026-10-01#0"}}

    # when TTL deletes it
    report = archive_event(lake, {"Records": [removal(stored, 900)]})

    # then the lake is checked, and the event archived from the old image
    assert ids(lake) == ["evt-unindexed"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)
