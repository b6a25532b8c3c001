"""REMOVEs whose index keys no sweep's Query reads, in the cases mutation testing found
unchecked (mutants35): a warm process that already knows the lake's shard count, and a shard
text with a second `#`. Each must be checked against the lake, and its event archived once."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from stream_support import new_lake, removal

from eventlake.archive.stream import archive_event
from eventlake.lake.store import Lake
from eventlake.lake.watermark import advance_watermark
from tests.archive.test_stream_removed import INGESTED, checkpoint, ids, item


def _vouching_lake(tmp_path: Path) -> Lake:
    """A lake whose expiry check and watermark passed INGESTED (8 index shards a day)."""
    lake = new_lake(tmp_path / "lake", vouched=False)
    checkpoint(lake, INGESTED + timedelta(minutes=1))
    advance_watermark(lake, INGESTED + timedelta(hours=1), expected=None, run_id="sweep-x")
    return lake


def test_a_warm_process_checks_a_remove_of_an_item_without_index_keys(tmp_path: Path) -> None:
    lake = _vouching_lake(tmp_path)
    # given a process that already read the lake's shard count (a vouched REMOVE, counted)
    first = archive_event(lake, {"Records": [removal(item("evt-ok"), 900)]})
    assert (first.ttl_removals, first.removed_checked, first.removed_archived) == (1, 0, 0)
    # when another producer's event without the index's keys is deleted, its INSERT lost
    stored = {k: v for k, v in item("evt-bare").items()
              if k not in ("ingest_shard", "ingest_key")}
    report = archive_event(lake, {"Records": [removal(stored, 901)]})
    # then it is checked against the lake and archived, once
    assert ids(lake) == ["evt-bare"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)


def test_a_shard_with_a_second_hash_is_not_one_a_query_reads(tmp_path: Path) -> None:
    lake = _vouching_lake(tmp_path)
    # given an item whose shard text ends in a number a Query names (`#0`), after another `#`
    stored: dict[str, Any] = {**item("evt-odd"), "ingest_shard": {"S": "2026-11-01#5#0"}}
    # when TTL deletes it
    report = archive_event(lake, {"Records": [removal(stored, 900)]})
    # then it is checked against the lake and archived from its old image
    assert ids(lake) == ["evt-odd"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)


def test_every_remove_after_a_vouched_one_or_a_non_event_is_still_checked(
        tmp_path: Path) -> None:
    lake = _vouching_lake(tmp_path)
    other = {"event_id": {"S": "not-an-event"}, "colour": {"S": "blue"}}  # another producer's
    unindexed = {k: v for k, v in item("evt-b").items() if k not in ("ingest_shard",)}
    # given one batch: a vouched REMOVE, a non-event's, then two of events the lake lacks
    records = [removal(item("evt-ok"), 900), removal(other, 901),
               removal({**item("evt-a"), "ingest_shard": {"N": "3"}}, 902),
               removal(unindexed, 903)]
    # when archived
    report = archive_event(lake, {"Records": records})
    # then every REMOVE after the first two was checked, and both events archived once
    assert ids(lake) == ["evt-a", "evt-b"]
    assert (report.removed_checked, report.removed_archived) == (2, 2)


@pytest.mark.parametrize("key", [None, {"N": "1"}, {"S": "not-a-time#evt-odd"}],
                         ids=["no-key", "number-key", "no-time"])
def test_a_remove_whose_sort_key_is_missing_or_no_time_is_checked(
        tmp_path: Path, key: dict[str, str] | None) -> None:
    lake = _vouching_lake(tmp_path)
    stored: dict[str, Any] = {k: v for k, v in item("evt-odd").items() if k != "ingest_key"}
    if key is not None:
        stored["ingest_key"] = key
    report = archive_event(lake, {"Records": [removal(stored, 900)]})
    assert ids(lake) == ["evt-odd"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)


def test_a_remove_without_a_creation_time_is_archived(tmp_path: Path) -> None:
    lake = new_lake(tmp_path / "lake", vouched=False)
    record = removal(item("evt-a"), 900)
    del record["dynamodb"]["ApproximateCreationDateTime"]
    report = archive_event(lake, {"Records": [record]})
    assert ids(lake) == ["evt-a"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)


def test_what_a_remove_archived_is_logged_loudly_with_ids_and_the_checkpoint(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lake = new_lake(tmp_path / "lake", vouched=False)
    records = [removal(item(f"evt-{i}"), 900 + i) for i in range(6)]
    with caplog.at_level(logging.ERROR, logger="eventlake.archive.stream"):
        archive_event(lake, {"Records": records})
    [message] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert message.startswith("6 event(s) were deleted from the table (TTL, or a DeleteItem) "
                               "before the lake held them, and were archived from their REMOVE "
                               "records' old images (of 6 checked, e.g. ")
    assert ", ".join(f"`evt-{i}`" for i in range(5)) + "). No sweep's" in message
    assert "`evt-5`" not in message
    assert message.endswith("(its checkpoint: none yet): is the archive flow running? "
                            "(`eventlake status`; the ArchiveLag and TtlMargin alarms)")
