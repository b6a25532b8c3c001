"""What the put path promises that mutation testing (mutants38) found no test checking: an event
at its caller's deadline is not written, a retry whose condition failed reads the stored copy
consistently (a duplicate, not a failure), the write asks for the stored item in a form
DynamoDB accepts, a write stopped out of time is answered at its position, identical copies
in one request cost one write, and a request writes no more events at once than
EVENTLAKE_PUT_CONCURRENCY.

The table here is a fake DynamoDB client: it records the calls and answers as DynamoDB does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

import eventlake.hot.store as store_module
from eventlake.aws import OutOfTime
from eventlake.config import Settings
from eventlake.events.model import Event, parse_event
from eventlake.hot.results import RETRY_ADVICE, Deadline, Outcome, PutResult
from eventlake.hot.store import HotStore

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _event(n: int, event_id: str = "evt-1") -> Event:
    return parse_event({"event_type": "order.placed", "event_payload": {"n": n},
                        "event_id": event_id, "timestamp": "2026-11-01T08:00:00Z"}, now=NOW)


class _Table:
    """A DynamoDB table: conditional puts (without the old item in the failure, as DynamoDB
    Local and older SDKs answer), and reads that see a just-written item only when consistent
    (an eventually consistent read may hit a replica that has not got it yet)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.puts = 0
        self.lock = threading.Lock()

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        if kwargs.get("ReturnValuesOnConditionCheckFailure", "NONE") not in ("ALL_OLD", "NONE"):
            raise ClientError({"Error": {"Code": "ValidationException", "Message":
                                         "1 validation error detected"}}, "PutItem")
        item = kwargs["Item"]
        with self.lock:
            self.puts += 1
            if item["event_id"]["S"] in self.items:
                raise ClientError({"Error": {"Code": "ConditionalCheckFailedException",
                                             "Message": "The conditional request failed"}},
                                  "PutItem")
            self.items[item["event_id"]["S"]] = item
        return {}

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        stored = self.items.get(kwargs["Key"]["event_id"]["S"])
        return {"Item": stored} if stored is not None and kwargs.get("ConsistentRead") else {}


def _store(table: object, **settings: Any) -> HotStore:
    clients = SimpleNamespace(dynamodb=table, clock=SimpleNamespace(seconds=0.0))
    return HotStore(Settings(**settings), clients,  # type: ignore[arg-type]  # the fake
                    clock=lambda: NOW, recorded={})


def test_an_event_at_its_callers_deadline_is_answered_not_attempted() -> None:
    # given a caller with no time left at all (not past its deadline: exactly at it)
    table = _Table()
    # when it puts an event
    result = _store(table).put(_event(1), 3, deadline=Deadline(lambda: 0.0))
    # then the event is answered retryable and nothing is written
    assert result == PutResult(3, "evt-1", Outcome.FAILED,
                               "not attempted to answer in time (the caller's deadline was "
                               f"near); {RETRY_ADVICE}", retryable=True)
    assert table.puts == 0 and table.items == {}


def test_an_identical_retry_is_a_duplicate_when_the_condition_failure_omits_the_item() -> None:
    # given an event stored a moment ago
    table = _Table()
    store = _store(table)
    assert store.put(_event(1)).outcome is Outcome.CREATED
    # when it is sent again and DynamoDB's refusal carries no copy of the stored item
    again = store.put(_event(1), 1)
    # then the stored copy is read consistently: a duplicate, not "vanished, retry"
    assert again == PutResult(1, "evt-1", Outcome.DUPLICATE, None)
    # and a changed payload under the id is a conflict, the stored item untouched
    assert store.put(_event(2), 2).outcome is Outcome.CONFLICT
    assert table.items["evt-1"]["event_payload"]["S"] == _event(1).payload


def test_two_identical_copies_in_one_request_cost_one_write() -> None:
    # given a request that holds one event twice
    table = _Table()
    # when it is put
    results = _store(table).put_many([_event(1), _event(1)], [5, 6])
    # then it is written once, and the copy is answered as what writing it again would answer
    assert table.puts == 1
    assert results == [PutResult(5, "evt-1", Outcome.CREATED),
                       PutResult(6, "evt-1", Outcome.DUPLICATE, None)]


class _Throttled(_Table):
    """A table that throttles every write until botocore stops retrying, out of time."""

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        last = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}},
                           "PutItem")
        raise OutOfTime(3, last)


def test_a_write_stopped_out_of_time_is_answered_at_its_position_with_its_attempts() -> None:
    # when a write is throttled until its retries would end past the caller's deadline
    result = _store(_Throttled()).put(_event(1), 4, deadline=Deadline(lambda: 5.0))
    # then the event is answered at its position, retryable, saying how far it got
    assert result == PutResult(
        4, "evt-1", Outcome.FAILED,
        "stopped retrying after 3 attempt(s) (ThrottlingException: An error occurred "
        "(ThrottlingException) when calling the PutItem operation: slow down) to answer in "
        f"time (the caller's deadline was near); {RETRY_ADVICE}", retryable=True)


class _Crowded(_Table):
    """A table that holds every write until the test lets go, counting the writes in flight
    (the most at once)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = self.most = 0
        self.go = threading.Event()

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        self.go.wait(timeout=60)  # a guard against a hang, not a pace: the test lets go
        with self.lock:
            self.in_flight -= 1
        return super().put_item(**kwargs)


def _until(done: Callable[[], bool], what: str) -> None:
    """Wait for `done` (a guard of a minute against a hang; no test waits that long)."""
    give_up = time.monotonic() + 60
    while not done():
        assert time.monotonic() < give_up, f"never {what}"
        time.sleep(0.001)


def test_a_request_writes_no_more_events_at_once_than_put_concurrency(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given a store allowed two writes at once, on a table that holds every write
    table = _Crowded()
    events = [_event(n, f"evt-{n}") for n in range(6)]
    handed: list[int] = []
    pools: list[ThreadPoolExecutor] = []

    class Pool(ThreadPoolExecutor):
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            future = super().submit(fn, *args, **kwargs)  # starts a thread if none is idle
            pools.append(self)
            handed.append(1)
            return future

    monkeypatch.setattr(store_module, "ThreadPoolExecutor", Pool)
    results: list[PutResult] = []
    caller = threading.Thread(
        target=lambda: results.extend(_store(table, put_concurrency=2).put_many(events)))
    # when a request of six events is put, and all six are handed to the pool, and each
    # thread the pool started holds a write (every write is held: none is idle, so the pool
    # started as many threads as it may)
    caller.start()

    def all_held() -> bool:
        started = len(pools[-1]._threads) if pools else -1  # the pool's own threads
        return len(handed) == 6 and table.in_flight == started

    try:
        _until(all_held, "all writes held")
        most = table.most
    finally:
        table.go.set()  # let every held write go, also when the wait above failed
        caller.join(timeout=60)
    # then two writes were in flight at once, never more, and all six are stored
    assert most == 2
    assert [r.outcome for r in results] == [Outcome.CREATED] * 6
    assert sorted(table.items) == [f"evt-{n}" for n in range(6)]
