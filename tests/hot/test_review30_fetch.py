"""Review 30: BatchGetItem as real DynamoDB answers it, which moto never does: a response cut
short (16 MB, or throttling of some keys) that returns part of the keys and leaves the rest in
UnprocessedKeys, call after call. Every key must end up fetched or reported; none is dropped,
and a fetch that DynamoDB keeps advancing is not given up on."""

from __future__ import annotations

from typing import Any

import pytest

from eventlake.errors import TransientError
from eventlake.hot.fetch import BATCH_KEYS, UNPROCESSED_ATTEMPTS, fetch_items


class TrickleDynamo:
    """BatchGetItem answering at most `per_call` keys a call (the rest UnprocessedKeys, as the
    16 MB limit or a throttled partition does); ids in `lagging` are missing from eventually
    consistent reads; after `stall` calls nothing at all is processed any more."""

    def __init__(self, items: dict[str, Any], per_call: int, *,
                 lagging: frozenset[str] = frozenset(), stall: int | None = None) -> None:
        self.items, self.per_call, self.lagging, self.stall = items, per_call, lagging, stall
        self.calls: list[tuple[int, bool]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        [(table, request)] = RequestItems.items()
        keys = request["Keys"]
        ids = [k["event_id"]["S"] for k in keys]
        assert len(ids) <= BATCH_KEYS and len(set(ids)) == len(ids)
        consistent = request["ConsistentRead"]
        self.calls.append((len(ids), consistent))
        take = 0 if self.stall is not None and len(self.calls) > self.stall else self.per_call
        done, left = keys[:take], keys[take:]
        found = [self.items[k["event_id"]["S"]] for k in done
                 if k["event_id"]["S"] in self.items
                 and (consistent or k["event_id"]["S"] not in self.lagging)]
        # DynamoDB hands back the request's own settings with the keys it left
        unprocessed = {table: {**request, "Keys": left}} if left else {}
        return {"Responses": {table: found}, "UnprocessedKeys": unprocessed}


def item(event_id: str) -> dict[str, Any]:
    return {"event_id": {"S": event_id}, "event_payload": {"S": "{}"}}


def test_a_fetch_that_dynamodb_keeps_advancing_a_few_keys_a_call_gets_every_item() -> None:
    # given 100 items of which DynamoDB returns 10 a call (e.g. ~1.6 MB items: 16 MB a call)
    items = {f"e{i:03d}": item(f"e{i:03d}") for i in range(BATCH_KEYS)}
    ddb = TrickleDynamo(items, per_call=10)
    pauses: list[float] = []
    # when they are fetched
    fetched = fetch_items(ddb, "t", sorted(items), sleep=pauses.append)
    # then every one is returned, none is called vanished, and no call asked a key twice
    assert sorted(fetched.items) == sorted(items) and fetched.vanished == []
    assert [n for n, _ in ddb.calls] == list(range(100, 0, -10))
    assert len(ddb.calls) > UNPROCESSED_ATTEMPTS  # more calls than a stuck fetch is allowed


def test_a_fetch_that_stops_advancing_gives_up_naming_the_keys_left() -> None:
    # given DynamoDB returning 10 keys a call, then (throttled for good) none
    items = {f"e{i:03d}": item(f"e{i:03d}") for i in range(BATCH_KEYS)}
    ddb = TrickleDynamo(items, per_call=10, stall=3)
    pauses: list[float] = []
    # when they are fetched: a TransientError naming what is left, never a partial answer
    with pytest.raises(TransientError, match=r"left 70 key\(s\).*unprocessed.*`e030`"):
        fetch_items(ddb, "t", sorted(items), sleep=pauses.append)
    # after the stall, UNPROCESSED_ATTEMPTS calls that returned nothing, backing off between
    assert len(ddb.calls) == 3 + UNPROCESSED_ATTEMPTS
    assert len(pauses) == len(ddb.calls) - 1 and pauses == sorted(pauses)
    assert pauses[0] < pauses[-1] <= 2.0


def test_unprocessed_keys_of_the_consistent_second_read_stay_consistent() -> None:
    # given items an eventually consistent read misses, and a trickling consistent read
    items = {f"e{i:02d}": item(f"e{i:02d}") for i in range(30)}
    ddb = TrickleDynamo(items, per_call=7, lagging=frozenset(items))
    # when they are fetched
    fetched = fetch_items(ddb, "t", sorted(items), sleep=lambda _: None)
    # then all are found by the consistent read, each of whose follow-ups stays consistent
    assert sorted(fetched.items) == sorted(items) and fetched.vanished == []
    eventual = [c for c in ddb.calls if not c[1]]
    assert sum(1 for _ in eventual) == 5  # 30, 23, 16, 9, 2 keys
    assert ddb.calls[len(eventual):] == [(n, True) for n in (30, 23, 16, 9, 2)]
