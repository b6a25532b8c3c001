"""Review 32: per-entry refusals the service marks as permanent. SQS says so with
`SenderFault: true` (the request was wrong: a bad attribute, characters it refuses...), and
EventBridge's API reference lists its non-retryable ErrorCodes (MalformedDetail, InvalidArgument,
AccessDeniedException, NotAuthorizedFor...). Resending those cannot succeed: the replay stops at
once naming the events (no 8 tries of backoff waits first), while a throttled or failed-inside
entry is still resent until it goes. moto never refuses an entry: each test wraps the client's
call, refusing what it picks and passing the rest to moto.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from replay_support import batch_of, refusing_put_events, row

from eventlake import Settings
from eventlake.aws import Clients
from eventlake.replay import aws
from eventlake.replay.backoff import Backoff
from eventlake.replay.targets import DeliveryError

Refusal = Callable[[str, int], dict[str, Any] | None]
"""(event_id, call number) -> how the entry is refused, or None to let it through."""


@pytest.fixture
def clients(mocked_aws: None) -> Clients:
    return Clients(Settings.from_env())


def sqs_target(clients: Clients, waits: list[float], refuse: Refusal, fifo: bool = False
               ) -> tuple[Any, list[list[str]]]:
    name = "replayed.fifo" if fifo else "replayed"
    clients.sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"} if fifo else {})
    real = clients.sqs.send_message_batch
    calls: list[list[str]] = []

    def send_message_batch(QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        ids = [e["MessageAttributes"]["event_id"]["StringValue"] for e in Entries]
        calls.append(ids)
        how = [refuse(i, len(calls)) for i in ids]
        ok = [e for e, h in zip(Entries, how, strict=True) if h is None]
        failed = [{"Id": e["Id"], **h} for e, h in zip(Entries, how, strict=True) if h]
        answer = real(QueueUrl=QueueUrl, Entries=ok) if ok else {"Successful": []}
        return {**answer, "Failed": failed}

    clients.sqs.send_message_batch = send_message_batch
    sink = aws.target("sqs", name, clients, Backoff(sleep=waits.append))
    sink.start(None)
    return sink, calls


def test_an_sqs_sender_fault_stops_the_replay_at_once_naming_the_event(
        clients: Clients) -> None:
    waits: list[float] = []
    bad = {"Code": "InvalidParameterValue", "SenderFault": True,
           "Message": "Value for parameter MessageGroupId is invalid"}
    sink, calls = sqs_target(clients, waits, lambda i, _n: bad if i == "e-1" else None)

    with pytest.raises(DeliveryError) as caught:
        sink.send(batch_of([row(f"e-{i}", seconds=i) for i in range(3)]))

    assert caught.value.event_ids == ["e-1"]
    assert "InvalidParameterValue: Value for parameter MessageGroupId is invalid" in (
        caught.value.reason)
    assert "not retried" in caught.value.reason
    assert len(calls) == 1 and waits == []


def test_an_sqs_failure_on_its_side_or_a_throttle_is_still_resent_until_it_goes(
        clients: Clients) -> None:
    waits: list[float] = []
    refusals = {1: {"Code": "InternalError", "SenderFault": False, "Message": "try again"},
                2: {"Code": "ThrottlingException", "SenderFault": True, "Message": "slow down"}}
    sink, calls = sqs_target(clients, waits,
                             lambda i, n: refusals.get(n) if i == "e-1" else None)

    sink.send(batch_of([row(f"e-{i}", seconds=i) for i in range(3)]))

    assert calls == [["e-0", "e-1", "e-2"], ["e-1"], ["e-1"]]
    assert len(waits) == 2


def eventbridge_target(clients: Clients, waits: list[float], refuse: Refusal
                       ) -> tuple[Any, list[list[str]]]:
    clients.events.create_event_bus(Name="replayed")
    calls = refusing_put_events(clients.events, refuse)
    sink = aws.target("eventbridge", "replayed", clients, Backoff(sleep=waits.append))
    sink.start(None)
    return sink, calls


@pytest.mark.parametrize("code", ["MalformedDetail", "InvalidArgument", "AccessDeniedException",
                                  "NotAuthorizedForSourceException"])
def test_an_eventbridge_non_retryable_error_code_stops_the_replay_at_once(
        clients: Clients, code: str) -> None:
    waits: list[float] = []
    sink, calls = eventbridge_target(
        clients, waits,
        lambda i, _n: {"ErrorCode": code, "ErrorMessage": "no"} if i == "e-2" else None)

    with pytest.raises(DeliveryError) as caught:
        sink.send(batch_of([row(f"e-{i}", seconds=i) for i in range(3)]))

    assert caught.value.event_ids == ["e-2"]
    assert f"{code}: no" in caught.value.reason
    assert len(calls) == 1 and waits == []


def test_an_eventbridge_throttle_is_resent_and_one_final_refusal_among_them_stops_it(
        clients: Clients) -> None:
    waits: list[float] = []

    def refuse(event_id: str, n: int) -> dict[str, Any] | None:
        if event_id == "e-0" and n == 1:
            return {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
        if event_id == "e-1" and n == 2:
            return {"ErrorCode": "MalformedDetail", "ErrorMessage": "not JSON"}
        if event_id == "e-1" and n == 1:
            return {"ErrorCode": "InternalFailure", "ErrorMessage": "oops"}
        return None

    sink, calls = eventbridge_target(clients, waits, refuse)

    with pytest.raises(DeliveryError) as caught:
        sink.send(batch_of([row(f"e-{i}", seconds=i) for i in range(3)]))

    assert calls == [["e-0", "e-1", "e-2"], ["e-0", "e-1"]]
    assert caught.value.event_ids == ["e-1"]  # e-0 went on the second call
    assert "MalformedDetail: not JSON" in caught.value.reason and len(waits) == 1


def drain(clients: Clients, url: str) -> list[str]:
    """The event_ids of every message of the queue, in the order received."""
    got: list[str] = []
    while messages := clients.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in messages:
            got.append(message["MessageAttributes"]["event_id"]["StringValue"])
            clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return got


def test_a_fifo_batch_sent_again_within_the_dedup_window_lands_once_in_order(
        clients: Clients) -> None:
    # a first run gets the batch's first call (10 messages) in, then SQS fails its second call
    # on every try: the replay stops with its checkpoint before the batch. The resume (within
    # SQS's 5 minutes) sends the whole batch again: SQS takes the first ten as duplicates
    # (reported Successful, not enqueued again) and the queue holds each event once, in order.
    waits: list[float] = []
    down = {"Code": "InternalError", "SenderFault": False, "Message": "try again"}
    healed = False
    sink, calls = sqs_target(clients, waits,
                             lambda _i, n: down if n >= 2 and not healed else None, fifo=True)
    batch = batch_of([row(f"e-{i:02d}", seconds=i) for i in range(15)])
    with pytest.raises(DeliveryError) as caught:
        sink.send(batch)
    assert caught.value.event_ids == [f"e-{i:02d}" for i in range(10, 15)]

    healed = True
    resumed = aws.target("sqs", "replayed.fifo", clients, Backoff(sleep=waits.append))
    resumed.start(None)
    resumed.send(batch)

    assert calls[-2:] == [[f"e-{i:02d}" for i in range(10)],
                          [f"e-{i:02d}" for i in range(10, 15)]]
    assert drain(clients, sink.url) == [f"e-{i:02d}" for i in range(15)]
