"""The ingestion-time index by_ingested_at_v3, the cases mutation testing (mutants41) found no
test checking: an index entry without `k` is refused naming its event (not a crash), and a
timestamp in `k` that is no time is left out; every expiry `k` can hold is kept (0, and the
largest below all ones) and one it cannot (too large, a fraction, none) is marked unknown,
not a crash of the backfill; an item ingested at 1970's first microsecond has a place, one
before it sorts there; a `k` in Lambda's JSON that is not strict base64 is no key (so a
MODIFY carrying it is an event modified, not the backfill's); and an index with the previous
index's name but other keys is not read.

Items are what today's writer stores (`item_of`), an old writer's item that item without
`s` and `k`."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from eventlake.archive.stream import is_reindexing
from eventlake.errors import StorageError
from eventlake.events.model import parse_event
from eventlake.hot.index import (
    INDEX_NAME,
    LEGACY_INDEX_NAME,
    PREVIOUS_INDEX_NAME,
    binary,
    choose,
    decode_entry,
    index_spec,
    item_keys,
    key_bound,
    key_of_item,
)
from eventlake.hot.store import item_of

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def stored_item(event_id: str = "evt-1") -> dict[str, Any]:
    """An order placed, as today's writer stores it (s and k included)."""
    event = parse_event({"event_id": event_id, "event_type": "order.placed",
                         "event_payload": {"sku": "MUG-01"},
                         "timestamp": "2026-11-01T08:00:00Z"}, now=NOW)
    return item_of(event, NOW, retention_seconds=30 * 86400, index_shards=4)


def old_writers(item: dict[str, Any]) -> dict[str, Any]:
    """The same item as a writer before by_ingested_at_v3 stored it: without s and k."""
    return {name: value for name, value in item.items() if name not in ("s", "k")}


# --- decode_entry ------------------------------------------------------------------------

def test_an_entry_without_k_is_refused_naming_its_event() -> None:
    # given an entry of the new index's name whose item has an `s` but no binary `k`
    item = stored_item("evt-no-k")
    # when a reader decodes it, then it is refused naming the event, not crashed on
    with pytest.raises(StorageError, match=r"event `evt-no-k` with a key `k` of no bytes"):
        decode_entry({"event_id": item["event_id"], "s": item["s"]})
    with pytest.raises(StorageError, match=r"event `evt-no-k` with a key `k` of no bytes"):
        decode_entry({"event_id": item["event_id"], "s": item["s"], "k": {"S": "theirs"}})


def test_a_timestamp_in_k_that_is_no_time_is_left_out_so_the_reader_fetches_the_item() -> None:
    # given entries whose k holds, where the timestamp goes, a time before year 1 or after
    # year 9999 (no time eventlake writes: another writer's k)
    item = stored_item("evt-odd-ts")
    for stamp in (1, (1 << 64) - 1):
        k = item["k"]["B"][:8] + stamp.to_bytes(8, "big") + item["k"]["B"][16:]
        # when a reader decodes it, then the entry has no timestamp, the rest is read
        entry = decode_entry({"event_id": item["event_id"], "s": item["s"], "k": {"B": k}})
        assert entry == {name: item[name] for name in (
            "event_id", "ingest_shard", "ingest_key", "content_hash", "expires_at")}


# --- item_keys / key_of_item ----------------------------------------------------------------

def expiry_of(old: dict[str, Any], expires_at: dict[str, str] | None) -> dict[str, Any]:
    """The entry the backfill's k gives an old writer's item with this `expires_at`."""
    item = {n: v for n, v in old.items() if n != "expires_at"}
    if expires_at is not None:
        item["expires_at"] = expires_at
    keys = key_of_item(item)
    assert keys is not None
    return decode_entry({"event_id": item["event_id"], **keys})


def test_every_expiry_k_can_hold_is_kept_and_one_it_cannot_is_marked_unknown() -> None:
    old = old_writers(stored_item())
    # given old items whose expires_at is 0, or the largest 5 bytes hold below all ones
    for seconds in (0, (1 << 40) - 2):
        # then k holds it and the entry says it
        assert expiry_of(old, {"N": str(seconds)})["expires_at"] == {"N": str(seconds)}
    # given one past what 5 bytes hold, a fraction, a number DynamoDB's digits alone do not
    # make (a superscript: str.isdigit, but not int), or none at all (an item without TTL)
    for odd in ({"N": str(1 << 40)}, {"N": str((1 << 40) + 5)}, {"N": "1793530000.5"},
                {"N": "\u00b2"}, {"S": "1793530000"}, None):
        # then the backfill places it, the expiry marked unknown (the reader fetches it)
        assert "expires_at" not in expiry_of(old, odd), odd


