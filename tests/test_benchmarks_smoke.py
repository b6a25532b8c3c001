"""The cost benchmark's counting: request units by DynamoDB's published item-size rules,
checked against hand-computed values, and S3 requests sorted the way S3 bills them."""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.cost_units import (
    Index,
    Tally,
    attribute_size,
    item_size,
    read_units,
    s3_request_kind,
    write_units,
)


def test_attribute_sizes_follow_the_published_rules() -> None:
    assert attribute_size({"S": "héllo"}) == 6  # UTF-8 bytes
    assert attribute_size({"N": "12345"}) == 4  # ceil(5 / 2) + 1
    assert attribute_size({"N": "-0.0012"}) == 2  # significant digits only
    assert attribute_size({"BOOL": True}) == 1
    assert attribute_size({"NULL": True}) == 1
    assert attribute_size({"L": [{"S": "ab"}, {"N": "1"}]}) == 3 + (1 + 2) + (1 + 2)
    assert attribute_size({"M": {"k": {"S": "v"}}}) == 3 + 1 + 1 + 1
    with pytest.raises(ValueError, match="`X`"):
        attribute_size({"X": 1})


def test_item_size_counts_names_and_values() -> None:
    assert item_size({"event_id": {"S": "abc"}, "n": {"N": "7"}}) == 8 + 3 + 1 + 2


def test_write_units_round_up_per_kilobyte_and_read_units_per_four() -> None:
    assert [write_units(s) for s in (0, 1, 1024, 1025, 3000)] == [1, 1, 1, 2, 3]
    assert read_units(4096, consistent=True) == 1.0
    assert read_units(4097, consistent=True) == 2.0
    assert read_units(8192, consistent=False) == 1.0
    assert read_units(100, consistent=False) == 0.5


def _item(payload_bytes: int) -> dict[str, dict[str, str]]:
    return {"event_id": {"S": "e1"}, "ingest_shard": {"S": "d#1"},
            "event_payload": {"S": "x" * payload_bytes}}


def test_a_put_pays_for_the_table_and_each_index_it_appears_in() -> None:
    tally = Tally(indexes=[Index("all", ("ingest_shard",), None),
                           Index("keys", ("ingest_shard",), frozenset()),
                           Index("sparse", ("missing",), None)])
    item = _item(1500)  # 8+2 + 12+3 + 13+1500 = 1538 bytes: 2 WRU
    tally.on_dynamodb_call("ingest", "PutItem", {"Item": item}, {})
    assert tally.wru == Counter({"ingest: table": 2, "ingest: index all": 2,
                                 "ingest: index keys": 1})
    assert tally.calls == Counter({"ingest: PutItem": 1})


def test_an_items_index_entry_holds_its_keys_and_what_the_index_projects() -> None:
    tally = Tally(indexes=[Index("all", ("ingest_shard",), None),
                           Index("keys", ("ingest_shard",), frozenset()),
                           Index("sparse", ("missing",), None)])
    item = _item(1500)
    assert tally.entry_bytes(tally.indexes[0], item) == 1538  # the whole item
    assert tally.entry_bytes(tally.indexes[1], item) == 8 + 2 + 12 + 3  # table + index keys
    assert tally.entry_bytes(tally.indexes[2], item) is None  # not in a sparse index


def test_storage_prices_index_entries_not_copies_of_the_item() -> None:
    from benchmarks.cost import GB, PRICE, STORAGE_OVERHEAD_BYTES, Run, parse, price_run

    # given a run whose items are 810 B with one index entry of 276 B each
    tally = Tally(indexes=[Index("v2", ("ingest_shard", "ingest_key"), frozenset({"x"}))])
    run = Run(tally, events=1000, item_bytes=810.0, lake_bytes=0, index_bytes=276.0)
    rows, _ = price_run(run, parse(["--retention-days", "30"]))
    # then the storage row prices 1e6 x (810 + 276 + 2 x 100) bytes for a month
    [row] = [r for r in rows if r[0].startswith("DynamoDB storage")]
    gb = 1e6 * (810 + 276 + 2 * STORAGE_OVERHEAD_BYTES) / GB
    assert row[1] == f"{gb:,.2f} GB for 1.00 months"
    assert row[2] == f"${gb * PRICE['ddb_storage_gb_month']:,.4f}"


