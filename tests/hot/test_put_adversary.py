"""`put_many` against adversarial batches: one odd event never costs the others their result."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from eventlake import EventLake, Outcome


def seed(event_id: str, **payload: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": "order.placed",
            "timestamp": "2026-03-14T09:26:51Z", "event_payload": {"n": 1, **payload}}


def count_writes(lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The event_id of each PutItem the lake's DynamoDB client makes from now on."""
    client = lake.clients.dynamodb
    put_item = client.put_item
    writes: list[str] = []

    def counted(**kwargs: Any) -> Any:
        writes.append(kwargs["Item"]["event_id"]["S"])
        return put_item(**kwargs)

    monkeypatch.setattr(client, "put_item", counted)
    return writes


def test_a_python_value_json_cannot_carry_is_refused_alone_and_the_rest_stored(
        lake: EventLake) -> None:
    # given a batch whose middle events hold what only a Python caller can send
    batch = [seed("ok-1"), {"event_type": "a", "event_payload": {1: "x", "b": 2}},
             {"event_type": "a", 1: "x", b"y": 2}, {"event_id": 10**5000, "event_type": "a"},
             seed("ok-2")]
    # when it is put
    results = lake.put_many(batch)
    # then each odd event is invalid under its rule, and the others are stored
    assert [(r.position, r.outcome, r.rule) for r in results] == [
        (0, Outcome.CREATED, None), (1, Outcome.INVALID, "payload.not_json"),
        (2, Outcome.INVALID, "event.unknown_field"), (3, Outcome.INVALID, "event_id.format"),
        (4, Outcome.CREATED, None)]
    assert set(lake.hot.fetch(["ok-1", "ok-2"]).items) == {"ok-1", "ok-2"}


def test_the_first_of_two_events_with_one_id_in_a_request_is_stored_whichever_write_is_faster(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a request holding one event_id twice with different content, where the write of
    # the first would land after the second's if both were in flight at once
    client = lake.clients.dynamodb
    put_item = client.put_item
    second_done = threading.Event()

    def slow_first(**kwargs: Any) -> Any:
        if '"which":"first"' in kwargs["Item"]["event_payload"]["S"]:
            second_done.wait(timeout=1.0)
            return put_item(**kwargs)
        try:
            return put_item(**kwargs)
        finally:
            second_done.set()

    monkeypatch.setattr(client, "put_item", slow_first)
    # when it is put
    results = lake.put_many([seed("twice", which="first"), seed("twice", which="second")])
    # then the first in the request is stored and the second is the conflict, as the
    # producer sent them (and as a re-sent request answers again)
    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.CONFLICT]
    stored = lake.hot.fetch(["twice"]).items["twice"]
    assert '"which":"first"' in stored["event_payload"]["S"]
    assert [r.outcome for r in lake.put_many([seed("twice", which="first"),
                                              seed("twice", which="second")])] == [
        Outcome.DUPLICATE, Outcome.CONFLICT]



def test_a_thousand_copies_of_one_event_in_a_request_cost_one_write_not_a_thousand_in_turn(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a request holding one event 1,000 times (a producer's retry loop gone wrong) and
    # an event that conflicts with what the table holds, twice
    lake.put_many([seed("taken", which="stored")])
    writes = count_writes(lake, monkeypatch)
    batch = [seed("same")] * 1000 + [seed("taken", which="other")] * 2 + [seed("same", n=2)]
    # when it is put
    results = lake.put_many(batch)
    # then the first copy is stored and each later one answers as a re-sent copy would
    # (duplicate; the conflict twice, with its message), each at its position, and a later
    # event with other content under the id is still compared with the stored one
    assert [r.position for r in results] == list(range(1003))
    assert [r.outcome for r in results] == (
        [Outcome.CREATED] + [Outcome.DUPLICATE] * 999 + [Outcome.CONFLICT] * 3)
    assert results[1000].message == results[1001].message and "`taken`" in str(
        results[1000].message)
    # and identical copies are not written again, nor is a later event under an id this
    # call stored: 2 writes, not 1,000 made one after the other (seconds of latency)
    assert sorted(writes) == ["same", "taken"]


def test_a_thousand_different_events_under_one_id_cost_one_write_and_are_answered_in_order(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a request holding 1,000 different events under one id (a producer reusing an id),
    # a copy of the first among them, and under an id stored before by another request, an
    # event that conflicts and then the stored event itself
    lake.put_many([seed("taken", which="stored")])
    writes = count_writes(lake, monkeypatch)
    batch = ([seed("reused", k=k) for k in range(1000)] + [seed("reused", k=0)]
             + [seed("taken", which="other"), seed("taken", which="stored")])
    # when it is put
    results = lake.put_many(batch)
    # then the first is stored, the other 999 conflict with it and its copy is a duplicate,
    # each at its position, and the first event stays what is stored
    assert [r.position for r in results] == list(range(1003))
    assert [r.outcome for r in results[:1001]] == (
        [Outcome.CREATED] + [Outcome.CONFLICT] * 999 + [Outcome.DUPLICATE])
    assert "`reused` is already stored with different content" in str(results[1].message)
    assert '"k":0' in lake.hot.fetch(["reused"]).items["reused"]["event_payload"]["S"]
    # and an id this call did not store is still written and compared with what the table
    # holds: the conflict, then the stored event itself a duplicate
    assert [r.outcome for r in results[1001:]] == [Outcome.CONFLICT, Outcome.DUPLICATE]
    # one write for the 1,001 events under `reused`; both under `taken` went to DynamoDB
    assert sorted(writes) == ["reused", "taken", "taken"]
