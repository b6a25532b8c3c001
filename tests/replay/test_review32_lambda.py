"""Review 32: the `lambda:` target against what the Lambda service does on the wire, served by
a local HTTP server standing in for Lambda's endpoint (moto answers at once and never throttles):

- a function that runs longer than an ordinary AWS call's read timeout (a consumer working
  through 500 events may take minutes; a function may run 15): the Invoke must wait for its
  answer, not time out and invoke the function again with the same batch while the first
  invocation still runs (duplicates, then a DeliveryError for a batch that was delivered);
- a 200 carrying `X-Amz-Function-Error`: the call counts as failed, is retried, and stops
  the replay naming the events when it keeps failing;
- a 429 (TooManyRequestsException, the function's concurrency spent): retried by botocore
  until the function takes the batch.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from replay_support import batch_of, row

from eventlake import Settings
from eventlake import aws as eventlake_aws
from eventlake.aws import Clients
from eventlake.replay import aws
from eventlake.replay.backoff import Backoff
from eventlake.replay.shapes import shape_for, stream_record
from eventlake.replay.targets import DeliveryError

Answer = tuple[int, dict[str, str], bytes]


class FakeLambda:
    """Lambda's GetFunction and Invoke for one function; `answer(n)` gives the n-th Invoke's
    status, headers and body (1-based), after `delay_s`."""

    def __init__(self, answer: Callable[[int], Answer], delay_s: float = 0.0) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.payloads: list[Any] = []
        self._lock = threading.Lock()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        size = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(size)
        if request.command == "GET":  # GetFunction
            status, headers, out = 200, {}, json.dumps(
                {"Configuration": {"FunctionName": "consumer", "Timeout": 900}}).encode()
        else:  # Invoke
            with self._lock:
                self.payloads.append(json.loads(body))
                n = len(self.payloads)
            time.sleep(self.delay_s)
            status, headers, out = self.answer(n)
        request.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(out)))
        request.end_headers()
        request.wfile.write(out)


@pytest.fixture
def serve() -> Iterator[Callable[[FakeLambda], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(fake: FakeLambda) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.handle(self)

            def do_POST(self) -> None:
                fake.handle(self)

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def lambda_target(endpoint: str, waits: list[float], attempts: int = 2) -> Any:
    clients = Clients(Settings(endpoint_url=endpoint, aws_max_attempts=attempts))
    sink = aws.target("lambda", "consumer", clients, Backoff(attempts=3, sleep=waits.append))
    sink.start(None)
    return sink


def ok(_n: int) -> Answer:
    return 200, {}, b"null"


def test_a_function_slower_than_an_aws_read_timeout_is_invoked_once_and_waited_for(
        serve: Callable[[FakeLambda], str], monkeypatch: pytest.MonkeyPatch) -> None:
    # 0.3 s stands for the 30 s every other AWS call may wait for an answer; the function
    # takes 1 s (stands for minutes: Lambda allows 900 s)
    monkeypatch.setattr(eventlake_aws, "AWS_READ_TIMEOUT_S", 0.3)
    fake = FakeLambda(ok, delay_s=1.0)
    waits: list[float] = []
    sink = lambda_target(serve(fake), waits)

    sink.send(batch_of([row(f"e-{i}", seconds=i) for i in range(3)]))

    assert [[e["event_id"] for e in p] for p in fake.payloads] == [["e-0", "e-1", "e-2"]]
    assert waits == []


def test_a_200_with_a_function_error_header_is_retried_then_names_the_events(
        serve: Callable[[FakeLambda], str]) -> None:
    fake = FakeLambda(lambda n: (200, {"X-Amz-Function-Error": "Unhandled"},
                                 b'{"errorMessage": "boom", "errorType": "KeyError"}'))
    waits: list[float] = []
    sink = lambda_target(serve(fake), waits)

    with pytest.raises(DeliveryError) as caught:
        sink.send(batch_of([row("e-0"), row("e-1", seconds=1)]))

    assert caught.value.event_ids == ["e-0", "e-1"]
    assert "the function failed (Unhandled)" in caught.value.reason
    assert len(fake.payloads) == 3 and len(waits) == 2  # Backoff(attempts=3)


def test_a_throttled_invoke_is_retried_until_the_function_takes_the_batch(
        serve: Callable[[FakeLambda], str]) -> None:
    throttled = (429, {"x-amzn-ErrorType": "TooManyRequestsException"},
                 json.dumps({"Type": "User", "message": "Rate Exceeded.",
                             "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}
                            ).encode())
    fake = FakeLambda(lambda n: throttled if n == 1 else ok(n))
    waits: list[float] = []
    sink = lambda_target(serve(fake), waits, attempts=3)

    sink.send(batch_of([row("e-0")]))

    assert [[e["event_id"] for e in p] for p in fake.payloads] == [["e-0"], ["e-0"]]


def test_a_failure_reported_by_a_sequence_number_two_records_share_resends_from_the_first(
        serve: Callable[[FakeLambda], str]) -> None:
    # The stream shape's SequenceNumber is the timestamp's microseconds and 6 digits of the
    # event_id's digest: events stamped alike (a producer stamping seconds) share one about
    # once in a million pairs, i.e. in ~12% of 500-event batches of one timestamp. These two do.
    first, between, second = "ev-001123", "ev-001500", "ev-001963"
    events = batch_of([row(first), row(between), row(second)])
    records = [stream_record(event) for event in events.shaped(None)]
    sequence = records[0]["dynamodb"]["SequenceNumber"]
    assert records[2]["dynamodb"]["SequenceNumber"] == sequence
    # the consumer (handlers/stream.py) failed on the first record and reports it
    failed = json.dumps({"batchItemFailures": [{"itemIdentifier": sequence}]}).encode()
    fake = FakeLambda(lambda n: (200, {}, failed) if n == 1 else ok(n))
    waits: list[float] = []
    clients = Clients(Settings(endpoint_url=serve(fake)))
    sink = aws.target("lambda", "consumer", clients, Backoff(sleep=waits.append))
    sink.shape = shape_for("stream")
    sink.start(None)

    sink.send(events)

    sent = [[r["dynamodb"]["Keys"]["event_id"]["S"] for r in p["Records"]]
            for p in fake.payloads]
    assert sent == [[first, between, second], [first, between, second]]
