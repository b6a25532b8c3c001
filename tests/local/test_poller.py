"""The stream poller (Lambda's DynamoDB Streams trigger, emulated) on in-process moto.

moto's stream has a single shard that never closes, so shard lineage and batches filled over
several GetRecords pages are tested against `FakeStreams`, a small stream with closable shards.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from eventlake import EventLake
from eventlake.local.lambda_runtime import LambdaContext
from eventlake.local.poller import PollerError, StreamPoller

Records = list[dict[str, Any]]
Respond = Callable[[int, Records], Any]


class Recorder:
    """A Lambda-style stream handler that keeps a copy of every event it is given.

    `respond(call_index, records)` shapes the answer (or raises); None means full success.
    """

    def __init__(self, respond: Respond | None = None) -> None:
        self.respond = respond
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        json.dumps(event)  # Lambda hands over JSON: the event must be JSON all the way down
        self.events.append(copy.deepcopy(event))
        self.contexts.append(context)
        if self.respond is None:
            return None
        return self.respond(len(self.events) - 1, event["Records"])

    @property
    def batches(self) -> list[list[str]]:
        """event_id of each record, per delivered batch."""
        return [[key_of(r) for r in e["Records"]] for e in self.events]

    @property
    def delivered(self) -> list[str]:
        return [k for batch in self.batches for k in batch]


def key_of(record: dict[str, Any]) -> str:
    key: str = record["dynamodb"]["Keys"]["event_id"]["S"]
    return key


def fail_at(sequence_number: str) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": sequence_number}]}


def orders(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"event_id": f"ord-{i:03d}", "event_type": "order.placed",
             "timestamp": f"2024-05-01T09:{i % 60:02d}:00Z",
             "event_payload": {"order_id": f"A-{i}", "total": 10.5 * i}}
            for i in range(start, start + n)]


def write(lake: EventLake, n: int, start: int = 0) -> list[str]:
    """Store n orders one by one (put_many writes in parallel: its stream order is any order)."""
    for order in orders(n, start):
        assert lake.put(order).ok
    return [f"ord-{i:03d}" for i in range(start, start + n)]


def poller(lake: EventLake, handler: Any, **options: Any) -> StreamPoller:
    options.setdefault("sleep", lambda _s: None)
    return StreamPoller(lake.clients, lake.settings.table, handler, **options)


# --- delivery --------------------------------------------------------------------------------

def test_put_many_events_reach_the_handler_once_in_stream_order(lake: EventLake) -> None:
    results = lake.put_many(orders(40))
    handler = Recorder()

    stats = poller(lake, handler, batch_size=15).poll_once()

    assert sorted(handler.delivered) == sorted(str(r.event_id) for r in results)
    assert len(set(handler.delivered)) == 40
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for e in handler.events for r in e["Records"]]
    assert seqs == sorted(seqs)
    assert (stats.batches, stats.records) == (3, 40)


def test_written_events_reach_the_handler_once_in_order_in_lambda_shape(lake: EventLake) -> None:
    ids = write(lake, 5)
    handler = Recorder()
    stream_arn = lake.clients.dynamodb.describe_table(
        TableName=lake.settings.table)["Table"]["LatestStreamArn"]

    first = poller(lake, handler).poll_once()

    assert handler.delivered == ids
    assert (first.batches, first.records, first.retries) == (1, 5, 0)
    record = handler.events[0]["Records"][0]
    assert set(record) == {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion",
                           "dynamodb", "eventSourceARN"}
    assert record["eventName"] == "INSERT"
    assert record["eventVersion"] == "1.1"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["awsRegion"] == "us-east-1"
    assert record["eventSourceARN"] == stream_arn
    image = record["dynamodb"]
    assert set(image) == {"ApproximateCreationDateTime", "Keys", "NewImage", "SequenceNumber",
                          "SizeBytes", "StreamViewType"}
    created = image["ApproximateCreationDateTime"]
    assert isinstance(created, int | float) and not isinstance(created, bool)
    assert created == int(created) and 1.7e9 < created < 4e9  # whole epoch seconds
    assert image["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert image["NewImage"]["event_type"] == {"S": "order.placed"}
    assert json.loads(image["NewImage"]["event_payload"]["S"]) == {"order_id": "A-0", "total": 0}
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in handler.events[0]["Records"]]
    assert seqs == sorted(seqs)


def test_a_second_poll_delivers_only_what_was_written_since(lake: EventLake) -> None:
    handler = Recorder()
    stream = poller(lake, handler)
    write(lake, 3)
    stream.poll_once()

    again = stream.poll_once()
    later = write(lake, 2, start=3)
    after = stream.poll_once()

    assert (again.batches, again.records) == (0, 0)
    assert after.records == 2
    assert handler.batches[-1] == later
    assert len(handler.delivered) == 5


def test_the_handler_gets_a_lambda_context(lake: EventLake) -> None:
    write(lake, 1)
    handler = Recorder()

    poller(lake, handler, function_name="archiver", timeout_s=60).poll_once()

    context = handler.contexts[0]
    assert isinstance(context, LambdaContext)
    assert context.function_name == "archiver"
    assert len(context.aws_request_id) == 36
    assert context.invoked_function_arn == \
        "arn:aws:lambda:us-east-1:123456789012:function:archiver"
    assert 0 < context.get_remaining_time_in_millis() <= 60_000


def test_binary_values_arrive_as_base64_text_at_any_depth(lake: EventLake) -> None:
    raw = b"\x00\xffbinary"
    lake.clients.dynamodb.put_item(TableName=lake.settings.table, Item={
        "event_id": {"S": "bin-1"},
        "blob": {"B": raw},
        "blobs": {"BS": [raw, b"\x01"]},
        "nested": {"M": {"inner": {"B": raw}, "list": {"L": [{"B": raw}, {"N": "7"}]}}},
    })
    handler = Recorder()

    poller(lake, handler).poll_once()

    image = handler.events[0]["Records"][0]["dynamodb"]["NewImage"]
    text = base64.b64encode(raw).decode()
    assert image["blob"] == {"B": text}
    assert sorted(image["blobs"]["BS"]) == sorted([text, base64.b64encode(b"\x01").decode()])
    assert image["nested"] == {"M": {"inner": {"B": text},
                                     "list": {"L": [{"B": text}, {"N": "7"}]}}}


def test_a_delete_is_delivered_as_remove_with_the_old_image(lake: EventLake) -> None:
    write(lake, 1)
    lake.clients.dynamodb.delete_item(TableName=lake.settings.table,
                                      Key={"event_id": {"S": "ord-000"}})
    handler = Recorder()

    poller(lake, handler).poll_once()

    insert, remove = handler.events[0]["Records"]
    assert (insert["eventName"], remove["eventName"]) == ("INSERT", "REMOVE")
    assert remove["dynamodb"]["Keys"] == {"event_id": {"S": "ord-000"}}
    assert remove["dynamodb"]["OldImage"] == insert["dynamodb"]["NewImage"]
    assert "NewImage" not in remove["dynamodb"]
    assert "userIdentity" not in remove  # moto's deletes carry none; a TTL delete would


def test_batch_size_is_respected(lake: EventLake) -> None:
    ids = write(lake, 7)
    handler = Recorder()

    stats = poller(lake, handler, batch_size=3).poll_once()

    assert handler.batches == [ids[0:3], ids[3:6], ids[6:7]]
    assert (stats.batches, stats.records) == (3, 7)


# --- failures --------------------------------------------------------------------------------

def test_a_partial_failure_redelivers_from_the_failed_record_exactly(lake: EventLake) -> None:
    ids = write(lake, 6)
    positions_seen: list[dict[str, str]] = []
    stream: StreamPoller

    def respond(call: int, records: Records) -> Any:
        positions_seen.append(stream.positions)
        if call == 0:
            return fail_at(records[3]["dynamodb"]["SequenceNumber"])
        return None

    handler = Recorder(respond)
    stream = poller(lake, handler)
    stats = stream.poll_once()

    assert handler.batches == [ids, ids[3:]]
    first = handler.events[0]["Records"]
    assert positions_seen[1] == {_shard(stream): first[2]["dynamodb"]["SequenceNumber"]}
    assert (stats.batches, stats.records, stats.retries) == (2, 6, 1)
    assert stats.positions == {_shard(stream): first[5]["dynamodb"]["SequenceNumber"]}


def test_several_failures_checkpoint_before_the_lowest(lake: EventLake) -> None:
    ids = write(lake, 5)

    def respond(call: int, records: Records) -> Any:
        if call == 0:
            return {"batchItemFailures": [
                {"itemIdentifier": records[4]["dynamodb"]["SequenceNumber"]},
                {"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
        return {"batchItemFailures": []}

    handler = Recorder(respond)
    poller(lake, handler).poll_once()

    assert handler.batches == [ids, ids[1:]]


def test_a_handler_exception_retries_the_whole_batch(lake: EventLake) -> None:
    ids = write(lake, 4)

    def respond(call: int, records: Records) -> Any:
        if call == 0:
            raise RuntimeError("S3 hiccup")
        return {}

    handler = Recorder(respond)
    stats = poller(lake, handler, batch_size=10).poll_once()

    assert handler.batches == [ids, ids]
    assert (stats.batches, stats.records, stats.retries) == (2, 4, 1)


def test_an_unknown_item_identifier_fails_the_whole_batch(lake: EventLake) -> None:
    ids = write(lake, 3)
    positions_seen: list[dict[str, str]] = []
    stream: StreamPoller

    def respond(call: int, records: Records) -> Any:
        positions_seen.append(stream.positions)
        return fail_at("49600000000000000000000000000") if call == 0 else None

    handler = Recorder(respond)
    stream = poller(lake, handler)
    stream.poll_once()

    assert handler.batches == [ids, ids]
    assert positions_seen == [{}, {}]  # nothing was checkpointed by the bad answer


def test_persistent_failure_raises_after_max_retries_naming_the_record(lake: EventLake) -> None:
    ids = write(lake, 5)
    naps: list[float] = []

    def respond(call: int, records: Records) -> Any:
        bad = next(r for r in records if key_of(r) == "ord-002")
        return fail_at(bad["dynamodb"]["SequenceNumber"])

    handler = Recorder(respond)
    stream = poller(lake, handler, max_retries=2, sleep=naps.append, retry_backoff_s=0.5)
    with pytest.raises(PollerError) as caught:
        stream.poll_once()

    bad_seq = handler.events[0]["Records"][2]["dynamodb"]["SequenceNumber"]
    assert caught.value.sequence_number == bad_seq
    assert caught.value.shard_id == _shard(stream)
    assert caught.value.attempts == 3
    assert f"`{bad_seq}`" in str(caught.value) and _shard(stream) in str(caught.value)
    assert handler.batches == [ids, ids[2:], ids[2:]]  # one delivery + max_retries re-deliveries
    assert naps == [0.5, 1.0]
    assert stream.positions == {_shard(stream): handler.events[0]["Records"][1]["dynamodb"][
        "SequenceNumber"]}


def test_after_a_poller_error_the_next_poll_starts_at_the_stuck_record(lake: EventLake) -> None:
    ids = write(lake, 3)
    broken = True

    def respond(call: int, records: Records) -> Any:
        if broken:
            raise ValueError("bug")
        return None

    handler = Recorder(respond)
    stream = poller(lake, handler, max_retries=0)
    with pytest.raises(PollerError) as caught:
        stream.poll_once()
    broken = False
    stats = stream.poll_once()

    assert isinstance(caught.value.__cause__, ValueError)
    assert handler.batches == [ids, ids]
    assert stats.records == 3


# --- positions -------------------------------------------------------------------------------

def test_a_new_poller_resumes_after_saved_positions(lake: EventLake) -> None:
    write(lake, 4)
    first = Recorder()
    saved = poller(lake, first).poll_once().positions
    later = write(lake, 2, start=4)

    second = Recorder()
    stats = poller(lake, second, positions=saved).poll_once()

    assert second.delivered == later
    assert stats.records == 2


def test_latest_skips_what_was_written_before_the_first_poll(lake: EventLake) -> None:
    write(lake, 3)
    handler = Recorder()
    stream = poller(lake, handler, start="LATEST")

    stream.poll_once()
    later = write(lake, 2, start=3)
    stream.poll_once()

    assert handler.delivered == later


def test_run_polls_until_stopped(lake: EventLake) -> None:
    ids = write(lake, 3)
    handler = Recorder()
    stop = threading.Event()
    totals: list[Any] = []
    thread = threading.Thread(target=lambda: totals.append(
        poller(lake, handler).run(stop, interval_s=0.01)))

    thread.start()
    try:
        _wait_for(lambda: len(handler.delivered) >= 3)
    finally:
        stop.set()
        thread.join(5)

    assert handler.delivered == ids
    assert totals[0].records == 3


def test_a_table_without_a_stream_is_refused(lake: EventLake) -> None:
    lake.clients.dynamodb.create_table(
        TableName="no-stream", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])

    with pytest.raises(PollerError, match="`no-stream` has no stream"):
        StreamPoller(lake.clients, "no-stream", Recorder()).poll_once()
    with pytest.raises(PollerError, match="`missing` does not exist"):
        StreamPoller(lake.clients, "missing", Recorder()).poll_once()


# --- shard lineage and batching windows, on a fake stream -----------------------------------

ARN = "arn:aws:dynamodb:eu-west-1:111122223333:table/fake/stream/2024-05-01T00:00:00.000"


class FakeStreams:
    """A DynamoDB stream with several shards: shards close, GetRecords pages hold <= `page`."""

    def __init__(self, page: int = 1000) -> None:
        self.page = page
        self.shards: dict[str, dict[str, Any]] = {}
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.iterators: dict[str, tuple[str, int]] = {}
        self.next_seq = 100_000_000_000_000_000_000

    def add_shard(self, shard_id: str, parent: str | None = None) -> None:
        self.shards[shard_id] = {"ShardId": shard_id, "SequenceNumberRange": {
            "StartingSequenceNumber": str(self.next_seq)}}
        if parent:
            self.shards[shard_id]["ParentShardId"] = parent
        self.records[shard_id] = []

    def close(self, shard_id: str) -> None:
        self.shards[shard_id]["SequenceNumberRange"]["EndingSequenceNumber"] = str(
            self.next_seq)

    def put(self, shard_id: str, key: str) -> None:
        seq, self.next_seq = str(self.next_seq), self.next_seq + 7  # gaps, as on AWS
        self.records[shard_id].append({
            "eventID": key, "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1",
            "dynamodb": {"Keys": {"event_id": {"S": key}}, "SequenceNumber": seq,
                         "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "userIdentity": {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}})

    # -- the client API the poller uses
    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None
                        ) -> dict[str, Any]:
        ids = list(self.shards)
        start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        page = ids[start:start + 2]  # two shards per page: the poller must paginate
        desc: dict[str, Any] = {"Shards": [copy.deepcopy(self.shards[i]) for i in page]}
        if start + 2 < len(ids):
            desc["LastEvaluatedShardId"] = page[-1]
        return {"StreamDescription": desc}

    def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str,
                           SequenceNumber: str | None = None) -> dict[str, Any]:
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in self.records[ShardId]]
        if ShardIteratorType == "TRIM_HORIZON":
            index = 0
        elif ShardIteratorType == "LATEST":
            index = len(seqs)
        elif ShardIteratorType == "AT_SEQUENCE_NUMBER":
            index = seqs.index(int(SequenceNumber or 0))
        else:
            index = seqs.index(int(SequenceNumber or 0)) + 1
        return {"ShardIterator": self._iterator(ShardId, index)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard_id, index = self.iterators[ShardIterator]
        got = self.records[shard_id][index:index + min(Limit, self.page)]
        end = index + len(got)
        done = ("EndingSequenceNumber" in self.shards[shard_id]["SequenceNumberRange"]
                and end == len(self.records[shard_id]))
        return {"Records": copy.deepcopy(got),
                "NextShardIterator": None if done else self._iterator(shard_id, end)}

    def _iterator(self, shard_id: str, index: int) -> str:
        name = f"it-{len(self.iterators)}"
        self.iterators[name] = (shard_id, index)
        return name


class FakeDynamoDB:
    def describe_table(self, TableName: str) -> dict[str, Any]:
        return {"Table": {"LatestStreamArn": ARN, "StreamSpecification": {
            "StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}}}


class FakeClients:
    def __init__(self, streams: FakeStreams) -> None:
        self.dynamodbstreams = streams
        self.dynamodb = FakeDynamoDB()


def fake_poller(streams: FakeStreams, handler: Any, **options: Any) -> StreamPoller:
    options.setdefault("sleep", lambda _s: None)
    return StreamPoller(FakeClients(streams), "fake", handler, **options)  # type: ignore[arg-type]


def test_a_child_shard_is_read_only_after_its_parent_is_read_to_its_end() -> None:
    streams = FakeStreams()
    streams.add_shard("shard-a")
    streams.put("shard-a", "a1")
    streams.add_shard("shard-b", parent="shard-a")  # a split: the parent is still open
    streams.put("shard-b", "b1")
    handler = Recorder()
    stream = fake_poller(streams, handler)

    stream.poll_once()
    assert handler.delivered == ["a1"]

    streams.put("shard-a", "a2")
    streams.close("shard-a")
    streams.add_shard("shard-c", parent="shard-b")
    streams.put("shard-c", "c1")
    streams.add_shard("shard-x")  # an unrelated root shard
    streams.put("shard-x", "x1")
    streams.put("shard-b", "b2")
    stream.poll_once()
    delivered = handler.delivered
    assert sorted(delivered) == ["a1", "a2", "b1", "b2", "x1"]  # c waits: b is still open
    assert delivered.index("a2") < delivered.index("b1") < delivered.index("b2")

    streams.close("shard-b")
    stats = stream.poll_once()
    assert handler.delivered[5:] == ["c1"]
    assert set(stats.positions) == {"shard-a", "shard-b", "shard-c", "shard-x"}


def test_a_closed_shard_is_not_read_again() -> None:
    streams = FakeStreams()
    streams.add_shard("shard-a")
    streams.put("shard-a", "a1")
    streams.close("shard-a")
    handler = Recorder()
    stream = fake_poller(streams, handler)
    stream.poll_once()
    issued = len(streams.iterators)

    stream.poll_once()

    assert handler.delivered == ["a1"]
    assert len(streams.iterators) == issued


def test_records_carry_the_lambda_user_identity_and_the_stream_region() -> None:
    streams = FakeStreams()
    streams.add_shard("shard-a")
    streams.put("shard-a", "a1")
    handler = Recorder()

    fake_poller(streams, handler).poll_once()

    record = handler.events[0]["Records"][0]
    assert record["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert record["awsRegion"] == "eu-west-1"
    assert record["eventSourceARN"] == ARN


@pytest.mark.parametrize(("window_s", "expected"), [
    (0.0, [["k0", "k1"], ["k2", "k3"], ["k4"]]),  # one GetRecords page per invocation
    (5.0, [["k0", "k1", "k2", "k3"], ["k4"]]),  # pages gathered up to batch_size
])
def test_a_batching_window_fills_batches_across_pages(window_s: float,
                                                     expected: list[list[str]]) -> None:
    streams = FakeStreams(page=2)
    streams.add_shard("shard-a")
    for i in range(5):
        streams.put("shard-a", f"k{i}")
    handler = Recorder()

    fake_poller(streams, handler, batch_size=4, batching_window_s=window_s,
                clock=lambda: 0.0).poll_once()

    assert handler.batches == expected


def test_a_batching_window_ends_when_its_time_is_up() -> None:
    streams = FakeStreams(page=1)
    streams.add_shard("shard-a")
    for i in range(4):
        streams.put("shard-a", f"k{i}")
    ticks: Iterator[float] = iter(range(1000))
    handler = Recorder()

    # each clock read is 1 s later: the window of 2 s closes after two pages
    fake_poller(streams, handler, batch_size=10, batching_window_s=2.0,
                clock=lambda: float(next(ticks))).poll_once()

    assert handler.batches == [["k0", "k1"], ["k2", "k3"]]


def test_partial_failure_on_a_fake_stream_with_gapped_sequence_numbers() -> None:
    streams = FakeStreams()
    streams.add_shard("shard-a")
    for i in range(4):
        streams.put("shard-a", f"k{i}")

    def respond(call: int, records: Records) -> Any:
        return fail_at(records[2]["dynamodb"]["SequenceNumber"]) if call == 0 else None

    handler = Recorder(respond)
    stats = fake_poller(streams, handler).poll_once()

    assert handler.batches == [["k0", "k1", "k2", "k3"], ["k2", "k3"]]
    assert stats.positions == {"shard-a": streams.records["shard-a"][3]["dynamodb"][
        "SequenceNumber"]}


def test_options_outside_lambdas_limits_are_refused(lake: EventLake) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        poller(lake, Recorder(), batch_size=0)
    with pytest.raises(ValueError, match="batching_window_s"):
        poller(lake, Recorder(), batching_window_s=301)
    with pytest.raises(ValueError, match="max_retries"):
        poller(lake, Recorder(), max_retries=-1)


def _shard(stream: StreamPoller) -> str:
    shard_id: str = stream.clients.dynamodbstreams.describe_stream(
        StreamArn=stream.stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    return shard_id


def _wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not met in time")


def test_concurrent_writes_get_distinct_increasing_stream_sequence_numbers(
        lake: EventLake) -> None:
    # moto numbers a stream record by the shard's length before appending it; the local stack
    # and the test harness serialise that, as DynamoDB's numbers are unique and increasing
    from moto.dynamodb.models.table import StreamShard

    assert getattr(StreamShard.add, "eventlake_serialised", False)
    import threading

    barrier = threading.Barrier(8)

    def put(i: int) -> None:
        barrier.wait()
        assert lake.put(orders(1, start=i)[0]).ok

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handler = Recorder()
    poller(lake, handler, batch_size=3).poll_once()
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for e in handler.events for r in e["Records"]]
    assert len(seqs) == 8 and seqs == sorted(set(seqs))
    assert sorted(handler.delivered) == [f"ord-{i:03d}" for i in range(8)]