def test_the_peers_table_stores_items_without_eventlakes_index_attributes() -> None:
    from benchmarks.cost import GB, STORAGE_OVERHEAD_BYTES, Run, parse, price_peer

    # given items of 877 B, 700 B of them without the index attributes
    run = Run(Tally(), events=1000, item_bytes=877.0, lake_bytes=0, peer_item_bytes=700.0)
    rows, _ = price_peer(run, parse(["--retention-days", "30"]))
    # then the peer's table is priced at 700 B an item
    [row] = [r for r in rows if r[0].startswith("DynamoDB storage")]
    assert row[1] == f"{1e6 * (700 + STORAGE_OVERHEAD_BYTES) / GB:,.2f} GB"


def test_batch_write_skips_unprocessed_items() -> None:
    tally = Tally()
    done, left = {"PutRequest": {"Item": _item(10)}}, {"PutRequest": {"Item": _item(2000)}}
    tally.on_dynamodb_call("ingest", "BatchWriteItem",
                           {"RequestItems": {"t": [done, left]}},
                           {"UnprocessedItems": {"t": [left]}})
    assert tally.wru == Counter({"ingest: table": 1})


def test_a_query_page_sums_item_sizes_before_rounding() -> None:
    tally = Tally()
    items = [_item(1000)] * 5  # 5 x 1038 = 5190 bytes: 2 x 4 KB, eventually consistent: 1 RRU
    tally.on_dynamodb_call("sweep", "Query", {}, {"Items": items})
    assert tally.rru == Counter({"sweep": 1.0})
    tally.on_dynamodb_call("sweep", "Query", {"ConsistentRead": True}, {"Items": items})
    assert tally.rru == Counter({"sweep": 3.0})


def test_batch_get_rounds_each_item_and_honours_consistency() -> None:
    tally = Tally()
    tally.on_dynamodb_call("sweep", "BatchGetItem",
                           {"RequestItems": {"t": {"Keys": [], "ConsistentRead": True}}},
                           {"Responses": {"t": [_item(10), _item(5000)]}})
    assert tally.rru == Counter({"sweep": 1.0 + 2.0})


def test_stream_records_are_counted_with_their_sizes() -> None:
    tally = Tally()
    records = [{"dynamodb": {"SizeBytes": 700}}, {"dynamodb": {"SizeBytes": 300}}]
    tally.on_dynamodb_call("stream", "GetRecords", {}, {"Records": records})
    assert (tally.stream_records, tally.stream_bytes) == (2, 1000)


@pytest.mark.parametrize(("method", "query", "kind"), [
    ("GET", "list-type=2&prefix=lake%2F", "LIST"),
    ("GET", "", "GET"),
    ("HEAD", "", "GET"),
    ("PUT", "", "PUT"),
    ("POST", "delete=", "PUT"),
    ("DELETE", "", "DELETE"),
])
def test_s3_requests_are_sorted_as_s3_bills_them(method: str, query: str, kind: str) -> None:
    assert s3_request_kind(method, query) == kind


def test_the_cost_run_counts_a_tiny_whole_path() -> None:
    """A whole counted run on moto (20 events): every stage made requests, the stream handler
    saw every event, and the ingest paid one WRU per small item plus one per index entry."""
    from benchmarks.cost import counted_run, parse, price_peer, price_run

    run = counted_run(20, 100)
    tally = run.tally
    assert tally.calls["ingest: PutItem"] == 20
    assert tally.wru["ingest: table"] == 20
    assert sum(v for k, v in tally.wru.items() if k.startswith("ingest: index")) == 20 * len(
        tally.indexes)
    assert tally.stream_records == 20 and tally.lambda_invocations >= 1
    assert any(k.startswith("stream: PUT") for k in tally.s3)
    args = parse(["--events", "20"])
    rows, total = price_run(run, args)
    peer_rows, peer_total = price_peer(run, args)
    assert total > 0 and peer_total > 0 and rows and peer_rows
