"""review34: a REMOVE is vouched for (counted, the lake not read) only when the expiry check's
Query could have listed its item: the shard a sweep queries (`<day>#<n>`, n below the shard
count the lake records, as the sweep reads at least that many) and a sort key in the index's
own fixed-width time text (`ingest_key BETWEEN` compares text). Another producer's item with
keys no Query of the band reads was counted, and its event lost with the REMOVE."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from stream_support import new_lake, removal, wire_image

from eventlake.archive.stream import archive_event
from eventlake.lake.shards import read_shard_record
from eventlake.lake.store import Lake
from eventlake.lake.watermark import EXPIRY_CHECK_KEY, advance_watermark
from tests.archive.test_stream_removed import INGESTED, checkpoint, ids, item

KEY = "2026-11-01T09:00:00.000000Z#evt-odd"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """A lake a sweep checked past INGESTED, reading 8 index shards a day."""
    lake = new_lake(tmp_path / "lake", vouched=False)
    checkpoint(lake, INGESTED + timedelta(minutes=1))  # recording the table's 8 shards
    advance_watermark(lake, INGESTED + timedelta(hours=1), expected=None, run_id="sweep-x")
    record = read_shard_record(lake)
    assert record is not None and record.index_shards_max == 8
    return lake


@pytest.mark.parametrize(("shard", "key"), [
    ("2026-11-01#8", KEY),                       # above the shards a sweep queries
    ("2026-11-01#99", KEY),
    ("2026-11-01#07", KEY),                      # not the text a Query names
    ("2026-11-01#x", KEY),
    ("2026-11-01", KEY),                         # no shard at all
    ("2026-11-01#-1", KEY),
    ("2026-11-01#3", "2026-11-01 09:00:00Z#evt-odd"),        # sorts outside BETWEEN's text
    ("2026-11-01#3", "2026-11-01T09:00:00+00:00#evt-odd"),
    ("2026-11-01#3", "2026-11-01T09:00:00Z#evt-odd"),
], ids=lambda v: v)
def test_a_remove_whose_index_keys_no_sweep_query_reads_is_checked_against_the_lake(
        lake: Lake, shard: str, key: str) -> None:
    # given another producer's event, its INSERT lost, whose index keys no expiry check's
    # Query of the band (shards 0-7 of each day, ingest_key BETWEEN fixed-width times) lists
    stored: dict[str, Any] = {**item("evt-odd"), "ingest_shard": {"S": shard},
                              "s": {"S": shard}, "ingest_key": {"S": key}}
    # when TTL deletes it
    report = archive_event(lake, {"Records": [removal(stored, 900)]})
    # then the lake is checked, and the event archived from the old image
    assert ids(lake) == ["evt-odd"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)


def without(image: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: v for n, v in image.items() if n not in names}


@pytest.mark.parametrize("change", [
    "no s and k",            # an older writer's item: in no index once the old one is gone
    "no k",
    "s another shard",       # the new index lists it elsewhere than the old one
    "k another time",        # ... or at another time
    "k too short",
    "k not base64",
])
def test_a_remove_of_an_item_the_new_index_does_not_list_alike_is_checked(
        lake: Lake, change: str) -> None:
    # given an event whose INSERT was lost, and whose index keys s and k do not agree with
    # ingest_shard and ingest_key (or are missing)
    good = item("evt-odd")
    stored = {"no s and k": without(good, "s", "k"), "no k": without(good, "k"),
              "s another shard": {**good, "s": {"S": "2026-11-01#7"}},
              "k another time": {**good, "k": {"B": bytes(8) + good["k"]["B"][8:]}},
              "k too short": {**good, "k": {"B": good["k"]["B"][:7]}},
              "k not base64": {**good, "k": {"B": "not base64!"}}}[change]
    assert good["s"] != {"S": "2026-11-01#7"}
    # when TTL deletes it, then the lake is checked, and the event archived from the old image
    report = archive_event(lake, {"Records": [removal(stored, 900)]})
    assert ids(lake) == ["evt-odd"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)


def test_a_remove_of_an_item_ingested_before_1970_is_checked(lake: Lake) -> None:
    # given an item stamped before 1970 (only a replayed stream record carries one): `k`
    # cannot say its time (held as 1970), so no Query of its day's band lists it
    from datetime import UTC, datetime

    from eventlake.hot.store import item_of
    from tests.archive.test_stream_removed import event_of

    stored = item_of(event_of("evt-old"), datetime(1969, 12, 31, 23, 0, tzinfo=UTC),
                     retention_seconds=86400, index_shards=8)
    report = archive_event(lake, {"Records": [removal(stored, 900)]})
    assert ids(lake) == ["evt-old"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)


def test_a_remove_with_k_in_base64_as_lambda_sends_it_is_vouched_for(lake: Lake) -> None:
    report = archive_event(lake, {"Records": [removal(wire_image(item("evt-ok")), 900)]})
    assert (report.ttl_removals, report.removed_checked, report.removed_archived) == (1, 0, 0)
    assert ids(lake) == []


def test_a_remove_of_an_item_a_sweep_read_is_still_only_counted(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_reads(*_: Any, **__: Any) -> Any:
        raise AssertionError("the lake was read for a REMOVE an expiry check vouched for")

    monkeypatch.setattr(lake, "read_hashes", no_reads)
    report = archive_event(lake, {"Records": [removal(item("evt-ok"), 900)]})
    assert (report.ttl_removals, report.removed_checked, report.removed_archived) == (1, 0, 0)


def test_without_the_lakes_shard_record_a_remove_is_checked(tmp_path: Path) -> None:
    # given a checkpoint but no record of the shards a sweep read (a sweep writes it first)
    lake = new_lake(tmp_path / "lake", vouched=False)
    advance_watermark(lake, INGESTED + timedelta(minutes=1), expected=None, run_id="sweep-x",
                      key=EXPIRY_CHECK_KEY)
    advance_watermark(lake, INGESTED + timedelta(hours=1), expected=None, run_id="sweep-x")
    report = archive_event(lake, {"Records": [removal(item("evt-a"), 900)]})
    assert ids(lake) == ["evt-a"]
    assert (report.removed_checked, report.removed_archived) == (1, 1)


def test_a_warm_process_reads_the_shard_record_once_and_again_for_a_raised_count(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a warm stream Lambda: batches of REMOVEs on the same lake
    import json

    from eventlake.archive import removed
    from eventlake.lake.shards import INDEX_KEY

    reads: list[int] = []
    real = removed.read_shard_record

    def counted(lake: Lake) -> Any:
        reads.append(1)
        return real(lake)

    monkeypatch.setattr(removed, "read_shard_record", counted)

    # when three batches of eventlake's own items are archived
    for n in range(3):
        report = archive_event(lake, {"Records": [removal(item(f"evt-{n}"), 900 + n)]})
        assert report.removed_checked == 0  # vouched for: only counted

    # then the record was read once
    assert len(reads) == 1

    # and when the table's shards were raised (a sweep recorded 12) and an item names shard 10
    record = read_shard_record(lake)
    assert record is not None
    lake.write_state(INDEX_KEY, json.dumps({"index_shards_max": 12}).encode(),
                     expected=record.version)
    raised = {**item("evt-raised"), "ingest_shard": {"S": "2026-11-01#10"},
              "s": {"S": "2026-11-01#10"}}  # both indexes' shard keys
    report = archive_event(lake, {"Records": [removal(raised, 950)]})

    # then the record is read again, and the item vouched for by it
    assert len(reads) == 2 and report.removed_checked == 0
