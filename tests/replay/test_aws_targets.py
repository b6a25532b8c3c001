"""The AWS targets on moto: SQS (standard and FIFO), EventBridge (a rule forwarding to a
queue), Kinesis (read back with GetRecords) and Lambda (moto's Docker-free Lambda, which
answers with the payload it was given, or with answers a test queues; a FunctionError is
injected by wrapping the client's `invoke`, as moto has no Docker-free way to raise one).

Per-entry refusals are injected by wrapping the client's method: the wrapper sends the
entries a test lets through to moto and reports the others as AWS does (Failed, ErrorCode).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, cast

import boto3
import pytest
from archive_support import NOW, World, hours
from moto import mock_aws
from replay_support import batch_of, refusing_put_events, row

from eventlake import EventLake, Settings
from eventlake.aws import Clients
from eventlake.events.canonical import canonical_json
from eventlake.replay import aws
from eventlake.replay.aws import lambda_
from eventlake.replay.aws.entries import EntryTarget
from eventlake.replay.backoff import Backoff
from eventlake.replay.resolve import target_for
from eventlake.replay.run import replay
from eventlake.replay.select import Selection
from eventlake.replay.shapes import SHAPES, shape_for, stream_record
from eventlake.replay.targets import DeliveryError, TargetError

KIB = 1024


@pytest.fixture
def clients(mocked_aws: None) -> Clients:
    return Clients(Settings.from_env())


@pytest.fixture
def waits() -> list[float]:
    """The backoff's waits, recorded instead of slept."""
    return []


def target(kind: str, name: str, clients: Clients, waits: list[float]) -> EntryTarget:
    return aws.target(kind, name, clients, Backoff(sleep=waits.append))


def started(kind: str, name: str, clients: Clients, waits: list[float]) -> EntryTarget:
    sink = target(kind, name, clients, waits)
    sink.start(None)
    return sink


def rows(n: int, *, payload: str = "{}", **fields: Any) -> list[dict[str, Any]]:
    return [row(f"e-{i:03d}", seconds=i, payload=payload, **fields) for i in range(n)]


def seed_lines(batch_rows: list[dict[str, Any]]) -> list[str]:
    return batch_of(batch_rows).seed_lines().decode().splitlines()


# -- SQS ---------------------------------------------------------------------------------------

def queue(clients: Clients, name: str, max_bytes: int | None = None) -> str:
    attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
    if max_bytes is not None:
        attributes["MaximumMessageSize"] = str(max_bytes)
    url: str = clients.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


def drain(clients: Clients, url: str) -> list[dict[str, Any]]:
    """Every message of the queue, in the order received (each deleted once read, so a FIFO
    group's next messages become visible)."""
    got: list[dict[str, Any]] = []
    while True:
        messages = clients.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["MessageGroupId", "MessageDeduplicationId"]
        ).get("Messages", [])
        if not messages:
            return got
        for message in messages:
            got.append(message)
            clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def event_id_of(message: dict[str, Any]) -> str:
    value: str = message["MessageAttributes"]["event_id"]["StringValue"]
    assert json.loads(message["Body"])["event_id"] == value
    return value


