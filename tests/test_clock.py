"""The store corrects its clock: the offset from AWS's `Date` headers, measured on responses that
happen anyway, applied to `ingested_at` from 2 s up. The host's clock is faked by `wall` (the
in-process moto answers with the real time in `Date`): nothing waits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from eventlake import EventLake
from eventlake.clock import ClockOffset
from eventlake.events.model import parse_event
from eventlake.hot.store import HotStore


def slow_host(lake: EventLake, seconds: float) -> HotStore:
    """A store on `lake`'s table whose host clock runs `seconds` behind (its own clients, as a
    separate producer process has)."""
    from eventlake.aws import Clients

    clients = Clients(lake.settings)
    clients.clock = ClockOffset(wall=lambda: time.time() - seconds)
    return HotStore(lake.settings, clients,
                    clock=lambda: datetime.now(UTC) - timedelta(seconds=seconds))


def event(event_id: str) -> Any:
    return parse_event({"event_id": event_id, "event_type": "order.placed",
                        "timestamp": "2026-11-01T10:00:00Z", "event_payload": {"n": 1}})


def stamped(lake: EventLake, event_id: str) -> datetime:
    item = lake.clients.dynamodb.get_item(TableName=lake.settings.table,
                                          Key={"event_id": {"S": event_id}})["Item"]
    return datetime.fromisoformat(item["ingested_at"]["S"])


def test_a_host_four_minutes_slow_stamps_aws_time_once_a_response_measured_it(
        lake: EventLake) -> None:
    # given a producer host whose clock runs 240 s slow
    store = slow_host(lake, 240)
    # when it writes one event (nothing measured yet), then another
    assert store.put(event("first")).ok
    real = datetime.now(UTC)
    assert store.put(event("second")).ok
    # then the first is stamped by its clock as it is, the second by AWS's time
    assert store.clients.clock.seconds == pytest.approx(240, abs=1.5)
    assert stamped(lake, "first") < real - timedelta(seconds=235)
    assert abs((stamped(lake, "second") - real).total_seconds()) < 2.5
    assert abs((store.now() - datetime.now(UTC)).total_seconds()) < 2.5


def test_a_host_four_minutes_fast_is_corrected_backwards(lake: EventLake) -> None:
    store = slow_host(lake, -240)
    store.put(event("warm-up"))
    assert store.clients.clock.seconds == pytest.approx(-240, abs=1.5)
    assert abs((store.now() - datetime.now(UTC)).total_seconds()) < 2.5


@pytest.mark.parametrize("off_by", [1.0, -1.0, 0.0])
def test_an_offset_within_two_seconds_is_measured_but_not_applied(
        lake: EventLake, off_by: float) -> None:
    # given a host clock within a second of AWS's
    store = slow_host(lake, off_by)
    pinned = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    store._clock = lambda: pinned
    # when a response has been seen
    store.put(event("warm-up"))
    # then the store stamps exactly what its clock reads
    measured = store.clients.clock.measured
    assert measured is not None and abs(measured) < 2
    assert store.clients.clock.seconds == 0.0
    assert store.now() == pinned


def test_with_correction_off_the_store_stamps_its_clock_as_it_is(lake: EventLake) -> None:
    store = slow_host(lake, 240)
    store.settings = lake.settings.with_(clock_correction=False)
    store.put(event("warm-up"))
    assert store.clients.clock.seconds == pytest.approx(240, abs=1.5)  # measured, not applied
    assert store.put(event("second")).ok
    assert stamped(lake, "second") < datetime.now(UTC) - timedelta(seconds=235)


def test_the_offset_comes_from_the_date_header_of_the_response_and_its_round_trip() -> None:
    # given a response whose Date says 12:04:00 (whole seconds), sent at 12:00:00.1 and
    # received at 12:00:00.3 by the local clock
    local = datetime(2026, 11, 29, 12, 0, tzinfo=UTC).timestamp()
    times = iter([local + 0.1, local + 0.3])
    offset = ClockOffset(wall=lambda: next(times))
    context: dict[str, Any] = {}
    date = format_datetime(datetime(2026, 11, 29, 12, 4, tzinfo=UTC), usegmt=True)
    # when the botocore events of the call fire
    offset._before_call(context=context)
    offset._after_call(http_response=_Response({"Date": date}), parsed={}, context=context)
    # then AWS is ahead by Date + 0.5 s (the middle of its second) - the middle of the trip
    assert offset.measured == pytest.approx(240.3)
    assert offset.seconds == pytest.approx(240.3)


def test_a_response_without_a_date_or_with_a_slow_round_trip_measures_nothing() -> None:
    times = iter([0.0, 0.1, 10.0, 15.0])
    offset = ClockOffset(wall=lambda: next(times))
    for headers in ({}, {"Date": "Sun, 29 Nov 2026 12:04:00 GMT"}):
        context: dict[str, Any] = {}
        offset._before_call(context=context)
        offset._after_call(http_response=_Response(headers), parsed={}, context=context)
    assert offset.measured is None and offset.seconds == 0.0


def test_a_malformed_date_never_fails_the_call() -> None:
    offset = ClockOffset()
    offset._after_call(http_response=_Response({"Date": "yesterday-ish"}), parsed={},
                       context={})
    assert offset.measured is None


def test_the_clock_hooks_ride_on_the_clients_own_calls(lake: EventLake) -> None:
    # building the lake's DynamoDB and S3 clients attached the measurement: one call measured
    lake.clients.dynamodb.list_tables()
    assert lake.clients.clock.measured is not None
    assert abs(lake.clients.clock.measured) < 2


class _Response:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def test_put_many_judges_and_defaults_timestamps_by_the_corrected_clock(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a producer process whose host clock runs 10 minutes slow (every clock of it), on
    # its very first call (put_many reads the table's settings first: those responses measure it)
    import eventlake.api

    class SlowDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) - timedelta(seconds=600)

    monkeypatch.setattr(eventlake.api, "datetime", SlowDatetime, raising=False)
    store = slow_host(lake, 600)
    producer = EventLake(lake.settings, clients=store.clients)
    producer.__dict__["hot"] = store
    real = datetime.now(UTC)
    # when it sends an event stamped a minute ahead of real time, and one with no timestamp
    ahead = {"event_id": "ahead", "event_type": "order.placed",
             "timestamp": (real + timedelta(minutes=1)).isoformat(), "event_payload": {}}
    undated = {"event_id": "undated", "event_type": "order.placed", "event_payload": {}}
    results = producer.put_many([ahead, undated])
    # then the first is not "11 minutes in the future", and the second is dated by AWS's time
    assert [r.outcome.value for r in results] == ["created", "created"]
    item = lake.clients.dynamodb.get_item(TableName=lake.settings.table,
                                          Key={"event_id": {"S": "undated"}})["Item"]
    assert abs((datetime.fromisoformat(item["timestamp"]["S"]) - real).total_seconds()) < 5
