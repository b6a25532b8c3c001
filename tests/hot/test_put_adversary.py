"""`put_many` against adversarial batches: one odd event never costs the others their result."""

from __future__ import annotations

from typing import Any

from eventlake import EventLake, Outcome


def seed(event_id: str, **payload: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": "order.placed",
            "timestamp": "2026-03-14T09:26:51Z", "event_payload": {"n": 1, **payload}}


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
