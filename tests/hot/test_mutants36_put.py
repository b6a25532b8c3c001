"""How a put answers when the item is already there, the cases mutation testing found
unchecked by the put-path tests (mutants36): a copy that vanished (retryable, never a silent
success), a conflict that names both hashes, an event sent without id or timestamp (a
duplicate that says why), repeats inside one request, and the attempts a failure reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from eventlake.config import Settings
from eventlake.events.model import Event, parse_event
from eventlake.hot.results import (
    DERIVED_DUPLICATE,
    RETRY_ADVICE,
    Deadline,
    Outcome,
    PutResult,
)
from eventlake.hot.store import HotStore, _as_copy, _out_of_time

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
STORE = HotStore(Settings(), clients=None, recorded={})  # type: ignore[arg-type]  # no AWS


def _event(payload: Any, **fields: Any) -> Event:
    return parse_event({"event_type": "order.placed", "event_payload": payload, **fields},
                       now=NOW)


def _stored(event: Event, **changes: Any) -> dict[str, Any]:
    item = STORE.to_item(event, NOW - timedelta(minutes=5))
    item.update(changes)
    return item


def test_a_copy_vanished_while_checking_it_is_a_retryable_failure() -> None:
    event = _event({"n": 1}, event_id="evt-1", timestamp="2026-11-01T08:00:00Z")
    result = HotStore._compare(event, None, 7)
    assert (result.position, result.event_id, result.outcome) == (7, "evt-1", Outcome.FAILED)
    assert result.retryable and result.message is not None and "safe to retry" in result.message


def test_a_conflict_names_the_event_and_both_hashes() -> None:
    sent = _event({"n": 1}, event_id="evt-1", timestamp="2026-11-01T08:00:00Z")
    other = _event({"n": 2}, event_id="evt-1", timestamp="2026-11-01T08:00:00Z")
    result = HotStore._compare(sent, _stored(other), 3)
    assert (result.position, result.event_id, result.outcome) == (3, "evt-1", Outcome.CONFLICT)
    assert result.message is not None
    assert f"stored hash `{other.content_hash[:12]}`, sent `{sent.content_hash[:12]}`)" \
        in result.message and "`evt-1`" in result.message and "immutable" in result.message
    # another producer's item, without a hash: a conflict saying so, never a crash
    bare = {k: v for k, v in _stored(other).items() if k != "content_hash"}
    assert "stored hash `none`" in (HotStore._compare(sent, bare, 3).message or "")


def test_the_same_event_sent_again_is_a_plain_duplicate() -> None:
    event = _event({"n": 1}, event_id="evt-1", timestamp="2026-11-01T08:00:00Z")
    assert HotStore._compare(event, _stored(event), 2) == PutResult(
        2, "evt-1", Outcome.DUPLICATE, None)


def test_an_event_sent_without_id_or_timestamp_again_is_a_duplicate_that_says_why() -> None:
    # given an event with neither, stored minutes ago (its timestamp was its ingestion time)
    first = _event({"n": 1})
    again = parse_event({"event_type": "order.placed", "event_payload": {"n": 1}},
                        now=NOW + timedelta(minutes=1))
    assert again.timestamp_defaulted and first.content_hash != again.content_hash
    # when it is sent again (its id derived from the content alone), it is a duplicate
    result = HotStore._compare(again, _stored(first), 0)
    assert (result.outcome, result.message) == (Outcome.DUPLICATE, DERIVED_DUPLICATE)


def test_without_a_timestamp_only_the_timestamp_may_differ() -> None:
    first = _event({"n": 1}, event_id="evt-1", source="shop", subject="order/1")
    for change in ({"event_type": "order.paid"}, {"event_payload": {"n": 2}},
                   {"source": "pay"}, {"subject": "order/2"}):
        fields = {"event_type": "order.placed", "event_payload": {"n": 1}, "source": "shop",
                  "subject": "order/1", "event_id": "evt-1", **change}
        again = parse_event(fields, now=NOW + timedelta(minutes=1))
        assert HotStore._compare(again, _stored(first), 0).outcome is Outcome.CONFLICT, change
    same = parse_event({"event_type": "order.placed", "event_payload": {"n": 1},
                        "source": "shop", "subject": "order/1", "event_id": "evt-1"},
                       now=NOW + timedelta(minutes=1))
    assert HotStore._compare(same, _stored(first), 0) == PutResult(
        0, "evt-1", Outcome.DUPLICATE, None)


def test_a_repeat_in_a_request_is_answered_as_its_first_occurrence() -> None:
    event = _event({"n": 1}, event_id="evt-1", timestamp="2026-11-01T08:00:00Z")
    derived = _event({"n": 1})
    created = PutResult(0, "evt-1", Outcome.CREATED)
    assert _as_copy(created, event, 4) == PutResult(4, "evt-1", Outcome.DUPLICATE, None)
    assert _as_copy(PutResult(0, derived.event_id, Outcome.CREATED), derived, 4) == \
        PutResult(4, derived.event_id, Outcome.DUPLICATE, DERIVED_DUPLICATE)
    refused = PutResult(0, "evt-1", Outcome.FAILED, "throttled", retryable=True)
    assert _as_copy(refused, event, 4) == PutResult(4, "evt-1", Outcome.FAILED, "throttled",
                                                    retryable=True)


_THROTTLED = {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}


class _Throttled(Exception):
    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.response: dict[str, Any] = dict(_THROTTLED)


def test_a_put_out_of_time_is_retryable_and_says_why() -> None:
    event = _event({"n": 1}, event_id="evt-1", timestamp="2026-11-01T08:00:00Z")
    late = _out_of_time(event, 5, 3, _Throttled("slow down"))
    assert (late.position, late.event_id, late.outcome, late.retryable) == (
        5, "evt-1", Outcome.FAILED, True)
    assert late.message == ("stopped retrying after 3 attempt(s) (ThrottlingException: slow "
                            "down) to answer in time (the caller's deadline was near); "
                            f"{RETRY_ADVICE}")
    budget = _out_of_time(event, 5, 0, None, caller=False)
    assert budget.message is not None and budget.message.startswith("not attempted so that it")
    assert "EVENTLAKE_CLOCK_SKEW_SECONDS" in budget.message and budget.retryable
    dropped = _out_of_time(event, 5, 2, ConnectionError("reset"))  # no AWS error code
    assert (dropped.message or "").startswith("stopped retrying after 2 attempt(s) "
                                              "(ConnectionError: reset)")


def test_the_attempts_a_failure_reports() -> None:
    exc = _Throttled()
    exc.response = {**_THROTTLED, "ResponseMetadata": {"RetryAttempts": 4}}
    assert STORE._attempts(exc) == 5
    assert STORE._attempts(ConnectionError()) == Settings().aws_max_attempts
    no_count = _Throttled()
    no_count.response = {"ResponseMetadata": {}}
    assert STORE._attempts(no_count) == Settings().aws_max_attempts
    assert STORE._attempts(_Throttled()) == Settings().aws_max_attempts  # no metadata at all


def test_nothing_is_attempted_past_the_callers_deadline() -> None:
    # given a caller whose deadline has passed (no table behind this store: a write would fail)
    late = Deadline.after(-1)
    one = _event({"n": 1}, event_id="evt-1", timestamp="2026-11-01T08:00:00Z")
    two = _event({"n": 2}, event_id="evt-2", timestamp="2026-11-01T08:00:00Z")
    not_attempted = (f"not attempted to answer in time (the caller's deadline was near); "
                     f"{RETRY_ADVICE}")
    # when it puts one event, or several, then every event is answered retryable, unwritten
    assert STORE.put(one, deadline=late) == PutResult(0, "evt-1", Outcome.FAILED,
                                                       not_attempted, retryable=True)
    assert STORE.put_many([one, two], [4, 9], deadline=late) == [
        PutResult(4, "evt-1", Outcome.FAILED, not_attempted, retryable=True),
        PutResult(9, "evt-2", Outcome.FAILED, not_attempted, retryable=True)]
