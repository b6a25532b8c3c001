"""REMOVEs whose index keys no sweep's Query reads, in the cases mutation testing found
unchecked (mutants35): a warm process that already knows the lake's shard count, and a shard
text with a second `#`. Each must be checked against the lake, and its event archived once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

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
