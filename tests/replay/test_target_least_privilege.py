"""A replay role allowed to send but not to describe its target (a common least-privilege
policy: `events:PutEvents` without `events:DescribeEventBus`, `lambda:InvokeFunction` without
`lambda:GetFunction`, `sqs:SendMessage` without `sqs:GetQueueAttributes`) still replays: the
start-up check that the target exists is skipped with a warning, not a raw AccessDenied."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from botocore.exceptions import ClientError
from replay_support import batch_of, row

from eventlake import Settings
from eventlake.aws import Clients
from eventlake.replay import aws


@pytest.fixture
def clients(mocked_aws: None) -> Clients:
    return Clients(Settings.from_env())


def denied(operation: str, code: str = "AccessDeniedException") -> Any:
    def call(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": code, "Message": f"not authorized to {operation}"}},
                          operation)
    return call


def test_an_eventbridge_bus_the_role_may_not_describe_is_still_replayed_into(
        clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    # given a bus, and a role that may put events on it but not describe it
    clients.events.create_event_bus(Name="replayed")
    clients.events.describe_event_bus = denied("DescribeEventBus")
    sent: list[str] = []
    real = clients.events.put_events

    def put_events(Entries: list[dict[str, Any]]) -> Any:
        sent.extend(json.loads(e["Detail"])["event_id"] for e in Entries)
        return real(Entries=Entries)

    clients.events.put_events = put_events
    sink = aws.target("eventbridge", "replayed", clients)

    # when the replay starts and sends
    with caplog.at_level(logging.WARNING):
        sink.start(None)
    sink.send(batch_of([row(f"e-{i}", seconds=i) for i in range(3)]))

    # then the events went, and the skipped check was said
    assert sent == ["e-0", "e-1", "e-2"]
    assert any("could not check" in r.getMessage() and "DescribeEventBus" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_an_sqs_queue_whose_attributes_the_role_may_not_read_is_replayed_with_safe_limits(
        clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    # given a FIFO queue, and a role that may send to it but not read its attributes
    url = clients.sqs.create_queue(QueueName="replayed.fifo",
                                   Attributes={"FifoQueue": "true"})["QueueUrl"]
    clients.sqs.get_queue_attributes = denied("GetQueueAttributes", "AccessDenied")
    sink = aws.target("sqs", url, clients)

    # when the replay starts and sends
    with caplog.at_level(logging.WARNING):
        sink.start(None)
    sink.send(batch_of([row(f"e-{i}", seconds=i) for i in range(3)]))

    # then the queue is known FIFO by its name, and the messages arrived in order
    got = clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                      MessageAttributeNames=["All"])["Messages"]
    assert [m["MessageAttributes"]["event_id"]["StringValue"] for m in got] == [
        "e-0", "e-1", "e-2"]
    assert any("could not check" in r.getMessage() for r in caplog.records)


def test_a_target_that_does_not_exist_is_still_named_as_missing(clients: Clients) -> None:
    # the check still refuses what AWS says is not there
    from eventlake.replay.targets import TargetError

    with pytest.raises(TargetError, match="does not exist"):
        aws.target("eventbridge", "no-such-bus", clients).start(None)
