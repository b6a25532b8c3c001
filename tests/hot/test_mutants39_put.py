"""What the put path promises that mutation testing (mutants38, docs/mutation-testing.md) left
untested: the read after a refused write (an event id already stored, and a refusal that does
not carry the stored item) honours the caller's deadline, as the write does. A read throttled
past it stops in time and the event is answered `failed`, retryable, instead of retrying for as
long as botocore's attempts allow.

On in-process moto, with botocore's own retries (the failures injected below them) and its
pauses on a fake clock."""

from __future__ import annotations

import pytest
from archive_support import record_on_table

from eventlake import EventLake
from eventlake.hot.results import Deadline, Outcome
from tests.hot.test_hot import (
    FakeTime,
    client_error,
    event,
    inject,
    refusals_carry_no_item,
    store_with,
    stored,
)


def test_the_read_after_a_refused_write_stops_at_the_callers_deadline(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a stored event, a DynamoDB whose refusals carry no stored item (the store must
    # read it), every read of it throttled, 50 attempts allowed and a write budget of minutes
    store = store_with(lake, aws_max_attempts=50, clock_skew_seconds=3000)
    record_on_table(store.clients, store.settings)  # the table's look-back
    assert store.put(event("cart-77-item-1")).outcome is Outcome.CREATED
    refusals_carry_no_item(store, monkeypatch)
    ddb = store.clients.dynamodb
    first = stored(store, "cart-77-item-1")
    reads = inject(store, "get_item", client_error("ThrottlingException", operation="GetItem"),
                   times=None)
    fake = FakeTime(monkeypatch)
    # when the event is sent again by a caller with 1.5 s left
    result = store.put(event("cart-77-item-1"), 3, deadline=Deadline.after(1.5, clock=fake.clock))
    # then the read stops retrying before a pause could end past the caller's deadline
    assert fake.now <= 1001.5
    assert 1 <= reads.calls < 50
    # and the event is answered failed, retryable, saying it stopped for the caller's deadline
    assert (result.position, result.outcome, result.retryable) == (3, Outcome.FAILED, True)
    assert result.message is not None
    assert "stopped retrying" in result.message and "the caller's deadline" in result.message
    assert "ThrottlingException" in result.message
    # and the stored event is untouched (read once DynamoDB answers reads again)
    ddb.meta.events.unregister("before-send.dynamodb.GetItem", reads)
    assert stored(store, "cart-77-item-1") == first