def test_an_item_ingested_at_the_epoch_itself_has_a_place() -> None:
    # given an old item whose ingest_key is the first microsecond of 1970
    old = {**old_writers(stored_item("evt-epoch")),
           "ingest_key": {"S": "1970-01-01T00:00:00.000000Z#evt-epoch"}}
    # then the backfill gives it keys, sorting first in the index
    keys = key_of_item(old)
    assert keys is not None and keys["k"]["B"][:8] == bytes(8)
    assert decode_entry({"event_id": old["event_id"], **keys})["ingest_key"] == old[
        "ingest_key"]


def test_an_ingestion_time_before_1970_is_held_as_1970_itself() -> None:
    # given replay's `stream` shape stamping an ingestion time before 1970
    before = datetime(1969, 7, 20, 20, 17, tzinfo=UTC)
    k = item_keys(before, NOW, 1_800_000_000, "ab" * 32)
    # then k sorts as 1970's first microsecond: where a read from 1970 starts
    assert k[:8] == key_bound(datetime(1970, 1, 1, tzinfo=UTC)) == bytes(8)


# --- binary: k as Lambda's JSON carries it --------------------------------------------------

def test_a_k_in_lambdas_json_that_is_not_strict_base64_is_no_key() -> None:
    item = stored_item()
    wire = base64.b64encode(item["k"]["B"]).decode("ascii")
    # given k as Lambda's JSON carries it, then it reads as its bytes ...
    assert binary({"B": wire}) == item["k"]["B"]
    # ... but with characters outside base64's alphabet it is not a key at all (a lenient
    # decode would drop them and read the same bytes)
    assert binary({"B": wire[:8] + "!" + wire[8:]}) is None


def test_a_modify_whose_k_is_not_strict_base64_is_an_event_modified() -> None:
    # given an old writer's item and the backfill's MODIFY of it, as Lambda's JSON carries it
    item = stored_item()
    old = old_writers(item)
    assert key_of_item(old) == {"s": item["s"], "k": item["k"]}
    wire = base64.b64encode(item["k"]["B"]).decode("ascii")
    assert is_reindexing(old, {**old, "s": item["s"], "k": {"B": wire}})
    # when the new image's k carries characters base64 does not have, then it is not the
    # backfill's MODIFY: something else wrote that k
    forged = {**old, "s": item["s"], "k": {"B": wire[:8] + " ~ " + wire[8:]}}
    assert not is_reindexing(old, forged)


# --- choose / _is_previous -------------------------------------------------------------------

def test_an_index_of_the_previous_name_keyed_otherwise_is_not_read() -> None:
    # given a table whose by_ingested_at_v2 projects what eventlake's did but is keyed by
    # something else (another tool's index under eventlake's old name)
    foreign = {"IndexName": PREVIOUS_INDEX_NAME, "IndexStatus": "ACTIVE",
               "KeySchema": [{"AttributeName": "event_type", "KeyType": "HASH"},
                             {"AttributeName": "timestamp", "KeyType": "RANGE"}],
               "Projection": {"ProjectionType": "INCLUDE",
                              "NonKeyAttributes": ["timestamp", "content_hash",
                                                   "expires_at"]}}
    legacy = {"IndexName": LEGACY_INDEX_NAME, "IndexStatus": "ACTIVE",
              "KeySchema": [{"AttributeName": "ingest_shard", "KeyType": "HASH"},
                            {"AttributeName": "ingest_key", "KeyType": "RANGE"}],
              "Projection": {"ProjectionType": "ALL"}}
    current = {**index_spec(), "IndexStatus": "ACTIVE"}
    # then readers skip it: the legacy index while there is one, else the new index
    assert choose({"GlobalSecondaryIndexes": [foreign, legacy, current]},
                  "t") == LEGACY_INDEX_NAME
    assert choose({"GlobalSecondaryIndexes": [foreign, current]}, "t") == INDEX_NAME
    # and keyed right but projecting only one of the attributes readers decide by, too
    narrow = {**foreign, "KeySchema": legacy["KeySchema"],
              "Projection": {"ProjectionType": "KEYS_ONLY",
                             "NonKeyAttributes": ["timestamp", "content_hash", "expires_at"]}}
    assert choose({"GlobalSecondaryIndexes": [narrow, current]}, "t") == INDEX_NAME