def wrap_sqs(monkeypatch: pytest.MonkeyPatch, clients: Clients,
             refuse: Callable[[str, int], bool] = lambda _id, _call: False) -> list[list[str]]:
    """Wrap SendMessageBatch: entries whose event_id `refuse(event_id, call number)` picks
    are reported Failed, the others go to moto. Returns the event_ids of each call."""
    real = clients.sqs.send_message_batch
    calls: list[list[str]] = []

    def send_message_batch(QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        ids = [e["MessageAttributes"]["event_id"]["StringValue"] for e in Entries]
        calls.append(ids)
        ok = [e for e, i in zip(Entries, ids, strict=True) if not refuse(i, len(calls))]
        failed = [{"Id": e["Id"], "Code": "InternalError", "Message": "injected",
                   "SenderFault": False}
                  for e, i in zip(Entries, ids, strict=True) if refuse(i, len(calls))]
        answer = real(QueueUrl=QueueUrl, Entries=ok) if ok else {"Successful": []}
        return {**answer, "Failed": failed}

    monkeypatch.setattr(clients.sqs, "send_message_batch", send_message_batch)
    return calls


@pytest.fixture
def el(world: World) -> EventLake:
    return EventLake(world.settings, clients=world.clients)


def test_a_fifo_queue_gets_every_selected_event_once_in_order_per_group(
        world: World, el: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: 30 events of three subjects and of none (grouped by type), interleaved in time,
    # half archived, half hot
    subjects = ["user/1", "user/2", None]
    items = [world.item(f"e-{n:02d}", NOW - hours(5 if n < 15 else 0.5),
                        subject=subjects[n % 3], timestamp=NOW - hours(6) + timedelta(seconds=n))
             for n in range(30)]
    world.put_items(items[:15])
    world.sweep(NOW - hours(1))
    world.put_items(items[15:])
    url = queue(world.clients, "orders.fifo")
    calls = wrap_sqs(monkeypatch, world.clients)

    # when: batches of 7 events, each cut into calls of at most 10
    report = replay(el, Selection(NOW - timedelta(days=1), NOW), "sqs:orders.fifo",
                    batch_size=7, now=NOW, clients=world.clients)

    # then: each event once, in timestamp order within its group, grouped and deduplicated
    messages = drain(world.clients, url)
    assert report.sent == 30 and report.failed == 0
    assert sorted(event_id_of(m) for m in messages) == [f"e-{n:02d}" for n in range(30)]
    assert [len(c) for c in calls] == [7, 7, 7, 7, 2]
    for group in ("user/1", "user/2", "order.placed"):
        ids = [event_id_of(m) for m in messages if m["Attributes"]["MessageGroupId"] == group]
        assert ids == sorted(ids) and len(ids) == 10
    assert all(m["Attributes"]["MessageDeduplicationId"] == event_id_of(m) for m in messages)


def test_a_standard_queue_gets_ten_messages_a_call_each_carrying_its_event_id(
        clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    url = queue(clients, "plain")
    calls = wrap_sqs(monkeypatch, clients)
    batch_rows = rows(25, payload='{"n":1.50}', subject="user/1")

    started("sqs", url, clients, waits).send(batch_of(batch_rows))

    messages = drain(clients, url)
    assert [len(c) for c in calls] == [10, 10, 5]
    assert sorted(m["Body"] for m in messages) == sorted(seed_lines(batch_rows))
    assert sorted(event_id_of(m) for m in messages) == [r["event_id"] for r in batch_rows]
    assert waits == []


def test_sqs_calls_are_cut_by_size_under_1_mib(
        clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    url = queue(clients, "big", max_bytes=1_048_576)
    calls = wrap_sqs(monkeypatch, clients)
    payload = json.dumps({"blob": "x" * (400 * KIB)})  # two fit in a call, three do not

    started("sqs", "big", clients, waits).send(batch_of(rows(5, payload=payload)))

    assert calls == [["e-000", "e-001"], ["e-002", "e-003"], ["e-004"]]
    assert len(drain(clients, url)) == 5


def test_an_event_larger_than_an_sqs_message_is_refused_before_anything_is_sent(
        clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    url = queue(clients, "small", max_bytes=262_144)  # the default of queues made before 2025-08
    calls = wrap_sqs(monkeypatch, clients)
    batch_rows = rows(3)
    batch_rows[1]["event_payload"] = json.dumps({"blob": "x" * (257 * KIB)})

    with pytest.raises(DeliveryError) as caught:
        started("sqs", url, clients, waits).send(batch_of(batch_rows))

    assert caught.value.event_ids == ["e-001"]
    assert "262,144 bytes" in caught.value.reason and "never truncated" in caught.value.reason
    assert calls == [] and drain(clients, url) == []


def test_a_queue_with_a_smaller_maximum_message_size_is_held_to_it(
        clients: Clients, waits: list[float]) -> None:
    clients.sqs.create_queue(QueueName="tiny", Attributes={"MaximumMessageSize": "1024"})
    sink = started("sqs", "tiny", clients, waits)

    with pytest.raises(DeliveryError, match=r"MaximumMessageSize 1,024"):
        sink.send(batch_of(rows(1, payload=json.dumps({"blob": "x" * 2000}))))


def test_refused_messages_are_resent_alone_until_delivered(
        clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    url = queue(clients, "flaky")
    calls = wrap_sqs(monkeypatch, clients,
                     refuse=lambda i, n: i in ("e-002", "e-007") and n <= 3)

    started("sqs", url, clients, waits).send(batch_of(rows(12)))

    assert calls[1:4] == [["e-002", "e-007"]] * 3  # only the refused ones, before call 2
    assert calls[4] == ["e-010", "e-011"]
    assert len(waits) == 3
    assert sorted(event_id_of(m) for m in drain(clients, url)) == [
        f"e-{i:03d}" for i in range(12)]


def test_a_fifo_group_keeps_its_order_when_sqs_refuses_its_head(
        clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    # given: SQS refuses `e-001` of group a and the group's later messages of that call,
    # and accepts the other group's
    url = queue(clients, "groups.fifo")
    group_a = ["e-001", "e-003", "e-005", "e-007"]
    calls = wrap_sqs(monkeypatch, clients, refuse=lambda i, n: i in group_a and n == 1)
    batch_rows = [row(f"e-{i:03d}", seconds=i, subject="a" if i % 2 else "b")
                  for i in range(8)]

    # when
    started("sqs", url, clients, waits).send(batch_of(batch_rows))

    # then: the refused ones went again, alone and in order; the group is in order
    assert calls == [[r["event_id"] for r in batch_rows], group_a]
    messages = drain(clients, url)
    assert [event_id_of(m) for m in messages if m["Attributes"]["MessageGroupId"] == "a"
            ] == group_a
    assert len(messages) == 8


def test_a_fifo_message_accepted_ahead_of_a_refused_one_of_its_group_stops_the_replay(
        clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    queue(clients, "overtaken.fifo")
    wrap_sqs(monkeypatch, clients, refuse=lambda i, n: i == "e-000")

    with pytest.raises(DeliveryError) as caught:
        started("sqs", "overtaken.fifo", clients, waits).send(
            batch_of(rows(2, subject="user/1")))

    assert caught.value.event_ids == ["e-000"]
    assert ("refused `e-000` but accepted the later `e-001` of message group `user/1`"
            in caught.value.reason)
    assert waits == []  # no resend: it could not restore the order


def test_messages_refused_on_every_try_stop_the_replay_naming_them(
        world: World, el: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    world.put_items([world.item(f"e-{n}", NOW - hours(1)) for n in range(5)])
    queue(world.clients, "down")
    wrap_sqs(monkeypatch, world.clients, refuse=lambda i, n: i == "e-3")
    waits: list[float] = []
    sink = aws.target("sqs", "down", world.clients, Backoff(attempts=4, sleep=waits.append))

    with pytest.raises(DeliveryError) as caught:
        replay(el, Selection(NOW - timedelta(days=1), NOW), sink, batch_size=2, now=NOW)

    assert caught.value.event_ids == ["e-3"]
    assert "still refused after 4 tries: InternalError: injected" in str(caught.value)
    assert "sqs:down" in str(caught.value)
    assert caught.value.report.failed == 1 and caught.value.report.sent == 2
    assert len(waits) == 3


def test_a_call_aws_refuses_whole_stops_the_replay_naming_its_events(
        clients: Clients, waits: list[float]) -> None:
    url = queue(clients, "deleted")
    sink = started("sqs", url, clients, waits)
    clients.sqs.delete_queue(QueueUrl=url)

    with pytest.raises(DeliveryError) as caught:
        sink.send(batch_of(rows(12)))

    assert caught.value.event_ids == [f"e-{i:03d}" for i in range(10)]  # the first call's
    assert "the call failed" in caught.value.reason
    assert "NonExistentQueue" in caught.value.reason or "does not exist" in caught.value.reason


def test_fifo_ids_sqs_cannot_take_are_replaced_by_their_digest(
        clients: Clients, waits: list[float]) -> None:
    url = queue(clients, "odd.fifo")
    long_id = "x" * 129
    batch_rows = [row(long_id, subject="ünïcode subject"), row("ok-id", seconds=1,
                                                               subject="s p a c e")]

    started("sqs", url, clients, waits).send(batch_of(batch_rows))

    by_id = {event_id_of(m): m["Attributes"] for m in drain(clients, url)}
    dedup = by_id[long_id]["MessageDeduplicationId"]
    assert len(dedup) == 64 and dedup != long_id
    assert by_id["ok-id"]["MessageDeduplicationId"] == "ok-id"
    groups = {a["MessageGroupId"] for a in by_id.values()}
    assert all(len(g) == 64 for g in groups) and len(groups) == 2


def test_a_body_character_sqs_would_replace_is_escaped_as_the_same_json(
        clients: Clients, waits: list[float]) -> None:
    url = queue(clients, "chars")
    payload = canonical_json({"text": "a\ufffeb"})

    started("sqs", url, clients, waits).send(batch_of(rows(1, payload=payload)))

    [message] = drain(clients, url)
    assert "\\ufffe" in message["Body"]
    assert json.loads(message["Body"])["event_payload"] == {"text": "a\ufffeb"}


# -- every kind --------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "name"), [
    ("sqs", "nope"), ("sqs", "https://sqs.us-east-1.amazonaws.com/123456789012/nope"),
    ("eventbridge", "nope"), ("kinesis", "nope"), ("lambda", "nope")])
def test_a_missing_queue_bus_stream_or_function_is_refused_at_start(
        clients: Clients, waits: list[float], kind: str, name: str) -> None:
    with pytest.raises(TargetError, match=f"target `{kind}:{name}` does not exist"):
        target(kind, name, clients, waits).start(None)


def test_the_aws_targets_are_named_by_kind(clients: Clients) -> None:
    for spec, kind in [("sqs:q", "sqs"), ("eventbridge:bus", "eventbridge"),
                       ("kinesis:s", "kinesis"), ("lambda:f", "lambda")]:
        sink = target_for(spec, clients=clients)
        assert isinstance(sink, EntryTarget) and sink.label == spec and sink.kind == kind
    with pytest.raises(TargetError, match="unknown AWS target kind `sns`"):
        aws.target("sns", "topic", clients)


# -- EventBridge -------------------------------------------------------------------------------

@pytest.fixture
def bus_queue(clients: Clients) -> str:
    """A bus `replayed` whose one rule forwards every event to the queue returned."""
    url = queue(clients, "from-bus")
    arn = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    clients.events.create_event_bus(Name="replayed")
    clients.events.put_rule(Name="all", EventBusName="replayed",
                            EventPattern=json.dumps({"source": [{"prefix": ""}]}))
    clients.events.put_targets(Rule="all", EventBusName="replayed",
                               Targets=[{"Id": "queue", "Arn": arn}])
    return url


def test_eventbridge_events_reach_a_queue_through_a_rule(
        clients: Clients, waits: list[float], bus_queue: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    batch_rows = rows(12, payload='{"n":1}')
    batch_rows[0]["source"] = None
    real = clients.events.put_events
    sizes: list[int] = []
    monkeypatch.setattr(clients.events, "put_events",
                        lambda Entries: sizes.append(len(Entries)) or real(Entries=Entries))

    started("eventbridge", "replayed", clients, waits).send(batch_of(batch_rows))

    delivered = sorted((json.loads(m["Body"]) for m in drain(clients, bus_queue)),
                       key=lambda e: str(e["detail"]["event_id"]))
    assert sizes == [10, 2]
    assert [e["detail"] for e in delivered] == [json.loads(line)
                                                for line in seed_lines(batch_rows)]
    assert [e["source"] for e in delivered] == ["eventlake.replay"] + ["shop"] * 11
    assert {e["detail-type"] for e in delivered} == {"click"}
    assert delivered[3]["time"] == "2024-05-01T00:00:03Z"


def test_the_eventbridge_shape_is_sent_as_the_entry_it_is(
        clients: Clients, waits: list[float], bus_queue: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def entry(event: dict[str, Any]) -> dict[str, Any]:  # stands for shapes.py's
        return {"Source": "custom.src", "DetailType": f"t.{event['event_type']}",
                "Detail": canonical_json({"id": event["event_id"]}), "Resources": ["r"]}

    monkeypatch.setitem(SHAPES, "eventbridge", entry)
    sink = target_for("eventbridge:replayed", SHAPES["eventbridge"], clients)
    sink.start(None)

    sink.send(batch_of(rows(2)))

    delivered = [json.loads(m["Body"]) for m in drain(clients, bus_queue)]
    assert sorted(e["detail"]["id"] for e in delivered) == ["e-000", "e-001"]
    assert {(e["source"], e["detail-type"]) for e in delivered} == {("custom.src", "t.click")}
    assert delivered[0]["resources"] == ["r"]


def test_eventbridge_refused_entries_are_resent_and_named_when_they_never_go(
        clients: Clients, waits: list[float], bus_queue: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    throttled = {"ErrorCode": "ThrottlingException", "ErrorMessage": "injected"}
    calls = refusing_put_events(
        clients.events, lambda event_id, n: throttled if event_id == "e-001"
        or (event_id == "e-004" and n < 3) else None)
    sink = aws.target("eventbridge", "replayed", clients, Backoff(attempts=3,
                                                                 sleep=waits.append))
    sink.start(None)

    with pytest.raises(DeliveryError) as caught:
        sink.send(batch_of(rows(6)))

    assert calls[1:] == [["e-001", "e-004"], ["e-001", "e-004"]]
    assert caught.value.event_ids == ["e-001"]
    assert "ThrottlingException: injected" in caught.value.reason


def test_eventbridge_entries_count_toward_256_kb_by_its_rule(
        clients: Clients, waits: list[float], bus_queue: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = clients.events.put_events
    sizes: list[int] = []
    monkeypatch.setattr(clients.events, "put_events",
                        lambda Entries: sizes.append(len(Entries)) or real(Entries=Entries))
    payload = json.dumps({"blob": "x" * (90 * KIB)})

    started("eventbridge", "replayed", clients, waits).send(batch_of(rows(4, payload=payload)))

    assert sizes == [2, 2]


# -- Kinesis -----------------------------------------------------------------------------------

def stream(clients: Clients, name: str = "events") -> str:
    clients.kinesis.create_stream(StreamName=name, ShardCount=1)
    return name


def shard_records(clients: Clients, name: str) -> list[dict[str, Any]]:
    shard = clients.kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    iterator = clients.kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records: list[dict[str, Any]] = clients.kinesis.get_records(
        ShardIterator=iterator, Limit=10_000)["Records"]
    return records


def test_kinesis_records_land_in_the_shard_keyed_by_subject_or_event_id(
        clients: Clients, waits: list[float]) -> None:
    stream(clients)
    batch_rows = rows(4)
    batch_rows[1]["subject"] = "user/7"
    batch_rows[2]["subject"] = "s" * 300

    started("kinesis", "events", clients, waits).send(batch_of(batch_rows))

    records = shard_records(clients, "events")
    assert [r["Data"].decode() for r in records] == seed_lines(batch_rows)
    keys = [r["PartitionKey"] for r in records]
    assert keys[0] == "e-000" and keys[1] == "user/7" and keys[3] == "e-003"
    assert len(keys[2]) == 64  # a 300-character subject, digested


def test_kinesis_takes_500_records_a_call_and_resends_only_refused_ones(
        clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    stream(clients)
    real = clients.kinesis.put_records
    calls: list[list[str]] = []

    def put_records(Records: list[dict[str, Any]], **where: Any) -> Any:
        ids = [json.loads(r["Data"])["event_id"] for r in Records]
        calls.append(ids)
        refused = {"e-010", "e-499"} if len(calls) == 1 else set()
        answer = real(Records=[r for r, i in zip(Records, ids, strict=True)
                               if i not in refused], **where)
        results = iter(answer["Records"])
        answer["Records"] = [
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
            if i in refused else next(results) for i in ids]
        return answer

    monkeypatch.setattr(clients.kinesis, "put_records", put_records)
    batch_rows = [row(f"e-{i:03d}", seconds=i) for i in range(501)]

    started("kinesis", "events", clients, waits).send(batch_of(batch_rows))

    assert [len(c) for c in calls] == [500, 2, 1]
    assert calls[1] == ["e-010", "e-499"] and len(waits) == 1
    ids = sorted(json.loads(r["Data"])["event_id"] for r in shard_records(clients, "events"))
    assert ids == [r["event_id"] for r in batch_rows]


def test_a_record_over_a_mib_is_refused_and_calls_stay_under_5_mib(
        clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    stream(clients)
    sink = started("kinesis", "events", clients, waits)
    with pytest.raises(DeliveryError, match="a Kinesis record") as caught:
        sink.send(batch_of(rows(2, payload=json.dumps({"b": "x" * (1024 * KIB)}))))
    assert caught.value.event_ids == ["e-000", "e-001"]

    real = clients.kinesis.put_records
    sizes: list[int] = []
    monkeypatch.setattr(clients.kinesis, "put_records", lambda Records, **kw: sizes.append(
        len(Records)) or real(Records=Records, **kw))
    sink.send(batch_of(rows(7, payload=json.dumps({"b": "x" * (900 * KIB)}))))
    assert sizes == [5, 2]


# -- Lambda ------------------------------------------------------------------------------------

@pytest.fixture
def lambda_clients() -> Iterator[Clients]:
    """moto with its Docker-free Lambda: it answers each Invoke with the payload it got, or
    with the next answer queued in `lambda_simple_results_queue`."""
    with mock_aws(config={"lambda": {"use_docker": False}}):
        clients = Clients(Settings.from_env())
        role = boto3.client("iam").create_role(
            RoleName="replay", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as z:
            z.writestr("consumer.py", "def handler(event, context):\n    return None\n")
        clients.lambda_.create_function(FunctionName="consumer", Runtime="python3.12",
                                        Role=role, Handler="consumer.handler",
                                        Code={"ZipFile": code.getvalue()})
        yield clients


def answers(*queued: Any) -> None:
    """What moto's Docker-free Lambda answers to the next Invokes."""
    from moto.awslambda_simple.models import lambda_simple_backends

    backend = lambda_simple_backends["123456789012"]["us-east-1"]
    backend.lambda_simple_results_queue.extend(json.dumps(a) for a in queued)


def invocations(monkeypatch: pytest.MonkeyPatch, clients: Clients,
                fail: Callable[[int], bool] = lambda _n: False) -> list[Any]:
    """Record each Invoke's payload (parsed); the calls `fail(call number)` picks answer a
    FunctionError instead of reaching moto."""
    real = clients.lambda_.invoke
    payloads: list[Any] = []

    def invoke(**kwargs: Any) -> Any:
        payloads.append(json.loads(kwargs["Payload"]))
        if fail(len(payloads)):
            return {"StatusCode": 200, "FunctionError": "Unhandled",
                    "Payload": io.BytesIO(b'{"errorMessage": "boom", "errorType": "KeyError"}')}
        return real(**kwargs)

    monkeypatch.setattr(clients.lambda_, "invoke", invoke)
    return payloads


def test_lambda_gets_the_batch_as_one_json_list(
        lambda_clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = invocations(monkeypatch, lambda_clients)
    batch_rows = rows(30, payload='{"amount":12345678901234567890.5}')

    started("lambda", "consumer", lambda_clients, waits).send(batch_of(batch_rows))

    assert len(payloads) == 1
    assert payloads[0] == [json.loads(line) for line in seed_lines(batch_rows)]


def test_a_stream_shaped_batch_reaches_lambda_as_records(
        lambda_clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    def record(event: dict[str, Any]) -> dict[str, Any]:  # stands for shapes.py's
        return {"eventID": f"ev-{event['event_id']}", "eventName": "INSERT",
                "dynamodb": {"SequenceNumber": f"sq-{event['event_id']}"}}

    monkeypatch.setitem(SHAPES, "stream", record)
    payloads = invocations(monkeypatch, lambda_clients)
    answers({"batchItemFailures": [{"itemIdentifier": "sq-e-001"}]})
    sink = target_for("lambda:consumer", SHAPES["stream"], lambda_clients)
    sink.backoff = Backoff(sleep=waits.append)
    sink.start(None)

    sink.send(batch_of(rows(3)))

    assert [[r["dynamodb"]["SequenceNumber"] for r in p["Records"]] for p in payloads] == [
        ["sq-e-000", "sq-e-001", "sq-e-002"], ["sq-e-001", "sq-e-002"]]


def test_a_partial_batch_response_resends_from_the_first_failed_event_on(
        lambda_clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = invocations(monkeypatch, lambda_clients)
    answers({"batchItemFailures": [{"itemIdentifier": "e-003"}, {"itemIdentifier": "e-001"}]},
            {"batchItemFailures": []})

    started("lambda", "consumer", lambda_clients, waits).send(batch_of(rows(5)))

    assert [[e["event_id"] for e in p] for p in payloads] == [
        ["e-000", "e-001", "e-002", "e-003", "e-004"], ["e-001", "e-002", "e-003", "e-004"]]
    assert len(waits) == 1


def test_an_unknown_item_identifier_fails_the_whole_call(
        lambda_clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    invocations(monkeypatch, lambda_clients)
    answers(*[{"batchItemFailures": [{"itemIdentifier": "who?"}]}] * 8)

    with pytest.raises(DeliveryError) as caught:
        started("lambda", "consumer", lambda_clients, waits).send(batch_of(rows(2)))

    assert caught.value.event_ids == ["e-000", "e-001"]
    assert "itemIdentifier `who?`" in caught.value.reason


def test_a_function_error_is_retried_then_stops_the_replay(
        lambda_clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = invocations(monkeypatch, lambda_clients, fail=lambda n: n <= 2)
    sink = started("lambda", "consumer", lambda_clients, waits)

    sink.send(batch_of(rows(2)))  # fails twice, then goes
    assert len(payloads) == 3 and payloads[0] == payloads[2] and len(waits) == 2

    invocations(monkeypatch, lambda_clients, fail=lambda n: True)
    with pytest.raises(DeliveryError) as caught:
        sink.send(batch_of(rows(2)))
    assert caught.value.event_ids == ["e-000", "e-001"]
    assert "the function failed (Unhandled)" in caught.value.reason
    assert '"errorMessage": "boom"' in caught.value.reason


def test_a_batch_over_the_payload_limit_is_split_by_size(
        lambda_clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    batch_rows = rows(6, payload=json.dumps({"pad": "x" * 100}))
    line = len(seed_lines(batch_rows)[0])  # every line is as long
    most = 3 * line + 4  # "[", three lines, two commas, "]" (the real limit is 6 MB)
    monkeypatch.setattr(lambda_, "MAX_PAYLOAD", most)
    payloads = invocations(monkeypatch, lambda_clients)

    started("lambda", "consumer", lambda_clients, waits).send(batch_of(batch_rows))

    assert [[e["event_id"] for e in p] for p in payloads] == [
        ["e-000", "e-001", "e-002"], ["e-003", "e-004", "e-005"]]
    with pytest.raises(DeliveryError, match="larger than a Lambda payload may be"):
        started("lambda", "consumer", lambda_clients, waits).send(
            batch_of(rows(1, payload=json.dumps({"pad": "x" * most}))))



# -- with the shapes of shapes.py --------------------------------------------------------------

def test_the_real_stream_shape_reaches_lambda_as_records_failed_by_sequence_number(
        lambda_clients: Clients, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = invocations(monkeypatch, lambda_clients)
    sink = target_for("lambda:consumer", shape_for("stream"), lambda_clients)
    sink.start(None)
    first = stream_record(batch_of(rows(3)).events[1])["dynamodb"]["SequenceNumber"]
    answers({"batchItemFailures": [{"itemIdentifier": first}]})  # as the stream handler says

    cast(EntryTarget, sink).backoff = Backoff(sleep=waits.append)
    sink.send(batch_of(rows(3)))

    assert [[r["dynamodb"]["Keys"]["event_id"]["S"] for r in p["Records"]] for p in payloads
            ] == [["e-000", "e-001", "e-002"], ["e-001", "e-002"]]
    assert all(r["eventName"] == "INSERT" for p in payloads for r in p["Records"])


def test_the_real_eventbridge_shape_reaches_a_queue_through_a_rule(
        clients: Clients, waits: list[float], bus_queue: str) -> None:
    sink = target_for("eventbridge:replayed", shape_for("eventbridge"), clients)
    sink.start(None)
    batch_rows = rows(3, payload='{"n":2}')

    sink.send(batch_of(batch_rows))

    delivered = sorted((json.loads(m["Body"]) for m in drain(clients, bus_queue)),
                       key=lambda e: str(e["detail"]["event_id"]))
    assert [e["detail"] for e in delivered] == [json.loads(line)
                                                for line in seed_lines(batch_rows)]
    assert delivered[2]["time"] == "2024-05-01T00:00:02Z"
